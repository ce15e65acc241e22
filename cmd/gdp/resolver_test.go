package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/freeport"
	"github.com/gdpnet/gdpnet/resolver"
)

// freePort is a loopback address for a daemon the test starts: a port
// below the kernel's ephemeral range, so that no test of another package
// binding port 0 meanwhile takes it (internal/freeport).
func freePort(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t)
}

// TestResolverDaemonAndLookup runs "gdp resolver" from files (keystore,
// membership, domain, YAML), joins it from a second node that publishes a
// record, and resolves the name with "gdp lookup", which verifies it.
func TestResolverDaemonAndLookup(t *testing.T) {
	dir := t.TempDir()
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dom, err := certs.NewIdentity(certs.KindDomain, "test domain")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	member := func(id *certs.Identity) *certs.Cert {
		m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	resID, err := certs.NewIdentity(certs.KindResolver, "resolver under test")
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save("resolver", resID); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	memberPath := write("resolver.member", certs.Armor(certs.PEMCert, member(resID).Marshal()))
	domainPath := write("domain.meta", certs.Armor(certs.PEMMetadata, dom.Meta.Marshal()))
	api := freePort(t)
	cfgPath := write("resolver.yaml", fmt.Appendf(nil, `keystore: %s
identity: resolver
member_cert: %s
domain: %s
api: %s
log: {level: error}
resolver:
  mode: dht
  listen: [/ip4/127.0.0.1/udp/0/quic-v1]
  min_puts: 1
`, filepath.Join(dir, "keys"), memberPath, domainPath, api))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runResolver(ctx, cfgPath, false) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("resolver: %v", err)
		}
	}()

	// Wait for the API, read the DHT address from /status.
	var st resolver.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + api + "/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && len(st.Addrs) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("resolver API did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A router of the domain joins and publishes its own server's name.
	rID, err := certs.NewIdentity(certs.KindRouter, "router")
	if err != nil {
		t.Fatal(err)
	}
	rMember := member(rID)
	srv, err := certs.NewIdentity(certs.KindServer, "server")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := certs.IssueRtCert(srv, rID.Name, now.Add(-time.Minute), now.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	chain := &certs.Chain{Target: srv.Meta, RtCert: rt, Router: rID.Meta, Member: rMember, Domain: dom.Meta}
	svc, err := resolver.Open(ctx, resolver.Config{Mode: "dht", Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		Bootstrap: st.Addrs, MinPuts: 1}, resolver.NodeCredentials{Identity: rID, Member: rMember, Domain: dom.Meta,
		Certs: certs.NewVerifier(dom.Meta)}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	rec, err := resolver.NewLocation(rID.Key, srv.Name, chain, []string{"127.0.0.1:8009"}, resolver.NextSequence(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(ctx, rec); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		// rootCmd keeps flag values between executions in one process.
		if c, _, err := rootCmd.Find(args[:1]); err == nil {
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if sv, ok := f.Value.(pflag.SliceValue); ok {
					_ = sv.Replace(nil)
				} else {
					_ = f.Value.Set(f.DefValue)
				}
				f.Changed = false
			})
		}
		var out bytes.Buffer
		rootCmd.SetOut(&out)
		rootCmd.SetErr(&out)
		rootCmd.SetArgs(dashNames(rootCmd, args))
		err := rootCmd.ExecuteContext(ctx)
		return out.String(), err
	}
	out, err := run("lookup", srv.Name.String(), "--api", "http://"+api, "--trust", domainPath, "--no-cache")
	if err != nil {
		t.Fatalf("gdp lookup: %v\n%s", err, out)
	}
	for _, want := range []string{"kind      location", "router    " + rID.Name.String(), "127.0.0.1:8009", "verified:", "rtcert"} {
		if !strings.Contains(out, want) {
			t.Errorf("gdp lookup output lacks %q:\n%s", want, out)
		}
	}
	out, err = run("lookup", srv.Name.String(), "--config", cfgPath, "--json")
	if err != nil {
		t.Fatalf("gdp lookup --config --json: %v\n%s", err, out)
	}
	var vs []resolver.View
	if err := json.Unmarshal([]byte(out), &vs); err != nil || len(vs) != 1 || vs[0].Name != srv.Name.String() || len(vs[0].Chain) != 5 {
		t.Fatalf("json views: %v %+v", err, vs)
	}

	// An unknown name is not found; a domain the client does not trust
	// makes the answer unverifiable. "Not found" needs a peer to ask: the
	// daemon adds the router's DHT node to its routing table once that
	// connection is identified, which can come after the put it served
	// (under load); until then it answers 502 "no peer in table".
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + api + "/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if err == nil && st.DomainPeers > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resolver daemon's routing table is still empty: %v %+v", err, st)
		}
	}
	if _, err := run("lookup", resID.Name.String(), "--api", "http://"+api, "--trust", domainPath); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("unknown name: %v, want ErrNotFound", err)
	}
	other, err := certs.NewIdentity(certs.KindDomain, "other")
	if err != nil {
		t.Fatal(err)
	}
	otherPath := write("other.meta", certs.Armor(certs.PEMMetadata, other.Meta.Marshal()))
	if _, err := run("lookup", srv.Name.String(), "--api", "http://"+api, "--trust", otherPath); !errors.Is(err, resolver.ErrNotMember) {
		t.Errorf("untrusted domain: %v, want ErrNotMember", err)
	}
}
