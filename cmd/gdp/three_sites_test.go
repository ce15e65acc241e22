package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestThreeSitesExample runs deploy/examples/three-sites as an operator
// would, on loopback: certs.sh (with every port chosen free) makes the
// domain, each site's identities, memberships and configs; the seven
// daemons start from those configs as real `gdp` processes (the cloud's
// resolver, router and capsule server, each edge's router and capsule
// server); check.sh (`gdp doctor --remote`) then reports every site line
// ok. With edge2's router stopped it exits 1 with fail lines naming edge2
// and the fix, while the other sites stay ok.
func TestThreeSitesExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs seven daemons")
	}
	start := time.Now()
	e := newOpsEnv(t)
	t.Logf("%v: gdp built", time.Since(start))
	example, err := filepath.Abs(filepath.Join("..", "..", "deploy", "examples", "three-sites"))
	if err != nil {
		t.Fatal(err)
	}
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	env := append([]string{}, e.env...)
	env = append(env, "GDP="+e.bin, "EDGE1_HOST=127.0.0.1", "EDGE2_HOST=127.0.0.1", "CLOUD_HOST=127.0.0.1")
	for _, s := range []string{"EDGE1", "EDGE2", "CLOUD"} {
		env = append(env, s+"_TUNNEL="+port(udpPort(t)), s+"_DHT="+port(udpPort(t)),
			s+"_ADMIN="+port(freePort(t)), s+"_METRICS="+port(freePort(t)))
	}
	env = append(env, "CLOUD_RESOLVER_API="+port(freePort(t)), "CLOUD_RESOLVER_DHT="+port(udpPort(t)))
	out := filepath.Join(e.work, "out")
	certs := exec.Command("sh", filepath.Join(example, "certs.sh"), out)
	certs.Dir, certs.Env = e.work, env
	if b, err := certs.CombinedOutput(); err != nil {
		t.Fatalf("certs.sh: %v\n%s", err, b)
	}
	// Run twice into the same place, it refuses: a second domain would
	// silently replace the first.
	again := exec.Command("sh", filepath.Join(example, "certs.sh"), out)
	again.Dir, again.Env = e.work, env
	if b, err := again.CombinedOutput(); err == nil || !strings.Contains(string(b), "would make a second domain") {
		t.Errorf("certs.sh into an existing OUT: %v\n%s", err, b)
	}

	t.Logf("%v: certs.sh done", time.Since(start))
	cfg := func(site, daemon string) string { return filepath.Join(out, site, daemon+".yaml") }
	rs := e.start("resolver", "resolver", "--config", cfg("cloud", "resolver"))
	rs.waitLog(`"resolver up"`)
	routers := map[string]*opsDaemon{}
	for _, site := range []string{"cloud", "edge1", "edge2"} {
		routers[site] = e.start("router", "router", "--config", cfg(site, "router"))
		routers[site].waitLog(`"router up"`)
	}
	for _, site := range []string{"cloud", "edge1", "edge2"} {
		e.start("capsuled", "capsuled", "--config", cfg(site, "capsuled")).waitLog(`"capsuled attached"`)
	}

	t.Logf("%v: daemons up", time.Since(start))
	check := func() (string, error) {
		c := exec.Command("sh", filepath.Join(example, "check.sh"), filepath.Join(out, "ops", "sites.yaml"))
		c.Dir, c.Env = e.work, env
		b, err := c.CombinedOutput()
		return string(b), err
	}
	// The edges' tunnels to the cloud and the DHT neighbours come up within
	// seconds of the start; the check passes once they have.
	var report string
	deadline := time.Now().Add(40 * time.Second)
	for {
		report, err = check()
		if err == nil && !strings.Contains(report, "alone in the domain's DHT") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check.sh never passed: %v\n%s", err, report)
		}
		time.Sleep(time.Second)
	}
	t.Logf("%v: check.sh:\n%s", time.Since(start), report)
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(report), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && (f[0] == "ok" || f[0] == "warn" || f[0] == "fail") {
			check, _, _ := strings.Cut(strings.Join(f[1:], " "), ":")
			lines[check] = f[0]
		}
	}
	want := []string{"cloud admin", "cloud clock", "cloud tunnel", "cloud router membership", "cloud resolver",
		"edge1 admin", "edge1 clock", "edge1 tunnel", "edge1 router membership", "edge1 peer cloud",
		"edge2 admin", "edge2 clock", "edge2 tunnel", "edge2 router membership", "edge2 peer cloud"}
	for _, site := range []string{"cloud", "edge1", "edge2"} {
		want = append(want, site+" metrics 127.0.0.1")
	}
	for _, w := range want {
		st, ok := "", false
		for k, v := range lines {
			if strings.HasPrefix(k, w) {
				st, ok = v, true
			}
		}
		if !ok || st != checkOK {
			t.Errorf("check %q: %q, want ok", w, st)
		}
	}
	// The UDP buffer lines report this host's limits, whatever they are:
	// the remote routers run here, so they say what the local line says.
	local := lines["local net.core.rmem_max"]
	if local == "" || local == checkFail {
		t.Errorf("local net.core.rmem_max: %q", local)
	}
	for _, site := range []string{"cloud", "edge1", "edge2"} {
		if st := lines[site+" udp buffers"]; st != local && !(local == checkOK && st == checkOK) {
			t.Errorf("%s udp buffers %q, local rmem_max %q", site, st, local)
		}
	}

	// edge2's router stops: its lines fail, naming the site and the fix;
	// the others stay ok.
	routers["edge2"].stop()
	report, err = check()
	t.Logf("check.sh with edge2's router stopped:\n%s", report)
	if err == nil {
		t.Error("check.sh exited 0 with edge2's router down")
	}
	for _, w := range []string{"fail  edge2 admin: gdp router 127.0.0.1:", "fail  edge2 tunnel: "} {
		l := ""
		for _, x := range strings.Split(report, "\n") {
			if strings.HasPrefix(x, w) {
				l = x
			}
		}
		if l == "" || !strings.Contains(l, "fix: ") || !strings.Contains(l, "at edge2") {
			t.Errorf("no %q line with a fix naming edge2: %q", w, l)
		}
	}
	for _, w := range []string{"ok    cloud tunnel:", "ok    edge1 tunnel:", "ok    edge1 peer cloud:"} {
		if !strings.Contains(report, w) {
			t.Errorf("with edge2 down, no %q line", w)
		}
	}
}
