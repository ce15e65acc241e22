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
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// downtimeGuestInit: after "go" the guest writes 1 MiB to its disk, then
// every 300 ms a tick and 64 KiB at the next offset of a 16 MiB area (a
// service's log and state), synchronously: during the handoff its disk
// keeps changing a little, as a live one does.
const downtimeGuestInit = GuestBoot + `echo GUEST-READY
read line
seq 1 40000 | sed 's/^/handoff-known-data-/' > /tmp/mem.dat
dd if=/tmp/mem.dat of=/dev/vda bs=4096 seek=256 count=256 conv=notrunc 2>/dev/null
sync
echo WORKLOAD-DONE
( i=0; while :; do i=$((i+1)); echo "tick $i"; dd if=/tmp/mem.dat of=/dev/vda bs=65536 seek=$((512 + i % 256)) count=1 conv=notrunc,fsync 2>/dev/null; usleep 300000; done ) &
` + guestTicker + `while read cmd; do
  case "$cmd" in
  sum) echo "SUM $(md5sum /tmp/mem.dat | cut -d' ' -f1)" ;;
  esac
done
`

// BenchmarkVMDowntime measures a VM handoff's downtime and its parts
// (Report.Downtime, the destination's CommitTiming) on a real QEMU guest
// shaped like the dataset's (docs/HANDOFF.md §8): 256 MiB of RAM, a disk
// whose qcow2 overlay (64 KiB clusters, QEMU's default) already holds
// 192 MiB of the VM's own data when it boots, the guest writing a little
// all along. Loopback TCP, no link emulation by default: what is left is
// the downtime's own work. The destination then resumes the VM
// (ResumeVM), and the pause is also measured as the guest sees it
// (guestTicker: the gap in its ticks from the source's last to the
// destination's first, guest_pause_s); then QEMU's own live migration of
// the same running guest (RAM and disk, blk) is measured the same way
// (qemu_pause_s, beside its query-migrate downtime, qemu_downtime_s).
// Knobs: GDP_HANDOFF_DT_MEM_MIB (256), GDP_HANDOFF_DT_FILL_MIB (192),
// GDP_HANDOFF_DT_RATE_MBIT (0: no link; else both transfers pass an
// emulated link of that rate), GDP_HANDOFF_DT_QEMU=0 skips QEMU's,
// GDP_HANDOFF_DT_PRESTART=0 starts our destination's QEMU after the commit
// instead of at the hello (ReceiveConfig.PrestartVM).
//
//	flock /work/wt/heavy.lock nice -n 5 go test -run '^$' -bench VMDowntime -benchtime 1x ./handoffd
func BenchmarkVMDowntime(b *testing.B) {
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
	e := startVMWith(b, vmOpts{init: downtimeGuestInit, baseDisk: baseDisk, memMiB: memMiB, cluster: 64 << 10, fill: fill, ticks: true})
	checkTicker(b, e.ticks)
	rate := float64(envInt("GDP_HANDOFF_DT_RATE_MBIT", 0)) * 1e6
	b.ResetTimer()
	vmDownBench(b, e, rate)
	b.StopTimer()
	if os.Getenv("GDP_HANDOFF_DT_QEMU") != "0" {
		qemuDownBench(b, e, baseMiB, rate)
	}
}

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
		a, c := tcpPair(b)
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
		a.Close()
		c.Close()
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
func qemuDownBench(b *testing.B, e *vmEnv, diskMiB int, rate float64) {
	if err := e.q.Resume(context.Background()); err != nil {
		b.Fatal(err)
	}
	e.con.wait(b, tickRE, 30*time.Second)
	e.top.Close() // our bitmaps and NBD server
	dir := filepath.Join(e.dir, "qemu-b")
	os.MkdirAll(dir, 0o755)
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, fmt.Sprintf("%dM", diskMiB)).CombinedOutput(); err != nil {
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
	dst, err := StartQEMU(ctx, QEMUConfig{Dir: dir, MemoryMiB: e.memMiB, Kernel: kernel.Path, Initrd: initrd.Path, Append: e.appendLine,
		MemPath: filepath.Join(dir, "ram"), Disk: disk, DiskFmt: "qcow2", Discard: e.discard,
		ExtraArgs: append(e.extra(dir), "-incoming", "defer"), Logger: zap.NewNop()})
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
	rl, err := net.Listen("tcp", "127.0.0.1:0")
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
	from := time.Now()
	if _, err := e.q.Run("migrate", map[string]any{"uri": fmt.Sprintf("tcp:127.0.0.1:%d", rl.Addr().(*net.TCPAddr).Port), "blk": true}); err != nil {
		b.Fatal(err)
	}
	var info struct {
		Status    string  `json:"status"`
		Total     float64 `json:"total-time"`
		Downtime  float64 `json:"downtime"`
		ErrorDesc string  `json:"error-desc"`
		RAM       struct {
			Transferred int64 `json:"transferred"`
		} `json:"ram"`
		Disk struct {
			Transferred int64 `json:"transferred"`
		} `json:"disk"`
	}
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
		done = time.Now()
		time.Sleep(10 * time.Millisecond)
	}
	pause, err := pauseOf(e.ticks, ticks, from)
	if err != nil {
		b.Fatalf("QEMU live migration, the guest's pause: %v", err)
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
	b.ReportMetric(pause.Gap.Seconds(), "qemu_pause_s")
	b.ReportMetric(info.Downtime/1e3, "qemu_downtime_s")
	b.ReportMetric(float64(n-atStop)/1e6, "qemu_after_stop_MB")
	b.Logf("QEMU live migration: %v; its own downtime (query-migrate) %.3fs; %.1f MB through the link (ram %.1f MB, disk %.1f MB), of them %.2f MB after the source's stop (within 10 ms); total %.2fs",
		pause, info.Downtime/1e3, float64(n)/1e6, float64(info.RAM.Transferred)/1e6, float64(info.Disk.Transferred)/1e6, float64(n-atStop)/1e6, info.Total/1e3)
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

// envInt is the positive integer in the environment variable name, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
