package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHandoffKilledMidTransfer runs a real `gdp router`, a real `gdp
// handoffd` and a real `gdp handoff send` (4 MiB to send through an
// emulated 8 Mbit/s link, about 4 s) and kills one side with SIGKILL while
// the blocks flow (docs/HANDOFF.md §2):
//
//   - the destination agent: the sender fails within 10 s (its connection's
//     5 s idle timeout, not QUIC over names' 30 s) with one line naming the
//     handoff, the silent agent and the retry; the dead agent's partial directory is there, never renamed
//     to the handoff's; the agent started again removes it in one WARN line
//     before it accepts anything; the retry commits.
//   - the sender: the agent ends the handoff within idle_timeout in one WARN
//     line (what, and that nothing was kept), removes the partial
//     directory, frees its slot (max_concurrent 1: a leaked slot would
//     refuse the retry "agent busy"), and the retry commits.
//
// Each time the source image is unchanged and the committed image is the
// source's, byte for byte.
func TestHandoffKilledMidTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs daemons")
	}
	e := newOpsEnv(t)
	names, listen, admin, rcfg := e.handoffSite("handoff killed mid-transfer")
	rt := e.start("router", "router", "--config", rcfg)
	rt.waitLog(`"router up"`)

	// 8 MiB base; the current image has 4 MiB of random bytes from 1 MiB on.
	base := make([]byte, 8<<20)
	for i := range base {
		base[i] = byte('a' + i%7)
	}
	cur := append([]byte(nil), base...)
	rand.Read(cur[1<<20 : 5<<20])
	id, curPath, cacheA, cacheB := e.handoffImages(base, cur)
	curSum := sha256.Sum256(cur)
	received := filepath.Join(e.work, "received")
	acfg := e.deployConfig("handoffd", map[string]any{"router": listen, "admin": admin, "router_name": "",
		"identity": "handoffd", "member_cert": "handoffd.member", "domain": "acme.meta", "cache": cacheB,
		"dir": received, "metrics": "off", "idle_timeout": "3s", "max_concurrent": 1})
	agent := e.start("handoffd", "handoffd", "--config", acfg)
	agent.waitLog(`"handoff agent on the overlay"`)

	sendArgs := func(hid string, mbit string) []string {
		return []string{"handoff", "send", "--cache", cacheA, "--disk", curPath, "--disk-base", id, "--to", names["handoffd"],
			"--router", listen, "--admin", admin, "--identity", "operator", "--member", "operator.member", "--domain", "acme.meta",
			"--progress", "never", "--mode", "none", "--link-mbit", mbit, "--timeout", "60s", "--id", hid}
	}
	partials := func() []string {
		m, _ := filepath.Glob(filepath.Join(received, ".partial-*"))
		return m
	}
	// midTransfer starts a slow send and returns once the agent receives
	// its blocks, the sender still running.
	midTransfer := func(hid string, agent *opsDaemon) *opsDaemon {
		t.Helper()
		s := e.start("send-"+hid, sendArgs(hid, "8")...)
		agent.waitLog(`"handoff receiving"`, hid)
		time.Sleep(time.Second)
		if !s.running() {
			t.Fatalf("the send ended before the kill (not mid-transfer): %v", s.err)
		}
		if len(partials()) != 1 {
			t.Fatalf("partial directories mid-transfer: %v, want 1", partials())
		}
		return s
	}
	// retry sends hid again at full speed and checks what was committed.
	retry := func(hid string) {
		t.Helper()
		var out string
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for {
			if out, err = e.gdp(sendArgs(hid, "0")...); err == nil && strings.Contains(out, "committed") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the retry of %s did not commit within 30 s: %v\n%s", hid, err, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
		got, err := os.ReadFile(filepath.Join(received, hid, "disk"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, cur) {
			t.Errorf("the committed disk of %s differs from the source image", hid)
		}
		if p := partials(); len(p) != 0 {
			t.Errorf("partial directories after the retry committed: %v", p)
		}
		if src, err := os.ReadFile(curPath); err != nil || sha256.Sum256(src) != curSum {
			t.Errorf("the source image changed (%v)", err)
		}
	}
	countLines := func(d *opsDaemon, subs ...string) (n int, last string) {
		d.mu.Lock()
		defer d.mu.Unlock()
	next:
		for _, l := range d.lines {
			for _, s := range subs {
				if !strings.Contains(l, s) {
					continue next
				}
			}
			n, last = n+1, l
		}
		return n, last
	}

	// 1. The destination agent is killed.
	s := midTransfer("dest-killed", agent)
	if err := agent.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-agent.done
	if p := partials(); len(p) != 1 {
		t.Fatalf("partial directories the killed agent left: %v, want 1", p)
	}
	if _, err := os.Stat(filepath.Join(received, "dest-killed")); !os.IsNotExist(err) {
		t.Fatalf("the killed agent's handoff is committed (stat: %v)", err)
	}
	// The sender's connection to the agent has a 5 s idle timeout and 1 s
	// keepalives (handoffd.SenderIdleTimeout): it notices the dead agent in
	// seconds, not at QUIC over names' 30 s.
	killed := time.Now()
	select {
	case <-s.done:
	case <-time.After(45 * time.Second):
		t.Fatal("the sender did not end within 45 s of the agent's death")
	}
	if d := time.Since(killed); d > 10*time.Second {
		t.Errorf("the sender noticed the dead agent after %s, want within 10 s", d.Round(100*time.Millisecond))
	}
	if s.err == nil {
		t.Fatal("the sender exited 0 although its agent was killed")
	}
	if n, l := countLines(s, "gdp: handoff dest-killed", "the destination agent stopped answering", "send again with --id dest-killed"); n != 1 {
		t.Errorf("the sender's error lines naming the handoff, the dead agent and the retry: %d (%s), want 1", n, l)
	}
	agent = e.start("handoffd", "handoffd", "--config", acfg)
	agent.waitLog(`"handoff agent on the overlay"`)
	line := agent.waitLog(`"removed partial handoffs left by an earlier run"`)
	for _, want := range []string{`"level":"warn"`, `"count":1`, `"names":["dest-killed"]`} {
		if !strings.Contains(line, want) {
			t.Errorf("the restarted agent's line for the stale partial directory lacks %s: %s", want, line)
		}
	}
	if p := partials(); len(p) != 0 {
		t.Fatalf("partial directories after the agent's restart: %v", p)
	}
	retry("dest-killed")

	// 2. The sender is killed.
	s = midTransfer("src-killed", agent)
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	line = agent.waitLog(`"handoff failed; nothing kept"`, "src-killed")
	for _, want := range []string{`"level":"warn"`, `"peer"`, `"fix"`} {
		if !strings.Contains(line, want) {
			t.Errorf("the agent's failure line lacks %s: %s", want, line)
		}
	}
	waitFor(t, "the partial directory of the killed sender's handoff to go", func() bool { return len(partials()) == 0 })
	if _, err := os.Stat(filepath.Join(received, "src-killed")); !os.IsNotExist(err) {
		t.Fatalf("the killed sender's handoff is committed (stat: %v)", err)
	}
	retry("src-killed")
	if n, _ := countLines(agent, `"handoff failed; nothing kept"`); n != 1 {
		t.Errorf("%d failure lines on the agent, want 1 (the killed sender's)", n)
	}
	agent.stop()
	rt.stop()
}

// handoffImages writes base and cur as base.img and cur.img and adds the
// base to two caches (the sender's, cache-a, and the agent's, cache-b):
// the base's id, the current image's path and the two caches.
func (e *opsEnv) handoffImages(base, cur []byte) (id, curPath, cacheA, cacheB string) {
	e.t.Helper()
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
