package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// TestPlacementSharesRealProcesses is the hand deployment of the Session-14
// placement shares with real processes: a `gdp router` and a `gdp
// capsuled` with placement.max_per_requester 2 and max_per_domain 1, and
// capsules made with `gdp capsule create` as two members of the domain
// (alice, bob) and as a member of another domain the router admits but the
// server does not trust (carol: her proof does not hold, so she counts in
// the unproven pool). The refusals the CLI prints are one line that names
// the limit and says what to do; the server's /metrics count them
// (placements_refused_total{reason}, requester_proofs_total{result}); a
// SIGHUP that raises the limits lets the refused creates through, and one
// that adds carol's domain to trusted_domains gives her domain its own share
// at once (kept across a restart).
func TestPlacementSharesRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes; skipped with -short")
	}
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "shares domain", time.Minute, map[string]certs.Kind{
		"r": certs.KindRouter, "s1": certs.KindServer, "alice": certs.KindClient, "bob": certs.KindClient})
	otherDir := filepath.Join(dir, "other")
	if err := os.MkdirAll(otherDir, 0o700); err != nil {
		t.Fatal(err)
	}
	other := newE2EDomain(t, otherDir, "partner domain", time.Minute, map[string]certs.Kind{"carol": certs.KindClient})
	procs := newProcSet(t, dir)

	raddr, radmin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	procs.start("r", "router", "--config", writeConf(t, dir, "r", d.creds("r")+fmt.Sprintf(`listen: %q
admin: %q
trusted_domains: [%s]
drain_timeout: 1s
log: {level: warn}
resolver: {mode: static}
`, raddr, radmin, other.domainPath)))
	waitFor(t, "the router", 20*time.Second, func() bool {
		var s router.Summary
		return getJSON("http://"+radmin+"/v1/status", &s) && s.Name == d.ids["r"].Name
	})
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	conf := func(perRequester, perDomain int, trusted ...string) string {
		return d.creds("s1") + fmt.Sprintf("trusted_domains: [%s]\n", strings.Join(trusted, ", ")) + fmt.Sprintf(`router: %q
router_name: %q
dir: %s
metrics: %q
log: {level: info}
placement:
  max_per_requester: %d
  max_per_domain: %d
`, raddr, d.ids["r"].Name, filepath.Join(dir, "s1-data"), metrics, perRequester, perDomain)
	}
	sconf := writeConf(t, dir, "s1", conf(2, 1))
	s1 := procs.start("s1", "capsuled", "--config", sconf)
	waitFor(t, "the capsule server's metrics", 20*time.Second, func() bool {
		return promCounter(metrics, "gdp_capsuled_requester_proofs_total", `result="proven"`) == 0
	})

	// create runs `gdp capsule create` as alias of dom, owner and writer
	// its own key, and returns its output and whether it succeeded.
	create := func(dom *e2eDomain, alias string) (string, bool) {
		t.Helper()
		out, err := exec.Command(gdpBin, "capsule", "create", "--owner", alias, "--writer", alias, "--servers", d.ids["s1"].Name.String(),
			"--w", "1", "--timeout", "20s", "--router", raddr, "--router-name", d.ids["r"].Name.String(), "--keystore", dom.ksDir,
			"--identity", alias, "--member", filepath.Join(dom.dir, alias+".member"), "--domain", dom.domainPath, "--trust", d.domainPath).CombinedOutput()
		return strings.TrimSpace(string(out)), err == nil
	}
	mustCreate := func(dom *e2eDomain, alias, what string) {
		t.Helper()
		// The first create of each may meet the server still attaching:
		// retried within a generous deadline, never past a refusal.
		var out string
		t.Cleanup(func() {
			if t.Failed() && out != "" {
				t.Logf("%s: the last attempt printed: %s", what, out)
			}
		})
		waitFor(t, what, 60*time.Second, func() bool {
			var ok bool
			out, ok = create(dom, alias)
			if !ok && strings.Contains(out, "max_per_") {
				t.Fatalf("%s: refused: %s", what, out)
			}
			if ok {
				out = ""
			}
			return ok
		})
	}
	// refused checks that a create is refused with one line naming limit
	// and saying what to do.
	refused := func(dom *e2eDomain, alias, limit string) string {
		t.Helper()
		out, ok := create(dom, alias)
		if ok {
			t.Fatalf("%s's create succeeded past %s: %s", alias, limit, out)
		}
		if strings.Count(out, "\n") != 0 || !strings.Contains(out, limit) || !strings.Contains(out, "ask") {
			t.Fatalf("%s's refusal is not one line naming %s and saying what to do:\n%s", alias, limit, out)
		}
		t.Logf("%s refused: %s", alias, out)
		return out
	}
	counter := func(name, label string) float64 {
		return promCounter(metrics, "gdp_capsuled_"+name, label)
	}

	mustCreate(d, "alice", "alice's first capsule")
	mustCreate(d, "alice", "alice's second capsule")
	if out := refused(d, "alice", "max_per_requester"); !strings.Contains(out, d.ids["alice"].Name.String()) {
		t.Fatalf("alice's refusal does not name her identity %s: %s", d.ids["alice"].Name, out)
	}
	mustCreate(d, "bob", "bob's capsule (his own share)")
	mustCreate(other, "carol", "carol's capsule (the unproven pool)")
	refused(other, "carol", "max_per_domain")

	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"placements_refused_total", `reason="requester_quota"`, 1},
		{"placements_refused_total", `reason="unproven_quota"`, 1},
		{"placements_refused_total", `reason="domain_quota"`, 0},
		{"requester_proofs_total", `result="proven"`, 4},
		{"requester_proofs_total", `result="invalid"`, 2},
		{"requester_proofs_total", `result="none"`, 0},
	} {
		if got := counter(c.name, c.label); got != c.want {
			t.Errorf("gdp_capsuled_%s{%s} = %v, want %v", c.name, c.label, got, c.want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Raise both limits with SIGHUP: the refused creates now succeed.
	if err := os.WriteFile(sconf, []byte(conf(3, 2)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s1.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload's log line", 20*time.Second, func() bool {
		return logLine(s1.log, "placement policy and subscription limits reloaded", "max_per_requester", "max_per_domain") == ""
	})
	mustCreate(d, "alice", "alice's third capsule after the reload")
	mustCreate(other, "carol", "carol's second capsule after the reload")
	refused(d, "alice", "max_per_requester")
	if got := counter("placements_refused_total", `reason="requester_quota"`); got != 2 {
		t.Errorf("requester_quota refusals after the reload: %v, want 2", got)
	}
	// The server says in its log what it refused and why, one line each.
	for _, l := range []struct{ msg string }{{"placement refused"},
		{"requester proof refused: the capsule counts in the unproven requesters' pool (max_per_domain)"}} {
		if e := logLine(s1.log, l.msg, "capsule", "src", "reason"); e != "" {
			t.Errorf("log line %q: %s", l.msg, e)
		}
	}

	// Trusting carol's domain takes effect on SIGHUP (since Session 17;
	// restart-only before): the reload says so in one line, and she then
	// proves her identity and domain at once: her domain has its own
	// max_per_domain share (2), her unproven capsules stay in the pool.
	if err := os.WriteFile(sconf, []byte(conf(3, 2, other.domainPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s1.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const trustReloaded = "trusted domains reloaded: requester proofs of domains no longer trusted dropped"
	// (every SIGHUP logs the line; this one's counts two domains)
	waitFor(t, "the reload's log line counting two trusted domains", 20*time.Second, func() bool {
		return strings.Contains(logLinesText(s1.log, trustReloaded), `"trusted_domains":2`)
	})
	mustCreate(other, "carol", "carol's first proven capsule")
	mustCreate(other, "carol", "carol's second proven capsule")
	domainRefused := func(when string) {
		t.Helper()
		if out := refused(other, "carol", "max_per_domain"); !strings.Contains(out, "members of domain "+other.dom.Name.String()) {
			t.Fatalf("%s: carol's refusal does not name her domain %s: %s", when, other.dom.Name, out)
		}
	}
	domainRefused("after the reload")
	if got := counter("placements_refused_total", `reason="domain_quota"`); got != 1 {
		t.Errorf("after the reload: domain_quota refusals %v, want 1", got)
	}
	// The shares are kept across a restart (the trust from the file).
	s1.kill9()
	s1.start(t)
	waitFor(t, "the restarted capsule server's metrics", 20*time.Second, func() bool {
		return promCounter(metrics, "gdp_capsuled_requester_proofs_total", `result="proven"`) == 0
	})
	domainRefused("after the restart")
	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"placements_refused_total", `reason="domain_quota"`, 1},
		{"requester_proofs_total", `result="proven"`, 1},
		{"requester_proofs_total", `result="invalid"`, 0},
	} {
		if got := counter(c.name, c.label); got != c.want {
			t.Errorf("after the restart: gdp_capsuled_%s{%s} = %v, want %v", c.name, c.label, got, c.want)
		}
	}
	if s1.exited() {
		t.Fatal("the capsule server exited")
	}
}
