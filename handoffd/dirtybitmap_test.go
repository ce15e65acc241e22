package handoffd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// dirtyGuestInit: a counter on the console and no disk writes of its own;
// "w N" writes 64 KiB of known data at 64 KiB block N of the disk,
// synchronously, then says WROTE N.
const dirtyGuestInit = GuestBoot + `echo GUEST-READY
read line
seq 1 60000 | sed 's/^/handoff-known-data-/' > /tmp/mem.dat
echo WORKLOAD-DONE
( i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 300000; done ) &
while read cmd arg; do
  case "$cmd" in
  sum) echo "SUM $(md5sum /tmp/mem.dat | cut -d' ' -f1)" ;;
  w) dd if=/tmp/mem.dat of=/dev/vda bs=65536 seek=$arg count=1 conv=notrunc,fsync 2>/dev/null; echo "WROTE $arg" ;;
  esac
done
`

// writeBeforeStop is the VM with a guest write just before it stops:
// after the last pre-copy round, so only the final round can carry it.
type writeBeforeStop struct {
	*QEMU
	con *console
	blk int // 64 KiB block the guest writes
}

func (v *writeBeforeStop) Stop(ctx context.Context) ([]byte, error) {
	v.con.send(fmt.Sprintf("w %d", v.blk))
	if _, err := v.con.waitErr(regexp.MustCompile(fmt.Sprintf(`^WROTE %d$`, v.blk)), 60*time.Second); err != nil {
		return nil, err
	}
	return v.QEMU.Stop(ctx)
}

// TestQEMUFinalRoundCopiesOnlyWrites: the VM's qcow2 overlay holds 24 MiB
// of its own data; the guest writes 64 KiB after the last pre-copy round,
// just before the stop. The final round (the VM paused) copies and scans
// only what the guest wrote since the round before — its dirty bitmap —
// not the whole overlay, and the destination's disk still equals the
// source's, the late write included.
func TestQEMUFinalRoundCopiesOnlyWrites(t *testing.T) {
	const fillMiB = 24
	fill := func(top string) { fillOverlay(t, top, 4, fillMiB) }
	e := startVMWith(t, vmOpts{init: dirtyGuestInit, fill: fill, cluster: 64 << 10})
	h := e.handoff()
	h.VM = &writeBeforeStop{QEMU: e.q, con: e.con, blk: 2}
	a, c := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	type rr struct {
		rec *Received
		err error
	}
	rch := make(chan rr, 1)
	go func() {
		rec, err := Receive(ctx, c, ReceiveConfig{Cache: e.dst, Dir: filepath.Join(e.dir, "out"), Logger: zaptest.NewLogger(t).Named("receiver")})
		rch <- rr{rec, err}
	}()
	rep, err := Send(ctx, a, h, SendConfig{Cache: e.src, Logger: zaptest.NewLogger(t).Named("sender")})
	res := <-rch
	if err != nil || res.err != nil {
		t.Fatalf("handoff: send %v, receive %v", err, res.err)
	}
	if err := e.top.BitmapErr(); err != nil {
		t.Fatalf("the dirty bitmap was not used: %v", err)
	}
	d := rep.Downtime
	t.Logf("rounds %+v; downtime %.3fs %+v; the final refresh copied %d bytes", rep.Rounds, rep.DowntimeSec, *d, e.top.Copied())
	if len(rep.Rounds) < 2 {
		t.Fatalf("%d rounds: want pre-copy and a final round", len(rep.Rounds))
	}
	if r1 := rep.Rounds[0].Scanned["disk"]; r1 < fillMiB<<20 {
		t.Fatalf("round 1 scanned %d bytes of the disk; the overlay holds %d", r1, fillMiB<<20)
	}
	// The final round: the 64 KiB written before the stop (the bitmap's
	// granularity is the 64 KiB cluster), not the 24 MiB overlay.
	const wrote, most = 64 << 10, 1 << 20
	if got := d.Scanned["disk"]; got < wrote || got > most {
		t.Fatalf("the final round scanned %d bytes of the disk: want the guest's %d-byte write since the last round (at most %d), not the %d MiB overlay", got, wrote, most, fillMiB)
	}
	if got := e.top.Copied(); got < wrote || got > most {
		t.Fatalf("the final refresh copied %d bytes of the overlay: want the guest's %d-byte write (at most %d), not the %d MiB overlay", got, wrote, most, fillMiB)
	}
	// The late write reached the destination: its disk equals the stopped
	// source's.
	if out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", e.top.Top, res.rec.Images["disk"]).CombinedOutput(); err != nil {
		t.Fatalf("disk at B differs from A's: %v: %s", err, out)
	}
}

// fillOverlay writes mib MiB of text blocks into the qcow2 overlay top at
// offset atMiB (qemu-io, before the VM starts), so that the overlay holds
// data of its own as a long-running guest's does.
func fillOverlay(tb testing.TB, top string, atMiB, mib int) {
	tb.Helper()
	data := make([]byte, mib<<20)
	rng := rngFor(9)
	for i := 0; i < len(data)/BlockSize; i++ {
		copy(data[i*BlockSize:], textBlock(rng))
	}
	src := top + ".fill"
	if err := os.WriteFile(src, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	defer os.Remove(src)
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -s %s %dM %dM", src, atMiB, mib), top).CombinedOutput(); err != nil {
		tb.Fatalf("qemu-io: %v: %s", err, out)
	}
}

// TestQEMUDirtyBitmapClash: two trackers on one VM (a second handoff of
// it) would read and disable each other's bitmaps and miss writes
// silently; each tracker's bitmaps carry its own name, and a tracker that
// finds another live one — in this process, or a bitmap of another
// running process — refuses (the whole-overlay fallback, BitmapErr says
// why) and leaves the first one's bitmap alone: the first still sees the
// guest's write. A bitmap a dead sender left is removed, not a clash.
func TestQEMUDirtyBitmapClash(t *testing.T) {
	e := startVMWith(t, vmOpts{init: dirtyGuestInit, cluster: 64 << 10})
	node := func() string {
		r, err := e.q.Run("query-block", nil)
		if err != nil {
			t.Fatal(err)
		}
		var devs []struct {
			Inserted *struct {
				NodeName string `json:"node-name"`
			} `json:"inserted"`
		}
		json.Unmarshal(r, &devs)
		for _, d := range devs {
			if d.Inserted != nil {
				return d.Inserted.NodeName
			}
		}
		t.Fatal("no block device")
		return ""
	}()
	addBitmap := func(name string) {
		if _, err := e.q.Run("block-dirty-bitmap-add", map[string]any{"node": node, "name": name}); err != nil {
			t.Fatal(err)
		}
	}
	bitmaps := func() []string {
		r, _ := e.q.Run("query-block", nil)
		var devs []struct {
			Inserted *struct {
				Bitmaps []struct {
					Name string `json:"name"`
				} `json:"dirty-bitmaps"`
			} `json:"inserted"`
		}
		json.Unmarshal(r, &devs)
		var names []string
		for _, d := range devs {
			if d.Inserted != nil {
				for _, b := range d.Inserted.Bitmaps {
					names = append(names, b.Name)
				}
			}
		}
		return names
	}
	// A dead sender's bitmap (a pid that has exited) and one from before
	// per-tracker names: stale, removed.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	addBitmap(fmt.Sprintf("%s%d-deadbeef-3", bitmapPrefix, dead.Process.Pid))
	addBitmap(bitmapPrefix + "7")
	a, err := newDirtyTracker(e.q, "qemu-img", e.top.Top)
	if err != nil {
		t.Fatalf("first tracker: %v", err)
	}
	defer a.close()
	if got := bitmaps(); len(got) != 0 {
		t.Fatalf("bitmaps after the first tracker started: %v, want the stale ones removed", got)
	}
	// A second tracker before the first has a bitmap (its NBD server
	// runs): refused, the server left alone.
	if _, err := newDirtyTracker(e.q, "qemu-img", e.top.Top); !errors.Is(err, errBitmapClash) {
		t.Fatalf("second tracker in this process: %v, want %v", err, errBitmapClash)
	}
	if _, ok, err := a.next(); err != nil || ok {
		t.Fatalf("first tracker's first bitmap: ok %v err %v", ok, err)
	}
	// Through QCOW2Top, with the first tracker's bitmap recording: the
	// whole-overlay fallback, BitmapErr says why.
	other := &QCOW2Top{Top: e.top.Top, Raw: filepath.Join(e.dir, "other.raw"), QEMU: e.q}
	defer other.Close()
	for i := 0; i < 2; i++ {
		if err := other.Refresh(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := other.Changed(); ok || !errors.Is(other.BitmapErr(), errBitmapClash) {
		t.Fatalf("second QCOW2Top: changed known %v, BitmapErr %v; want the whole overlay and %v", ok, other.BitmapErr(), errBitmapClash)
	}
	// With no tracker left in this process, another running process's
	// bitmap (pid 1 runs) is a clash too.
	a.close()
	addBitmap(fmt.Sprintf("%s1-0badf00d-1", bitmapPrefix))
	if _, err := newDirtyTracker(e.q, "qemu-img", e.top.Top); !errors.Is(err, errBitmapClash) {
		t.Fatalf("a tracker beside another running process's bitmap: %v, want %v", err, errBitmapClash)
	}
	e.q.Run("block-dirty-bitmap-remove", map[string]any{"node": node, "name": fmt.Sprintf("%s1-0badf00d-1", bitmapPrefix)})
	a, err = newDirtyTracker(e.q, "qemu-img", e.top.Top)
	if err != nil {
		t.Fatalf("tracker after the clash cleared: %v", err)
	}
	defer a.close()
	if _, _, err := a.next(); err != nil {
		t.Fatal(err)
	}
	if _, err := newDirtyTracker(e.q, "qemu-img", e.top.Top); !errors.Is(err, errBitmapClash) {
		t.Fatalf("second tracker beside a recording one: %v, want %v", err, errBitmapClash)
	}
	// The first tracker still sees the guest's write: its bitmap was
	// neither removed nor disabled by the refused ones.
	e.con.send("w 5")
	e.con.wait(t, regexp.MustCompile(`^WROTE 5$`), 60*time.Second)
	dirty, ok, err := a.next()
	if err != nil || !ok {
		t.Fatalf("first tracker after the refusals: ok %v err %v", ok, err)
	}
	if len(intersect(dirty, 5<<16, 1<<16)) == 0 {
		t.Fatalf("first tracker's dirty ranges %v miss the guest's write at %d", dirty, 5<<16)
	}
}
