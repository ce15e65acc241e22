package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/gdpnet/gdpnet/sim"
)

// TestMain lets this test binary be the gdp binary for the processes the
// netns tests start (GDP_TEST_RUN_MAIN=1: run main with the arguments):
// the routers run the same main as bin/gdp, without a build step.
func TestMain(m *testing.M) {
	if os.Getenv("GDP_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	removeSharedGdp() // testmain_test.go
	os.Exit(code)
}

func netnsOrSkip(t *testing.T) {
	t.Helper()
	if err := sim.NetnsAvailable(); err != nil {
		t.Skipf("netns mode unavailable here: %v", err)
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skipf("no network namespaces: %v", err)
	}
}

// gdpExec is this test binary run as gdp.
func gdpExec(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), "GDP_TEST_RUN_MAIN=1")
	return c
}

// leftovers lists what a netns run left: namespaces, state file, live
// processes among pids, veths of this namespace.
func leftovers(run string, pids []int) []string {
	var out []string
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), sim.NetnsPrefix+run) {
			out = append(out, "namespace "+e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(sim.StateDir, run+".json")); err == nil {
		out = append(out, "state file")
	}
	for _, p := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil {
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z") {
				out = append(out, fmt.Sprintf("process %d", p))
			}
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	for _, l := range links {
		if strings.HasPrefix(l.Name(), sim.VethPrefix+run) {
			out = append(out, "veth "+l.Name())
		}
	}
	return out
}

// TestNetnsFidelity runs sim/examples/netns.yaml: 12 routers, each a real
// process of this binary (`gdp router`) in its own network namespace,
// with clients on sockets in theirs. It checks the processes (distinct
// namespaces), and the fidelity figures, as the in-process tests
// check them: RTT over a 4-hop path of 10 ms links (none below 80 ms; the
// difference to a 1 ms-link path pinged at the same instants is the
// configured 72 ms ± 10 % of 80, between the two paths' minimum RTTs),
// UDP over a 10 Mbit/s link (± 10 %),
// 5 % loss (binomial 99.99 % interval); then that Close leaves nothing.
func TestNetnsFidelity(t *testing.T) {
	netnsOrSkip(t)
	t.Setenv("GDP_TEST_RUN_MAIN", "1")
	top, err := sim.Example("netns")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var prog strings.Builder
	s, err := sim.Start(ctx, top, sim.Options{Binary: os.Args[0], Progress: &prog})
	if err != nil {
		t.Fatalf("%v\n%s", err, prog.String())
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	pids := s.RouterPIDs()
	if len(pids) != 12 {
		t.Fatalf("router processes %v, want 12", pids)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	seen := map[string]string{}
	var all []int
	for node, pid := range pids {
		all = append(all, pid)
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil || ns == self || seen[ns] != "" {
			t.Fatalf("router %s (pid %d) in namespace %q (err %v): not its own", node, pid, ns, err)
		}
		seen[ns] = node
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmd), "router\x00--config") {
			t.Fatalf("router %s runs %q", node, cmd)
		}
	}
	res, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s%s", prog.String(), res.Text())
	run := s.RunID()
	s.Close()
	closed = true
	if left := leftovers(run, all); len(left) > 0 {
		t.Errorf("after Close: %v", left)
	}
	if !strings.HasPrefix(res.Summary, "Results: ") {
		t.Errorf("summary %q", res.Summary)
	}
	if raceEnabled {
		// Under -race the hub that emulates every link in this process,
		// and each router process, run 5–10× slower on two cores: the
		// figures would measure the race detector. The processes,
		// namespaces, the run and the teardown were checked above; the
		// figures are checked by `make test`.
		t.Log("under -race: link fidelity figures not judged (see make test)")
		return
	}

	// RTT, paired from the fifth ping on.
	a, b := res.Workloads[0], res.Workloads[1]
	if a.Received < 36 || b.Received < 36 {
		t.Fatalf("only %d and %d of 40 pings answered", a.Received, b.Received)
	}
	var rtts, brtts, diffs []float64
	for k := 5; k < len(a.Samples); k++ {
		if a.Samples[k].OK {
			rtts = append(rtts, a.Samples[k].Value)
			if b.Samples[k].OK {
				diffs = append(diffs, a.Samples[k].Value-b.Samples[k].Value)
			}
		}
		if b.Samples[k].OK {
			brtts = append(brtts, b.Samples[k].Value)
		}
	}
	// The link delay is judged from the minimum RTTs of the two paths (as
	// ping's min): twelve router processes and the hub share two cores,
	// and on a loaded machine their scheduling adds a delay to most
	// samples (the paired median rose to 85 ms at load 17) but not to the
	// fastest ones.
	const want, diff = 80.0, 72.0
	minRTT, medRTT, minDiff, medDiff := minOf(rtts), median(rtts), minOf(rtts)-minOf(brtts), median(diffs)
	t.Logf("RTT min %.2f median %.2f ms (configured %.0f); 1 ms path min %.2f median %.2f ms; difference of the minimums %.2f ms (configured %.0f), paired median %.2f ms",
		minRTT, medRTT, want, minOf(brtts), b.RTT.P50, minDiff, diff, medDiff)
	if minRTT < want {
		t.Errorf("RTT %.2f ms is below the configured %.0f ms", minRTT, want)
	}
	if math.Abs(minDiff-diff) > want*0.10 {
		t.Errorf("9 ms more per link adds %.2f ms to the minimum RTT, not %.0f ms ± 10%% of %.0f", minDiff, diff, want)
	}

	// Throughput.
	u := res.Workloads[2]
	const rate = 10e6
	t.Logf("UDP %.3f Mbit/s on the wire (configured 10), %d of %d datagrams", u.Throughput/1e6, u.Received, u.Sent)
	if math.Abs(u.Throughput-rate)/rate > 0.10 {
		t.Errorf("link carried %.3f Mbit/s, want 10 ± 10%%", u.Throughput/1e6)
	}

	// Loss.
	st := res.Workloads[4]
	const p, n = 0.05, 2000
	if st.Sent != n {
		t.Fatalf("stream sent %d, want %d", st.Sent, n)
	}
	obs := float64(st.Sent-st.Received) / n
	bound := 3.9 * math.Sqrt(p*(1-p)/n)
	t.Logf("lost %d of %d = %.4f (configured %.2f ± %.4f)", st.Sent-st.Received, st.Sent, obs, p, bound)
	if math.Abs(obs-p) > bound {
		t.Errorf("observed loss %.4f outside %.2f ± %.4f", obs, p, bound)
	}
}

func minOf(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// netnsRun starts `gdp sim run FILE --mode netns` as a process of this
// binary and waits until its endpoints are up; it returns the process
// and its state file.
func netnsRun(t *testing.T) (*exec.Cmd, string, map[string]any) {
	t.Helper()
	dir := t.TempDir()
	topo := filepath.Join(dir, "topo.yaml")
	if err := os.WriteFile(topo, []byte(`name: clean-test
nodes:
  - {name: r1, kind: router}
  - {name: r2, kind: router}
  - {name: c1, kind: client, attach: r1}
  - {name: c2, kind: client, attach: r2}
links:
  - {a: r1, b: r2, delay: 5ms}
workloads:
  - {kind: ping, from: c1, to: c2, count: 1000, interval: 100ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := gdpExec("sim", "run", topo, "--mode", "netns")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	up := make(chan string, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "endpoints attached and advertised") {
				up <- ""
				_, _ = bufio.NewReader(stderr).WriteTo(devNull{})
				return
			}
		}
		up <- log.String()
	}()
	select {
	case l := <-up:
		if l != "" {
			t.Fatalf("the run ended before it was up:\n%s", l)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the run did not come up in 90 s")
	}
	files, _ := filepath.Glob(filepath.Join(sim.StateDir, "*.json"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var st map[string]any
		if json.Unmarshal(b, &st) == nil && int(st["pid"].(float64)) == cmd.Process.Pid {
			return cmd, strings.TrimSuffix(filepath.Base(f), ".json"), st
		}
	}
	t.Fatalf("no state file in %s names pid %d", sim.StateDir, cmd.Process.Pid)
	return nil, "", nil
}

type devNull struct{}

func (devNull) Write(b []byte) (int, error) { return len(b), nil }

func statePIDs(st map[string]any) []int {
	var out []int
	procs, _ := st["procs"].([]any)
	for _, p := range procs {
		out = append(out, int(p.(map[string]any)["pid"].(float64)))
	}
	return out
}

// TestNetnsCleanAfterKill: a netns run as a real gdp process is SIGKILLed
// mid-run (its router processes and namespaces are left, plus a process
// started inside one of them, as a crash would leave a straggler); gdp sim
// clean kills the processes and removes every namespace, the scratch
// directory and the state file, and says so; nothing is left.
func TestNetnsCleanAfterKill(t *testing.T) {
	netnsOrSkip(t)
	cmd, run, st := netnsRun(t)
	pids := statePIDs(st)
	if len(pids) != 2 {
		t.Fatalf("state file names processes %v, want the 2 routers", st["procs"])
	}
	// A straggler in r1's namespace.
	h, err := netns.GetFromName(sim.NetnsPrefix + run + "-r1")
	if err != nil {
		t.Fatal(err)
	}
	var sleeper *exec.Cmd
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, _ := netns.Get()
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			t.Fatal(err)
		}
		sleeper = exec.Command("sleep", "600")
		err = sleeper.Start()
		if serr := netns.Set(orig); serr != nil {
			t.Fatal(serr)
		}
	}()
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sleeper.Wait() }()
	pids = append(pids, sleeper.Process.Pid)

	// While the simulator runs, clean leaves its run alone.
	out, err := gdpExec("sim", "clean").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "left alone: run "+run) || strings.Contains(string(out), "removed namespace "+sim.NetnsPrefix+run) {
		t.Fatalf("gdp sim clean during the run (%v):\n%s", err, out)
	}
	if _, err := os.Stat("/run/netns/" + sim.NetnsPrefix + run + "-hub"); err != nil {
		t.Fatalf("the live run's hub namespace: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	left := leftovers(run, pids)
	if len(left) < 3 {
		t.Fatalf("after SIGKILL only %v is left: the test needs a crashed run's leftovers", left)
	}
	out, err = gdpExec("sim", "clean").CombinedOutput()
	t.Logf("gdp sim clean:\n%s", out)
	if err != nil {
		t.Fatalf("gdp sim clean: %v", err)
	}
	for _, want := range []string{"removed namespace " + sim.NetnsPrefix + run + "-hub", "removed namespace " + sim.NetnsPrefix + run + "-r1",
		fmt.Sprintf("killed process %d", sleeper.Process.Pid), "removed state file " + filepath.Join(sim.StateDir, run+".json")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("gdp sim clean did not say %q", want)
		}
	}
	if left := leftovers(run, pids); len(left) > 0 {
		t.Errorf("after gdp sim clean: %v", left)
	}
	if d, _ := st["dir"].(string); d != "" {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("scratch directory %s left", d)
		}
	}
	// Again: nothing of this run to remove.
	out, _ = gdpExec("sim", "clean").CombinedOutput()
	if strings.Contains(string(out), run) {
		t.Errorf("a second clean still found run %s:\n%s", run, out)
	}
}

// TestNetnsInterrupt: Ctrl-C (SIGINT) mid-run tears the run down itself.
func TestNetnsInterrupt(t *testing.T) {
	netnsOrSkip(t)
	cmd, run, st := netnsRun(t)
	pids := statePIDs(st)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop within 30 s of SIGINT")
	}
	if left := leftovers(run, pids); len(left) > 0 {
		t.Errorf("after SIGINT: %v", left)
	}
}

// BenchmarkNetnsScale builds GDP_SIM_NETNS_SCALE (default 100) routers,
// each a real `gdp router` process in its own namespace, as a grid with
// 1 ms links and two clients at opposite corners; pings across once the
// DHT has every name; tears down. Reported: build time, router processes'
// resident memory and CPU time, teardown time, pings answered; it fails if
// a namespace, process, veth or state file is left. (make bench; root.)
// GDP_SIM_ROUTER_ENV ("K=V K=V") adds to the routers' environment.
func BenchmarkNetnsScale(b *testing.B) {
	if err := sim.NetnsAvailable(); err != nil {
		b.Skipf("netns mode unavailable here: %v", err)
	}
	n := 100
	if v, err := strconv.Atoi(os.Getenv("GDP_SIM_NETNS_SCALE")); err == nil && v > 1 {
		n = v
	}
	rows := int(math.Sqrt(float64(n)))
	cols := (n + rows - 1) / rows
	b.Setenv("GDP_TEST_RUN_MAIN", "1")
	for range b.N {
		top, err := sim.Builtin("grid", sim.Params{Rows: rows, Cols: cols, Delay: time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		for _, w := range top.Workloads {
			w.Count = 10
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		var prog strings.Builder
		t0 := time.Now()
		// GDP_SIM_ROUTER_SLACK: the routers' timer slack (-1ns: the
		// kernel's default), to measure against the simulator's.
		slack, _ := time.ParseDuration(os.Getenv("GDP_SIM_ROUTER_SLACK"))
		s, err := sim.Start(ctx, top, sim.Options{Mode: sim.ModeNetns, Binary: os.Args[0], Progress: &prog,
			RouterEnv: strings.Fields(os.Getenv("GDP_SIM_ROUTER_ENV")), RouterTimerSlack: slack})
		build := time.Since(t0)
		if err != nil {
			cancel()
			b.Fatalf("%v\n%s", err, prog.String())
		}
		pids := s.RouterPIDs()
		if len(pids) != rows*cols {
			b.Fatalf("%d router processes, want %d", len(pids), rows*cols)
		}
		var rss, anon, cpu float64
		var all []int
		for _, pid := range pids {
			all = append(all, pid)
			rss += procStatus(pid, "VmRSS:")
			anon += procStatus(pid, "RssAnon:")
			cpu += procCPU(pid)
		}
		// Idle: the routers' CPU over 5 s with nothing to do but their
		// timers (housekeeping, keepalives, the Go runtime's sysmon).
		var switches float64
		for _, pid := range pids {
			switches -= procSwitches(pid)
		}
		time.Sleep(5 * time.Second)
		var idle float64
		for _, pid := range pids {
			idle += procCPU(pid)
			switches += procSwitches(pid)
		}
		idle -= cpu
		res, err := s.Run(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		run := s.RunID()
		t1 := time.Now()
		s.Close()
		teardown := time.Since(t1)
		b.Logf("%s%s", prog.String(), res.Text())
		if left := leftovers(run, all); len(left) > 0 {
			b.Fatalf("left behind: %v", left)
		}
		b.ReportMetric(float64(len(pids)), "routers")
		b.ReportMetric(build.Seconds(), "build-s")
		b.ReportMetric(rss/(1<<20), "routers-rss-MiB")
		b.ReportMetric(rss/float64(len(pids))/(1<<20), "rss-MiB/router")
		b.ReportMetric(anon/float64(len(pids))/(1<<20), "anon-MiB/router")
		b.ReportMetric(cpu/float64(len(pids)), "cpu-s/router")
		b.ReportMetric(teardown.Seconds(), "teardown-s")
		b.ReportMetric(idle/5/float64(len(pids))*1000, "idle-cpu-ms/s/router")
		b.ReportMetric(switches/5/float64(len(pids)), "idle-switches/s/router")
		b.ReportMetric(float64(res.Workloads[0].Received)/float64(res.Workloads[0].Sent), "pings-answered")
	}
}

// procStatus is a memory figure of a process's /proc/PID/status (VmRSS:
// resident, RssAnon: its private part, not the binary's shared pages) in
// bytes.
func procStatus(pid int, key string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) * 1024
		}
	}
	return 0
}

// procSwitches is the context switches (voluntary and not) of every
// thread of a process so far.
func procSwitches(pid int) float64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n float64
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && (f[0] == "voluntary_ctxt_switches:" || f[0] == "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.Atoi(f[1])
				n += float64(v)
			}
		}
	}
	return n
}

// procCPU is a process's user + system CPU time in seconds.
func procCPU(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return float64(u+s) / 100 // USER_HZ
}
