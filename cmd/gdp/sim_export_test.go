package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/sim"
)

// TestExportConfigsLoad: every node.yaml gdp sim export writes is read by
// what the node runs — gdp router's and gdp capsuled's own loaders, a
// client's attach block as gdp capsule --config reads it — strictly, with
// no unknown key (Session 19: node.yaml was the simulator's description,
// which gdp router refused at once: unknown keys name and kind, a string
// for resolver). The routers find names through their DHT whatever the
// topology's resolver. With credentials (Session 20), each node's exported
// files, laid out at the paths node.yaml names, load as the daemon loads
// them (its key, its membership of its domain, the other domains it
// trusts); r2's resolver.bootstrap names r1 by the peer id of r1's key;
// the endpoints' router_name is their router's name.
func TestExportConfigsLoad(t *testing.T) {
	for _, res := range []string{sim.ResolverStatic, sim.ResolverDHT} {
		top := sim.New("export-" + res)
		top.Resolver = res
		top.AddRouter("r1", "")
		top.AddRouter("r2", "")
		top.AddServer("s1", "r1")
		top.AddClient("c1", "r2")
		top.Link("r1", "r2")
		if res == sim.ResolverStatic { // kad-dht in the simulator: one domain
			top.Domains = []string{"default", "other"}
			top.AddRouter("r3", "other")
			top.Link("r2", "r3")
		}
		creds, err := top.MintCredentials(time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, withCreds := range []*sim.ExportCredentials{nil, creds} {
			nodes, err := top.ExportWith(withCreds)
			if err != nil {
				t.Fatal(err)
			}
			checkExportedConfigs(t, res, nodes, withCreds)
		}
	}
}

func checkExportedConfigs(t *testing.T, res string, nodes []*sim.ExportNode, creds *sim.ExportCredentials) {
	t.Helper()
	dir := t.TempDir()
	for _, e := range nodes {
		// The node's files: node.yaml and its credentials under a root
		// of its own (only the prefix /var/lib/gdp rewritten).
		root := filepath.Join(dir, e.Node.Name)
		path := filepath.Join(root, "node.yaml")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(e.Daemon, "/var/lib/gdp/", root+"/var/lib/gdp/")), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, f := range e.Secret {
			p := filepath.Join(root, "var/lib/gdp", f.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.Data, 0o400); err != nil {
				t.Fatal(err)
			}
		}
		if (creds == nil) != (len(e.Secret) == 0) {
			t.Fatalf("%s %s: %d credential files with credentials %v", res, e.Node.Name, len(e.Secret), creds != nil)
		}
		// A router joins the DHT of its domain's routers before it: r2
		// joins r1, by r1's peer id when the keys are exported.
		join := strings.Contains(e.Daemon, "# bootstrap: [/dns4/gdp-r1/udp/4001/quic-v1/p2p/PEER_ID]")
		if creds != nil {
			join = strings.Contains(e.Daemon, "  bootstrap: [/dns4/gdp-r1/udp/4001/quic-v1/p2p/"+creds.Nodes["r1"].PeerID.String()+"]\n")
		}
		if e.Node.Kind == sim.KindRouter && join != (e.Node.Name == "r2") {
			t.Fatalf("%s %s: bootstrap (want one only on r2, r1's domain)\n%s", res, e.Node.Name, e.Daemon)
		}
		var cf credFiles
		switch e.Node.Kind {
		case sim.KindRouter:
			cfg, err := loadRouterConfig(path)
			if err != nil || cfg.Resolver.Mode != "dht" || cfg.Listen != "0.0.0.0:8009" || !strings.HasPrefix(cfg.StateDir, "/var/lib/gdp-state/") ||
				!slices.Equal(cfg.Addrs, []string{"gdp-" + e.Node.Name + ":8009"}) {
				t.Fatalf("%s %s: router config %+v: %v\n%s", res, e.Node.Name, cfg, err, e.Daemon)
			}
			if creds != nil && len(cfg.Resolver.Bootstrap) > 0 {
				if err := checkPeerMultiaddr("bootstrap", cfg.Resolver.Bootstrap[0]); err != nil {
					t.Fatal(err)
				}
			}
			cf = credFiles{keystore: cfg.Keystore, identity: cfg.Identity, member: cfg.MemberCert, domain: cfg.Domain, trusted: cfg.TrustedDomains}
		case sim.KindServer:
			cfg, err := loadCapsuledConfig(path)
			if err != nil || cfg.Router != "gdp-r1:8009" || cfg.Identity != "capsuled" || !strings.HasPrefix(cfg.Dir, "/var/lib/gdp-state/") {
				t.Fatalf("%s %s: capsuled config %+v: %v\n%s", res, e.Node.Name, cfg, err, e.Daemon)
			}
			if creds != nil && cfg.RouterName != creds.Nodes["r1"].Identity.Name.String() {
				t.Fatalf("%s %s: router_name %q, want r1's", res, e.Node.Name, cfg.RouterName)
			}
			cf = credFiles{keystore: cfg.Keystore, identity: cfg.Identity, member: cfg.MemberCert, domain: cfg.Domain, trusted: cfg.TrustedDomains}
		default:
			var a attachConfig
			if err := config.Load(path, &a); err != nil || a.Router != "gdp-r2:8009" || a.Identity != "client" {
				t.Fatalf("%s %s: client config %+v: %v\n%s", res, e.Node.Name, a, err, e.Daemon)
			}
			if creds != nil && a.RouterName != creds.Nodes["r2"].Identity.Name.String() {
				t.Fatalf("%s %s: router_name %q, want r2's", res, e.Node.Name, a.RouterName)
			}
			cf = credFiles{keystore: a.Keystore, identity: a.Identity, member: a.MemberCert, domain: a.Domain}
		}
		if creds == nil {
			continue
		}
		// The daemon's own credential loader: key (mode 0400), membership
		// of the domain beside it, the trusted domains.
		nc, err := loadCreds(e.Node.Kind, cf)
		if err != nil || nc.id.Name != creds.Nodes[e.Node.Name].Identity.Name {
			t.Fatalf("%s %s: credentials as exported: %v", res, e.Node.Name, err)
		}
		// With two domains, routers and servers trust the other one.
		want := 0
		if res == sim.ResolverStatic && e.Node.Kind != sim.KindClient {
			want = 1
		}
		if len(cf.trusted) != want {
			t.Fatalf("%s %s: trusted domains %v, want %d", res, e.Node.Name, cf.trusted, want)
		}
	}
}

// TestRouterAddrsHostName (Session 20): gdp router resolves a host name in
// addrs (an exported router's Service, gdp-r1:8009) to the ip:port its
// location records carry, once at start, and keeps an ip:port as given;
// one it cannot resolve stops the start with the key named. Before, the
// name passed the config check and every publish then failed ("want
// canonical ip:port"): no other router could resolve or dial the router.
func TestRouterAddrsHostName(t *testing.T) {
	got, err := resolveAddrs(context.Background(), []string{"192.0.2.7:8009", "localhost:8010"})
	if err != nil || len(got) < 2 || got[0] != "192.0.2.7:8009" || !slices.Contains(got, "127.0.0.1:8010") {
		t.Fatalf("resolveAddrs: %q, %v", got, err)
	}
	for _, a := range got {
		if ap, err := netip.ParseAddrPort(a); err != nil || ap.String() != a {
			t.Fatalf("%q is not a canonical ip:port", a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := resolveAddrs(ctx, []string{"gdp-no-such-host.invalid:8009"}); err == nil || !strings.Contains(err.Error(), `addrs "gdp-no-such-host.invalid:8009": cannot resolve`) {
		t.Fatalf("unresolvable name: %v", err)
	}
}

// TestParseRunAs: gdp sim export --run-as takes UID[:GID] (GID defaults
// to UID), refuses root and anything not a number, and is refused beside
// --compose before anything is written (Session 21).
func TestParseRunAs(t *testing.T) {
	for in, want := range map[string]*sim.RunAs{"1000": {UID: 1000, GID: 1000}, "65532:65533": {UID: 65532, GID: 65533}, "7:0": {UID: 7, GID: 0},
		"0": nil, "0:5": nil, "x": nil, "1000:": nil, "-1": nil, "1000:x": nil, "4294967296": nil} {
		got, err := parseRunAs(in)
		if (want == nil) != (err != nil) || (want != nil && *got != *want) {
			t.Errorf("--run-as %q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	dir := t.TempDir()
	topo := filepath.Join(dir, "topo.yaml")
	top := sim.New("runas")
	top.AddRouter("r1", "")
	if err := os.WriteFile(topo, top.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	c := simExportCmd()
	c.SetArgs([]string{topo, "--compose", filepath.Join(dir, "compose.yaml"), "--run-as", "1000"})
	c.SetOut(new(strings.Builder))
	c.SetErr(new(strings.Builder))
	if err := c.Execute(); err == nil || !strings.Contains(err.Error(), "--run-as is for --k8s only") {
		t.Fatalf("--compose with --run-as: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "compose.yaml")); !os.IsNotExist(err) {
		t.Fatalf("compose.yaml written although refused: %v", err)
	}
}
