package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestCapsuleOpsCLI walks what keeps a capsule running and what goes wrong
// with the built `gdp` binary against a router and two capsule servers:
// a create that fails on its second server leaves nothing on the first; a
// mistyped name fails with the router's NAK at once; a line over the
// record limit is named; an interrupted append reports what is stored and
// resumes with --skip; a second append of the same capsule on this machine
// is refused by the writer lock; AdCerts with little life left are warned
// about, renewed, and the capsule stays readable and appendable after the
// old ones expired; delete removes it from every server.
func TestCapsuleOpsCLI(t *testing.T) {
	w := newCLIWorld(t, []string{"s1", "s2"}, nil)
	dir, bin, ids, servers := w.dir, w.bin, w.ids, w.servers
	ksDir := filepath.Join(dir, "keys")
	run := func(stdin io.Reader, args ...string) (string, string, error) {
		cmd := w.command(args...)
		cmd.Stdin = stdin
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	must := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := run(strings.NewReader(stdin), args...)
		if err != nil {
			t.Fatalf("gdp %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	s1, s2 := ids["s1"].Name.String(), ids["s2"].Name.String()

	// A create with neither --writer nor --meta says which to give (it
	// said "…, not both", Session 19), as does one with both.
	for _, c := range []struct {
		args []string
		says string
	}{
		{nil, "give --writer ALIAS"},
		{[]string{"--writer", "alice-writer", "--meta", "x.meta"}, "not both"},
	} {
		args := append([]string{"capsule", "create", "--owner", "alice", "--servers", s1}, c.args...)
		if _, errOut, err := run(nil, args...); err == nil || !strings.Contains(errOut, c.says) {
			t.Fatalf("gdp %s: %v, want an error saying %q\n%s", strings.Join(args, " "), err, c.says, errOut)
		}
	}

	// A create whose second server does not exist (NO_ROUTE) takes back
	// the placement it made on the first.
	ghost := pdu.Name{0x42}
	_, errOut, err := run(nil, "capsule", "create", "--owner", "alice", "--writer", "alice-writer", "--servers", s1+","+ghost.String())
	if err == nil || !strings.Contains(errOut, "NO_ROUTE") || !strings.Contains(errOut, "deleted again") {
		t.Fatalf("create on a missing server: %v\n%s", err, errOut)
	}
	if n := len(servers["s1"].Store().Capsules()); n != 0 {
		t.Fatalf("a failed create left %d capsules on s1", n)
	}

	out, _ := must("", "capsule", "create", "--owner", "alice", "--writer", "alice-writer", "--servers", s1+","+s2, "--json")
	var created struct{ Capsule string }
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	name := created.Capsule

	// A mistyped name: the router's NAK, at once.
	typo := []byte(name)
	// Another base64url letter (flipping a bit turned 'A' into '@' and 'a'
	// into '`', one name in sixteen: "not canonical", not NO_ROUTE).
	if typo[3] == 'A' {
		typo[3] = 'B'
	} else {
		typo[3] = 'A'
	}
	_, errOut, err = run(nil, "capsule", "read", string(typo))
	if err == nil || !strings.Contains(errOut, "NO_ROUTE") || strings.Contains(errOut, "attempts") {
		t.Fatalf("read of a mistyped name: %v\n%s", err, errOut)
	}

	// A line over the record limit is named, with the limit.
	long := "short line\n" + strings.Repeat("x", 70000) + "\n"
	_, errOut, err = run(strings.NewReader(long), "capsule", "append", name, "--writer", "alice-writer")
	if err == nil || !strings.Contains(errOut, "line 2 of the input") || !strings.Contains(errOut, "56000") || strings.Contains(errOut, "token too long") {
		t.Fatalf("append of a long line: %v\n%s", err, errOut)
	}
	if strings.Contains(errOut, "warning") {
		t.Fatalf("a warning with 72 h AdCerts:\n%s", errOut)
	}

	// Ctrl-C after some batches: it says what is stored and where to resume.
	const total = 5000
	var input strings.Builder
	for i := 1; i <= total; i++ {
		fmt.Fprintf(&input, "line %d\n", i)
	}
	cmd := w.command("capsule", "append", name, "--writer", "alice-writer")
	stdin, _ := cmd.StdinPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(input.String(), "\n")
	if _, err := io.WriteString(stdin, strings.Join(lines[:4500], "")); err != nil {
		t.Fatal(err)
	}
	// The writer lock: once the first append holds it, a second append of
	// the capsule is refused.
	lockPath := writerLockPath(ksDir, mustName(t, name))
	eventually(t, 30*time.Second, "the first append holding the writer lock", func() bool {
		f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
		if err != nil {
			return false
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return true
		}
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	})
	// Another client identity (one identity in two processes shares its
	// answers): the lock is keyed by the capsule, not the identity.
	second := exec.Command(bin, append(append([]string{"capsule", "append", name, "--writer", "alice-writer"}, w.common...),
		"--identity", "alice", "--member", filepath.Join(dir, "alice.member"))...)
	second.Stdin = strings.NewReader("x\n")
	var secondErr bytes.Buffer
	second.Stderr = &secondErr
	if err := second.Run(); err == nil || !strings.Contains(secondErr.String(), "another writer is active on this machine") {
		t.Fatalf("second append while one runs: %v\n%s\nthe first said:\n%s", err, secondErr.String(), stderr.String())
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		h1, err1 := servers["s1"].Store().Head(mustName(t, name))
		h2, err2 := servers["s2"].Store().Head(mustName(t, name))
		if err1 == nil && err2 == nil && min(h1.Seqno, h2.Seqno) >= 3*1024 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the first batches not stored: heads %d %d (%v %v); the append said:\n%s", h1.Seqno, h2.Seqno, err1, err2, stderr.String())
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	_ = stdin.Close()
	msg := stderr.String()
	i := strings.Index(msg, "resume with --skip ")
	if !strings.Contains(msg, "interrupted: stored records 1–") || i < 0 {
		t.Fatalf("interrupted append said:\n%s", msg)
	}
	skip, err := strconv.Atoi(strings.Fields(msg[i+len("resume with --skip "):])[0])
	if err != nil || skip < 3*1024 {
		t.Fatalf("resume point %d (%v):\n%s", skip, err, msg)
	}
	// Resume: the same input with --skip stores the rest, nothing twice.
	must(input.String(), "capsule", "append", name, "--writer", "alice-writer", "--skip", strconv.Itoa(skip))
	out, _ = must("", "capsule", "read", name, "--json")
	got := strings.Split(strings.TrimSpace(out), "\n")
	if len(got) != total {
		t.Fatalf("read %d records after the resume, want %d", len(got), total)
	}
	for i, l := range got {
		var r recordJSON
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Data != fmt.Sprintf("line %d", i+1) {
			t.Fatalf("record %d: %v %q", i+1, err, l)
		}
	}

	// A capsule whose AdCerts (12 s) have less than 20 % of their life
	// left: warned about; renewed before they expire, it keeps its name and
	// records and stays readable and appendable after they did.
	out, _ = must("", "capsule", "create", "--owner", "alice", "--writer", "alice-writer", "--servers", s1+","+s2,
		"--adcert-lifetime", "12s", "--json")
	created1 := time.Now()
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	short := created.Capsule
	_, errOut = must("", "capsule", "append", short, "--writer", "alice-writer", "--data", "before renewal")
	if !strings.Contains(errOut, "warning: capsule "+short) || !strings.Contains(errOut, "gdp capsule renew") {
		t.Fatalf("no expiry warning:\n%s", errOut)
	}
	out, _ = must("", "capsule", "renew", short, "--owner", "alice")
	if !strings.Contains(out, "renewed "+short+" on 2 servers") {
		t.Fatalf("renew:\n%s", out)
	}
	time.Sleep(time.Until(created1.Add(13 * time.Second)))
	must("", "capsule", "append", short, "--writer", "alice-writer", "--data", "after renewal")
	out, errOut = must("", "capsule", "tail", short, "-n", "2")
	if !strings.Contains(out, "1\t") || !strings.Contains(out, "before renewal") || !strings.Contains(out, "2\t") ||
		!strings.Contains(out, "after renewal") || strings.Contains(errOut, "warning") {
		t.Fatalf("tail after the old AdCerts expired:\nstdout %s\nstderr %s", out, errOut)
	}
	if out, _ = must("", "capsule", "verify", short); strings.Count(out, "2 entries verified") != 2 {
		t.Fatalf("verify:\n%s", out)
	}
	if out, _ = must("", "capsule", "verify", name); strings.Count(out, fmt.Sprintf("%d entries verified", total)) != 2 {
		t.Fatalf("verify:\n%s", out)
	}

	// Delete: gone from both servers, and a read says NO_ROUTE.
	must("", "capsule", "delete", name, "--owner", "alice")
	for alias, srv := range servers {
		for _, c := range srv.Store().Capsules() {
			if c.String() == name {
				t.Fatalf("%s still holds the deleted capsule", alias)
			}
		}
	}
	eventually(t, 20*time.Second, "the deleted capsule unreachable", func() bool {
		_, errOut, err := run(nil, "capsule", "read", name, "--timeout", "5s")
		return err != nil && strings.Contains(errOut, "NO_ROUTE")
	})
}

func mustName(t *testing.T, s string) pdu.Name {
	t.Helper()
	n, err := pdu.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
