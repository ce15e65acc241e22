package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/tunnel"
)

func adminPort(t *testing.T) string {
	t.Helper()
	return freePort(t)
}

func writePEM(t *testing.T, path, typ string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, certs.Armor(typ, b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runGDP(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(dashNames(rootCmd, args))
	err := rootCmd.ExecuteContext(context.Background())
	rootCmd.SetArgs(nil)
	if err != nil {
		t.Fatalf("gdp %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestRouterDaemon runs `gdp router --config` as an operator would: from a
// keystore, certificate files and a YAML file; queries it with `gdp router
// status|routes|peers`, pings it with `gdp ping`, renews its membership with
// SIGHUP, and stops it.
func TestRouterDaemon(t *testing.T) {
	dir := t.TempDir()
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "test domain")
	rid, _ := certs.NewIdentity(certs.KindRouter, "test router")
	pid, _ := certs.NewIdentity(certs.KindClient, "probe")
	for alias, id := range map[string]*certs.Identity{"router": rid, "ping": pid} {
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	issue := func(id *certs.Identity, d time.Duration) *certs.Cert {
		m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	writePEM(t, filepath.Join(dir, "domain.meta"), certs.PEMMetadata, dom.Meta.Marshal())
	writePEM(t, filepath.Join(dir, "router.member"), certs.PEMCert, issue(rid, time.Hour).Marshal())
	writePEM(t, filepath.Join(dir, "ping.member"), certs.PEMCert, issue(pid, time.Hour).Marshal())
	admin := adminPort(t)
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
keystore: %s
member_cert: %s
domain: %s
admin: %q
drain_timeout: 1s
tick: 20ms
log: {level: warn}
`, filepath.Join(dir, "keys"), filepath.Join(dir, "router.member"), filepath.Join(dir, "domain.meta"), admin)
	cfgPath := filepath.Join(dir, "router.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	d := &routerDaemon{admin: admin, name: rid.Name}
	d.run(t, cfgPath)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	status := func() (s router.Summary) {
		d.getJSON("/v1/status", &s)
		return s
	}
	if got := status().Tick; got != "20ms" {
		t.Errorf("status tick %q, want the config's 20ms", got)
	}
	s := status()
	if len(s.Addrs) != 1 || strings.HasSuffix(s.Addrs[0], ":0") {
		t.Fatalf("published addresses %v", s.Addrs)
	}

	out := runGDP(t, "router", "status", "--admin", admin)
	if !strings.Contains(out, rid.Name.String()) || !strings.Contains(out, "fib       0 names") {
		t.Fatalf("status:\n%s", out)
	}
	out = runGDP(t, "ping", "--router", s.Addrs[0], "--admin", admin, "--keystore", filepath.Join(dir, "keys"),
		"--member", filepath.Join(dir, "ping.member"), "--domain", filepath.Join(dir, "domain.meta"),
		"-c", "2", "-i", "10ms", rid.Name.String())
	if !strings.Contains(out, "2 sent, 2 received, 0% loss") {
		t.Fatalf("ping:\n%s", out)
	}
	// A probe's attachment shows in routes (it advertised itself) while
	// it is attached: its own row, not just the header.
	probe := probeFlags{routerAddr: s.Addrs[0], admin: admin, keystore: filepath.Join(dir, "keys"),
		identity: "ping", member: filepath.Join(dir, "ping.member"), domain: filepath.Join(dir, "domain.meta")}
	_, detach, err := probe.attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out = runGDP(t, "router", "routes", "--admin", admin)
	if !routeRow(out, pid.Name.String(), "endpoint") {
		t.Fatalf("routes does not list the attached probe %s:\n%s", pid.Name, out)
	}
	detach()
	_ = runGDP(t, "router", "peers", "--admin", admin)

	// linkExpiry dials the router on a new tunnel as the probe and returns
	// the membership expiry the router showed.
	linkExpiry := func() time.Time {
		t.Helper()
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ep, err := tunnel.NewEndpoint(tunnel.Config{Identity: tunnel.CertIdentity(pid, issue(pid, time.Hour), dom.Meta),
			Verify: tunnel.CertVerifier(certs.NewVerifier(dom.Meta)), Conn: conn})
		if err != nil {
			t.Fatal(err)
		}
		defer ep.Close()
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		raddr, err := net.ResolveUDPAddr("udp", s.Addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		l, err := ep.Dial(dctx, raddr, rid.Name, tunnel.KindQUIC)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Expiry()
	}
	if got, want := linkExpiry(), now.Add(time.Hour).Truncate(time.Second); !got.Equal(want) {
		t.Fatalf("a new link sees the router's membership expiring %v, want %v", got, want)
	}

	// Renew the membership and reload.
	old := status().MemberExpiry
	writePEM(t, filepath.Join(dir, "router.member"), certs.PEMCert, issue(rid, 48*time.Hour).Marshal())
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !status().MemberExpiry.After(old.Add(time.Hour)); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the membership (still %s)", status().MemberExpiry)
		}
	}
	// A link set up after the renewal carries the renewed membership.
	if got, want := linkExpiry(), now.Add(48*time.Hour).Truncate(time.Second); !got.Equal(want) {
		t.Fatalf("after renewal a new link sees the router's membership expiring %v, want %v", got, want)
	}
}

// routeRow reports whether the table printed by `gdp router routes` has a
// row for name whose face kind is kind.
func routeRow(out, name, kind string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == name && f[2] == kind {
			return true
		}
	}
	return false
}
