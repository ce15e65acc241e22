package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/resolver"
)

// TestBorderGlobalBootstrapPeerRestarted runs the border nodes of two
// domains as real `gdp resolver` processes (docs/OPERATIONS.md §4, the
// global tier): acme's border is the first node of the global DHT, beta's
// lists it as its global bootstrap peer. acme's border is killed (SIGKILL)
// and started again on its addresses with its identity — an empty global
// routing table. beta's border finds the connection gone, says so in one
// WARN line (logger resolver.global, with a fix), counts it
// (gdp_resolver_dht_bootstrap_lost_total{tier="global"}) and redials, so
// the restarted border has a global peer again within 5 s, not at the next
// refresh (10 min). The domain-tier test of the same thing is resolver
// TestBootstrapPeerRestarted.
func TestBorderGlobalBootstrapPeerRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs daemons")
	}
	e := newOpsEnv(t)
	for _, d := range []struct{ domain, border string }{{"acme", "border-a"}, {"beta", "border-b"}} {
		e.mustGDP("cert", "new-domain", "--alias", d.domain, "--description", "border restart "+d.domain)
		e.mustGDP("cert", "keygen", "--kind", "resolver", "--alias", d.border)
		e.mustGDP("cert", "issue", "member", "--domain", d.domain, "--member", d.border+".meta", "--duration", "48h",
			"--out", d.border+".member")
	}
	quic := func() string {
		_, port, _ := strings.Cut(udpPort(t), ":")
		return "/ip4/127.0.0.1/udp/" + port + "/quic-v1"
	}
	apiA, apiB := freePort(t), freePort(t)
	// Each border's file in a directory of its own (deployConfig writes
	// resolver.yaml in the work directory).
	deploy := func(sub string, set map[string]any) string {
		dir := filepath.Join(e.work, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return writeDeployConfig(t, dir, "resolver", set, "keystore")
	}
	cfgA := deploy("a", map[string]any{"identity": "border-a", "member_cert": "border-a.member",
		"domain": "acme.meta", "trusted_domains": []string{"beta.meta"}, "api": apiA,
		"resolver.listen": []string{quic()}, "resolver.min_puts": 1,
		"resolver.global": map[string]any{"listen": []string{quic()}, "border_addrs": []string{"127.0.0.1:8009"}}})
	a := e.start("border-a", "resolver", "--config", cfgA)
	stA := waitStatus(t, apiA, func(st resolver.Status) bool { return len(st.GlobalAddrs) > 0 })

	cfgB := deploy("b", map[string]any{"identity": "border-b", "member_cert": "border-b.member",
		"domain": "beta.meta", "trusted_domains": []string{"acme.meta"}, "api": apiB,
		"resolver.listen": []string{quic()}, "resolver.min_puts": 1,
		"resolver.global": map[string]any{"listen": []string{quic()}, "bootstrap": stA.GlobalAddrs,
			"border_addrs": []string{"127.0.0.1:8010"}}})
	b := e.start("border-b", "resolver", "--config", cfgB)
	waitStatus(t, apiB, func(st resolver.Status) bool { return st.GlobalPeers >= 1 })
	waitStatus(t, apiA, func(st resolver.Status) bool { return st.GlobalPeers >= 1 })

	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	time.Sleep(300 * time.Millisecond)
	a = e.start("border-a", "resolver", "--config", cfgA)
	waitStatus(t, apiA, func(st resolver.Status) bool { return len(st.GlobalAddrs) > 0 })
	restarted := time.Now()
	for {
		st := status(t, apiA)
		if st.GlobalPeers >= 1 {
			break
		}
		if time.Since(restarted) > 5*time.Second {
			t.Fatalf("the restarted border has %d global peers 5 s after its restart (its bootstrap client did not come back)", st.GlobalPeers)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the restarted border has a global peer again %s after its restart", time.Since(restarted).Round(time.Millisecond))

	lost := b.waitLog(`"bootstrap peer lost; redialing"`)
	for _, want := range []string{`"level":"warn"`, `"logger":"resolver.global"`, `"peer_id"`, `"fix"`} {
		if !strings.Contains(lost, want) {
			t.Errorf("beta's loss line lacks %s: %s", want, lost)
		}
	}
	b.waitLog(`"bootstrap peer back"`, `"logger":"resolver.global"`)
	b.mu.Lock()
	n := 0
	for _, l := range b.lines {
		if strings.Contains(l, `"bootstrap peer lost; redialing"`) {
			n++
		}
	}
	b.mu.Unlock()
	if n != 1 {
		t.Errorf("%d 'bootstrap peer lost' lines on beta's border, want 1 (global tier only)", n)
	}
	if m := metricLine(t, apiB, `gdp_resolver_dht_bootstrap_lost_total{tier="global"}`); m != "1" {
		t.Errorf(`beta's gdp_resolver_dht_bootstrap_lost_total{tier="global"} = %q, want 1`, m)
	}
	for _, d := range []*opsDaemon{a, b} {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.done
		if d.err != nil {
			t.Errorf("%s exited with %v on SIGTERM", d.name, d.err)
		}
	}
}

// status reads a `gdp resolver` API's /status (zero when it does not answer).
func status(t *testing.T, api string) resolver.Status {
	t.Helper()
	var st resolver.Status
	resp, err := http.Get("http://" + api + "/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// waitStatus waits up to 20 s for the /status of api to satisfy ok.
func waitStatus(t *testing.T, api string, ok func(resolver.Status) bool) resolver.Status {
	t.Helper()
	var st resolver.Status
	waitFor(t, "the resolver API at "+api, func() bool {
		st = status(t, api)
		return ok(st)
	})
	return st
}

// metricLine is the value of the sample named series (name and labels as
// the text exposition writes them) on api's /metrics; "" when absent.
func metricLine(t *testing.T, api, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return fmt.Sprintf("(absent from %d bytes)", len(b))
}
