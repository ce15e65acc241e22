package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestKVCLI runs `gdp kv put|get|del|ls|history` with the built binary
// against a router and a capsule server: reads as of a seqno and of a time
// return exactly what was current then, a deleted key is an error now and
// readable before, and bad input (--as-of, a missing key) is a clear
// error with exit status 1.
func TestKVCLI(t *testing.T) {
	w := newCLIWorld(t, []string{"store1"}, nil)
	run := func(stdin string, args ...string) (string, error) {
		cmd := w.command(args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Stdin = strings.NewReader(stdin)
		err := cmd.Run()
		if err != nil {
			return stdout.String() + stderr.String(), err
		}
		return stdout.String(), nil
	}
	gdp := func(args ...string) string {
		t.Helper()
		out, err := run("", args...)
		if err != nil {
			t.Fatalf("gdp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := run("", args...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, want) {
			t.Fatalf("gdp %s: %v, want exit 1 with %q:\n%s", strings.Join(args, " "), err, want, out)
		}
	}
	c := strings.TrimSpace(gdp("capsule", "create", "--owner", "alice", "--writer", "alice-writer",
		"--servers", w.ids["store1"].Name.String(), "--w", "1"))
	put := func(k, v string) uint64 {
		t.Helper()
		var out struct {
			Key     string
			Seqno   uint64
			Durable bool
		}
		s := gdp("kv", "put", c, k, v, "--writer", "alice-writer", "--json")
		if err := json.Unmarshal([]byte(s), &out); err != nil || out.Key != k || out.Seqno == 0 || !out.Durable {
			t.Fatalf("put %s: %v %s", k, err, s)
		}
		return out.Seqno
	}
	red := put("colour", "red")
	time.Sleep(30 * time.Millisecond)
	between := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(30 * time.Millisecond)
	green := put("colour", "green")
	put("shape", "round")
	if out, err := run("tab\there\n", "kv", "put", c, "raw", "-", "--writer", "alice-writer"); err != nil || !strings.HasPrefix(out, "raw\tseqno ") {
		t.Fatalf("put from stdin: %v %s", err, out)
	}
	if out := gdp("kv", "del", c, "colour", "--writer", "alice-writer"); !strings.HasPrefix(out, "colour\tdeleted\tseqno ") {
		t.Fatalf("del: %q", out)
	}

	for _, tc := range []struct {
		asOf, want string
	}{{itoa(red), "red"}, {itoa(green), "green"}, {between, "red"}, {itoa(green + 1), "green"}} {
		if out := gdp("kv", "get", c, "colour", "--as-of", tc.asOf); out != tc.want {
			t.Fatalf("get colour --as-of %s: %q, want %q", tc.asOf, out, tc.want)
		}
	}
	fails("key not found", "kv", "get", c, "colour")
	if out := gdp("kv", "get", c, "raw"); out != "tab\there\n" {
		t.Fatalf("get raw: %q", out)
	}
	var got struct {
		Value string
		Seqno uint64
		At    uint64
	}
	if err := json.Unmarshal([]byte(gdp("kv", "get", c, "colour", "--as-of", itoa(green), "--json")), &got); err != nil ||
		got.Value != "green" || got.Seqno != green || got.At != green {
		t.Fatalf("get --json: %+v %v", got, err)
	}
	if out := gdp("kv", "ls", c); out != "raw\t4\t\"tab\\there\\n\"\nshape\t3\tround\n" {
		t.Fatalf("ls now:\n%q", out)
	}
	if out := gdp("kv", "ls", c, "col", "--as-of", itoa(green)); out != "colour\t2\tgreen\n" {
		t.Fatalf("ls col --as-of %d:\n%q", green, out)
	}
	hist := gdp("kv", "history", c, "colour")
	if lines := strings.Split(strings.TrimSpace(hist), "\n"); len(lines) != 3 || !strings.HasSuffix(lines[0], "\tred") ||
		!strings.HasSuffix(lines[1], "\tgreen") || !strings.HasSuffix(lines[2], "\t(deleted)") {
		t.Fatalf("history:\n%s", hist)
	}
	fails("--as-of", "kv", "get", c, "colour", "--as-of", "yesterday")
	fails("--as-of", "kv", "get", c, "colour", "--as-of", "0")
	fails("key not found", "kv", "history", c, "never")
	fails("nothing to delete", "kv", "del", c, "never", "--writer", "alice-writer")
	fails("key not found", "kv", "get", c, "shape", "--as-of", itoa(red))
}
