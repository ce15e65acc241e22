package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/router"
)

// TestHubAndSpokeFromDocs builds OPERATIONS §3.1's "edge site" topology
// from deploy/router.yaml itself: a hub with the shipped defaults (static
// resolver), and two spokes whose file is the shipped one with the example
// peers: and upstream: lines uncommented to name the hub, and
// dial_on_demand: false, as the docs say. An endpoint at one spoke pings an
// endpoint at the other, both ways — NO_ROUTE at the hub before the spokes
// announced their names to their upstream.
func TestHubAndSpokeFromDocs(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join("..", "..", "deploy", "router.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ksDir := filepath.Join(dir, "keys")
	ks, err := certs.OpenKeystore(ksDir)
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "hub and spoke domain")
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
	// edit replaces one line of the shipped file, which must be there.
	edit := func(conf *string, old, new string) {
		t.Helper()
		if !strings.Contains(*conf, old) {
			t.Fatalf("deploy/router.yaml no longer has %q", old)
		}
		*conf = strings.Replace(*conf, old, new, 1)
	}
	start := func(alias string, hub *routerDaemon) *routerDaemon {
		t.Helper()
		id, _ := certs.NewIdentity(certs.KindRouter, "router "+alias)
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
		memberPath := filepath.Join(dir, alias+".member")
		writePEM(t, memberPath, certs.PEMCert, member(id).Marshal())
		d := &routerDaemon{admin: adminPort(t), name: id.Name, addr: udpPort(t)}
		conf := string(shipped)
		edit(&conf, `listen: "[::]:8009"`, fmt.Sprintf("listen: %q", d.addr))
		edit(&conf, "keystore: /var/lib/gdp/keys", "keystore: "+ksDir)
		edit(&conf, "identity: router ", "identity: "+alias+" ")
		edit(&conf, "member_cert: /etc/gdp/router.member", "member_cert: "+memberPath)
		edit(&conf, "domain: /etc/gdp/domain.meta", "domain: "+domainPath)
		edit(&conf, `admin: "127.0.0.1:8019"`, fmt.Sprintf("admin: %q", d.admin))
		edit(&conf, "  level: info ", "  level: warn ")
		if hub != nil {
			// §3.1: "list the site's core router under peers and name it
			// upstream; set dial_on_demand: false".
			edit(&conf, "# peers:\n#   - name: -HX3dewgJSqb__1vLFWJt6N4_lds_P8fWeVq27Hhl6A\n#     addr: \"192.0.2.1:8009\"\n#     raw: false",
				fmt.Sprintf("peers:\n  - name: %s\n    addr: %q\n    raw: false", hub.name, hub.addr))
			edit(&conf, "# upstream: -HX3dewgJSqb__1vLFWJt6N4_lds_P8fWeVq27Hhl6A", "upstream: "+hub.name.String())
			edit(&conf, "dial_on_demand: true", "dial_on_demand: false")
		}
		cfgPath := filepath.Join(dir, alias+".yaml")
		if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		d.run(t, cfgPath)
		return d
	}
	hub := start("hub", nil)
	s1 := start("spoke1", hub)
	s2 := start("spoke2", hub)
	waitFor(t, "both spokes' tunnels at the hub", func() bool {
		var peers []router.PeerInfo
		return hub.getJSON("/v1/peers", &peers) && hasPeer(peers, s1.name) && hasPeer(peers, s2.name)
	})

	attach := func(d *routerDaemon, desc string) *client.Client {
		t.Helper()
		id, _ := certs.NewIdentity(certs.KindClient, desc)
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
	a := attach(s1, "endpoint at spoke 1")
	b := attach(s2, "endpoint at spoke 2")
	h := attach(hub, "endpoint at the hub")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []struct{ from, to *client.Client }{{a, b}, {b, a}, {h, a}, {h, b}, {a, h}} {
		var err error
		var rep client.Reply
		waitFor(t, "a ping "+p.from.Name().String()+" → "+p.to.Name().String(), func() bool {
			rep, err = p.from.Ping(ctx, p.to.Name(), 32, time.Second)
			return err == nil && rep.Reached && rep.From == p.to.Name()
		})
	}
	// The hub learnt the spokes' names from them, not from a shared
	// resolver: each spoke's endpoint is in the hub's resolver.
	var routes []router.RouteInfo
	if !hub.getJSON("/v1/routes?name="+b.Name().String(), &routes) || len(routes) != 1 || routes[0].Hops[0].Peer != s2.name {
		t.Fatalf("hub's route to the endpoint at spoke 2: %+v", routes)
	}
}
