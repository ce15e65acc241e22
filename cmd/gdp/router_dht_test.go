package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// routerDaemon is one `gdp router` run in this process from its files.
type routerDaemon struct {
	admin string
	name  pdu.Name
	addr  string // tunnel address
}

// getJSON reads an admin API path into v; false when the daemon is not up.
func (d *routerDaemon) getJSON(path string, v any) bool {
	resp, err := http.Get("http://" + d.admin + path)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}

func (d *routerDaemon) resolverStatus(t *testing.T) resolver.Status {
	t.Helper()
	var st resolver.Status
	if !d.getJSON("/v1/resolver/status", &st) {
		t.Fatalf("router %s: no resolver status", d.admin)
	}
	return st
}

// run runs `gdp router --config cfgPath` in this process until the test
// ends (an error on the way out fails the test) and waits until its admin
// API answers with d.name; a router that stops before is a fatal error.
// It returns the router's status.
func (d *routerDaemon) run(t *testing.T, cfgPath string) router.Summary {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runRouter(ctx, cfgPath) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router %s exited: %v", cfgPath, err)
		}
	})
	var s router.Summary
	waitFor(t, "router "+cfgPath+" up", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("router %s stopped: %v", cfgPath, err)
		default:
		}
		return d.getJSON("/v1/status", &s) && s.Name == d.name
	})
	return s
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestRoutersShareDHT runs two `gdp router` daemons from YAML files whose
// resolver blocks say mode dht, on loopback: B bootstraps its DHT node from
// A's (learnt from A's admin API) and has no peer routers configured. A
// server attached at A advertises its name; a client attached at B pings
// it. The only way B can learn where the name is, and A's tunnel address,
// is the location record A published in the DHT. When the server leaves,
// A's withdrawal reaches B's resolver too.
func TestRoutersShareDHT(t *testing.T) {
	dir := t.TempDir()
	ksDir := filepath.Join(dir, "keys")
	ks, err := certs.OpenKeystore(ksDir)
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "dht test domain")
	domainPath := filepath.Join(dir, "domain.meta")
	writePEM(t, domainPath, certs.PEMMetadata, dom.Meta.Marshal())
	now := time.Now()
	member := func(id *certs.Identity) *certs.Cert {
		m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	start := func(alias, resolverYAML string) *routerDaemon {
		t.Helper()
		id, _ := certs.NewIdentity(certs.KindRouter, "router "+alias)
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
		memberPath := filepath.Join(dir, alias+".member")
		writePEM(t, memberPath, certs.PEMCert, member(id).Marshal())
		d := &routerDaemon{admin: adminPort(t), name: id.Name}
		cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
keystore: %s
identity: %s
member_cert: %s
domain: %s
admin: %q
drain_timeout: 1s
log: {level: warn}
resolver:
%s`, ksDir, alias, memberPath, domainPath, d.admin, resolverYAML)
		cfgPath := filepath.Join(dir, alias+".yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		s := d.run(t, cfgPath)
		if len(s.Addrs) != 1 {
			t.Fatalf("router %s publishes addresses %v", alias, s.Addrs)
		}
		d.addr = s.Addrs[0]
		return d
	}
	const dhtBlock = `  mode: dht
  listen: [/ip4/127.0.0.1/udp/0/quic-v1]
  min_puts: 1
  handshake_timeout: 10s
`
	a := start("ra", dhtBlock)
	stA := a.resolverStatus(t)
	if stA.Mode != "dht" || len(stA.Addrs) == 0 {
		t.Fatalf("router A's resolver: %+v", stA)
	}
	b := start("rb", dhtBlock+"  bootstrap: ["+strings.Join(stA.Addrs, ", ")+"]\n")
	waitFor(t, "the routers' DHT nodes to admit each other", func() bool {
		return a.resolverStatus(t).Admitted >= 1 && b.resolverStatus(t).Admitted >= 1 &&
			a.resolverStatus(t).DomainPeers >= 1 && b.resolverStatus(t).DomainPeers >= 1
	})

	attach := func(d *routerDaemon, kind certs.Kind, desc string) *client.Client {
		t.Helper()
		id, _ := certs.NewIdentity(kind, desc)
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member(id), Domain: dom.Meta, Conn: conn,
			Options: client.Options{RequestTimeout: 2 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ep.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := ep.Attach(ctx, d.addr, d.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Advertise(ctx, c.Self()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	server := attach(a, certs.KindServer, "server at A")
	cl := attach(b, certs.KindClient, "client at B")

	// B's embedded resolver finds the server's record in the DHT (asked
	// uncached so that an early miss is not remembered).
	var views []resolver.View
	waitFor(t, "B's resolver to find the server's record", func() bool {
		return b.getJSON("/v1/resolver/lookup/"+server.Name().String()+"?format=json&cache=no", &views) && len(views) > 0
	})
	if len(views) != 1 || views[0].Router != a.name.String() {
		t.Fatalf("B's resolver says the server is at %+v, want A %s only", views, a.name)
	}
	// gdp lookup against B's admin API verifies the record's chain itself.
	resetCommand("lookup")
	out := runGDP(t, "lookup", "--api", "http://"+b.admin+"/v1/resolver", "--trust", domainPath, server.Name().String())
	if !strings.Contains(out, a.name.String()) || !strings.Contains(out, "verified") {
		t.Fatalf("gdp lookup at B:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rep client.Reply
	waitFor(t, "a ping from B to the server at A", func() bool {
		rep, err = cl.Ping(ctx, server.Name(), 32, time.Second)
		return err == nil && rep.Reached && rep.From == server.Name()
	})
	for i := range 3 {
		if rep, err = cl.Ping(ctx, server.Name(), 32, time.Second); err != nil || !rep.Reached {
			t.Fatalf("ping %d: %+v %v", i, rep, err)
		}
	}
	// B opened the tunnel to A on demand, from the record's address.
	var peers []router.PeerInfo
	if !b.getJSON("/v1/peers", &peers) || !hasPeer(peers, a.name) {
		t.Fatalf("B's peers %+v do not include A", peers)
	}

	// A published its own name while it was the DHT's only node; B finds
	// it too (A kept the record and answers B's lookup).
	if rep, err = cl.Ping(ctx, a.name, 32, 2*time.Second); err != nil || !rep.Reached || rep.From != a.name {
		t.Fatalf("ping router A by name from B: %+v %v", rep, err)
	}

	// The server leaves A: A withdraws, and B's resolver sees it.
	_ = server.Close()
	waitFor(t, "the withdrawal to reach B's resolver", func() bool {
		resp, err := http.Get("http://" + b.admin + "/v1/resolver/lookup/" + server.Name().String() + "?cache=no")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})
}

// resetCommand sets a subcommand's flags back to their defaults and drops
// the context of an earlier execution: rootCmd keeps both between
// executions in one process.
func resetCommand(sub string) {
	c, _, err := rootCmd.Find([]string{sub})
	if err != nil {
		return
	}
	c.SetContext(context.Background())
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			_ = sv.Replace(nil)
		} else {
			_ = f.Value.Set(f.DefValue)
		}
		f.Changed = false
	})
}

func hasPeer(peers []router.PeerInfo, name pdu.Name) bool {
	for _, p := range peers {
		if p.Name == name {
			return true
		}
	}
	return false
}
