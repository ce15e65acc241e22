package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/sim"
)

// TestExportConfigsLoad: every node.yaml gdp sim export writes is read by
// what the node runs — gdp router's and gdp capsuled's own loaders, a
// client's attach block as gdp capsule --config reads it — strictly, with
// no unknown key (Session 19: node.yaml was the simulator's description,
// which gdp router refused at once: unknown keys name and kind, a string
// for resolver). The routers find names through their DHT whatever the
// topology's resolver.
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
		nodes, err := top.Export()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for _, e := range nodes {
			path := filepath.Join(dir, e.Node.Name+".yaml")
			if err := os.WriteFile(path, []byte(e.Daemon), 0o644); err != nil {
				t.Fatal(err)
			}
			// A router joins the DHT of its domain's routers before it.
			join := strings.Contains(e.Daemon, "# bootstrap: [/dns4/gdp-r1/udp/4001/quic-v1/p2p/")
			if e.Node.Kind == sim.KindRouter && join != (e.Node.Name == "r2") {
				t.Fatalf("%s %s: bootstrap (want one only on r2, r1's domain)\n%s", res, e.Node.Name, e.Daemon)
			}
			switch e.Node.Kind {
			case sim.KindRouter:
				cfg, err := loadRouterConfig(path)
				if err != nil || cfg.Resolver.Mode != "dht" || cfg.Listen != "0.0.0.0:8009" || !strings.HasPrefix(cfg.StateDir, "/var/lib/gdp-state/") {
					t.Fatalf("%s %s: router config %+v: %v\n%s", res, e.Node.Name, cfg, err, e.Daemon)
				}
			case sim.KindServer:
				cfg, err := loadCapsuledConfig(path)
				if err != nil || cfg.Router != "gdp-r1:8009" || cfg.Identity != "capsuled" || !strings.HasPrefix(cfg.Dir, "/var/lib/gdp-state/") {
					t.Fatalf("%s %s: capsuled config %+v: %v\n%s", res, e.Node.Name, cfg, err, e.Daemon)
				}
			default:
				var a attachConfig
				if err := config.Load(path, &a); err != nil || a.Router != "gdp-r2:8009" || a.Identity != "client" {
					t.Fatalf("%s %s: client config %+v: %v\n%s", res, e.Node.Name, a, err, e.Daemon)
				}
			}
		}
	}
}
