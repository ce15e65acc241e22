package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/router"
)

// TestRequestProofsRealProcesses is the hand run of the Session-15
// request proofs with real processes: a `gdp router`, a `gdp capsuled`
// and the `gdp` CLI. alice creates a capsule and appends to it; bob reads
// it with `gdp capsule read` — the server's /metrics count his proof
// (requester_cache_total{result="proven"}) — and follows it with `gdp
// capsule tail -f`, a client that lives on. The capsule server is killed
// (-9) and started again at once, as a supervisor would: bob's follower,
// which had its proof answered, sends none until it learns the server may
// have forgotten it, so the new server counts its renewals unproven for a
// while. How long is measured and logged, and bounded by what the client
// promises: ProofRefresh (30 s) after the proof-carrying answer, plus one
// renewal (Lease/3, 10 s) for the request that carries it. Then the
// follower prints a record appended after the restart (not stuck). Then
// the server is killed again and kept down across a renewal: that renewal
// goes unanswered, so the follower's next one carries the proof and the
// restarted server counts it proven within one renewal (Lease/3, 10 s).
func TestRequestProofsRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes for about a minute; skipped with -short")
	}
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "proofs domain", time.Minute, map[string]certs.Kind{
		"r": certs.KindRouter, "s1": certs.KindServer, "alice": certs.KindClient, "bob": certs.KindClient})
	procs := newProcSet(t, dir)
	raddr, radmin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	procs.start("r", "router", "--config", writeConf(t, dir, "r", d.creds("r")+fmt.Sprintf(`listen: %q
admin: %q
drain_timeout: 1s
log: {level: warn}
resolver: {mode: static}
`, raddr, radmin)))
	waitFor(t, "the router", 20*time.Second, func() bool {
		var s router.Summary
		return getJSON("http://"+radmin+"/v1/status", &s) && s.Name == d.ids["r"].Name
	})
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	sconf := writeConf(t, dir, "s1", d.creds("s1")+fmt.Sprintf(`router: %q
router_name: %q
dir: %s
metrics: %q
log: {level: info}
`, raddr, d.ids["r"].Name, filepath.Join(dir, "s1-data"), metrics))
	s1 := procs.start("s1", "capsuled", "--config", sconf)
	cache := func(result string) float64 {
		return promCounter(metrics, "gdp_capsuled_requester_cache_total", `result="`+result+`"`)
	}
	serverUp := func() bool { return cache("proven") >= 0 }
	waitFor(t, "the capsule server's metrics", 20*time.Second, serverUp)

	// gdp runs the CLI as alias (--timeout 20s for one-shot commands).
	common := func(alias string) []string {
		return []string{"--router", raddr, "--router-name", d.ids["r"].Name.String(), "--keystore", d.ksDir,
			"--identity", alias, "--member", filepath.Join(dir, alias+".member"), "--domain", d.domainPath}
	}
	gdp := func(alias string, args ...string) (string, error) {
		out, err := exec.Command(gdpBin, append(append(args, "--timeout", "20s"), common(alias)...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	// The first create may meet the server still attaching: retried.
	var capsuleName string
	waitFor(t, "alice's capsule created", 60*time.Second, func() bool {
		out, err := gdp("alice", "capsule", "create", "--owner", "alice", "--writer", "alice", "--servers", d.ids["s1"].Name.String(), "--w", "1")
		if err != nil {
			t.Logf("create: %s", out)
			return false
		}
		capsuleName = out
		return true
	})
	appendRec := func(data string) {
		t.Helper()
		if out, err := gdp("alice", "capsule", "append", capsuleName, "--writer", "alice", "--data", data); err != nil {
			t.Fatalf("append %q: %v: %s", data, err, out)
		}
	}
	appendRec("one")
	appendRec("two")

	// bob reads: his first request carries his proof, verified once.
	proven := cache("proven")
	out, err := gdp("bob", "capsule", "read", capsuleName)
	if err != nil || !strings.Contains(out, "\tone") || !strings.Contains(out, "\ttwo") {
		t.Fatalf("bob's read: %v: %s", err, out)
	}
	if got := cache("proven") - proven; got != 1 {
		t.Fatalf("bob's read proved him %v times at the server, want 1", got)
	}

	// bob follows the capsule: a client that lives on.
	tail := procs.start("tail", append([]string{"capsule", "tail", capsuleName, "-n", "0", "-f"}, common("bob")...)...)
	printed := func(data string) bool {
		b, _ := os.ReadFile(tail.log)
		return strings.Contains(string(b), "\t"+data+"\n")
	}
	waitFor(t, "bob's follower subscribed", 30*time.Second, func() bool {
		return promGauge(metrics, "gdp_capsuled_subscriptions") >= 1
	})
	appendRec("three")
	waitFor(t, "bob's follower printing a new record", 30*time.Second, func() bool { return printed("three") })

	// kill -9 and start again at once: the new server knows nobody.
	s1.kill9()
	s1.start(t)
	restarted := time.Now()
	waitFor(t, "the restarted capsule server's metrics", 20*time.Second, serverUp)
	bound := client.DefaultProofRefresh + client.Lease/3 + 15*time.Second
	var provenAfter time.Duration
	waitFor(t, "bob's follower proven at the restarted server", bound, func() bool {
		if cache("proven") >= 1 {
			provenAfter = time.Since(restarted)
			return true
		}
		return false
	})
	t.Logf("after the restart bob's follower counted unproven %.1f s (%v requests), then proven (bound: ProofRefresh %s + a renewal %s)",
		provenAfter.Seconds(), cache("unproven"), client.DefaultProofRefresh, client.Lease/3)
	if got := cache("invalid") + cache("refused"); got != 0 {
		t.Fatalf("the restarted server refused %v proofs", got)
	}

	// Not stuck: a record written after the restart reaches the follower.
	appendRec("four")
	waitFor(t, "bob's follower printing a record written after the restart", 40*time.Second, func() bool { return printed("four") })

	// Down across a renewal (Lease/3 + 2 s): that renewal goes unanswered,
	// so the follower's first renewal to the restarted server carries the
	// proof (Session 16) — proven within one renewal of the restart, not
	// ProofRefresh.
	s1.kill9()
	time.Sleep(client.Lease/3 + 2*time.Second)
	s1.start(t)
	restarted = time.Now()
	waitFor(t, "the capsule server's metrics after the second restart", 20*time.Second, serverUp)
	bound = client.Lease/3 + 10*time.Second
	waitFor(t, "bob's follower proven after a restart it noticed", bound, func() bool {
		if cache("proven") >= 1 {
			provenAfter = time.Since(restarted)
			return true
		}
		return false
	})
	t.Logf("down across a renewal: bob's follower proven %.1f s after the restart (%v requests unproven; bound: a renewal %s + 10 s)",
		provenAfter.Seconds(), cache("unproven"), client.Lease/3)
	// Every renewal the server was down for went unanswered or NAKed
	// (no route): none reaches the new server without the proof.
	if got := cache("unproven"); got != 0 {
		t.Fatalf("the restarted server counted %v of the follower's requests unproven, want 0: it noticed the restart", got)
	}
	appendRec("five")
	waitFor(t, "bob's follower printing a record written after the second restart", 40*time.Second, func() bool { return printed("five") })
	if tail.exited() || s1.exited() {
		t.Fatal("the follower or the capsule server exited")
	}
}
