package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHandoffdSurvivesRouterRestart runs a real `gdp router` and a real
// `gdp handoffd` on the overlay (docs/OPERATIONS.md §3.2.1): the router is
// killed (SIGKILL) and started again on its address; the agent re-attaches
// and re-advertises on its own, and a handoff over the overlay to its name
// commits again within seconds, without touching the agent.
func TestHandoffdSurvivesRouterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs daemons")
	}
	e := newOpsEnv(t)
	names, listen, admin, rcfg := e.handoffSite("handoffd restart")
	rt := e.start("router", "router", "--config", rcfg)
	rt.waitLog(`"router up"`)

	id, curPath, cacheA, cacheB := e.handoffImagePair("changed at the source")
	d := e.start("handoffd", "handoffd", "--config", e.deployConfig("handoffd", map[string]any{"router": listen, "admin": admin,
		"router_name": "", "identity": "handoffd", "member_cert": "handoffd.member", "domain": "acme.meta", "cache": cacheB,
		"dir": filepath.Join(e.work, "received"), "metrics": "off"}))
	d.waitLog(`"handoff agent on the overlay"`)
	send := func() (string, error) {
		return e.gdp("handoff", "send", "--cache", cacheA, "--disk", curPath, "--disk-base", id, "--to", names["handoffd"],
			"--router", listen, "--admin", admin, "--identity", "operator", "--member", "operator.member", "--domain", "acme.meta",
			"--progress", "never")
	}
	if out, err := send(); err != nil || !strings.Contains(out, "committed") {
		t.Fatalf("handoff before the restart: %v\n%s", err, out)
	}

	if err := rt.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-rt.done
	time.Sleep(500 * time.Millisecond)
	rt = e.start("router", "router", "--config", rcfg)
	rt.waitLog(`"router up"`)
	restarted := time.Now()
	var out string
	var err error
	for {
		if out, err = send(); err == nil && strings.Contains(out, "committed") {
			break
		}
		if time.Since(restarted) > 20*time.Second {
			d.mu.Lock()
			log := strings.Join(d.lines, "\n")
			d.mu.Unlock()
			t.Fatalf("no handoff committed within 20 s of the router's restart: %v\n%s\nagent log:\n%s", err, out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("a handoff committed %s after the router restarted", time.Since(restarted).Round(10*time.Millisecond))
	d.stop()
	rt.stop()
}

// handoffSite makes the acme domain with a router, a handoffd and an
// operator member, and the router's deploy config: the members' names by
// alias, the router's UDP listen and admin addresses, the config's path.
func (e *opsEnv) handoffSite(desc string) (names map[string]string, listen, admin, rcfg string) {
	e.mustGDP("cert", "new-domain", "--alias", "acme", "--description", desc)
	names = map[string]string{}
	for _, a := range []struct{ kind, alias string }{{"router", "router"}, {"client", "handoffd"}, {"client", "operator"}} {
		e.mustGDP("cert", "keygen", "--kind", a.kind, "--alias", a.alias)
		out := e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", a.alias+".meta", "--duration", "48h", "--out", a.alias+".member")
		_, after, _ := strings.Cut(out, "-> ")
		names[a.alias] = nameRe.FindString(after)
	}
	listen, admin = udpPort(e.t), freePort(e.t)
	rcfg = e.deployConfig("router", map[string]any{"listen": listen, "admin": admin, "member_cert": "router.member", "domain": "acme.meta"})
	return names, listen, admin, rcfg
}
