package handoffd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"
)

// The dataset benchmark (make handoff-bench; docs/HANDOFF.md §7): the pair
// make handoff-data builds, handed off over an emulated link beside the
// baselines. Knobs: GDP_HANDOFF_DATA (the dataset), GDP_HANDOFF_BENCH_RATES
// (Mbit/s, default 5,10,25), GDP_HANDOFF_BENCH_DROP_SEC (when 25 drops to 5,
// seconds after the start; default 10), GDP_HANDOFF_BENCH_QEMU (0: skip
// QEMU's live migration), GDP_HANDOFF_BENCH_QEMU_MBIT (its real-time rate,
// default 25), GDP_HANDOFF_BENCH_MODES (fixed modes to measure, default
// all), GDP_HANDOFF_BENCH_DROP (0: no bandwidth-drop run),
// GDP_HANDOFF_BENCH_FS (ext4: the disk's free blocks are not sent, Image.FS;
// the baselines still count them, as they are part of the modified state),
// GDP_HANDOFF_BENCH_TRIM (1: the QEMU guest runs read-write on an overlay
// over the base disk with discard=unmap and trims before both handoffs),
// GDP_HANDOFF_BENCH_VM_RATES (further rates, Mbit/s, for our VM handoff of
// the same guest), GDP_HANDOFF_BENCH_ONLY (baselines | qemu: stop after
// that part; vm: our VM handoffs of the QEMU part only, no QEMU migration).

func dataDir() string {
	if d := os.Getenv("GDP_HANDOFF_DATA"); d != "" {
		return d
	}
	return "/var/tmp/gdpnet-handoff-data"
}

type dsEnv struct {
	dir, work          string
	cache              *BaseCache
	diskBase, memBase  string
	diskMod, memMod    string
	modifiedBytes      int64 // changed blocks, disk + memory
	xz9, zstdMod       int64 // baselines' bytes
	zstdModSec         float64
	zstdWhole          int64
	xzSampled          float64 // share of the modified blocks xz -9 read (0: all)
	zstdWholeSec       float64
	diskSize, memSize  int64
	diskBlocks, memBlk int64
}

// dsRun is one handoff (or baseline) in the table.
type dsRun struct {
	Name     string  `json:"name"`
	Link     string  `json:"link"`
	How      string  `json:"how"` // "real": emulated link in real time; "model": computed
	Mode     string  `json:"mode"`
	Wire     int64   `json:"wire_bytes"`
	TotalSec float64 `json:"total_sec"`
	Downtime float64 `json:"downtime_sec"`
	// From the report: the phases the model uses.
	SetupSec, PipeSec, VerifySec float64
	// CPUSec is the CPU time of the whole process (sender and receiver)
	// over the run.
	CPUSec float64
	Rep    *Report `json:"-"`
}

func openDataset(b *testing.B) *dsEnv {
	dir := dataDir()
	e := &dsEnv{dir: dir, work: filepath.Join(dir, "bench")}
	for _, f := range []string{"disk-base.img", "disk-mod.img", "mem-base.img", "mem-mod.img"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			b.Skipf("no %s in %s: build the dataset first (make handoff-data, scripts/handoff-data.sh; GDP_HANDOFF_DATA sets the directory)", f, dir)
		}
	}
	e.diskMod, e.memMod = filepath.Join(dir, "disk-mod.img"), filepath.Join(dir, "mem-mod.img")
	if st, err := os.Stat(e.diskMod); err == nil {
		e.diskSize = st.Size()
	}
	var err error
	if e.cache, err = OpenBaseCache(filepath.Join(e.work, "cache")); err != nil {
		b.Fatal(err)
	}
	add := func(f string) string {
		m, err := e.cache.Add(filepath.Join(dir, f), f)
		if err != nil {
			b.Fatal(err)
		}
		return m.ID
	}
	e.diskBase, e.memBase = add("disk-base.img"), add("mem-base.img")
	return e
}

// baselines: the modified blocks (disk and memory) written out once, then
// compressed by zstd (klauspost, default level 3, all cores) and by the xz
// command (xz -9, one thread; cached beside the dataset, it is slow); the
// whole modified images compressed by zstd.
func (e *dsEnv) baselines(b *testing.B) {
	mod := filepath.Join(e.work, "modified.bin")
	f, err := os.Create(mod)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range [][2]string{{"disk-base.img", "disk-mod.img"}, {"mem-base.img", "mem-mod.img"}} {
		var size int64
		if err := ChangedBlocks(filepath.Join(e.dir, p[0]), filepath.Join(e.dir, p[1]), func(_ int64, d []byte) error {
			_, err := f.Write(d)
			return err
		}, &size); err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := f.Stat()
	e.modifiedBytes = fi.Size()
	f.Close()
	zstdOf := func(paths ...string) (int64, float64) {
		t0 := time.Now()
		cw := &countWriter{}
		zw, _ := zstd.NewWriter(cw)
		for _, p := range paths {
			in, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(zw, in)
			in.Close()
		}
		zw.Close()
		return cw.n, time.Since(t0).Seconds()
	}
	e.zstdMod, e.zstdModSec = zstdOf(mod)
	e.zstdWhole, e.zstdWholeSec = zstdOf(e.diskMod, e.memMod)
	// xz -9, cached under the modified blocks' size and the images' times.
	st1, _ := os.Stat(e.diskMod)
	st2, _ := os.Stat(e.memMod)
	key := fmt.Sprintf("%d %d %d", e.modifiedBytes, st1.ModTime().UnixNano(), st2.ModTime().UnixNano())
	cache := filepath.Join(e.work, "xz9.txt")
	if c, err := os.ReadFile(cache); err == nil {
		if k, v, ok := strings.Cut(strings.TrimSpace(string(c)), "="); ok && k == key {
			e.xz9, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if e.xz9 == 0 {
		t0 := time.Now()
		// xz -9 is ~1 MB/s: over more than 64 MiB it reads a sample, every
		// k-th MiB, and the ratio is scaled to the whole (said in the log).
		sample := mod
		k := int64(1)
		if e.modifiedBytes > 64<<20 {
			k = (e.modifiedBytes + 64<<20 - 1) / (64 << 20)
			sample = filepath.Join(e.work, "modified-sample.bin")
			in, _ := os.ReadFile(mod)
			var out []byte
			for off := int64(0); off < int64(len(in)); off += k << 20 {
				out = append(out, in[off:min(off+1<<20, int64(len(in)))]...)
			}
			os.WriteFile(sample, out, 0o644)
			e.xzSampled = float64(len(out)) / float64(len(in))
		}
		cmd := exec.Command("xz", "-9", "-T1", "-c", sample)
		cw := &countWriter{}
		cmd.Stdout = cw
		if err := cmd.Run(); err != nil {
			b.Fatalf("xz -9: %v (apt-get install xz-utils)", err)
		}
		e.xz9 = cw.n
		if e.xzSampled > 0 {
			e.xz9 = int64(float64(cw.n) / e.xzSampled)
			os.Remove(sample)
		}
		blog(b, "xz -9 of the modified blocks: %d -> %d bytes in %s (1 MiB in every %d compressed, %d bytes, and scaled; cached in %s)", e.modifiedBytes, e.xz9, time.Since(t0).Round(time.Second), k, cw.n, cache)
		os.WriteFile(cache, []byte(key+"="+strconv.FormatInt(e.xz9, 10)+"\n"), 0o644)
	}
	os.Remove(mod)
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// schedule is a link's rate over time: rate bits/s until at, then after.
type schedule struct {
	name      string
	rate, to  float64 // bits/s
	at        float64 // seconds after the start; 0: never changes
	unlimited bool
}

func (s schedule) bytesPerSec(t float64) float64 {
	if s.at > 0 && t >= s.at {
		return s.to / 8
	}
	return s.rate / 8
}

// model is a fluid model of a pipelined handoff measured on an unlimited
// link: after setup seconds the pipeline produces the wire bytes evenly over
// pipe seconds, the link drains them at its rate, and the receiver's
// verification takes verify seconds after the last byte.
func model(r dsRun, s schedule) float64 {
	return fluid(r.SetupSec, r.PipeSec, float64(r.Wire), s) + r.VerifySec
}

func fluid(setup, pipe, wire float64, s schedule) float64 {
	const dt = 0.001
	t, sent := setup, 0.0
	for sent < wire {
		produced := wire
		if pipe > 0 {
			produced = wire * min(1, (t+dt-setup)/pipe)
		}
		sent = min(produced, sent+s.bytesPerSec(t)*dt)
		t += dt
	}
	return t
}

func (e *dsEnv) run(b *testing.B, name string, cfg SendConfig, s schedule) dsRun {
	a, c := tcpPair(b)
	var conn net.Conn = a
	var link *Link
	if !s.unlimited {
		link = NewLink(s.rate)
		conn = link.Conn(a)
	}
	cfg.Cache = e.cache
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	type rr struct {
		rec *Received
		err error
	}
	rch := make(chan rr, 1)
	out := filepath.Join(e.work, "out")
	go func() {
		rec, err := Receive(ctx, c, ReceiveConfig{Cache: e.cache, Dir: out, IdleTimeout: 5 * time.Minute})
		rch <- rr{rec, err}
	}()
	if link != nil && s.at > 0 {
		tm := time.AfterFunc(time.Duration(s.at*float64(time.Second)), func() { link.SetRate(s.to) })
		defer tm.Stop()
	}
	cpu0 := cpuTime()
	rep, err := Send(ctx, conn, &Handoff{Images: []Image{
		{Name: "disk", Base: e.diskBase, Path: e.diskMod, FS: os.Getenv("GDP_HANDOFF_BENCH_FS")},
		{Name: "memory", Base: e.memBase, Path: e.memMod},
	}}, cfg)
	res := <-rch
	cpuSec := (cpuTime() - cpu0).Seconds()
	if err != nil || res.err != nil {
		b.Fatalf("%s: send %v, receive %v", name, err, res.err)
	}
	os.RemoveAll(res.rec.Dir)
	r := dsRun{Name: name, Link: s.name, How: "real", Wire: rep.WireBytes, TotalSec: rep.TotalSec, CPUSec: cpuSec, Rep: rep}
	if len(rep.Modes) > 0 {
		r.Mode = rep.Modes[len(rep.Modes)-1].Mode
	}
	scan, send := rep.Stages[0], rep.Stages[3]
	r.SetupSec, r.PipeSec, r.VerifySec = scan.FirstSec, send.LastSec-scan.FirstSec, rep.TotalSec-send.LastSec
	return r
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkHandoffDataset runs the whole comparison once (it takes minutes).
func BenchmarkHandoffDataset(b *testing.B) {
	e := openDataset(b)
	if b.N > 1 {
		b.Skip("one run is the measurement")
	}
	t0 := time.Now()
	e.baselines(b)
	if os.Getenv("GDP_HANDOFF_BENCH_ONLY") == "baselines" {
		blog(b, "baselines only: modified %d, xz -9 %d, zstd %d, whole %d", e.modifiedBytes, e.xz9, e.zstdMod, e.zstdWhole)
		return
	}
	blog(b, "dataset %s: modified state %.1f MB (disk + memory blocks that differ from the bases); xz -9 %.2f MB; zstd-3 %.2f MB in %.1fs; whole images zstd-3 %.1f MB in %.1fs",
		e.dir, mb(e.modifiedBytes), mb(e.xz9), mb(e.zstdMod), e.zstdModSec, mb(e.zstdWhole), e.zstdWholeSec)

	var rates []float64
	for _, f := range strings.Split(envOr("GDP_HANDOFF_BENCH_RATES", "5,10,25"), ",") {
		if v, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err == nil && v > 0 {
			rates = append(rates, v)
		}
	}
	var scheds []schedule
	for _, r := range rates {
		scheds = append(scheds, schedule{name: fmt.Sprintf("%g Mbit/s", r), rate: r * 1e6})
	}
	dropAt := envFloat("GDP_HANDOFF_BENCH_DROP_SEC", 10)
	if os.Getenv("GDP_HANDOFF_BENCH_DROP") != "0" {
		scheds = append(scheds, schedule{name: fmt.Sprintf("25 -> 5 Mbit/s at %gs", dropAt), rate: 25e6, to: 5e6, at: dropAt})
	}

	// 0. QEMU's own live migration over the same link (real processes).
	var qm *qemuMigration
	if os.Getenv("GDP_HANDOFF_BENCH_QEMU") != "0" {
		qm = e.qemuMigrate(b, envFloat("GDP_HANDOFF_BENCH_QEMU_MBIT", 25)*1e6, os.Getenv("GDP_HANDOFF_BENCH_TRIM") == "1")
	}

	if os.Getenv("GDP_HANDOFF_BENCH_ONLY") == "vm" {
		if qm == nil {
			b.Fatal("GDP_HANDOFF_BENCH_ONLY=vm: the VM handoff did not run")
		}
		return
	}
	if os.Getenv("GDP_HANDOFF_BENCH_ONLY") == "qemu" {
		if qm == nil {
			b.Fatal("GDP_HANDOFF_BENCH_ONLY=qemu: the QEMU part did not run")
		}
		rs := []float64{qm.rate}
		for r := range qm.oursAt {
			rs = append(rs, r)
		}
		for _, r := range rs {
			ours, how := qm.ours, "real"
			if r != qm.rate {
				ours = qm.oursAt[r]
			}
			qt := qm.total
			if r != qm.rate {
				qt, how = qm.setup+float64(qm.bytes)*8/r, "model (its bytes at this rate)"
			}
			if ours.TotalSec > 0 {
				blog(b, "at %g Mbit/s: QEMU %.1f MB %.1fs (%s), ours %.2f MB %.1fs (real), downtime %.3f vs %.2fs: QEMU / ours = %.2f",
					r/1e6, mb(qm.bytes), qt, how, mb(ours.Wire), ours.TotalSec, qm.downtime, ours.Downtime, qt/ours.TotalSec)
			}
		}
		return
	}

	// 1. Every fixed mode on an unlimited loopback link: the compute-bound
	// figures the model scales to each link.
	fixed := map[string]dsRun{}
	var names []string
	modes := DefaultModes()
	if v := os.Getenv("GDP_HANDOFF_BENCH_MODES"); v != "" { // a subset, for a quick run
		modes = nil
		for _, f := range strings.Split(v, ",") {
			m, err := ParseMode(strings.TrimSpace(f))
			if err != nil {
				b.Fatal(err)
			}
			modes = append(modes, m)
		}
	}
	for _, m := range modes {
		r := e.run(b, "fixed "+m.String(), SendConfig{Mode: m.String()}, schedule{name: "unlimited", unlimited: true})
		r.Mode = m.String()
		fixed[m.String()] = r
		names = append(names, m.String())
		blog(b, "unlimited %-10s wire %7.2f MB  total %6.2fs (setup %.2f, pipeline %.2f, verify %.2f)  changed %.1f MB  unique %.1f MB  free not sent %.1f MB",
			m, mb(r.Wire), r.TotalSec, r.SetupSec, r.PipeSec, r.VerifySec, mb(r.Rep.ChangedBytes), mb(r.Rep.UniqueBytes), mb(r.Rep.FreeSkippedBytes))
	}
	// 2. Pipelined vs sequential, and the lightest mode's input rate.
	for _, m := range []string{"none", "zstd-2"} {
		p, ok := fixed[m]
		if !ok {
			continue
		}
		sq := e.run(b, "sequential "+m, SendConfig{Mode: m, Sequential: true}, schedule{name: "unlimited", unlimited: true})
		blog(b, "pipelining, %s: pipeline %.2fs (total %.2fs) vs stages one after another %.2fs (total %.2fs): saves %.0f %% of the pipeline time, %.0f %% of the total",
			m, p.PipeSec, p.TotalSec, sq.PipeSec, sq.TotalSec, 100*(1-p.PipeSec/sq.PipeSec), 100*(1-p.TotalSec/sq.TotalSec))
	}
	if light, ok := fixed["none"]; ok {
		blog(b, "lightest mode (none) input rate: %.0f MB/s of images scanned, %.0f MB/s of changed blocks, over the pipeline's %.2fs (GOMAXPROCS %d; the receiver shares the cores); %.0f MB scanned per CPU second of the process (sender and receiver, %.2f CPU s over the whole run of %.2fs)",
			float64(light.Rep.ScannedBytes)/light.PipeSec/1e6, float64(light.Rep.ChangedBytes)/light.PipeSec/1e6, light.PipeSec, runtimeProcs(),
			float64(light.Rep.ScannedBytes)/light.CPUSec/1e6, light.CPUSec, light.TotalSec)
	}

	// 3. Per link: adaptive in real time, every fixed mode modelled, the
	// best modelled fixed mode also run in real time.
	type row struct {
		s                   schedule
		adaptive, bestFixed dsRun
		modelled            map[string]float64
	}
	var rows []row
	for _, s := range scheds {
		rw := row{s: s, modelled: map[string]float64{}}
		best := ""
		for _, n := range names {
			rw.modelled[n] = model(fixed[n], s)
			if best == "" || rw.modelled[n] < rw.modelled[best] {
				best = n
			}
		}
		// The adapter's decisions, kept ones included, in DATA/bench/adaptive-N.log.
		logPath := filepath.Join(e.work, fmt.Sprintf("adaptive-%d.log", len(rows)+1))
		os.Remove(logPath)
		zc := zap.NewDevelopmentConfig()
		zc.OutputPaths, zc.ErrorOutputPaths = []string{logPath}, []string{logPath}
		alog, err := zc.Build()
		if err != nil {
			alog = zap.NewNop()
		}
		rw.adaptive = e.run(b, "adaptive", SendConfig{Logger: alog}, s)
		alog.Sync()
		rw.bestFixed = e.run(b, "fixed "+best, SendConfig{Mode: best}, s)
		rw.bestFixed.Mode = best
		rows = append(rows, rw)
		var tl []string
		for _, m := range rw.adaptive.Rep.Modes {
			tl = append(tl, fmt.Sprintf("%.1fs %s", m.AtSec, m.Mode))
		}
		blog(b, "%s: adaptive wire %.2f MB total %.2fs (setup %.2f, pipeline %.2f, verify %.2f; modes: %s); best fixed by the model %s: real wire %.2f MB total %.2fs (setup %.2f, pipeline %.2f, verify %.2f; modelled %.2fs); adaptive / best %.2f (pipelines %.2f)",
			s.name, mb(rw.adaptive.Wire), rw.adaptive.TotalSec, rw.adaptive.SetupSec, rw.adaptive.PipeSec, rw.adaptive.VerifySec, strings.Join(tl, ", "),
			best, mb(rw.bestFixed.Wire), rw.bestFixed.TotalSec, rw.bestFixed.SetupSec, rw.bestFixed.PipeSec, rw.bestFixed.VerifySec, rw.modelled[best],
			rw.adaptive.TotalSec/rw.bestFixed.TotalSec, rw.adaptive.PipeSec/rw.bestFixed.PipeSec)
	}

	// The table.
	var sb strings.Builder
	fmt.Fprintf(&sb, "modified state %.1f MB; xz -9 of it %.2f MB\n\n", mb(e.modifiedBytes), mb(e.xz9))
	fmt.Fprintf(&sb, "| link | run | on the wire | / xz -9 | / modified | total | downtime | how |\n|---|---|---|---|---|---|---|---|\n")
	line := func(link, name string, wire int64, total, down float64, how string) {
		d := "—"
		if down > 0 {
			d = fmt.Sprintf("%.2f s", down)
		}
		fmt.Fprintf(&sb, "| %s | %s | %.2f MB | %.2f | %.3f | %.1f s | %s | %s |\n", link, name, mb(wire), float64(wire)/float64(e.xz9),
			float64(wire)/float64(e.modifiedBytes), total, d, how)
	}
	for _, rw := range rows {
		line(rw.s.name, "adaptive (ends "+rw.adaptive.Mode+")", rw.adaptive.Wire, rw.adaptive.TotalSec, 0, "real")
		line(rw.s.name, "best fixed: "+rw.bestFixed.Mode, rw.bestFixed.Wire, rw.bestFixed.TotalSec, 0, "real")
		worst := ""
		for n, v := range rw.modelled {
			if worst == "" || v > rw.modelled[worst] {
				worst = n
			}
		}
		line(rw.s.name, "worst fixed: "+worst, fixed[worst].Wire, rw.modelled[worst], 0, "model")
		line(rw.s.name, "zstd-3 of the modified blocks", e.zstdMod, fluid(0, e.zstdModSec, float64(e.zstdMod), rw.s), 0, "model")
		line(rw.s.name, "zstd-3 of the whole images", e.zstdWhole, fluid(0, e.zstdWholeSec, float64(e.zstdWhole), rw.s), 0, "model")
		if qm != nil {
			how := "model (bytes of the real run)"
			total := qm.setup + fluid(0, 0, float64(qm.bytes), rw.s)
			if rw.s.at == 0 && rw.s.rate == qm.rate {
				how, total = "real", qm.total
			}
			line(rw.s.name, "QEMU live migration", qm.bytes, total, qm.downtime, how)
			if rw.s.at == 0 && rw.s.rate == qm.rate {
				line(rw.s.name, "our VM handoff of the same running guest", qm.ours.Wire, qm.ours.TotalSec, qm.ours.Downtime, "real")
			}
		}
	}
	fmt.Fprintf(&sb, "\nadaptive vs fixed modes (fixed: modelled from the unlimited runs; best also run for real):\n\n| link | adaptive | best fixed (real) | adaptive / best | fixed modes beaten (model) |\n|---|---|---|---|---|\n")
	for _, rw := range rows {
		beaten := 0
		for _, v := range rw.modelled {
			if rw.adaptive.TotalSec < v {
				beaten++
			}
		}
		fmt.Fprintf(&sb, "| %s | %.1f s | %.1f s (%s) | %.2f | %d of %d |\n", rw.s.name, rw.adaptive.TotalSec, rw.bestFixed.TotalSec, rw.bestFixed.Mode,
			rw.adaptive.TotalSec/rw.bestFixed.TotalSec, beaten, len(rw.modelled))
	}
	fmt.Fprintf(&sb, "\nmodelled totals of every fixed mode:\n\n| mode | wire | unlimited |")
	for _, rw := range rows {
		fmt.Fprintf(&sb, " %s |", rw.s.name)
	}
	fmt.Fprintf(&sb, "\n|---|---|---|%s\n", strings.Repeat("---|", len(rows)))
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&sb, "| %s | %.2f MB | %.1f s |", n, mb(fixed[n].Wire), fixed[n].TotalSec)
		for _, rw := range rows {
			fmt.Fprintf(&sb, " %.1f s |", rw.modelled[n])
		}
		sb.WriteString("\n")
	}
	os.WriteFile(filepath.Join(e.work, "table.md"), []byte(sb.String()), 0o644)
	blog(b, "benchmark took %s; table in %s:\n%s", time.Since(t0).Round(time.Second), filepath.Join(e.work, "table.md"), sb.String())
	// The figures bench/REPORT.md judges (internal/benchreport/targets.yaml):
	// the adaptive handoff's bytes on the slowest steady link against xz -9
	// of the modified blocks, and QEMU's live migration time against ours
	// for the same running guest.
	var slowest *row
	for i := range rows {
		if rows[i].s.at == 0 && !rows[i].s.unlimited && rows[i].s.rate > 0 && (slowest == nil || rows[i].s.rate < slowest.s.rate) {
			slowest = &rows[i]
		}
	}
	if slowest != nil && e.xz9 > 0 {
		b.ReportMetric(float64(slowest.adaptive.Wire)/float64(e.xz9), "wire-vs-xz9")
		b.ReportMetric(float64(slowest.adaptive.Wire)/float64(e.modifiedBytes), "wire-vs-modified")
	}
	if qm != nil && qm.ours.TotalSec > 0 {
		b.ReportMetric(qm.total/qm.ours.TotalSec, "qemu-vs-ours-time")
	}
	if len(rows) == 0 {
		return
	}
	if js, err := json.MarshalIndent(rows[0].adaptive.Rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(e.work, "report-adaptive.json"), js, 0o644)
	}
}

// blog logs at once (a benchmark's own log appears only at its end, and
// this one runs for many minutes).
func blog(b *testing.B, format string, args ...any) {
	b.Helper()
	fmt.Printf(time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// qemuMigration is QEMU's own pre-copy live migration of the dataset guest
// (disk by block migration, RAM by pre-copy) through a relay that applies
// the emulated link.
type qemuMigration struct {
	rate                   float64 // bits/s
	bytes                  int64   // through the relay
	total, downtime, setup float64 // seconds, from query-migrate
	ours                   dsRun   // our handoff of the same running guest
	// oursAt: our handoff of the same guest at the further rates of
	// GDP_HANDOFF_BENCH_VM_RATES (Mbit/s), each real, the VM let run on
	// between them.
	oursAt map[float64]dsRun
}

// vmHandoff hands the running dataset guest off with the pipeline: its RAM
// file against the base memory, its disk (the dataset's modified image
// under a qcow2 overlay) against the base disk — every block in the first
// round, then only the overlay's own extents (the guest mounts the disk
// read-only: none; any would fail the run, the raw image would be stale).
// With trim the overlay is over the base disk and the disk is captured as
// gdp handoff --disk-overlay does (QCOW2Top: its extents, its content
// written out raw before every round), and the destination's disk is
// compared with the source's after the run.
func (e *dsEnv) vmHandoff(b *testing.B, g *DataGuest, top string, rate float64, trim bool) dsRun {
	qt := &QCOW2Top{Top: top, Raw: top + ".raw"}
	first := true
	dirty := func() ([]Extent, error) {
		if first {
			first = false
			return []Extent{{0, e.diskSize}}, nil
		}
		ext, err := qt.Extents()
		if err == nil && len(ext) > 0 {
			err = fmt.Errorf("the guest wrote %d extents to its disk", len(ext))
		}
		return ext, err
	}
	disk := Image{Name: "disk", Base: e.diskBase, Path: e.diskMod, Dirty: dirty}
	if trim {
		qt.QEMU = g.Q
		defer qt.Close()
		disk = Image{Name: "disk", Base: e.diskBase, Path: qt.Raw, Dirty: qt.Extents, Refresh: qt.Refresh, Changed: qt.Changed}
		defer os.Remove(qt.Raw)
	}
	a, c := tcpPair(b)
	link := NewLink(rate)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	rch := make(chan error, 1)
	var recDisk string
	go func() {
		rec, err := Receive(ctx, c, ReceiveConfig{Cache: e.cache, Dir: filepath.Join(e.work, "out"), IdleTimeout: 5 * time.Minute})
		if err == nil {
			if trim {
				recDisk = rec.Images["disk"]
			} else {
				os.RemoveAll(rec.Dir)
			}
		}
		rch <- err
	}()
	rep, err := Send(ctx, link.Conn(a), &Handoff{Images: []Image{
		{Name: "memory", Base: e.memBase, Path: g.Cfg.MemPath},
		disk,
	}, VM: g.Q, Meta: VMMeta{MemoryMiB: g.Cfg.MemoryMiB, CPUs: 1, Machine: "pc", Disk: true}}, SendConfig{Cache: e.cache, Logger: zap.NewNop()})
	rerr := <-rch
	if recDisk != "" {
		defer os.RemoveAll(filepath.Dir(recDisk))
	}
	if err != nil || rerr != nil {
		blog(b, "VM handoff failed: send %v, receive %v", err, rerr)
		return dsRun{Name: "VM handoff (failed)"}
	}
	if trim {
		// The destination's disk against the stopped source's (the
		// receiver checked its whole-image digest; this is the
		// benchmark's own check that the trimmed blocks are zeros there).
		out, cerr := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", top, recDisk).CombinedOutput()
		var zero, trimmed int64 // blocks zero at the destination, of them non-zero in disk-mod
		if cerr == nil {
			zero, trimmed = trimmedBlocks(e.diskMod, recDisk)
		}
		blog(b, "destination disk vs the source's: %s (%v); %d blocks zero there, %d of them (%.1f MB) non-zero in disk-mod.img (trimmed); zero records sent: %d",
			strings.TrimSpace(string(out)), cerr, zero, trimmed, mb(trimmed*BlockSize), rep.Blocks.Zero)
		if cerr != nil {
			return dsRun{Name: "VM handoff (disk differs)"}
		}
	}
	r := dsRun{Name: "VM handoff", Link: fmt.Sprintf("%g Mbit/s", rate/1e6), How: "real", Wire: rep.WireBytes, TotalSec: rep.TotalSec, Downtime: rep.DowntimeSec, Rep: rep}
	// What the downtime is made of: the stop (QEMU's stop and its device
	// state written out), the final round (scan, compress, send of what
	// changed since the last pre-copy round), the end (device state sent,
	// the destination's last blobs applied, its verification finished,
	// fsync, commit, the verdict back).
	var tl []string
	for _, rr := range rep.Rounds {
		tl = append(tl, fmt.Sprintf("round %d %.2f-%.2fs %.1f MB%s", rr.Round, rr.Start, rr.End, mb(rr.Changed), map[bool]string{true: " (final)"}[rr.Final]))
	}
	if n := len(rep.Rounds); n > 0 && rep.DowntimeSec > 0 {
		fin, stop := rep.Rounds[n-1], rep.TotalSec-rep.DowntimeSec
		blog(b, "VM handoff timeline: %s; VM stopped at %.2fs; downtime %.2fs = stop and device state %.2fs + final round %.2fs + state, end and the destination's commit %.2fs",
			strings.Join(tl, ", "), stop, rep.DowntimeSec, fin.Start-stop, fin.End-fin.Start, rep.TotalSec-fin.End)
	}
	if d := rep.Downtime; d != nil {
		blog(b, "VM handoff downtime parts: stop %.3fs, refresh %.3fs, scan %.3fs, round %.3fs, state %.3fs, verdict %.3fs; the final round read %.1f MB of disk, %.1f MB of memory",
			d.StopSec, d.RefreshSec, d.ScanSec, d.RoundSec, d.StateSec, d.VerdictSec, mb(d.Scanned["disk"]), mb(d.Scanned["memory"]))
	}
	if js, err := json.MarshalIndent(rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(e.work, "report-vm.json"), js, 0o644)
	}
	var modes []string
	for _, m := range rep.Modes {
		modes = append(modes, fmt.Sprintf("%.1fs %s", m.AtSec, m.Mode))
	}
	blog(b, "our VM handoff of the running guest at %g Mbit/s: %d rounds, changed %.1f MB, wire %.2f MB, total %.1fs, downtime %.2fs (stop to the destination's verified commit; starting QEMU there not included); blocks %+v; modes: %s",
		rate/1e6, len(rep.Rounds), mb(rep.ChangedBytes), mb(rep.WireBytes), rep.TotalSec, rep.DowntimeSec, rep.Blocks, strings.Join(modes, ", "))
	return r
}

// trimmedBlocks counts the blocks of got that are zero, and of those the
// ones that are not zero in mod.
func trimmedBlocks(mod, got string) (zero, trimmed int64) {
	mf, err := os.Open(mod)
	if err != nil {
		return -1, -1
	}
	defer mf.Close()
	gf, err := os.Open(got)
	if err != nil {
		return -1, -1
	}
	defer gf.Close()
	mbuf, gbuf := make([]byte, 4<<20), make([]byte, 4<<20)
	for off := int64(0); ; off += int64(len(gbuf)) {
		n, _ := gf.ReadAt(gbuf, off)
		if n == 0 {
			return zero, trimmed
		}
		m, _ := mf.ReadAt(mbuf[:n], off)
		clear(mbuf[m:n])
		for o := 0; o+BlockSize <= n; o += BlockSize {
			if isZero(gbuf[o : o+BlockSize]) {
				zero++
				if !isZero(mbuf[o : o+BlockSize]) {
					trimmed++
				}
			}
		}
	}
}

// qcow2Alloc sums a qcow2 image's own extents (depth 0): allocated data
// and zero clusters.
func qcow2Alloc(img string) (data, zero int64) {
	out, err := exec.Command("qemu-img", "map", "-U", "--output=json", "-f", "qcow2", img).Output()
	if err != nil {
		return -1, -1
	}
	var m []struct {
		Length int64 `json:"length"`
		Depth  int   `json:"depth"`
		Data   bool  `json:"data"`
		Zero   bool  `json:"zero"`
	}
	json.Unmarshal(out, &m)
	for _, x := range m {
		switch {
		case x.Depth != 0:
		case x.Data:
			data += x.Length
		case x.Zero:
			zero += x.Length
		}
	}
	return data, zero
}

// qemuMigrate boots the dataset guest, runs its workload, hands it off
// with our pipeline (vmHandoff) and then with QEMU's own live migration,
// both over the same emulated link. With trim (GDP_HANDOFF_BENCH_TRIM=1)
// the guest runs read-write on an overlay over the base disk, on a drive
// with discard=unmap, and trims its file system before both.
func (e *dsEnv) qemuMigrate(b *testing.B, rate float64, trim bool) *qemuMigration {
	dir := filepath.Join(e.work, "qemu")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	defer os.RemoveAll(dir)
	if _, _, _, err := FindGuestFiles(os.Getenv("GDP_HANDOFF_KERNEL_DIR")); err != nil {
		blog(b, "QEMU live migration skipped: %v", err)
		return nil
	}
	st, _ := os.Stat(e.memMod)
	memMiB := int(st.Size() >> 20)
	top, dst := filepath.Join(dir, "src.qcow2"), filepath.Join(dir, "dst.qcow2")
	ds, _ := os.Stat(e.diskMod)
	cmds := [][]string{
		{"create", "-q", "-f", "qcow2", "-b", e.diskMod, "-F", "raw", top},
		{"create", "-q", "-f", "qcow2", dst, strconv.FormatInt(ds.Size(), 10)},
	}
	if trim {
		// The operator's layout (gdp handoff --disk-overlay): the VM runs
		// on a qcow2 overlay over the base disk holding what changed —
		// disk-mod's blocks that differ from disk-base, copied in by a
		// safe rebase (default 64 KiB clusters).
		base, err := e.cache.Get(e.diskBase)
		if err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, []string{"rebase", "-q", "-f", "qcow2", "-b", base.Path, "-F", "raw", top})
	}
	for _, args := range cmds {
		t0 := time.Now()
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			blog(b, "qemu-img %v: %v: %s", args, err, out)
			return nil
		}
		if args[0] == "rebase" {
			data, zero := qcow2Alloc(top)
			blog(b, "the guest's disk: a qcow2 overlay over disk-base.img holding disk-mod's changes (qemu-img rebase, %.1fs): %.1f MB allocated, %.1f MB zero clusters", time.Since(t0).Seconds(), mb(data), mb(zero))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	src, err := StartDataGuest(ctx, DataGuestConfig{Dir: filepath.Join(dir, "a"), Disk: top, DiskFmt: "qcow2", MemoryMiB: memMiB, Trim: trim})
	if err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	defer src.Close()
	if _, err := src.Wait("GUEST-READY", 5*time.Minute); err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	src.Send("go")
	if _, err := src.Wait("WORKLOAD-DONE", 20*time.Minute); err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	if trim {
		// The guest trims its file system before the handoff (fstrim, as
		// Debian's weekly fstrim.timer does); both our handoff and QEMU's
		// migration below see the same trimmed guest.
		t0 := time.Now()
		src.Send("trim")
		line, err := src.Wait("TRIM ", 10*time.Minute)
		if err != nil {
			blog(b, "QEMU live migration: %v", err)
			return nil
		}
		data, zero := qcow2Alloc(top)
		blog(b, "guest fstrim (%.1fs): %q; the overlay now: %.1f MB allocated, %.1f MB zero clusters", time.Since(t0).Seconds(), line, mb(data), mb(zero))
	}
	qm := &qemuMigration{rate: rate}
	// Our handoff of the same running guest first (pre-copy rounds, then
	// stop-and-copy), for its downtime; then the guest runs on for QEMU's.
	qm.ours = e.vmHandoff(b, src, top, rate, trim)
	qm.oursAt = map[float64]dsRun{}
	for _, f := range strings.Split(os.Getenv("GDP_HANDOFF_BENCH_VM_RATES"), ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			continue
		}
		if _, err := src.Q.Run("cont", nil); err != nil {
			blog(b, "QEMU live migration: %v", err)
			return nil
		}
		time.Sleep(2 * time.Second)
		qm.oursAt[r*1e6] = e.vmHandoff(b, src, top, r*1e6, trim)
	}
	if os.Getenv("GDP_HANDOFF_BENCH_ONLY") == "vm" {
		return qm // our handoffs only: no QEMU migration
	}
	if _, err := src.Q.Run("cont", nil); err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	dstG, err := StartDataGuest(ctx, DataGuestConfig{Dir: filepath.Join(dir, "b"), Disk: dst, DiskFmt: "qcow2", MemoryMiB: memMiB, Incoming: true})
	if err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	defer dstG.Close()
	// The destination listens; the relay between applies the link.
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	dport := pl.Addr().(*net.TCPAddr).Port
	pl.Close()
	if _, err := dstG.Q.Run("migrate-incoming", map[string]any{"uri": fmt.Sprintf("tcp:127.0.0.1:%d", dport)}); err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	defer rl.Close()
	link := NewLink(rate)
	relayed := relayMigration(rl, dport, link, nil)
	// Our handoff above set x-ignore-shared on the source (its RAM file is
	// shared with our agent); QEMU's own migration must carry the RAM, or
	// the destination, whose RAM is its own, refuses the stream.
	if _, err := src.Q.Run("migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": "zero-blocks", "state": true}, {"capability": "x-ignore-shared", "state": false}}}); err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	if _, err := src.Q.Run("migrate", map[string]any{"uri": fmt.Sprintf("tcp:127.0.0.1:%d", rl.Addr().(*net.TCPAddr).Port), "blk": true}); err != nil {
		blog(b, "QEMU live migration: %v", err)
		return nil
	}
	var info struct {
		Status    string  `json:"status"`
		Total     float64 `json:"total-time"`
		Downtime  float64 `json:"downtime"`
		Setup     float64 `json:"setup-time"`
		ErrorDesc string  `json:"error-desc"`
		RAM       struct {
			Transferred int64 `json:"transferred"`
		} `json:"ram"`
		Disk struct {
			Transferred int64 `json:"transferred"`
		} `json:"disk"`
	}
	for {
		r, err := src.Q.Run("query-migrate", nil)
		if err != nil {
			blog(b, "QEMU live migration: %v", err)
			return nil
		}
		json.Unmarshal(r, &info)
		if info.Status == "completed" {
			break
		}
		if info.Status == "failed" || info.Status == "cancelled" {
			why := "the destination is still running"
			select {
			case <-dstG.Q.exited:
				why = dstG.Q.exitErr().Error()
			case <-time.After(2 * time.Second):
			}
			blog(b, "QEMU live migration %s: %s (destination: %s)", info.Status, info.ErrorDesc, why)
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	src.Q.Quit()
	n := <-relayed
	qm.bytes, qm.total, qm.downtime, qm.setup = n, info.Total/1e3, info.Downtime/1e3, info.Setup/1e3
	blog(b, "QEMU live migration at %.0f Mbit/s: %.1f MB through the link (ram %.1f MB, disk %.1f MB), total %.1fs, downtime %.3fs",
		rate/1e6, mb(n), mb(info.RAM.Transferred), mb(info.Disk.Transferred), qm.total, qm.downtime)
	return qm
}
