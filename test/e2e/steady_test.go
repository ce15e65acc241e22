package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestSoakSteady is the long soak (issue 16, `make soak-steady`): the fault
// suite's cluster (a resolver, three routers, three capsule servers, one
// capsule with W = 2 of 3; real gdp processes) with no faults, first driven
// at its capacity — one writer appending batches of 256 records and
// flushing each until W receipts, as fast as it can, for 20 s — and then
// held at half that rate for GDP_SOAK_STEADY (e.g. 30m), with quorum reads
// beside it. Every sample period (30 s; a tenth of the run when shorter
// than 5 min) it records each daemon's RSS, goroutines and open files, the
// client's failed operations and the daemons' warn/error log lines, and
// writes steady.csv, steady-rss.png and steady-goroutines.png into
// GDP_SOAK_OUT. It fails if the load fell short of the target, if an
// acknowledged record does not read back verified at the end, if a daemon
// grew after the warm-up, or if errors grew (judgeSteady).
func TestSoakSteady(t *testing.T) {
	if os.Getenv("GDP_SOAK") != "1" {
		t.Skip("the steady soak runs with GDP_SOAK=1 GDP_SOAK_STEADY=30m (make soak-steady)")
	}
	dur, err := time.ParseDuration(os.Getenv("GDP_SOAK_STEADY"))
	if err != nil || dur <= 0 {
		t.Skip("the steady soak runs with GDP_SOAK_STEADY set to its length, e.g. 30m (make soak-steady)")
	}
	every := 30 * time.Second
	if dur < 5*time.Minute {
		every = dur / 10
	}
	out := os.Getenv("GDP_SOAK_OUT")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	cl := newSoakCluster(t)
	if cl.mounted { // s3's tmpfs is small for the fault suite's full disk; this soak writes for long
		if out, err := exec.Command("mount", "-o", "remount,size=8g", cl.tmpfs).CombinedOutput(); err != nil {
			t.Fatalf("growing s3's tmpfs: %v: %s", err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := cl.client(t, ctx)
	sw := &steadyWriter{wr: w.wr}

	// 1. Capacity: batches of 256 as fast as the cluster acknowledges them.
	capStart := time.Now()
	for time.Since(capStart) < 20*time.Second {
		if err := sw.batch(ctx, 256); err != nil {
			t.Logf("capacity: %v", err)
		}
	}
	capacity := float64(sw.acked.Load()) / time.Since(capStart).Seconds()
	target := capacity / 2
	t.Logf("steady: capacity %.0f records/s acknowledged (W=2 of 3, batches of 256); holding %.0f records/s for %s, sampling every %s",
		capacity, target, dur, every)
	if capacity < 10 {
		t.Fatalf("capacity %.1f records/s: the cluster does not take appends", capacity)
	}

	// 2. Half of it for dur: every 100 ms, the records due by the schedule
	// (at most one second's worth at once), then a flush.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var readErrs, reads atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		start, base := time.Now(), sw.written.Load()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			due := int64(target*time.Since(start).Seconds()) - (sw.written.Load() - base)
			if due <= 0 {
				continue
			}
			if err := sw.batch(loadCtx, int(min(due, int64(target)+1))); err != nil && loadCtx.Err() == nil {
				t.Logf("steady: %v", err)
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
			time.Sleep(200 * time.Millisecond)
		}
	}()

	start := time.Now()
	var samples []steadySample
	take := func() {
		s := steadySample{At: time.Since(start), Acked: sw.acked.Load(), ClientErrs: sw.errs.Load() + readErrs.Load(),
			Usage: cl.usage(t), LogLines: map[string]int{}, Tables: map[string]int{}, Load: loadAvg()}
		for _, n := range cl.procNames() {
			b, _ := os.ReadFile(cl.procs[n].log)
			s.LogLines[n] = bytes.Count(b, []byte("\n"))
			if p := cl.procs[n]; p.cmd != nil {
				s.Tables[n] = tableFiles(p.cmd.Process.Pid)
			}
		}
		samples = append(samples, s)
		t.Logf("steady %s: load %.1f, %d records acknowledged, %d client errors, log lines %v, store tables open %v, usage %v",
			s.At.Round(time.Second), s.Load, s.Acked, s.ClientErrs, s.LogLines, s.Tables, s.Usage)
	}
	take()
	for time.Since(start) < dur {
		time.Sleep(min(every, dur-time.Since(start)))
		take()
	}
	stopLoad()
	wg.Wait()
	fctx, fcancel := context.WithTimeout(ctx, time.Minute)
	if _, err := sw.flush(fctx); err != nil {
		t.Errorf("the last flush: %v", err)
	}
	fcancel()
	elapsed := time.Since(start)
	held := float64(sw.acked.Load()-samples[0].Acked) / elapsed.Seconds()

	if err := writeSteady(out, "steady", samples, cl.procNames()); err != nil {
		t.Errorf("writing the curves: %v", err)
	}
	t.Logf("steady: held %.0f records/s (target %.0f, capacity %.0f) for %s; %d quorum reads, %d failed; %d records acknowledged in all; curves in %s",
		held, target, capacity, elapsed.Round(time.Second), reads.Load(), readErrs.Load(), sw.acked.Load(), out)
	for _, n := range cl.procNames() {
		f, l := samples[0].Usage[n], samples[len(samples)-1].Usage[n]
		t.Logf("steady %s: RSS %d → %d KiB, goroutines %d → %d, fds %d → %d (store tables %d → %d), log lines %d → %d",
			n, f.rssKiB, l.rssKiB, f.goroutines, l.goroutines, f.fds, l.fds, samples[0].Tables[n], samples[len(samples)-1].Tables[n],
			samples[0].LogLines[n], samples[len(samples)-1].LogLines[n])
	}
	if held < 0.9*target {
		t.Errorf("held %.0f records/s, below 90 %% of the target %.0f: the soak did not run at half capacity", held, target)
	}
	if err := judgeSteady(samples, cl.procNames()); err != nil {
		t.Error(err)
	}

	// 3. Every acknowledged record reads back, verified, with its bytes.
	n := sw.acked.Load()
	vctx, vcancel := context.WithTimeout(ctx, 10*time.Minute)
	defer vcancel()
	vstart := time.Now()
	if err := sw.verify(vctx, w.cc, w.c, uint64(n)); err != nil {
		t.Fatalf("acknowledged records do not read back: %v", err)
	}
	t.Logf("steady: all %d acknowledged records read back verified in %s", n, time.Since(vstart).Round(time.Millisecond))
}

// steadyWriter appends records whose bytes follow from their seqno, so the
// end check needs no copy of what was written.
type steadyWriter struct {
	wr      *client.Writer
	mu      sync.Mutex
	written atomic.Int64 // records appended (not yet all acknowledged)
	acked   atomic.Int64 // the seqno W replicas acknowledged
	errs    atomic.Int64 // failed appends and flushes
}

// steadyData is record seq's 100 bytes.
func steadyData(seq uint64) []byte {
	b := fmt.Appendf(nil, "steady record %012d ", seq)
	for len(b) < 100 {
		b = append(b, byte('a'+(seq+uint64(len(b)))%26))
	}
	return b
}

// batch appends n records and flushes them.
func (s *steadyWriter) batch(ctx context.Context, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		next := uint64(s.written.Load()) + 1
		seq, err := s.wr.Append(ctx, steadyData(next))
		if err != nil {
			s.errs.Add(1)
			return fmt.Errorf("append %d: %w", next, err)
		}
		if seq != next {
			return fmt.Errorf("append: seqno %d where %d was next", seq, next)
		}
		s.written.Add(1)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.flushLocked(fctx)
	return err
}

func (s *steadyWriter) flush(ctx context.Context) (client.Durability, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked(ctx)
}

func (s *steadyWriter) flushLocked(ctx context.Context) (client.Durability, error) {
	d, err := s.wr.Flush(ctx)
	if err == nil && !d.Met {
		err = fmt.Errorf("flush: %s", d)
	}
	if err != nil {
		s.errs.Add(1)
		return d, err
	}
	if int64(d.Seqno) > s.acked.Load() {
		s.acked.Store(int64(d.Seqno))
	}
	return d, nil
}

// verify reads 1..n through a quorum reader (every record checked by the
// reader against the writer's signed heartbeat) and compares the bytes.
func (s *steadyWriter) verify(ctx context.Context, cc *client.CapsuleClient, c pdu.Name, n uint64) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var rd *client.Reader
		if rd, err = cc.NewReader(ctx, c, client.ReaderOptions{Quorum: 2}); err != nil {
			time.Sleep(time.Second)
			continue
		}
		next := uint64(1)
		err = rd.Scan(ctx, 1, n, func(r capsule.Record) error {
			if r.Seqno != next {
				return fmt.Errorf("record %d read where %d was expected", r.Seqno, next)
			}
			if !bytes.Equal(r.Data, steadyData(r.Seqno)) {
				return fmt.Errorf("record %d reads %q", r.Seqno, r.Data)
			}
			next++
			return nil
		})
		if err == nil && next != n+1 {
			err = fmt.Errorf("read back %d records, %d were acknowledged", next-1, n)
		}
		if err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return err
}

// steadySample is one sample of the steady soak.
type steadySample struct {
	At         time.Duration
	Acked      int64
	ClientErrs int64
	Usage      map[string]usage
	LogLines   map[string]int // warn and error lines (the daemons log at warn)
	Tables     map[string]int // open store tables (pebble *.sst): grow with the data, by design
	Load       float64        // the machine's 1-minute load average
}

// tableFiles counts a process's open pebble tables (*.sst): the store keeps
// its tables open (bounded by its table cache), so they grow with the data
// written, which is not a leak.
func tableFiles(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasSuffix(l, ".sst") {
			n++
		}
	}
	return n
}

func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// judgeSteady is the soak's verdict on its curves. The warm-up is the first
// sixth of the run (at least the first two samples): caches and memtables
// fill then. After it, from the warm-up sample to the last, no daemon may
// grow by more than 25 % + 32 MiB of RSS, 10 % + 20 goroutines or 10 open
// files other than store tables, and errors (the client's failed operations plus every daemon's
// warn/error log lines) may not grow: the last third of the run may have at
// most 1.5× the errors of the first third after the warm-up, plus 3, unless
// they were a burst that ended — none in the last three sample periods (on a
// shared machine a burst of load times a few requests out; growth that comes
// from the daemons themselves goes on to the end).
func judgeSteady(samples []steadySample, procs []string) error {
	if len(samples) < 4 {
		return fmt.Errorf("%d samples: too few to judge a soak", len(samples))
	}
	last := samples[len(samples)-1]
	wi := 1
	for wi < len(samples)-2 && samples[wi].At < last.At/6 {
		wi++
	}
	warm := samples[wi]
	var errs []error
	for _, n := range procs {
		a, b := warm.Usage[n], last.Usage[n]
		if b.rssKiB > a.rssKiB*5/4+32<<10 {
			errs = append(errs, fmt.Errorf("%s: RSS grew %d → %d KiB after the warm-up (%s → %s)", n, a.rssKiB, b.rssKiB, warm.At.Round(time.Second), last.At.Round(time.Second)))
		}
		if a.goroutines >= 0 && b.goroutines > a.goroutines+a.goroutines/10+20 {
			errs = append(errs, fmt.Errorf("%s: goroutines grew %d → %d after the warm-up", n, a.goroutines, b.goroutines))
		}
		if fa, fb := a.fds-warm.Tables[n], b.fds-last.Tables[n]; fb > fa+10 {
			errs = append(errs, fmt.Errorf("%s: open files other than store tables grew %d → %d after the warm-up", n, fa, fb))
		}
	}
	errsAt := func(s steadySample) int64 {
		e := s.ClientErrs
		for _, n := range procs {
			e += int64(s.LogLines[n])
		}
		return e
	}
	span := last.At - warm.At
	at := func(d time.Duration) steadySample { // the first sample at or after d
		i := sort.Search(len(samples), func(i int) bool { return samples[i].At >= d })
		return samples[min(i, len(samples)-1)]
	}
	first := errsAt(at(warm.At+span/3)) - errsAt(warm)
	lastThird := errsAt(last) - errsAt(at(last.At-span/3))
	tail := errsAt(last) - errsAt(samples[len(samples)-4])
	if float64(lastThird) > 1.5*float64(first)+3 && tail > 0 {
		errs = append(errs, fmt.Errorf("errors grow: %d in the last third of the run, %d in the first third after the warm-up, %d in the last three sample periods", lastThird, first, tail))
	}
	return errors.Join(errs...)
}

// writeSteady writes the samples as NAME.csv and the RSS and goroutine
// curves as NAME-rss.png and NAME-goroutines.png (NAME: steady, life).
func writeSteady(dir, name string, samples []steadySample, procs []string) error {
	f, err := os.Create(filepath.Join(dir, name+".csv"))
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	head := []string{"seconds", "load1", "acked", "client_errors"}
	for _, n := range procs {
		head = append(head, n+"_rss_kib", n+"_goroutines", n+"_fds", n+"_store_tables", n+"_log_lines")
	}
	_ = cw.Write(head)
	for _, s := range samples {
		row := []string{strconv.FormatFloat(s.At.Seconds(), 'f', 1, 64), strconv.FormatFloat(s.Load, 'f', 2, 64),
			strconv.FormatInt(s.Acked, 10), strconv.FormatInt(s.ClientErrs, 10)}
		for _, n := range procs {
			u := s.Usage[n]
			row = append(row, strconv.Itoa(u.rssKiB), strconv.Itoa(u.goroutines), strconv.Itoa(u.fds), strconv.Itoa(s.Tables[n]), strconv.Itoa(s.LogLines[n]))
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	if err := errors.Join(cw.Error(), f.Close()); err != nil {
		return err
	}
	for _, c := range []struct {
		file, title, y string
		v              func(usage) float64
	}{
		{name + "-rss.png", "RSS per daemon during the " + name + " soak", "MiB", func(u usage) float64 { return float64(u.rssKiB) / 1024 }},
		{name + "-goroutines.png", "Goroutines per daemon during the " + name + " soak", "goroutines", func(u usage) float64 { return float64(u.goroutines) }},
	} {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = c.title, "minutes", c.y
		var lines []any
		for _, n := range procs {
			xy := make(plotter.XYs, len(samples))
			for i, s := range samples {
				xy[i] = plotter.XY{X: s.At.Minutes(), Y: c.v(s.Usage[n])}
			}
			lines = append(lines, n, xy)
		}
		if err := plotutil.AddLinePoints(p, lines...); err != nil {
			return err
		}
		if err := p.Save(8*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return err
		}
	}
	return nil
}

// TestJudgeSteady checks the steady soak's verdict on made-up curves: flat
// ones pass; RSS, goroutines or open files that keep growing after the
// warm-up fail, and so do errors that grow.
func TestJudgeSteady(t *testing.T) {
	procs := []string{"r1", "s1"}
	curve := func(rss, gor, fds, errs func(i int) int) []steadySample {
		var out []steadySample
		for i := range 61 { // 30 min every 30 s
			s := steadySample{At: time.Duration(i) * 30 * time.Second, Usage: map[string]usage{}, LogLines: map[string]int{}, Tables: map[string]int{}}
			for _, n := range procs {
				s.Tables[n] = i / 2 // store tables grow with the data: not a leak
				s.Usage[n] = usage{rssKiB: rss(i), goroutines: gor(i), fds: fds(i) + s.Tables[n]}
			}
			s.ClientErrs = int64(errs(i))
			out = append(out, s)
		}
		return out
	}
	flatRSS := func(i int) int { return 60<<10 + min(i, 5)*(8<<10) + (i%3)*1024 } // warms up, then noise
	flatG := func(i int) int { return 48 + i%4 }
	flatF := func(i int) int { return 20 + i%2 }
	fewErrs := func(i int) int { return i / 20 } // one now and then
	if err := judgeSteady(curve(flatRSS, flatG, flatF, fewErrs), procs); err != nil {
		t.Fatalf("flat curves judged: %v", err)
	}
	for name, s := range map[string][]steadySample{
		"RSS leak":       curve(func(i int) int { return 60<<10 + i*(2<<10) }, flatG, flatF, fewErrs),
		"goroutine leak": curve(flatRSS, func(i int) int { return 48 + i }, flatF, fewErrs),
		"fd leak":        curve(flatRSS, flatG, func(i int) int { return 20 + i/2 }, fewErrs),
		"errors grow":    curve(flatRSS, flatG, flatF, func(i int) int { return i * i / 40 }),
	} {
		if err := judgeSteady(s, procs); err == nil {
			t.Errorf("%s: judged flat", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	burst := func(i int) int { return min(max(i-44, 0), 8) * 9 } // 72 errors in minutes 22–26, none after
	if err := judgeSteady(curve(flatRSS, flatG, flatF, burst), procs); err != nil {
		t.Errorf("a burst of errors that ended judged as growth: %v", err)
	}
	if err := judgeSteady(curve(flatRSS, flatG, flatF, fewErrs)[:3], procs); err == nil {
		t.Error("three samples judged")
	}
}
