package main

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestReloadNamesRestartOnlySettings runs a real `gdp router` from
// deploy/router.yaml, edits a limit that only a restart applies
// (face.max_per_identity) and one that a reload applies (clock_skew), and
// sends SIGHUP: one WARN names the limit, and only it, with what to do.
// Before, the reload logged the same "limits change on restart only" line
// whatever was edited, so an operator who raised a limit and reloaded
// could not tell it was not in force.
func TestReloadNamesRestartOnlySettings(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs daemons")
	}
	e := newOpsEnv(t)
	e.mustGDP("cert", "new-domain", "--alias", "acme", "--description", "reload warning")
	e.mustGDP("cert", "keygen", "--kind", "router", "--alias", "router")
	e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", "router.meta", "--duration", "48h", "--out", "router.member")
	set := map[string]any{"listen": udpPort(t), "admin": freePort(t), "member_cert": "router.member", "domain": "acme.meta"}
	rt := e.start("router", "router", "--config", e.deployConfig("router", set))
	rt.waitLog(`"router up"`)

	set["face.max_per_identity"] = 3
	set["clock_skew"] = "4m"
	e.deployConfig("router", set)
	if err := rt.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line := rt.waitLog(`not in force until a restart`)
	for _, want := range []string{`"level":"warn"`, `"settings":["face.max_per_identity"]`, `systemctl restart gdp-router`} {
		if !strings.Contains(line, want) {
			t.Errorf("restart-only warning %s: want %s", line, want)
		}
	}
	rt.stop()
}

// TestRestartOnlyChanges: for each daemon's deploy file, editing a setting
// its reload applies is not reported, editing one it does not is, by its
// YAML path.
func TestRestartOnlyChanges(t *testing.T) {
	for _, tc := range []struct {
		daemon            string
		load              func(string) (any, error)
		reloaded          []string
		reload, restart   string
		reloadV, restartV any
	}{
		{"router", func(p string) (any, error) { return loadRouterConfig(p) }, routerReloaded, "allow_domains", "face.rate_pps", []string{pdu.Name{1}.String()}, 1000},
		{"resolver", func(p string) (any, error) { return loadResolverConfig(p) }, resolverReloaded, "trusted_domains", "resolver.max_records_per_router", []string{"other.meta"}, 7},
		{"capsuled", func(p string) (any, error) { return loadCapsuledConfig(p) }, capsuledReloaded, "placement.max_per_owner", "workers", 9, 3},
		{"gateway", func(p string) (any, error) { return loadGatewayConfig(p) }, gatewayReloaded, "max_body", "socket", 1 << 20, "/tmp/other.sock"},
		{"handoffd", func(p string) (any, error) { return loadHandoffdConfig(p) }, handoffdReloaded, "senders", "idle_timeout", []string{pdu.Name{2}.String()}, "9s"},
	} {
		t.Run(tc.daemon, func(t *testing.T) {
			dir := t.TempDir()
			write := func(set map[string]any) string { return writeDeployConfig(t, dir, tc.daemon, set) }
			running, err := tc.load(write(nil))
			if err != nil {
				t.Fatal(err)
			}
			same, err := tc.load(write(nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := restartOnlyChanges(running, same, tc.reloaded...); len(got) != 0 {
				t.Fatalf("the same file read twice: %v reported", got)
			}
			next, err := tc.load(write(map[string]any{tc.reload: tc.reloadV, tc.restart: tc.restartV}))
			if err != nil {
				t.Fatal(err)
			}
			if got := restartOnlyChanges(running, next, tc.reloaded...); !slices.Equal(got, []string{tc.restart}) {
				t.Fatalf("%s and %s edited: %v reported, want [%s]", tc.reload, tc.restart, got, tc.restart)
			}
		})
	}
}
