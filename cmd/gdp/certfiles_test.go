package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// TestRouterReloadsReplacedCert runs `gdp router --config` and replaces its
// membership certificate file the way an installer does (a temporary file
// renamed over the old one), with no SIGHUP: the router serves with the
// new membership within a few seconds. A garbage file in its place is
// refused and the renewed membership stays in force.
// rotRouter is a `gdp router --config` run in-process for rotation tests.
type rotRouter struct {
	dir, admin string
	status     func() router.Summary
	install    func(b []byte)               // atomically replace the membership file
	issue      func(d time.Duration) []byte // a membership of the router valid for d
	pingArgs   []string                     // gdp ping flags as the probe, to the router's address
	name       string
}

func startRotRouter(t *testing.T) *rotRouter {
	t.Helper()
	dir := t.TempDir()
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "test domain")
	rid, _ := certs.NewIdentity(certs.KindRouter, "test router")
	if err := ks.Save("router", rid); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issue := func(d time.Duration) []byte {
		m, err := certs.IssueMember(dom, rid.Name, now.Add(-time.Minute), now.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return certs.Armor(certs.PEMCert, m.Marshal())
	}
	memberPath := filepath.Join(dir, "certs", "router.member")
	if err := os.MkdirAll(filepath.Dir(memberPath), 0o755); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "domain.meta"), certs.PEMMetadata, dom.Meta.Marshal())
	if err := os.WriteFile(memberPath, issue(time.Hour), 0o644); err != nil {
		t.Fatal(err)
	}
	install := func(b []byte) {
		t.Helper()
		tmp := memberPath + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, memberPath); err != nil {
			t.Fatal(err)
		}
	}
	admin := adminPort(t)
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
keystore: %s
member_cert: %s
domain: %s
admin: %q
drain_timeout: 1s
log: {level: warn}
`, filepath.Join(dir, "keys"), memberPath, filepath.Join(dir, "domain.meta"), admin)
	cfgPath := filepath.Join(dir, "router.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &routerDaemon{admin: admin, name: rid.Name}
	d.run(t, cfgPath)
	status := func() (s router.Summary) {
		d.getJSON("/v1/status", &s)
		return s
	}
	pid, _ := certs.NewIdentity(certs.KindClient, "probe")
	if err := ks.Save("ping", pid); err != nil {
		t.Fatal(err)
	}
	pm, err := certs.IssueMember(dom, pid.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "ping.member"), certs.PEMCert, pm.Marshal())
	return &rotRouter{dir: dir, admin: admin, status: status, install: install, issue: issue, name: rid.Name.String(),
		pingArgs: []string{"ping", "--router", status().Addrs[0], "--admin", admin, "--keystore", filepath.Join(dir, "keys"),
			"--member", filepath.Join(dir, "ping.member"), "--domain", filepath.Join(dir, "domain.meta")}}
}

func TestRouterReloadsReplacedCert(t *testing.T) {
	rr := startRotRouter(t)
	status, install, issue := rr.status, rr.install, rr.issue
	first := status().MemberExpiry
	// Let the watch settle (it starts after the router is up).
	time.Sleep(200 * time.Millisecond)

	install(issue(48 * time.Hour))
	for deadline := time.Now().Add(15 * time.Second); !status().MemberExpiry.After(first.Add(time.Hour)); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the replaced membership file was not reloaded (still %s)", status().MemberExpiry)
		}
	}
	renewed := status().MemberExpiry

	// A broken file is refused: the renewed membership stays.
	install([]byte("not a certificate\n"))
	time.Sleep(3 * certFileDebounce)
	if s := status(); s.Name.String() != rr.name || !s.MemberExpiry.Equal(renewed) {
		t.Fatalf("after a bad file: name %s expiry %s, want %s", s.Name, s.MemberExpiry, renewed)
	}
	// And a good one after it is taken again.
	install(issue(72 * time.Hour))
	for deadline := time.Now().Add(15 * time.Second); !status().MemberExpiry.After(renewed.Add(time.Hour)); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a good file after a bad one was not reloaded (still %s)", status().MemberExpiry)
		}
	}
}

// TestRotationUnderTraffic pings the router (a tunnel to it, echo requests
// through its forwarding plane) while its membership file is replaced
// twice: the router reloads each time, and not one echo is lost.
func TestRotationUnderTraffic(t *testing.T) {
	rr := startRotRouter(t)
	first := rr.status().MemberExpiry
	type result struct {
		out string
		err error
	}
	res := make(chan result, 1)
	go func() {
		var out bytes.Buffer
		rootCmd.SetOut(&out)
		rootCmd.SetErr(&out)
		rootCmd.SetArgs(dashNames(rootCmd, append(append([]string{}, rr.pingArgs...), "-c", "400", "-i", "10ms", rr.name)))
		err := rootCmd.ExecuteContext(context.Background())
		rootCmd.SetArgs(nil)
		res <- result{out.String(), err}
	}()
	time.Sleep(500 * time.Millisecond)
	// reloaded waits until the router shows a membership expiring after t.
	reloaded := func(t0 time.Time) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if rr.status().MemberExpiry.After(t0.Add(time.Hour)) {
				return true
			}
		}
		return false
	}
	rr.install(rr.issue(48 * time.Hour))
	ok1 := reloaded(first)
	second := rr.status().MemberExpiry
	rr.install(rr.issue(72 * time.Hour))
	ok2 := reloaded(second)
	r := <-res
	if r.err != nil || !strings.Contains(r.out, "400 sent, 400 received, 0% loss") {
		t.Fatalf("ping across two rotations: %v\n%s", r.err, r.out)
	}
	if !ok1 || !ok2 {
		t.Fatalf("rotations reloaded: first %v, second %v", ok1, ok2)
	}
}
