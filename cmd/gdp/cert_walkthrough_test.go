package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// walkStep is one command of the OPERATIONS.md walkthrough.
type walkStep struct {
	line     string // the shell command as written in the doc
	wantFail string // non-empty: the command must exit non-zero with this in its output
}

var exitsRe = regexp.MustCompile(`\s#\s*exits 1:\s*(.+)$`)

// walkthroughSteps extracts the ```sh blocks of docs/OPERATIONS.md §1, in
// order, joining backslash-continued lines.
func walkthroughSteps(t *testing.T) []walkStep {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	start := strings.Index(s, "## 1. Certificates with `gdp cert`")
	if start < 0 {
		t.Fatal("docs/OPERATIONS.md has no section 1 (certificates)")
	}
	s = s[start:]
	if end := strings.Index(s[3:], "\n## "); end >= 0 {
		s = s[:end+3]
	}
	var steps []walkStep
	in := false
	var cont strings.Builder
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && trimmed == "```sh":
			in = true
			continue
		case in && trimmed == "```":
			in = false
			continue
		case !in:
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cont.WriteString(strings.TrimSuffix(trimmed, "\\"))
			cont.WriteString(" ")
			continue
		}
		cont.WriteString(trimmed)
		full := strings.TrimSpace(cont.String())
		cont.Reset()
		if full == "" || strings.HasPrefix(full, "#") {
			continue
		}
		st := walkStep{line: full}
		if m := exitsRe.FindStringSubmatch(full); m != nil {
			st.wantFail = strings.TrimSpace(m[1])
		}
		steps = append(steps, st)
	}
	if len(steps) < 10 {
		t.Fatalf("found only %d commands in the walkthrough", len(steps))
	}
	return steps
}

func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Skip("go tool not found; cannot build gdp")
	return ""
}

// TestCertWalkthrough builds the gdp binary and runs docs/OPERATIONS.md
// §1.1 command by command in an empty directory, exactly as written: an
// operator following the doc gets exactly this.
func TestCertWalkthrough(t *testing.T) {
	steps := walkthroughSteps(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	linkGdp(t, filepath.Join(bin, "gdp"))
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir, "LC_ALL=C"}
	for i, st := range steps {
		cmd := exec.Command("sh", "-c", st.line)
		cmd.Dir = work
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("$ %s  (%s)\n%s", st.line, time.Since(start).Round(time.Millisecond), out)
		if st.wantFail != "" {
			if err == nil {
				t.Fatalf("step %d: %q succeeded; the doc says it fails with %q", i+1, st.line, st.wantFail)
			}
			if !strings.Contains(string(out), st.wantFail) {
				t.Fatalf("step %d: %q failed without %q in its output:\n%s", i+1, st.line, st.wantFail, out)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %q: %v\n%s", i+1, st.line, err, out)
		}
		if strings.HasPrefix(st.line, "gdp cert verify") && !strings.Contains(string(out), "OK: ") {
			t.Fatalf("step %d: verify did not say OK:\n%s", i+1, out)
		}
	}
	checkTamperedChainCLI(t, work, env)
	// What the doc promises exists: keys 0600 beside their metadata.
	for _, alias := range []string{"acme", "edge1", "store1", "alice", "alice-writer"} {
		st, err := os.Stat(filepath.Join(work, "keys", alias+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode %o, want 600", alias, st.Mode().Perm())
		}
		if _, err := os.Stat(filepath.Join(work, "keys", alias+".meta")); err != nil {
			t.Error(err)
		}
	}
}

// checkTamperedChainCLI goes beyond the doc with the files the walkthrough
// left: inspect --json agrees with the chain, and a chain with one byte of
// its RtCert signature flipped is refused by gdp cert verify, naming the link.
func checkTamperedChainCLI(t *testing.T, work string, env []string) {
	t.Helper()
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(filepath.Join(filepath.Dir(work), "bin", "gdp"), args...)
		cmd.Dir, cmd.Env = work, env
		return cmd.CombinedOutput()
	}
	c, err := certs.ReadChainFile(filepath.Join(work, "sensor.chain"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := run("cert", "inspect", "--json", "sensor.chain")
	if err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	var view struct {
		Type   string `json:"type"`
		Target struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"target"`
		RtCert struct {
			Status string `json:"status"`
		} `json:"rtcert"`
	}
	if err := json.Unmarshal(out, &view); err != nil {
		t.Fatalf("inspect --json is not JSON: %v\n%s", err, out)
	}
	if view.Type != "chain" || view.Target.Name != c.Target.Name().String() || view.Target.Kind != "capsule" || view.RtCert.Status != "valid" {
		t.Errorf("inspect --json: %+v", view)
	}
	enc := c.Marshal()
	rt := c.RtCert.Marshal()
	i := bytes.Index(enc, rt)
	if i < 0 {
		t.Fatal("rtcert not inside the chain encoding")
	}
	enc[i+len(rt)-1] ^= 0x80
	if err := os.WriteFile(filepath.Join(work, "bad.chain"), certs.Armor(certs.PEMChain, enc), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run("cert", "verify", "--trust", "acme.meta", "bad.chain")
	if err == nil || !strings.Contains(string(out), `link "rtcert": bad signature`) {
		t.Fatalf("tampered chain: err %v, output:\n%s", err, out)
	}
}
