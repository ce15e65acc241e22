package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHandoffdReloadsMembership runs a real `gdp handoffd` attached to a
// real router (docs/OPERATIONS.md, docs/HANDOFF.md §2): a renewed
// membership written over its file is put in force without a signal (the
// file watch), one named by a changed config with SIGHUP; a membership file
// that does not parse is refused in one ERROR line, the running one stays,
// and the agent still serves (a handoff over its TCP listener commits).
func TestHandoffdReloadsMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs daemons")
	}
	e := newOpsEnv(t)
	e.mustGDP("cert", "new-domain", "--alias", "acme", "--description", "handoffd reload")
	for _, a := range []struct{ kind, alias string }{{"router", "router"}, {"client", "handoffd"}} {
		e.mustGDP("cert", "keygen", "--kind", a.kind, "--alias", a.alias)
		e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", a.alias+".meta", "--duration", "48h", "--out", a.alias+".member")
	}
	listen, admin := udpPort(t), freePort(t)
	rt := e.start("router", "router", "--config", e.deployConfig("router", map[string]any{"listen": listen, "admin": admin,
		"member_cert": "router.member", "domain": "acme.meta"}))
	rt.waitLog(`"router up"`)

	// A base both sides hold, for the handoff that shows the agent serves.
	id, curPath, cacheA, cacheB := e.handoffImagePair("changed after the reload")

	metrics, tcp := freePort(t), freePort(t)
	set := map[string]any{"router": listen, "admin": admin, "router_name": "", "identity": "handoffd",
		"member_cert": "handoffd.member", "domain": "acme.meta", "cache": cacheB, "dir": filepath.Join(e.work, "received"),
		"listen_tcp": tcp, "metrics": metrics}
	cfg := e.deployConfig("handoffd", set)
	d := e.start("handoffd", "handoffd", "--config", cfg)
	d.waitLog(`"handoff agent on the overlay"`)
	d.waitLog(`"metrics up"`) // its listener is open from this line on
	memberLeft := func() float64 {
		page, err := httpGet("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		v, ok := promValue(page, "gdp_cert_expiry_seconds", `kind="member"`)
		if !ok {
			t.Fatal(`no gdp_cert_expiry_seconds{kind="member"}`)
		}
		return v
	}
	if left := memberLeft(); left < 47*3600 || left > 48*3600 {
		t.Fatalf("membership left %vs, want about 48h", left)
	}

	// Renewed in place: the file watch reloads it, no signal.
	e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", "handoffd.meta", "--duration", "96h", "--force", "--out", "handoffd.member")
	d.waitLog(`"a certificate file changed; reloading"`)
	d.waitLog(`"reloaded the membership certificate`)
	waitFor(t, "handoffd to run with the membership renewed in place", func() bool { return memberLeft() > 72*3600 })

	// A new file named in the config (not watched): SIGHUP.
	e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", "handoffd.meta", "--duration", "144h", "--out", "handoffd2.member")
	set["member_cert"] = "handoffd2.member"
	set["max_concurrent"] = 3
	e.deployConfig("handoffd", set)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLog(`"reloaded the membership certificate`, `"max_concurrent":3`)
	waitFor(t, "handoffd to run with the membership named on SIGHUP", func() bool { return memberLeft() > 120*3600 })

	// A broken membership file: one ERROR line naming it, the running
	// membership stays, the agent serves on.
	if err := os.WriteFile(filepath.Join(e.work, "handoffd2.member"), []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	line := d.waitLog(`"reload failed`)
	if !strings.Contains(line, `"level":"error"`) || !strings.Contains(line, "membership") || !strings.Contains(line, `"fix":"correct the file`) {
		t.Errorf("reload failure line %s: want an error naming the membership, and a fix", line)
	}
	if left := memberLeft(); left < 120*3600 {
		t.Errorf("after a bad membership file: %vs left, want the running 144h membership kept", left)
	}
	out := e.mustGDP("handoff", "send", "--cache", cacheA, "--tcp", tcp, "--disk", curPath, "--disk-base", id, "--progress", "never")
	if !strings.Contains(out, "committed") {
		t.Fatalf("handoff after the failed reload:\n%s", out)
	}
	d.mu.Lock()
	n := 0
	for _, l := range d.lines {
		if strings.Contains(l, `"reload failed`) {
			n++
		}
	}
	d.mu.Unlock()
	if n != 1 {
		t.Errorf("%d reload-failure lines for one bad file, want 1", n)
	}
	d.stop()
}

// handoffImagePair writes a 64 KiB base image and a copy of it with change
// written at offset 5,000, and adds the base to two caches (the sender's,
// cache-a, and the agent's, cache-b): the base's id, the current image's
// path and the two caches.
func (e *opsEnv) handoffImagePair(change string) (id, curPath, cacheA, cacheB string) {
	e.t.Helper()
	base := make([]byte, 64<<10)
	for i := range base {
		base[i] = byte('a' + i%7)
	}
	cur := append([]byte(nil), base...)
	copy(cur[5000:], change)
	basePath, curPath := filepath.Join(e.work, "base.img"), filepath.Join(e.work, "cur.img")
	for p, b := range map[string][]byte{basePath: base, curPath: cur} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	cacheA, cacheB = filepath.Join(e.work, "cache-a"), filepath.Join(e.work, "cache-b")
	id = strings.TrimSpace(e.mustGDP("handoff", "base", "add", "--cache", cacheA, basePath))
	e.mustGDP("handoff", "base", "add", "--cache", cacheB, basePath)
	return id, curPath, cacheA, cacheB
}
