package e2e

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// TestSoakLife is the accelerated life test (`make soak-life`, Session 20):
// what months of operation bring over and over, in minutes. The fault
// suite's cluster (a resolver, three routers r1 – r2 – r3, three capsule
// servers holding one capsule with W = 2 of 3), a `gdp gateway` on r1 and
// (Session 21) a `gdp handoffd` on r3,
// real gdp processes logging at info, every membership issued for
// GDP_SOAK_LIFE_MEMBER (default 5m) and capsuled's RtCerts for 2m, under a
// light steady load (GDP_SOAK_LIFE_RATE records/s, default 50, each tenth
// flushed until W receipts; a quorum read every 500 ms). Every step
// (GDP_SOAK_LIFE_STEP, default 20s) for GDP_SOAK_LIFE (e.g. 30m):
//
//   - the renewal timer: `gdp cert --keystore KEYS renew --dir DIR`, as
//     OPERATIONS §1.2 tells operators to run it; the daemons pick the
//     replaced files up through their watch (the test's own endpoint is
//     given its renewed membership with Endpoint.Reload). Its first run
//     is held back until every membership is past 80 % of its life: each
//     daemon must then have logged its expiry warning, before the expiry;
//   - every sixth step, a SIGHUP to every daemon;
//   - every sixth step (three after), kill -9 of one neighbour in turn —
//     r1, s1, the resolver, r2, s2, the gateway, r3, s3, handoffd —
//     restarted 0.5 s later.
//
// After each event the cluster must recover by itself within 60 s (every
// router up and peered, every server's route at its router, the resolver
// answering with its DHT peers back, the gateway attached, handoffd
// attached and answering a ping by its name from r2, an append made
// after the event acknowledged by W and held by all three replicas; a
// renewal also until every daemon exports the new expiry): the recovery
// times are reported per kind of event. A renewal or a SIGHUP must close
// no tunnel (the routers' faces to each other unchanged, no "link down",
// no redial), and nothing may expire in the whole run (no link closed for
// a peer's membership, no DHT connection cut at a peer's NotAfter, no
// daemon's own membership run out). The log lines a daemon writes per event
// (GDP_SOAK_LIFE_MAX_LINES, default 150) are bounded. At the
// end: 20 SIGHUPs in a row to every daemon must not grow its goroutines or
// open files (a leak per reload), RSS, goroutines and open files of each
// daemon's longest-lived process must not grow after the warm-up (the
// steady soak's judge), and every acknowledged record must read back
// verified. Samples go to GDP_SOAK_OUT (life.csv, life-rss.png,
// life-goroutines.png, events.csv; Session 21: life-heap.csv with each
// daemon's RSS split and Go's share, life-memory.png, and the capsule
// servers' heap profiles every 2 minutes in heap/, for go tool pprof -base).
func TestSoakLife(t *testing.T) {
	if os.Getenv("GDP_SOAK") != "1" {
		t.Skip("the life soak runs with GDP_SOAK=1 GDP_SOAK_LIFE=30m (make soak-life)")
	}
	dur, err := time.ParseDuration(os.Getenv("GDP_SOAK_LIFE"))
	if err != nil || dur <= 0 {
		t.Skip("the life soak runs with GDP_SOAK_LIFE set to its length, e.g. 30m (make soak-life)")
	}
	memberLife := envDur("GDP_SOAK_LIFE_MEMBER", 5*time.Minute)
	step := envDur("GDP_SOAK_LIFE_STEP", 20*time.Second)
	rate := envInt("GDP_SOAK_LIFE_RATE", 50)
	maxLines := envInt("GDP_SOAK_LIFE_MAX_LINES", 150)
	out := os.Getenv("GDP_SOAK_OUT")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	cl := newSoakClusterWith(t, soakOpts{memberLife: memberLife, rtcertLife: 2 * time.Minute, gateway: true, handoffd: true, logLevel: "info", pprof: true})
	if cl.mounted { // s3's tmpfs is small for the fault suite's full disk; this soak writes for long
		if out, err := exec.Command("mount", "-o", "remount,size=2g", cl.tmpfs).CombinedOutput(); err != nil {
			t.Fatalf("growing s3's tmpfs: %v: %s", err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := cl.client(t, ctx)
	// An SDK program that runs for long keeps its routes advertised (as
	// capsuled and, since Session 20, the gateway do): the route of a name
	// advertised once ends at its router's membership NotAfter.
	w.cli.Maintain(ctx, func() []client.Route { return []client.Route{w.cli.Self()} }, time.Second)
	lr := &lifeRun{t: t, cl: cl, w: w, sw: &steadyWriter{wr: w.wr}, maxLines: maxLines}
	var st resolver.Status
	waitFor(t, "the resolver's DHT peers", 30*time.Second, func() bool {
		return getJSON("http://"+cl.admin["resolver"]+"/status", &st) && st.DomainPeers >= 3
	})
	lr.resPeers = 3

	// The load: rate records/s in tenths, each flushed until W receipts;
	// a quorum read every 500 ms.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var reads, readErrs atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			if err := lr.sw.batch(loadCtx, max(rate/10, 1)); err != nil && loadCtx.Err() == nil {
				lr.note("load: %v", err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for loadCtx.Err() == nil {
			rctx, c := context.WithTimeout(loadCtx, 5*time.Second)
			_, _, err := w.quorumRead(rctx)
			c()
			if loadCtx.Err() != nil {
				return
			}
			reads.Add(1)
			if err != nil {
				readErrs.Add(1)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()

	t.Logf("life: memberships for %s, renewal timer every %s, SIGHUPs and kills every %s, %d records/s, for %s",
		memberLife, step, 6*step, rate, dur)
	neighbours := []string{"r1", "s1", "resolver", "r2", "s2", "gw", "r3", "s3", "ho"}
	start := time.Now()
	lr.start = start
	lr.sample("start")
	lr.heapProfiles(out)
	warned := false
	next := 0
	for k := 1; time.Since(start) < dur; k++ {
		time.Sleep(time.Until(start.Add(time.Duration(k) * step)))
		if !warned {
			if lr.pastWarning() {
				lr.checkWarnings()
				warned = true
			}
		}
		if warned {
			lr.renew()
		}
		switch k % 6 {
		case 3:
			lr.event("sighup", "all", func() {
				for _, n := range cl.procNames() {
					_ = cl.procs[n].cmd.Process.Signal(syscall.SIGHUP)
				}
			}, nil)
		case 0:
			n := neighbours[next%len(neighbours)]
			next++
			lr.event("kill", n, func() {
				cl.procs[n].kill9()
				time.Sleep(500 * time.Millisecond)
				cl.procs[n].start(t)
			}, nil)
		}
		for _, n := range cl.procNames() {
			if cl.procs[n].exited() {
				t.Fatalf("%s exited by itself (step %d)", n, k)
			}
		}
		lr.sample(fmt.Sprintf("step %d", k))
		if k%6 == 1 {
			lr.heapProfiles(out)
		}
		if t.Failed() {
			break
		}
	}
	if !warned {
		t.Errorf("the run (%s) ended before the memberships (%s) were past 80 %% of their life: no expiry warning checked; run for longer", dur, memberLife)
	}
	stopLoad()
	wg.Wait()
	fctx, fcancel := context.WithTimeout(ctx, time.Minute)
	if _, err := lr.sw.flush(fctx); err != nil {
		t.Errorf("the last flush: %v", err)
	}
	fcancel()
	elapsed := time.Since(start)

	// 20 SIGHUPs in a row, the load stopped: a leak per reload shows here.
	lr.reloadBurst(20)

	lr.report(out, elapsed, reads.Load(), readErrs.Load())

	n := lr.sw.acked.Load()
	vctx, vcancel := context.WithTimeout(ctx, 10*time.Minute)
	defer vcancel()
	vstart := time.Now()
	if err := lr.sw.verify(vctx, w.cc, w.c, uint64(n)); err != nil {
		t.Fatalf("acknowledged records do not read back: %v", err)
	}
	t.Logf("life: all %d acknowledged records read back verified in %s", n, time.Since(vstart).Round(time.Millisecond))
}

func envDur(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// lifeRun is the life soak's state.
type lifeRun struct {
	t        *testing.T
	cl       *soakCluster
	w        *soakWriter
	sw       *steadyWriter
	maxLines int
	resPeers int
	start    time.Time

	mu      sync.Mutex
	notes   map[string]int // load errors, by message, for the report
	events  []lifeEvent
	samples []lifeSample
}

// lifeEvent is one event and what followed it.
type lifeEvent struct {
	At       time.Duration
	Kind     string // renew, sighup, kill
	Target   string
	Recovery time.Duration
	Lines    map[string]int // log lines each daemon wrote from the event to its recovery (+2 s)
	Slow     string         // when it took more than 5 s: what was not back at 5 s
}

// lifeSample is every daemon's footprint at the end of a step.
type lifeSample struct {
	At     time.Duration
	Label  string
	Usage  map[string]usage
	Pid    map[string]int
	Tables map[string]int
	Lines  map[string]int
	// Heap and GoSys: go_memstats_heap_inuse_bytes, and
	// go_memstats_sys_bytes less go_memstats_heap_released_bytes (what
	// the Go runtime holds; RSS beyond it is memory allocated outside Go,
	// as pebble's memtables and block cache are).
	Heap, GoSys map[string]float64
	// Anon and File split the RSS (KiB, /proc/PID/status RssAnon and
	// RssFile: the binary's pages read in count as File).
	Anon, File map[string]int
	// MemTable and Unflushed: a capsule server's
	// gdp_capsuled_store_memtable_bytes and _unflushed_bytes (pebble's
	// memtables, outside the Go heap, and the WAL bytes they hold).
	MemTable, Unflushed map[string]float64
}

func (lr *lifeRun) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	msg = regexp.MustCompile(`[0-9]+`).ReplaceAllString(msg, "N")
	lr.mu.Lock()
	if lr.notes == nil {
		lr.notes = map[string]int{}
	}
	lr.notes[msg]++
	lr.mu.Unlock()
}

func (lr *lifeRun) sample(label string) {
	s := lifeSample{At: time.Since(lr.start), Label: label, Usage: lr.cl.usage(lr.t), Pid: map[string]int{}, Tables: map[string]int{}, Lines: lr.lines(),
		Heap: map[string]float64{}, GoSys: map[string]float64{}, Anon: map[string]int{}, File: map[string]int{},
		MemTable: map[string]float64{}, Unflushed: map[string]float64{}}
	for _, n := range lr.cl.procNames() {
		if p := lr.cl.procs[n]; p.cmd != nil {
			s.Pid[n] = p.cmd.Process.Pid
			s.Tables[n] = tableFiles(p.cmd.Process.Pid)
			s.Anon[n], s.File[n] = rssSplit(p.cmd.Process.Pid)
		}
		if strings.HasPrefix(n, "s") {
			s.MemTable[n] = promGauge(lr.cl.admin[n], "gdp_capsuled_store_memtable_bytes")
			s.Unflushed[n] = promGauge(lr.cl.admin[n], "gdp_capsuled_store_unflushed_bytes")
		}
		s.Heap[n] = promGauge(lr.cl.admin[n], "go_memstats_heap_inuse_bytes")
		s.GoSys[n] = promGauge(lr.cl.admin[n], "go_memstats_sys_bytes")
		if rel := promGauge(lr.cl.admin[n], "go_memstats_heap_released_bytes"); s.GoSys[n] >= 0 && rel >= 0 {
			s.GoSys[n] -= rel // returned to the OS: not resident
		}
	}
	lr.samples = append(lr.samples, s)
}

// plotMemory draws each capsule server's memory outside the Go runtime
// (RssAnon less go_memstats_sys_bytes) beside its pebble memtables
// (gdp_capsuled_store_memtable_bytes) and the Go heap in use.
func (lr *lifeRun) plotMemory(file string) error {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = "Capsule servers: memory outside Go vs pebble's memtables (life soak)", "minutes", "MiB"
	var lines []any
	for _, n := range []string{"s1", "s2", "s3"} {
		var outside, mem, heap plotter.XYs
		for _, s := range lr.samples {
			if s.GoSys[n] < 0 || s.MemTable[n] < 0 {
				continue // a restart: nothing to read
			}
			x := s.At.Minutes()
			outside = append(outside, plotter.XY{X: x, Y: float64(s.Anon[n])/1024 - s.GoSys[n]/(1<<20)})
			mem = append(mem, plotter.XY{X: x, Y: s.MemTable[n] / (1 << 20)})
			heap = append(heap, plotter.XY{X: x, Y: s.Heap[n] / (1 << 20)})
		}
		lines = append(lines, n+" RSS anon − Go sys", outside, n+" memtables", mem, n+" Go heap in use", heap)
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	return p.Save(10*vg.Inch, 5*vg.Inch, file)
}

// rssSplit reads RssAnon and RssFile (KiB) from /proc/PID/status.
func rssSplit(pid int) (anon, file int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			anon, _ = strconv.Atoi(strings.Fields(v)[0])
		}
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			file, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return anon, file
}

// heapProfiles saves each capsule server's heap profile (after a GC) as
// OUT/heap/NAME-SECONDSs-pidPID.pb.gz, for go tool pprof -base: what a
// process's heap gained between two of them.
func (lr *lifeRun) heapProfiles(out string) {
	dir := filepath.Join(out, "heap")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		lr.t.Errorf("heap profiles: %v", err)
		return
	}
	hc := http.Client{Timeout: 20 * time.Second}
	at := time.Since(lr.start).Seconds()
	for _, n := range []string{"s1", "s2", "s3"} {
		p := lr.cl.procs[n]
		if p.cmd == nil {
			continue
		}
		resp, err := hc.Get("http://" + lr.cl.admin[n] + "/debug/pprof/heap?gc=1")
		if err != nil {
			lr.note("heap profile: %v", err)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			lr.note("heap profile of %s: %v (HTTP %d)", n, err, resp.StatusCode)
			continue
		}
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%04.0fs-pid%d.pb.gz", n, at, p.cmd.Process.Pid)), b, 0o644)
	}
}

// lines counts each daemon's log lines.
func (lr *lifeRun) lines() map[string]int {
	m := map[string]int{}
	for _, n := range lr.cl.procNames() {
		b, _ := os.ReadFile(lr.cl.procs[n].log)
		m[n] = strings.Count(string(b), "\n")
	}
	return m
}

// closings counts the lines that say a tunnel closed, per daemon.
func (lr *lifeRun) closings() map[string]int {
	m := map[string]int{}
	for _, n := range lr.cl.procNames() {
		for _, msg := range []string{"link down", "tunnel to a configured peer lost; redialing", "tunnel to the router lost; redialing", "peer's membership expired: link closed"} {
			m[n] += logLines(lr.cl.procs[n].log, msg)
		}
	}
	return m
}

// faces is each router's face to each of its peers.
func (lr *lifeRun) faces() map[string]uint64 {
	m := map[string]uint64{}
	for _, r := range []string{"r1", "r2", "r3"} {
		var peers []router.PeerInfo
		if getJSON("http://"+lr.cl.admin[r]+"/v1/peers", &peers) {
			for _, p := range peers {
				m[r+"→"+p.Name.String()[:8]] = p.Face
			}
		}
	}
	return m
}

// unhealthy says what is not back yet ("" when the cluster is whole):
// every router up and peered, every server's route at its router, the
// resolver with its DHT peers, the gateway attached, handoffd attached and
// reachable by name, record seq acknowledged and held by every replica.
func (lr *lifeRun) unhealthy(ctx context.Context, seq uint64) string {
	c := lr.cl
	want := map[string][]string{"r1": {"r2"}, "r2": {"r1", "r3"}, "r3": {"r2"}}
	for _, r := range []string{"r1", "r2", "r3"} {
		var peers []router.PeerInfo
		if !getJSON("http://"+c.admin[r]+"/v1/peers", &peers) {
			return r + " not answering"
		}
		for _, p := range want[r] {
			if !slices.ContainsFunc(peers, func(pi router.PeerInfo) bool { return pi.Name == c.ids[p].Name }) {
				return r + " not peered with " + p
			}
		}
	}
	for i, s := range []string{"s1", "s2", "s3"} {
		var routes []router.RouteInfo
		if !getJSON(fmt.Sprintf("http://%s/v1/routes?name=%s", c.admin[fmt.Sprintf("r%d", i+1)], c.ids[s].Name), &routes) || len(routes) == 0 {
			return s + " has no route at its router"
		}
	}
	var st resolver.Status
	if !getJSON("http://"+c.admin["resolver"]+"/status", &st) {
		return "the resolver not answering"
	}
	if st.DomainPeers < lr.resPeers {
		return fmt.Sprintf("the resolver has %d DHT peers of %d", st.DomainPeers, lr.resPeers)
	}
	if n := promGauge(c.admin["gw"], "gdp_tunnel_links"); n != 1 {
		return fmt.Sprintf("the gateway has %v tunnels", n)
	}
	if _, ok := c.procs["ho"]; ok {
		if n := promGauge(c.admin["ho"], "gdp_tunnel_links"); n != 1 {
			return fmt.Sprintf("handoffd has %v tunnels", n)
		}
		// reachable by name: the test's endpoint at r2 pings it at r3
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := lr.w.cli.Ping(pctx, c.ids["ho"].Name, 0, time.Second)
		cancel()
		if err != nil {
			return fmt.Sprintf("handoffd not reachable by name from r2: %v", err)
		}
	}
	if a := uint64(lr.sw.acked.Load()); a < seq {
		return fmt.Sprintf("record %d not acknowledged (acknowledged %d)", seq, a)
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		in, err := lr.w.cc.Info(ictx, c.cname, c.ids[s].Name)
		cancel()
		if err != nil {
			return fmt.Sprintf("%s: %v", s, err)
		}
		if in.Heartbeat == nil || in.Heartbeat.Seqno < seq {
			return fmt.Sprintf("%s does not hold record %d yet", s, seq)
		}
	}
	return ""
}

// event does one event and waits for the cluster to recover (and for more,
// when not nil, to say ""), then checks what the event may not do.
func (lr *lifeRun) event(kind, target string, do func(), more func() string) {
	t := lr.t
	t.Helper()
	linesBefore, closedBefore, facesBefore := lr.lines(), lr.closings(), lr.faces()
	seq := uint64(lr.sw.written.Load()) + 1
	at := time.Since(lr.start)
	t0 := time.Now()
	do()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	why, slow := "?", ""
	for ctx.Err() == nil {
		if why = lr.unhealthy(ctx, seq); why == "" && more != nil {
			why = more()
		}
		if why == "" {
			break
		}
		if time.Since(t0) > 5*time.Second && slow == "" {
			slow = why // what a recovery slower than 5 s waited for
		}
		time.Sleep(100 * time.Millisecond)
	}
	rec := time.Since(t0)
	if why != "" {
		t.Errorf("%s %s at %s: the cluster did not recover within 60 s: %s", kind, target, at.Round(time.Second), why)
	}
	time.Sleep(2 * time.Second)
	ev := lifeEvent{At: at, Kind: kind, Target: target, Recovery: rec, Lines: map[string]int{}, Slow: slow}
	after := lr.lines()
	for n, l := range after {
		ev.Lines[n] = l - linesBefore[n]
		if ev.Lines[n] > lr.maxLines {
			t.Errorf("%s %s at %s: %s wrote %d log lines (bound %d): a line flood", kind, target, at.Round(time.Second), n, ev.Lines[n], lr.maxLines)
		}
	}
	if kind != "kill" {
		closed := lr.closings()
		for n, c := range closed {
			if c != closedBefore[n] {
				t.Errorf("%s at %s closed a tunnel: %s logged %d lines of a link closing or a redial", kind, at.Round(time.Second), n, c-closedBefore[n])
			}
		}
		if f := lr.faces(); !mapsEqual(f, facesBefore) {
			t.Errorf("%s at %s changed the routers' faces to each other: %v → %v", kind, at.Round(time.Second), facesBefore, f)
		}
	}
	lr.events = append(lr.events, ev)
	if slow != "" {
		slow = " (at 5 s: " + slow + ")"
	}
	t.Logf("life %s: %s %s recovered in %s%s; log lines %v", at.Round(time.Second), kind, target, rec.Round(time.Millisecond), slow, ev.Lines)
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// daemonAliases is whose memberships the daemons hold.
func (lr *lifeRun) daemonAliases() []string { return lr.cl.procNames() }

// pastWarning: every daemon's membership has less than 20 % of its life left.
func (lr *lifeRun) pastWarning() bool {
	for _, a := range lr.daemonAliases() {
		m := lr.cl.members[a]
		if time.Until(m.NotAfter) > m.NotAfter.Sub(m.NotBefore)/5 {
			return false
		}
	}
	return true
}

// checkWarnings: every daemon has logged its membership's expiry warning
// (within 30 s: they check every 10 s), before the expiry.
func (lr *lifeRun) checkWarnings() {
	t := lr.t
	const msg = "certificate expires soon: less than 20% of its lifetime left"
	soonest := time.Time{}
	for _, a := range lr.daemonAliases() {
		if na := lr.cl.members[a].NotAfter; soonest.IsZero() || na.Before(soonest) {
			soonest = na
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range lr.cl.procNames() {
		want := `"kind":"member"`
		for !strings.Contains(logLinesText(lr.cl.procs[n].log, msg), want) {
			if time.Now().After(deadline) {
				t.Errorf("%s logged no expiry warning for its membership (%s left)", n, time.Until(lr.cl.members[n].NotAfter).Round(time.Second))
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if left := time.Until(soonest); left <= 0 {
		t.Errorf("the expiry warnings came after the memberships expired")
	} else {
		t.Logf("life %s: every daemon logged its expiry warning, %s before its membership would expire", time.Since(lr.start).Round(time.Second), left.Round(time.Second))
	}
}

var renewedRE = regexp.MustCompile(`(\d+) renewed, (\d+) not yet at half-life, (\d+) need another signer`)

// renew is the renewal timer's run: gdp cert renew; when it renewed
// something, an event that lasts until every daemon exports the new expiry.
func (lr *lifeRun) renew() {
	t := lr.t
	c := lr.cl
	out, err := exec.Command(gdpBin, "cert", "--keystore", c.ksDir, "renew", "--dir", c.dir).CombinedOutput()
	if err != nil {
		t.Errorf("gdp cert renew: %v: %s", err, out)
		return
	}
	m := renewedRE.FindSubmatch(out)
	if m == nil {
		t.Errorf("gdp cert renew said: %s", out)
		return
	}
	if n, _ := strconv.Atoi(string(m[1])); n == 0 {
		return // nothing past half its life yet
	}
	newNA := map[string]time.Time{}
	lr.event("renew", "timer", func() {
		for _, a := range append(lr.daemonAliases(), "client") {
			mc, err := certs.ReadCertFile(filepath.Join(c.dir, a+".member"))
			if err != nil {
				t.Errorf("reading %s's membership: %v", a, err)
				continue
			}
			c.members[a] = mc
			newNA[a] = mc.NotAfter
		}
		if err := lr.w.ep.Reload(c.members["client"], c.dom.Meta, nil); err != nil {
			t.Errorf("the test's endpoint refused its renewed membership: %v", err)
		}
	}, func() string {
		for _, a := range lr.daemonAliases() {
			left, ok := certExpiryGauge(c.admin[a], "member", c.ids[a].Name.String())
			if !ok || left < time.Until(newNA[a]).Seconds()-15 {
				return fmt.Sprintf("%s exports %.0f s left, its renewed membership has %.0f", a, left, time.Until(newNA[a]).Seconds())
			}
		}
		return ""
	})
}

// reloadBurst sends n SIGHUPs, 500 ms apart, to every daemon, the load
// stopped, and compares each daemon's goroutines and open files.
func (lr *lifeRun) reloadBurst(n int) {
	t := lr.t
	c := lr.cl
	time.Sleep(3 * time.Second)
	before := c.usage(t)
	for range n {
		for _, p := range c.procNames() {
			_ = c.procs[p].cmd.Process.Signal(syscall.SIGHUP)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	after := c.usage(t)
	for _, p := range c.procNames() {
		a, b := before[p], after[p]
		t.Logf("life: %d SIGHUPs to %s: goroutines %d → %d, fds %d → %d, RSS %d → %d KiB", n, p, a.goroutines, b.goroutines, a.fds, b.fds, a.rssKiB, b.rssKiB)
		if b.goroutines > a.goroutines+n/2 {
			t.Errorf("%s: goroutines %d → %d across %d SIGHUPs: a leak per reload", p, a.goroutines, b.goroutines, n)
		}
		if b.fds > a.fds+n/4 {
			t.Errorf("%s: open files %d → %d across %d SIGHUPs: a leak per reload", p, a.fds, b.fds, n)
		}
	}
}

// report logs the figures, writes them into out and judges the curves.
func (lr *lifeRun) report(out string, elapsed time.Duration, reads, readErrs int64) {
	t := lr.t
	procs := lr.cl.procNames()
	// recovery per kind of event
	byKind := map[string][]time.Duration{}
	maxLines := map[string]int{}
	for _, e := range lr.events {
		k := e.Kind
		if k == "kill" {
			k = "kill " + e.Target
		}
		byKind[k] = append(byKind[k], e.Recovery)
		for _, l := range e.Lines {
			maxLines[e.Kind] = max(maxLines[e.Kind], l)
		}
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		d := byKind[k]
		slices.Sort(d)
		t.Logf("life recovery %s: %d events, median %s, worst %s", k, len(d), d[len(d)/2].Round(100*time.Millisecond), d[len(d)-1].Round(100*time.Millisecond))
	}
	t.Logf("life: most log lines one daemon wrote per event: %v", maxLines)
	// Renewed in time, nothing may expire: no link or DHT connection is
	// closed for a membership, no daemon's own runs out.
	for _, n := range procs {
		for _, msg := range []string{"peer's membership expired: link closed", "peer membership expired: disconnected",
			"my membership expired: peers and routers refuse this node until it is renewed"} {
			if c := logLines(lr.cl.procs[n].log, msg); c > 0 {
				t.Errorf("%s logged %q %d times though every membership was renewed before its NotAfter", n, msg, c)
			}
		}
	}
	t.Logf("life: %s, %d records acknowledged, %d quorum reads (%d failed), load errors %v", elapsed.Round(time.Second), lr.sw.acked.Load(), reads, readErrs, lr.notes)

	first, last := lr.samples[0], lr.samples[len(lr.samples)-1]
	for _, n := range procs {
		f, l := first.Usage[n], last.Usage[n]
		t.Logf("life %s: RSS %d → %d KiB, goroutines %d → %d, fds %d → %d (store tables %d → %d), log lines %d → %d",
			n, f.rssKiB, l.rssKiB, f.goroutines, l.goroutines, f.fds, l.fds, first.Tables[n], last.Tables[n], first.Lines[n], last.Lines[n])
	}
	// each daemon's longest-lived process, judged as the steady soak judges
	for _, n := range procs {
		var runs [][]steadySample
		pid := -1
		for _, s := range lr.samples {
			if s.Pid[n] != pid {
				runs = append(runs, nil)
				pid = s.Pid[n]
			}
			runs[len(runs)-1] = append(runs[len(runs)-1], steadySample{At: s.At, Usage: map[string]usage{n: s.Usage[n]}, Tables: map[string]int{n: s.Tables[n]}, LogLines: map[string]int{}})
		}
		longest := slices.MaxFunc(runs, func(a, b []steadySample) int { return cmp.Compare(a[len(a)-1].At-a[0].At, b[len(b)-1].At-b[0].At) })
		if len(longest) < 4 {
			t.Logf("life %s: its longest process has %d samples, too few to judge", n, len(longest))
			continue
		}
		base := longest[0].At
		for i := range longest {
			longest[i].At -= base
		}
		if err := judgeSteady(longest, []string{n}); err != nil {
			t.Errorf("life %s (%d samples over %s without a restart): %v", n, len(longest), longest[len(longest)-1].At.Round(time.Second), err)
		}
	}

	var steady []steadySample
	for _, s := range lr.samples {
		steady = append(steady, steadySample{At: s.At, Usage: s.Usage, Tables: s.Tables, LogLines: s.Lines})
	}
	if err := writeSteady(out, "life", steady, procs); err != nil {
		t.Errorf("writing the curves: %v", err)
	}
	// the Go runtime's share of each daemon's RSS
	var hb strings.Builder
	hb.WriteString("seconds")
	for _, n := range procs {
		hb.WriteString("," + n + "_pid," + n + "_rss_kib," + n + "_rss_anon_kib," + n + "_rss_file_kib," + n + "_go_heap_inuse_kib," + n + "_go_sys_kib," + n + "_memtable_kib," + n + "_unflushed_kib")
	}
	hb.WriteString("\n")
	for _, s := range lr.samples {
		fmt.Fprintf(&hb, "%.1f", s.At.Seconds())
		for _, n := range procs {
			fmt.Fprintf(&hb, ",%d,%d,%d,%d,%.0f,%.0f,%.0f,%.0f", s.Pid[n], s.Usage[n].rssKiB, s.Anon[n], s.File[n], s.Heap[n]/1024, s.GoSys[n]/1024,
				max(s.MemTable[n], 0)/1024, max(s.Unflushed[n], 0)/1024)
		}
		hb.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(out, "life-heap.csv"), []byte(hb.String()), 0o644); err != nil {
		t.Errorf("writing the heap samples: %v", err)
	}
	if err := lr.plotMemory(filepath.Join(out, "life-memory.png")); err != nil {
		t.Errorf("plotting the capsule servers' memory: %v", err)
	}
	var b strings.Builder
	b.WriteString("seconds,kind,target,recovery_seconds")
	for _, n := range procs {
		b.WriteString("," + n + "_lines")
	}
	b.WriteString("\n")
	for _, e := range lr.events {
		fmt.Fprintf(&b, "%.1f,%s,%s,%.3f", e.At.Seconds(), e.Kind, e.Target, e.Recovery.Seconds())
		for _, n := range procs {
			fmt.Fprintf(&b, ",%d", e.Lines[n])
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(out, "events.csv"), []byte(b.String()), 0o644); err != nil {
		t.Errorf("writing the events: %v", err)
	}
	t.Logf("life: curves and events in %s", out)
}
