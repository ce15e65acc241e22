package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the real gdp binary (testmain_test.go) as an operator
// would: a whole demo with --json (the summary against the narration, and
// nothing left behind), a demo interrupted with SIGINT, and --keep with the
// commands it prints run verbatim.

// lockedBuffer is an output buffer a test reads while the process writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// demoProc is one running gdp demo, watched from /proc while it runs.
type demoProc struct {
	cmd     *exec.Cmd
	tmp     string // its $TMPDIR: the demo directory is made in it
	stdout  lockedBuffer
	stderr  lockedBuffer
	done    chan struct{}
	waitErr error

	mu       sync.Mutex
	children map[int]bool // every descendant seen while it ran
	sockets  map[string]bool
}

// startDemo starts gdp demo args with its own $TMPDIR and records, every
// 50 ms until it exits, its descendants and its socket inodes.
func startDemo(t *testing.T, args ...string) *demoProc {
	t.Helper()
	bin := gdpBinary(t)
	p := &demoProc{tmp: t.TempDir(), done: make(chan struct{}), children: map[int]bool{}, sockets: map[string]bool{}}
	p.cmd = exec.Command(bin, append([]string{"demo"}, args...)...)
	p.cmd.Env = append(os.Environ(), "TMPDIR="+p.tmp)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	go func() {
		for {
			select {
			case <-p.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			p.observe(p.cmd.Process.Pid)
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// observe records pid's socket inodes and, recursively, its children.
func (p *demoProc) observe(pid int) {
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	p.mu.Lock()
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			p.sockets[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	p.mu.Unlock()
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(s); err == nil {
				p.mu.Lock()
				p.children[c] = true
				p.mu.Unlock()
				p.observe(c)
			}
		}
	}
}

// waitFor waits until the demo's output (stdout and stderr) holds want.
func (p *demoProc) waitFor(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.stdout.String()+p.stderr.String(), want) {
		select {
		case <-p.done:
			t.Fatalf("demo exited (%v) before printing %q:\n%s\n%s", p.waitErr, want, p.stdout.String(), p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s:\n%s\n%s", want, within, p.stdout.String(), p.stderr.String())
		}
	}
}

// wait waits for the demo to exit and returns its exit code.
func (p *demoProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("demo still running after %s:\n%s\n%s", within, p.stdout.String(), p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		t.Fatal(p.waitErr)
	}
	return 0
}

// checkNothingLeft checks, after the demo exited, that none of the
// processes it started is alive, no process names its directory, its
// sockets are closed and its directory is gone.
func (p *demoProc) checkNothingLeft(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.children {
		if _, err := os.Stat("/proc/" + strconv.Itoa(c)); err == nil {
			t.Errorf("the demo's child process %d is still alive", c)
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(b, []byte(p.tmp)) {
			t.Errorf("process %s still runs with the demo's directory in its arguments: %q", e.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	if len(p.sockets) == 0 && p.done != nil {
		t.Error("saw no socket of the demo while it ran: the check below proves nothing")
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 && p.sockets[fs[9]] {
				t.Errorf("a socket of the demo is still open: %s", line)
			}
		}
	}
	left, _ := os.ReadDir(p.tmp)
	for _, e := range left {
		t.Errorf("left behind in $TMPDIR: %s", e.Name())
	}
}

var demoHeader = regexp.MustCompile(`(?m)^\[(\d+)/(\d+)\] ([^:\n]+)`)

// demoSections splits the narration into each stage's text, by stage name.
func demoSections(narration string) map[string]string {
	out := map[string]string{}
	idx := demoHeader.FindAllStringSubmatchIndex(narration, -1)
	for i, m := range idx {
		end := len(narration)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		} else if j := strings.Index(narration[m[0]:], "\nsummary:"); j >= 0 {
			end = m[0] + j
		}
		out[narration[m[6]:m[7]]] = narration[m[0]:end]
	}
	return out
}

var demoNumber = regexp.MustCompile(`\d+(\.\d+)?`)

// TestDemoSummary runs the whole demo once with --json and checks the
// summary: every stage is there, ok, with what it showed and at least one
// figure; every figure is what the stage's narration said (each number in
// it appears in that stage's narration, or the value itself does); the
// text table on stderr has the same rows. Then that the demo left nothing
// behind: no process, no socket, no directory.
func TestDemoSummary(t *testing.T) {
	t.Parallel()
	p := startDemo(t, "--json")
	if code := p.wait(t, 4*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr.String())
	}
	var results []demoResult
	if err := json.Unmarshal([]byte(p.stdout.String()), &results); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, p.stdout.String())
	}
	stages, _ := selectDemoStages(nil)
	if len(results) != len(stages) {
		t.Fatalf("summary has %d stages, the demo %d", len(results), len(stages))
	}
	narration := p.stderr.String()
	sections := demoSections(narration)
	tableAt := strings.Index(narration, "\nsummary:")
	if tableAt < 0 {
		t.Fatalf("no summary table on stderr:\n%s", narration)
	}
	table := narration[tableAt:]
	for i, r := range results {
		if r.Stage != stages[i].name() || r.Result != "ok" || r.Showed == "" || len(r.Figures) == 0 {
			t.Errorf("stage %d: %+v, want %q ok with what it showed and figures", i+1, r, stages[i].name())
			continue
		}
		sec, ok := sections[r.Stage]
		if !ok {
			t.Errorf("no narration for stage %q", r.Stage)
			continue
		}
		row := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(r.Stage) + ` +ok \d+\.\ds {2,}` + regexp.QuoteMeta(r.Showed) + `$`)
		if !row.MatchString(table) {
			t.Errorf("table lacks the row of %q:\n%s", r.Stage, table)
		}
		for _, f := range r.Figures {
			nums := demoNumber.FindAllString(f.Value, -1)
			if len(nums) == 0 && !strings.Contains(sec, f.Value) {
				t.Errorf("%s: figure %s = %q is not in its narration:\n%s", r.Stage, f.Name, f.Value, sec)
			}
			for _, n := range nums {
				if !regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(n) + `([^0-9]|$)`).MatchString(sec) {
					t.Errorf("%s: figure %s = %q: %s is not in its narration:\n%s", r.Stage, f.Name, f.Value, n, sec)
				}
			}
			if !regexp.MustCompile(`(?m)^ +` + regexp.QuoteMeta(f.Name) + ` +` + regexp.QuoteMeta(f.Value) + `$`).MatchString(table) {
				t.Errorf("table lacks figure %s = %q of %s:\n%s", f.Name, f.Value, r.Stage, table)
			}
		}
	}
	p.checkNothingLeft(t)
	t.Log(table)
}

// TestDemoInterrupt sends SIGINT while the capsules stage runs (routers,
// capsule servers and their stores up): the demo stops within seconds,
// exits non-zero with one line saying it was interrupted, and leaves
// nothing behind.
func TestDemoInterrupt(t *testing.T) {
	t.Parallel()
	p := startDemo(t, "--only", "identities,routers,capsules")
	p.waitFor(t, "three capsule servers", 2*time.Minute)
	sent := time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t, 10*time.Second)
	took := time.Since(sent)
	if code == 0 {
		t.Errorf("exit 0 after SIGINT")
	}
	stderr := strings.TrimSpace(p.stderr.String())
	if strings.Count(stderr, "\n") != 0 || !strings.Contains(stderr, "demo interrupted during stage \"Capsules\"") {
		t.Errorf("stderr is not one line saying it was interrupted:\n%s", stderr)
	}
	if strings.Contains(p.stdout.String(), "summary:") {
		t.Errorf("printed the summary after SIGINT:\n%s", p.stdout.String())
	}
	p.checkNothingLeft(t)
	t.Logf("stopped %s after SIGINT: %s", took.Round(time.Millisecond), stderr)
}

// TestDemoKeep runs gdp demo --keep with the stages that build the kept
// overlay, runs the commands it prints verbatim against it (router status
// and routes, ping by name, capsule read, the dashboard and metrics URLs),
// then stops it as printed and checks nothing is left.
func TestDemoKeep(t *testing.T) {
	t.Parallel()
	p := startDemo(t, "--keep", "--only", "identities,routers,capsules")
	p.waitFor(t, "kill -INT", 2*time.Minute)
	out := p.stdout.String()
	block := out[strings.Index(out, "explore it from another terminal"):]
	cmds := map[string]string{} // what → command
	lines := strings.Split(block, "\n")
	for i := 1; i+1 < len(lines); i++ {
		if strings.HasPrefix(lines[i], "  # ") {
			cmds[strings.TrimPrefix(lines[i], "  # ")] = strings.TrimSpace(lines[i+1])
		}
	}
	stop := ""
	if m := regexp.MustCompile(`(?m)^  (kill -INT \d+)$`).FindStringSubmatch(block); m != nil {
		stop = m[1]
	}
	find := func(prefix string) string {
		for what, c := range cmds {
			if strings.HasPrefix(what, prefix) {
				return c
			}
		}
		t.Fatalf("no command for %q in:\n%s", prefix, block)
		return ""
	}
	run := func(line string) string {
		t.Helper()
		sh := exec.Command("sh", "-c", line)
		sh.Env = append(os.Environ(), "TMPDIR="+p.tmp)
		b, err := sh.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", line, err, b)
		}
		return string(b)
	}
	if s := run(find("edge1's name")); !strings.Contains(s, "(1 peer routers)") {
		t.Errorf("router status:\n%s", s)
	}
	capName := regexp.MustCompile(`capsule info (\S+)`).FindStringSubmatch(find("the replicated capsule"))
	if s := run(find("edge2's FIB")); capName == nil || !strings.Contains(s, capName[1]) {
		t.Errorf("edge2's routes lack the replicated capsule:\n%s", s)
	}
	// The first probe may go unanswered while the probe's own location
	// record is being published (as with gdp ping against any router).
	if s := run(find("ping")); !regexp.MustCompile(`3 sent, [123] received`).MatchString(s) {
		t.Errorf("ping:\n%s", s)
	}
	if s := run(find("read and verify")); strings.Count(s, "\n") != 5 || !strings.Contains(s, "5\t") {
		t.Errorf("capsule read --to 5:\n%s", s)
	}
	dash := find("edge1's web dashboard")
	for _, u := range []string{dash, dash + "metrics"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", u, resp.Status)
		}
	}
	if stop == "" {
		t.Fatalf("no stop command:\n%s", block)
	}
	run(stop)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after the printed stop command:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), "overlay stopped; removed ") {
		t.Errorf("no goodbye:\n%s", p.stdout.String())
	}
	if c, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(dash, "http://"), "/"), time.Second); err == nil {
		c.Close()
		t.Errorf("the dashboard still answers after the stop")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("dial after stop: %v", err)
	}
	p.checkNothingLeft(t)
}

// TestDemoRunInProcess drives runDemo with stand-in stages: --timeout
// bounds the stages only, not the overlay --keep holds (a server started
// under the stages' context keeps running past it); a failed stage is
// FAILED in the table, the ones after it "not run", and hold is not called.
func TestDemoRunInProcess(t *testing.T) {
	var out bytes.Buffer
	var stageCtx context.Context
	keeper := demoStage{order: 1, title: "Keeper: leaves a server", run: func(ctx context.Context, d *demoEnv) error {
		stageCtx = ctx
		d.Showed("a server started")
		d.Figure("servers", "%d", 1)
		return nil
	}}
	d := &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}, Keep: true}
	held := false
	results, err := runDemo(context.Background(), 100*time.Millisecond, d, []demoStage{keeper}, func() error {
		held = true
		time.Sleep(300 * time.Millisecond) // past --timeout
		if stageCtx.Err() != nil {
			t.Errorf("the stages' context ended while --keep held the overlay: %v", context.Cause(stageCtx))
		}
		return nil
	})
	if err != nil || !held || len(results) != 1 || results[0].Result != "ok" {
		t.Fatalf("keep: err %v, held %v, results %+v\n%s", err, held, results, out.String())
	}
	if stageCtx.Err() == nil {
		t.Error("the stages' context outlived the demo")
	}

	out.Reset()
	failing := demoStage{order: 2, title: "Failing: breaks", run: func(ctx context.Context, d *demoEnv) error {
		d.Showed("nothing")
		return errors.New("broken on purpose")
	}}
	after := demoStage{order: 3, title: "After: never runs", run: func(ctx context.Context, d *demoEnv) error {
		t.Error("a stage ran after a failed one")
		return nil
	}}
	d = &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}, Keep: true}
	results, err = runDemo(context.Background(), time.Minute, d, []demoStage{keeper, failing, after}, func() error {
		t.Error("hold called after a failed stage")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `demo stage "Failing": broken on purpose`) {
		t.Errorf("err %v", err)
	}
	table := out.String()[strings.Index(out.String(), "summary:"):]
	for _, re := range []string{`(?m)^  Keeper +ok \d+\.\ds +a server started$`, `(?m)^ +servers +1$`,
		`(?m)^  Failing +FAILED \d+\.\ds +nothing$`, `(?m)^  After +not run +$`} {
		if !regexp.MustCompile(re).MatchString(table) {
			t.Errorf("table lacks %s:\n%s", re, table)
		}
	}
	if results[2].Result != "not run" {
		t.Errorf("results: %+v", results)
	}
}

// TestDemoOutputClosed: gdp demo | head — the reader goes away after the
// first lines. The demo stops as on Ctrl-C (SIGPIPE would otherwise kill
// it before its cleanups) and leaves nothing behind.
func TestDemoOutputClosed(t *testing.T) {
	t.Parallel()
	bin := gdpBinary(t)
	p := &demoProc{tmp: t.TempDir(), children: map[int]bool{}, sockets: map[string]bool{}}
	cmd := exec.Command(bin, "demo", "--only", "identities,tunnels,routers,capsules")
	cmd.Env = append(os.Environ(), "TMPDIR="+p.tmp)
	cmd.Stderr = &p.stderr
	r, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	buf := make([]byte, 512)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	p.observe(cmd.Process.Pid)
	r.Close() // as head does when it has its lines
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(p.stderr.String(), "demo interrupted during stage") {
			t.Errorf("exit %v, stderr %q: want it stopped as on Ctrl-C", err, p.stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the demo kept running after its output was closed:\n%s", p.stderr.String())
	}
	p.checkNothingLeft(t)
}
