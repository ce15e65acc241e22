package handoffd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
while read cmd; do
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
// all along. Loopback TCP, no link emulation: what is left is the
// downtime's own work. Knobs: GDP_HANDOFF_DT_MEM_MIB (256),
// GDP_HANDOFF_DT_FILL_MIB (192).
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
	e := startVMWith(b, vmOpts{init: downtimeGuestInit, baseDisk: baseDisk, memMiB: memMiB, cluster: 64 << 10, fill: fill})
	b.ResetTimer()
	vmDownBench(b, e)
}

// vmDownBench hands e's VM off b.N times (resuming the source between) and
// reports the last run's downtime and parts.
func vmDownBench(b *testing.B, e *vmEnv) {
	var rep *Report
	var rec *Received
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
			rec *Received
			err error
		}
		rch := make(chan rr, 1)
		go func() {
			rec, err := Receive(ctx, c, ReceiveConfig{Cache: e.dst, Dir: filepath.Join(e.dir, fmt.Sprintf("out-%d", i)), Logger: zap.NewNop()})
			rch <- rr{rec, err}
		}()
		var err error
		rep, err = Send(ctx, a, e.handoff(), SendConfig{Cache: e.src, Mode: "zstd-1", Logger: zap.NewNop()})
		res := <-rch
		cancel()
		a.Close()
		c.Close()
		if err != nil || res.err != nil {
			b.Fatalf("handoff: send %v, receive %v", err, res.err)
		}
		rec = res.rec
		if out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", e.top.Top, rec.Images["disk"]).CombinedOutput(); err != nil {
			b.Fatalf("disk at B differs from A's: %v: %s", err, out)
		}
	}
	d := rep.Downtime
	b.ReportMetric(rep.DowntimeSec, "downtime_s")
	b.ReportMetric(d.StopSec, "stop_s")
	b.ReportMetric(d.RefreshSec, "refresh_s")
	b.ReportMetric(d.ScanSec, "scan_s")
	b.ReportMetric(d.RoundSec, "round_s")
	b.ReportMetric(d.StateSec, "state_s")
	b.ReportMetric(d.VerdictSec, "verdict_s")
	b.ReportMetric(float64(d.Scanned["disk"])/1e6, "final_disk_MB")
	b.ReportMetric(float64(d.Scanned["memory"])/1e6, "final_mem_MB")
	var rounds string
	for _, r := range rep.Rounds {
		rounds += fmt.Sprintf(" [%d %.2f-%.2fs changed %.1f MB scanned disk %.1f MB mem %.1f MB]", r.Round, r.Start, r.End, float64(r.Changed)/1e6,
			float64(r.Scanned["disk"])/1e6, float64(r.Scanned["memory"])/1e6)
	}
	ct := rec.Commit
	b.Logf("downtime %.3fs: stop %.3f refresh %.3f scan %.3f round %.3f state %.3f verdict %.3f (destination: resolve %.3f verify wait %.3f sync %.3f state %.3f rename %.3f); total %.2fs; rounds%s",
		rep.DowntimeSec, d.StopSec, d.RefreshSec, d.ScanSec, d.RoundSec, d.StateSec, d.VerdictSec,
		ct.ResolveSec, ct.VerifyWaitSec, ct.SyncSec, ct.StateSec, ct.RenameSec, rep.TotalSec, rounds)
}

// envInt is the positive integer in the environment variable name, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
