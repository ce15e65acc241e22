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
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// downtimeGuestInit: after "go" the guest writes 1 MiB to its disk, then
// every diskMs milliseconds a tick and 64 KiB at the next
// offset of a 16 MiB area (a service's log and state), synchronously:
// during the handoff its disk keeps changing a little, as a live one does.
// Its loops sleep without a fork (guestTicker); the dd is the one fork per
// disk write.
func downtimeGuestInit(diskMs int) string {
	return GuestBoot + `echo GUEST-READY
read line
seq 1 40000 | sed 's/^/handoff-known-data-/' > /tmp/mem.dat
dd if=/tmp/mem.dat of=/dev/vda bs=4096 seek=256 count=256 conv=notrunc 2>/dev/null
sync
mkfifo ` + guestSleepFIFO + `
echo WORKLOAD-DONE
( exec 4<>` + guestSleepFIFO + `; i=0; while :; do i=$((i+1)); echo "tick $i"; dd if=/tmp/mem.dat of=/dev/vda bs=65536 seek=$((512 + i % 256)) count=1 conv=notrunc,fsync 2>/dev/null; read -t ` + fmt.Sprintf("%.3f", float64(diskMs)/1e3) + ` x <&4; done ) &
` + guestTicker + `while read cmd; do
  case "$cmd" in
  sum) echo "SUM $(md5sum /tmp/mem.dat | cut -d' ' -f1)" ;;
  esac
done
`
}

// BenchmarkVMDowntime measures a VM handoff's downtime and its parts
// (Report.Downtime, the destination's CommitTiming) on a real QEMU guest
// shaped like the dataset's (docs/HANDOFF.md §8): 256 MiB of RAM, a disk
// whose qcow2 overlay (64 KiB clusters, QEMU's default) already holds
// 192 MiB of the VM's own data when it boots, the guest writing a little
// all along. One sub-benchmark per link rate: "loopback" (no link: what is
// left is the downtime's own work) and "25Mbit" (both transfers through
// an emulated link of that rate, linkedPair). The destination then
// resumes the VM (ResumeVM), and the pause is also measured as the guest
// sees it (guestTicker: the gap in its ticks from the source's last to
// the destination's first, guest_pause_s); then QEMU's own live migration
// of the same guest (RAM and disk, blk), booted afresh with its RAM 8 KiB
// over whole MiB (QEMUConfig.RAMPadKiB: on whole MiB QEMU 7.2 under TCG
// loses guest writes during a long pre-copy and its guest crashed at the
// destination, Session 20), is measured the same way
// (qemu_pause_s, beside its query-migrate downtime, qemu_downtime_s, and
// its settings: qemu_downtime_limit_ms, qemu_max_bandwidth_MBps,
// qemu_auto_converge, all QEMU's defaults; qemu_guest_ran 0 when its
// migration completed but the guest did not carry on at the destination,
// as at 25 Mbit/s in Session 19). guest_dirty_MBps is how fast
// the guest dirties its RAM (qemu_dirty_rate_MiBps QEMU's own estimate).
// Knobs: GDP_HANDOFF_DT_RATES (Mbit/s, 0 = loopback; default "0,25"),
// GDP_HANDOFF_DT_MEM_MIB (256), GDP_HANDOFF_DT_FILL_MIB (192),
// GDP_HANDOFF_DT_DISK_MS (1000: the guest's disk write period; QEMU's
// block migration re-sends a whole MiB per write, so at 300 ms it needs
// 3.5 MB/s for the disk alone and never converges at 25 Mbit/s),
// GDP_HANDOFF_DT_QEMU=0 skips QEMU's (GDP_HANDOFF_DT_OURS=0 ours),
// GDP_HANDOFF_DT_QEMU_MAX_SEC (240: QEMU's migration is cancelled after
// it, qemu_converged 0), GDP_HANDOFF_DT_QEMU_PAD_KIB (8; 0: QEMU migrates
// the guest our handoff moved, on whole MiB, as before Session 20),
// GDP_HANDOFF_DT_QEMU_INC=1 (QEMU's block migration sends only the
// overlay, to an overlay over the destination's copy of the base: for
// slow links), GDP_HANDOFF_DT_QEMU_CHECK=1 (QEMU's destination waits
// (-S) until its RAM and disk are compared with the source's:
// qemu_ram_diff_pages, qemu_disk_same; its pause then includes the check,
// qemu_pause_with_check_s), GDP_HANDOFF_DT_QEMU_DOWNTIME_MS (QEMU's
// downtime-limit; default QEMU's, 300 ms),
// GDP_HANDOFF_DT_PRESTART=0 starts our destination's QEMU after the commit
// instead of at the hello (ReceiveConfig.PrestartVM).
//
//	flock /work/wt/heavy.lock nice -n 5 go test -run '^$' -bench VMDowntime -benchtime 1x ./handoffd
func BenchmarkVMDowntime(b *testing.B) {
	for _, f := range strings.Split(envString("GDP_HANDOFF_DT_RATES", "0,25"), ",") {
		mbit, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || mbit < 0 {
			b.Fatalf("GDP_HANDOFF_DT_RATES: %q is not a rate in Mbit/s", f)
		}
		name := "loopback"
		if mbit > 0 {
			name = fmt.Sprintf("%dMbit", mbit)
		}
		b.Run(name, func(b *testing.B) { vmDowntime(b, float64(mbit)*1e6) })
	}
}

// vmDowntime is BenchmarkVMDowntime at one link rate (bits/s; 0: none).
func vmDowntime(b *testing.B, rate float64) {
	memMiB := envInt("GDP_HANDOFF_DT_MEM_MIB", 256)
	fillMiB := envInt("GDP_HANDOFF_DT_FILL_MIB", 192)
	const baseMiB = 256
	baseDisk := func(path string) {
		disk := make([]byte, baseMiB<<20)
		rng := rngFor(5)
		for i := 0; i < len(disk)/BlockSize; i += 3 {
			copy(disk[i*BlockSize:], textBlock(rng))
		}
		if err := os.WriteFile(path, disk, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// From 32 MiB on: the guest's own writes go below.
	fill := func(top string) { fillOverlay(b, top, 32, fillMiB) }
	diskMs := envInt("GDP_HANDOFF_DT_DISK_MS", 1000)
	b.Logf("the guest writes 64 KiB to its disk every %d ms (GDP_HANDOFF_DT_DISK_MS)", diskMs)
	opts := vmOpts{init: downtimeGuestInit(diskMs), baseDisk: baseDisk, memMiB: memMiB, cluster: 64 << 10, fill: fill, ticks: true,
		tickEvery: time.Duration(diskMs) * time.Millisecond}
	ours, qemu := os.Getenv("GDP_HANDOFF_DT_OURS") != "0", os.Getenv("GDP_HANDOFF_DT_QEMU") != "0"
	pad := qemuRAMPadKiB
	if v, err := strconv.Atoi(os.Getenv("GDP_HANDOFF_DT_QEMU_PAD_KIB")); err == nil && v >= 0 {
		pad = v
	}
	var e *vmEnv
	var dirty, pages float64
	boot := func(o vmOpts) *vmEnv {
		e := startVMWith(b, o)
		checkTicker(b, e.ticks)
		// How fast the guest dirties its RAM: what decides whether a
		// pre-copy converges at the link's rate.
		var mode string
		var err error
		if dirty, mode, err = guestDirtyRate(e.q, 2); err != nil {
			b.Fatalf("the guest's dirty rate: %v", err)
		}
		if pages, err = ramDirtyRate(e.memPath, 2*time.Second); err != nil {
			b.Fatalf("the guest's dirty rate: %v", err)
		}
		b.Logf("the guest's RAM dirty rate: QEMU's calc-dirty-rate (%s, 2 s) %.0f MiB/s; its RAM file's pages changed in 2 s %.3f MB/s; the link: %.0f Mbit/s = %.3f MB/s",
			mode, dirty, pages, rate/1e6, rate/8e6)
		return e
	}
	if ours || (qemu && pad == 0) {
		e = boot(opts)
	}
	b.ResetTimer()
	if ours {
		vmDownBench(b, e, rate)
	}
	b.StopTimer()
	if qemu {
		// QEMU's migration gets the same guest booted afresh with its RAM
		// padded (QEMUConfig.RAMPadKiB): on whole MiB, QEMU 7.2 under TCG
		// loses guest writes during a long pre-copy (Session 20). Our
		// handoff does not use QEMU's dirty log (it reads the RAM file),
		// and its machine is whole MiB (VMMeta), so it keeps e.
		eq := e
		if pad > 0 {
			if e != nil {
				e.q.Kill() // one guest at a time on the shared cores
			}
			o := opts
			o.ramPadKiB = pad
			eq = boot(o)
		}
		b.Logf("QEMU's migration: %s guest, RAM %d MiB + %d KiB (GDP_HANDOFF_DT_QEMU_PAD_KIB)", map[bool]string{true: "a freshly booted", false: "the same"}[eq != e], eq.memMiB, eq.ramPadKiB)
		b.ReportMetric(float64(pad), "qemu_ram_pad_KiB")
		qemuDownBench(b, eq, baseMiB, rate, eq != e)
	}
	b.ReportMetric(dirty, "qemu_dirty_rate_MiBps")
	b.ReportMetric(pages, "guest_dirty_MBps")
}

// qemuRAMPadKiB is what BenchmarkVMDowntime adds to the RAM of the guest
// QEMU's own migration moves (QEMUConfig.RAMPadKiB).
const qemuRAMPadKiB = 8

// vmDownBench hands e's VM off b.N times (resuming the source between),
// each time resuming it at the destination, and reports the last run's
// downtime and parts, and its pause as the guest saw it.
func vmDownBench(b *testing.B, e *vmEnv, rate float64) {
	var rep *Report
	var rec *Received
	var pause guestPause
	var resumeSec, firstTickSec float64
	for i := 0; i < b.N; i++ {
		if i > 0 {
			if err := e.q.Resume(context.Background()); err != nil {
				b.Fatal(err)
			}
			e.con.wait(b, tickRE, 30*time.Second)
		}
		var a, c net.Conn
		var relayed <-chan int64
		if rate > 0 {
			a, c, relayed = linkedPair(b, filepath.Join(e.dir, fmt.Sprintf("ours-%d.sock", i)), NewLink(rate), nil)
		} else {
			a, c = tcpPair(b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		type rr struct {
			rec     *Received
			q       *QEMU
			ticks   *tickLog
			resumed time.Time
			resume  float64
			err     error
		}
		rch := make(chan rr, 1)
		// The destination's ticker socket: the same path whether its QEMU
		// starts at the hello or after the commit.
		tdir := filepath.Join(e.dir, fmt.Sprintf("ticks-%d", i))
		os.MkdirAll(tdir, 0o755)
		qcfg := QEMUConfig{ExtraArgs: e.extra(tdir), Logger: zap.NewNop()}
		var prestart *QEMUConfig
		if os.Getenv("GDP_HANDOFF_DT_PRESTART") != "0" {
			prestart = &qcfg
		}
		go func() {
			rec, err := Receive(ctx, c, ReceiveConfig{Cache: e.dst, Dir: filepath.Join(e.dir, fmt.Sprintf("out-%d", i)), Logger: zap.NewNop(), PrestartVM: prestart})
			if err != nil || !rec.Go {
				rch <- rr{rec: rec, err: fmt.Errorf("receive: %v (go %v)", err, rec != nil && rec.Go)}
				return
			}
			// As the agent does (gdp handoffd, resume: true): the VM at
			// once, its ticker read from the moment its socket exists.
			t0 := time.Now()
			tch := make(chan *tickLog, 1)
			go func() {
				l, err := openTicks(tdir, 60*time.Second)
				if err != nil {
					b.Error(err)
				}
				tch <- l
			}()
			q, err := ResumeVM(ctx, e.dst, rec, qcfg)
			r := rr{rec: rec, q: q, resumed: time.Now(), resume: time.Since(t0).Seconds(), err: err}
			r.ticks = <-tch
			rch <- r
		}()
		from := time.Now()
		var err error
		rep, err = Send(ctx, a, e.handoff(), SendConfig{Cache: e.src, Mode: "zstd-1", Logger: zap.NewNop()})
		res := <-rch
		if res.q != nil {
			// Killed on every path (a b.Fatalf below too): a QEMU left
			// running would hold what its parent held, the heavy lock's fd.
			b.Cleanup(res.q.Kill)
		}
		a.Close()
		c.Close()
		if relayed != nil {
			<-relayed
		}
		if err != nil || res.err != nil || res.ticks == nil {
			cancel()
			b.Fatalf("handoff: send %v, receive and resume %v", err, res.err)
		}
		rec = res.rec
		pause, err = pauseOf(e.ticks, res.ticks, from)
		if err != nil {
			b.Fatalf("the guest's pause: %v", err)
		}
		ft, _ := res.ticks.waitTick(pause.Last, 0)
		resumeSec, firstTickSec = res.resume, ft.at.Sub(res.resumed).Seconds()
		res.ticks.close()
		res.q.Kill()
		cancel()
		if out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", e.top.Top, rec.Images["disk"]).CombinedOutput(); err != nil {
			b.Fatalf("disk at B differs from A's: %v: %s", err, out)
		}
	}
	d := rep.Downtime
	b.ReportMetric(pause.Gap.Seconds(), "guest_pause_s")
	b.ReportMetric(rep.DowntimeSec, "downtime_s")
	b.ReportMetric(d.StopSec, "stop_s")
	b.ReportMetric(d.RefreshSec, "refresh_s")
	b.ReportMetric(d.ScanSec, "scan_s")
	b.ReportMetric(d.RoundSec, "round_s")
	b.ReportMetric(d.StateSec, "state_s")
	b.ReportMetric(d.VerdictSec, "verdict_s")
	b.ReportMetric(resumeSec, "resume_s")
	b.ReportMetric(float64(d.Scanned["disk"])/1e6, "final_disk_MB")
	b.ReportMetric(float64(d.Scanned["memory"])/1e6, "final_mem_MB")
	var rounds string
	for _, r := range rep.Rounds {
		rounds += fmt.Sprintf(" [%d %.2f-%.2fs changed %.1f MB scanned disk %.1f MB mem %.1f MB]", r.Round, r.Start, r.End, float64(r.Changed)/1e6,
			float64(r.Scanned["disk"])/1e6, float64(r.Scanned["memory"])/1e6)
	}
	ct := rec.Commit
	b.Logf("ours: %v; downtime (stop to verdict) %.3fs: stop %.3f refresh %.3f scan %.3f round %.3f state %.3f verdict %.3f (destination: resolve %.3f verify wait %.3f sync %.3f state %.3f rename %.3f); then the destination's ResumeVM %.3fs, its first tick %.3fs later; total %.2fs; rounds%s",
		pause, rep.DowntimeSec, d.StopSec, d.RefreshSec, d.ScanSec, d.RoundSec, d.StateSec, d.VerdictSec,
		ct.ResolveSec, ct.VerifyWaitSec, ct.SyncSec, ct.StateSec, ct.RenameSec, resumeSec, firstTickSec, rep.TotalSec, rounds)
}

// qemuDownBench migrates e's VM (running again) with QEMU's own live
// migration — RAM, device state and disk (blk) over TCP, through the
// emulated link when rate > 0, to a destination QEMU that starts the VM
// itself when the stream ends (-incoming defer without -S, as a
// migration's destination runs) — and reports its pause as the guest saw
// it beside QEMU's own downtime figure (query-migrate: the stop to the
// end of the source's send).
func qemuDownBench(b *testing.B, e *vmEnv, diskMiB int, rate float64, fresh bool) {
	if !fresh { // stopped by our handoff
		if err := e.q.Resume(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	e.con.wait(b, tickRE, 30*time.Second)
	e.top.Close() // our bitmaps and NBD server
	dir := filepath.Join(e.dir, "qemu-b")
	os.MkdirAll(dir, 0o755)
	disk := filepath.Join(dir, "disk.qcow2")
	// blk: the whole disk to a blank one; inc (GDP_HANDOFF_DT_QEMU_INC=1):
	// only the overlay's clusters, to an overlay over the destination's copy
	// of the base — the base both cloudlets hold, as our handoff's.
	inc := os.Getenv("GDP_HANDOFF_DT_QEMU_INC") == "1"
	create := []string{"create", "-q", "-f", "qcow2", disk, fmt.Sprintf("%dM", diskMiB)}
	if inc {
		base, err := e.dst.Get(e.diskBase)
		if err != nil {
			b.Fatal(err)
		}
		create = []string{"create", "-q", "-f", "qcow2", "-b", base.Path, "-F", "raw", "-o", "cluster_size=65536", disk}
	}
	if out, err := exec.Command("qemu-img", create...).CombinedOutput(); err != nil {
		b.Fatalf("qemu-img create: %v: %s", err, out)
	}
	kernel, err := e.dst.Get(e.kernelID)
	if err != nil {
		b.Fatal(err)
	}
	initrd, err := e.dst.Get(e.initrdID)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dargs := append(e.extra(dir), "-incoming", "defer")
	check := os.Getenv("GDP_HANDOFF_DT_QEMU_CHECK") == "1"
	if check {
		dargs = append(dargs, "-S")
	}
	dst, err := StartQEMU(ctx, QEMUConfig{Dir: dir, MemoryMiB: e.memMiB, RAMPadKiB: e.ramPadKiB, Kernel: kernel.Path, Initrd: initrd.Path, Append: e.appendLine,
		MemPath: filepath.Join(dir, "ram"), Disk: disk, DiskFmt: "qcow2", Discard: e.discard,
		ExtraArgs: dargs, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Kill()
	ticks, err := openTicks(dir, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer ticks.close()
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	dport := pl.Addr().(*net.TCPAddr).Port
	pl.Close()
	if _, err := dst.Run("migrate-incoming", map[string]any{"uri": fmt.Sprintf("tcp:127.0.0.1:%d", dport)}); err != nil {
		b.Fatal(err)
	}
	// The source writes into a unix socket (the kernel's default buffer,
	// ~200 KB, as ours does in linkedPair); the relay drains it through
	// the link.
	rl, err := net.Listen("unix", filepath.Join(dir, "mig.sock"))
	if err != nil {
		b.Fatal(err)
	}
	defer rl.Close()
	link := NewLink(rate)
	var crossed atomic.Int64 // bytes through the link so far
	relayed := relayMigration(rl, dport, link, &crossed)
	// Our handoffs set x-ignore-shared: QEMU's own migration carries the RAM.
	if _, err := e.q.Run("migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": "zero-blocks", "state": true}, {"capability": "x-ignore-shared", "state": false}}}); err != nil {
		b.Fatal(err)
	}
	// GDP_HANDOFF_DT_QEMU_DOWNTIME_MS: the downtime QEMU aims for, when
	// not its default (300 ms) — an operator's setting for a link too slow
	// for the default to converge (Session 20, 5 Mbit/s).
	if ms := envInt("GDP_HANDOFF_DT_QEMU_DOWNTIME_MS", 0); ms > 0 {
		if _, err := e.q.Run("migrate-set-parameters", map[string]any{"downtime-limit": ms}); err != nil {
			b.Fatal(err)
		}
	}
	// QEMU's own settings, as they stand (its defaults unless
	// GDP_HANDOFF_DT_QEMU_DOWNTIME_MS): the downtime it aims for, its
	// bandwidth cap, auto-converge.
	var par struct {
		DowntimeLimit float64 `json:"downtime-limit"` // ms
		MaxBandwidth  float64 `json:"max-bandwidth"`  // bytes/s
	}
	r, err := e.q.Run("query-migrate-parameters", nil)
	if err != nil {
		b.Fatal(err)
	}
	json.Unmarshal(r, &par)
	var caps []struct {
		Capability string `json:"capability"`
		State      bool   `json:"state"`
	}
	if r, err = e.q.Run("query-migrate-capabilities", nil); err != nil {
		b.Fatal(err)
	}
	json.Unmarshal(r, &caps)
	autoConverge := 0.0
	for _, c := range caps {
		if c.Capability == "auto-converge" && c.State {
			autoConverge = 1
		}
	}
	b.Logf("QEMU live migration settings: downtime-limit %.0f ms, max-bandwidth %.1f MB/s, auto-converge %v; blk, inc %v (GDP_HANDOFF_DT_QEMU_INC: the overlay over the shared base, else the whole disk), zero-blocks on; the link %.0f Mbit/s",
		par.DowntimeLimit, par.MaxBandwidth/1e6, autoConverge == 1, inc, rate/1e6)
	b.ReportMetric(map[bool]float64{true: 1}[inc], "qemu_blk_inc")
	b.ReportMetric(par.DowntimeLimit, "qemu_downtime_limit_ms")
	b.ReportMetric(par.MaxBandwidth/1e6, "qemu_max_bandwidth_MBps")
	b.ReportMetric(autoConverge, "qemu_auto_converge")
	maxSec := envInt("GDP_HANDOFF_DT_QEMU_MAX_SEC", 240)
	from := time.Now()
	if _, err := e.q.Run("migrate", map[string]any{"uri": "unix:" + rl.Addr().String(), "blk": true, "inc": inc}); err != nil {
		b.Fatal(err)
	}
	var info struct {
		Status    string  `json:"status"`
		Total     float64 `json:"total-time"`
		Downtime  float64 `json:"downtime"`
		ErrorDesc string  `json:"error-desc"`
		RAM       struct {
			Transferred int64   `json:"transferred"`
			Remaining   int64   `json:"remaining"`
			DirtyRate   float64 `json:"dirty-pages-rate"` // pages/s
			Syncs       int     `json:"dirty-sync-count"`
			Mbps        float64 `json:"mbps"`
		} `json:"ram"`
		Disk struct {
			Transferred int64 `json:"transferred"`
			Remaining   int64 `json:"remaining"`
		} `json:"disk"`
	}
	var lastMbps float64
	// What had crossed the link when (polled with the status): QEMU's
	// downtime ends when its source has written the last byte to its
	// socket, not when the byte has crossed the link.
	type sample struct {
		at      time.Time
		crossed int64
	}
	var samples []sample
	var done time.Time
	for info.Status != "completed" {
		r, err := e.q.Run("query-migrate", nil)
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, sample{time.Now(), crossed.Load()})
		json.Unmarshal(r, &info)
		if info.Status == "failed" || info.Status == "cancelled" {
			b.Fatalf("QEMU live migration %s: %s", info.Status, info.ErrorDesc)
		}
		if info.RAM.Mbps > 0 {
			lastMbps = info.RAM.Mbps
		}
		if info.Status != "completed" && time.Since(from) > time.Duration(maxSec)*time.Second {
			// Not converged: say how far it got, and stop it (ours is
			// already measured; the run reports qemu_converged 0).
			e.q.Run("migrate_cancel", nil)
			b.Logf("QEMU live migration did not converge in %d s (GDP_HANDOFF_DT_QEMU_MAX_SEC): %.1f MB through the link, RAM %.1f MB sent %.1f MB left, disk %.1f MB sent %.1f MB left, %d dirty syncs, the guest dirtying %.0f pages/s, QEMU's bandwidth estimate %.1f Mbit/s",
				maxSec, float64(crossed.Load())/1e6, float64(info.RAM.Transferred)/1e6, float64(info.RAM.Remaining)/1e6,
				float64(info.Disk.Transferred)/1e6, float64(info.Disk.Remaining)/1e6, info.RAM.Syncs, info.RAM.DirtyRate, info.RAM.Mbps)
			b.ReportMetric(0, "qemu_converged")
			return
		}
		done = time.Now()
		time.Sleep(10 * time.Millisecond)
	}
	if check {
		// The destination has loaded the stream and waits (-S): its RAM
		// and disk against the source's, stopped since its downtime.
		t0 := time.Now()
		for {
			st, err := dst.Status()
			if err != nil {
				b.Fatal(err)
			}
			if st != "inmigrate" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		diff, first, err := ramDiff(e.memPath, filepath.Join(dir, "ram"))
		if err != nil {
			b.Fatal(err)
		}
		// The destination's qcow2 metadata is in its cache until flushed.
		if _, err := dst.Run("human-monitor-command", map[string]any{"command-line": "qemu-io virtio0 flush"}); err != nil {
			b.Fatal(err)
		}
		out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", e.top.Top, disk).CombinedOutput()
		same := err == nil
		b.Logf("QEMU live migration checked before its guest ran on (GDP_HANDOFF_DT_QEMU_CHECK; %.2f s, in its pause below): %d pages of the destination's RAM differ from the source's at its stop%s; its disk: %s",
			time.Since(t0).Seconds(), diff, first, strings.TrimSpace(string(out)))
		b.ReportMetric(float64(diff), "qemu_ram_diff_pages")
		b.ReportMetric(map[bool]float64{true: 1}[same], "qemu_disk_same")
		if _, err := dst.Run("cont", nil); err != nil {
			b.Fatal(err)
		}
	}
	pause, err := pauseOf(e.ticks, ticks, from)
	if err != nil {
		st, _ := dst.Run("query-status", nil)
		all := ticks.since(time.Time{})
		var lastN int
		if len(all) > 0 {
			lastN = all[len(all)-1].n
		}
		// QEMU's migration completed but its guest did not run on (seen at
		// 25 Mbit/s: a kernel panic or a soft lockup at the destination):
		// no pause to measure. Said, and reported (qemu_guest_ran 0), not
		// a failed run: ours is measured.
		b.Logf("QEMU live migration completed, but its guest did not carry on at the destination: %v (the destination: %s, %d ticks from it, the last %d; %.1f MB through the link; the migration took %.2f s, %d dirty syncs, its own downtime %.3f s)",
			err, st, len(all), lastN, float64(crossed.Load())/1e6, info.Total/1e3, info.RAM.Syncs, info.Downtime/1e3)
		if log, err := os.ReadFile(dst.SerialLog); err == nil { // whole: a panic's first lines say why
			b.Logf("%s:\n%s", dst.SerialLog, log)
		}
		b.ReportMetric(1, "qemu_converged")
		b.ReportMetric(0, "qemu_guest_ran")
		b.ReportMetric(info.Downtime/1e3, "qemu_downtime_s")
		return
	}
	e.q.Quit()
	n := <-relayed
	// The source stopped its VM about its downtime before the poll that
	// saw it completed (to within the 10 ms poll).
	stopAt := done.Add(-time.Duration(info.Downtime * float64(time.Millisecond)))
	var atStop int64
	for _, sm := range samples {
		if sm.at.After(stopAt) {
			break
		}
		atStop = sm.crossed
	}
	b.ReportMetric(1, "qemu_converged")
	b.ReportMetric(1, "qemu_guest_ran")
	if check { // not the pause alone: the check is in it
		b.ReportMetric(pause.Gap.Seconds(), "qemu_pause_with_check_s")
	} else {
		b.ReportMetric(pause.Gap.Seconds(), "qemu_pause_s")
	}
	b.ReportMetric(info.Downtime/1e3, "qemu_downtime_s")
	b.ReportMetric(float64(n-atStop)/1e6, "qemu_after_stop_MB")
	b.Logf("QEMU live migration: %v; its own downtime (query-migrate) %.3fs; %.1f MB through the link (ram %.1f MB, disk %.1f MB), of them %.2f MB after the source's stop (within 10 ms); %d dirty syncs, its bandwidth estimate %.1f Mbit/s; total %.2fs",
		pause, info.Downtime/1e3, float64(n)/1e6, float64(info.RAM.Transferred)/1e6, float64(info.Disk.Transferred)/1e6, float64(n-atStop)/1e6, info.RAM.Syncs, lastMbps, info.Total/1e3)
}

// linkedPair returns a sender's and a receiver's end of a connection
// through link, joined as QEMU's migration is in qemuDownBench: the sender
// writes into a unix socket at sock (the kernel's default buffer), whose
// other end relayMigration drains through link into loopback TCP to the
// receiver. The channel gets the bytes relayed once the sender's end closes.
func linkedPair(b *testing.B, sock string, link *Link, crossed *atomic.Int64) (net.Conn, net.Conn, <-chan int64) {
	b.Helper()
	ul, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	relayed := relayMigration(ul, tl.Addr().(*net.TCPAddr).Port, link, crossed)
	a, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	// The relay has accepted a's connection once it has dialled tl: only
	// then may the listeners close.
	c, err := tl.Accept()
	if err != nil {
		b.Fatal(err)
	}
	ul.Close()
	tl.Close()
	return a, c, relayed
}

// relayMigration carries one QEMU migration stream accepted on rl to the
// destination's port dport through link, counting what crossed it in
// crossed (nil: not counted); the channel gets the bytes relayed once the
// stream ends (0 when it could not be set up).
func relayMigration(rl net.Listener, dport int, link *Link, crossed *atomic.Int64) <-chan int64 {
	relayed := make(chan int64, 1)
	go func() {
		c, err := rl.Accept()
		if err != nil {
			relayed <- 0
			return
		}
		defer c.Close()
		d, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", dport))
		if err != nil {
			relayed <- 0
			return
		}
		defer d.Close()
		go io.Copy(c, d)
		var w io.Writer = link.Conn(d)
		if crossed != nil {
			w = linkCounter{w, crossed}
		}
		n, _ := io.Copy(w, c)
		relayed <- n
	}()
	return relayed
}

// linkCounter counts the bytes written through it.
type linkCounter struct {
	w io.Writer
	n *atomic.Int64
}

func (c linkCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// envString is the environment variable name, or def when it is unset or empty.
func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// envInt is the positive integer in the environment variable name, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// guestDirtyRate is QEMU's estimate of how fast q's guest dirties its RAM
// (calc-dirty-rate over secs seconds, then query-dirty-rate), in MiB/s —
// QEMU 7.2 reports whole MiB/s, so below 1 it reads 0 (ramDirtyRate has
// the finer figure). Page sampling (hashes of sampled pages before and
// after): QEMU 7.2 under TCG exits on the dirty-bitmap mode.
func guestDirtyRate(q *QEMU, secs int) (rate float64, mode string, err error) {
	for _, mode = range []string{"page-sampling"} {
		args := map[string]any{"calc-time": secs, "mode": mode}
		if mode == "page-sampling" {
			args["sample-pages"] = 4096 // QEMU's maximum per GiB (default 512)
		}
		if _, err = q.Run("calc-dirty-rate", args); err != nil {
			continue
		}
		deadline := time.Now().Add(time.Duration(secs)*time.Second + 30*time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			r, err := q.Run("query-dirty-rate", nil)
			if err != nil {
				return 0, mode, err
			}
			var st struct {
				Status string  `json:"status"`
				Rate   float64 `json:"dirty-rate"`
			}
			json.Unmarshal(r, &st)
			if st.Status == "measured" {
				return st.Rate, mode, nil
			}
		}
		return 0, mode, fmt.Errorf("calc-dirty-rate (%s): not measured within %ds", mode, secs+30)
	}
	return 0, mode, err
}

// ramDirtyRate is how fast the guest dirties its RAM file (the shared
// memory backend at path), in MB/s: the 4 KiB pages that differ between
// two copies of it d apart (a page written twice counts once, as in a
// pre-copy round), divided by d.
func ramDirtyRate(path string, d time.Duration) (float64, error) {
	a, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(d)
	b, err := os.ReadFile(path)
	el := time.Since(t0)
	if err != nil {
		return 0, err
	}
	var n int64
	for off := 0; off+BlockSize <= min(len(a), len(b)); off += BlockSize {
		if string(a[off:off+BlockSize]) != string(b[off:off+BlockSize]) {
			n++
		}
	}
	return float64(n*BlockSize) / 1e6 / el.Seconds(), nil
}

// ramDiff counts the 4 KiB pages in which two RAM files differ, and
// names the first few (offset and bytes changed).
func ramDiff(pathA, pathB string) (n int, first string, err error) {
	a, err := os.ReadFile(pathA)
	if err != nil {
		return 0, "", err
	}
	c, err := os.ReadFile(pathB)
	if err != nil {
		return 0, "", err
	}
	if len(a) != len(c) {
		return 0, "", fmt.Errorf("RAM files of %d and %d bytes", len(a), len(c))
	}
	var offs []string
	for off := 0; off+BlockSize <= len(a); off += BlockSize {
		pa, pc := a[off:off+BlockSize], c[off:off+BlockSize]
		if string(pa) == string(pc) {
			continue
		}
		n++
		if len(offs) < 8 {
			bytes := 0
			for i := range pa {
				if pa[i] != pc[i] {
					bytes++
				}
			}
			offs = append(offs, fmt.Sprintf("%#x (%d B)", off, bytes))
		}
	}
	if n > 0 {
		first = ": " + strings.Join(offs, ", ")
	}
	return n, first, nil
}
