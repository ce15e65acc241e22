package handoffd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// trimGuestInit: the guest mounts its ext4 disk read-write; on "go" it
// writes 8 MiB of random data to dl.bin (a download; O_DIRECT, so its
// content is not left in freed page-cache pages), deletes it and old.dat
// (content its base disk holds), writes new.dat (known data, also kept in
// RAM), and trims the file system's free blocks (fstrim,
// as Debian's fstrim.timer does) before WORKLOAD-DONE; then a counter.
// "sum" prints the MD5 of the data in RAM, "dsum" of new.dat read back from
// the disk with the page cache dropped.
const trimGuestInit = GuestBoot + `mount -t ext4 /dev/vda /mnt || echo MOUNT-FAILED
echo GUEST-READY
read line
dd if=/dev/urandom of=/mnt/dl.bin bs=1M count=8 oflag=direct 2>/dev/null
sync
rm /mnt/dl.bin /mnt/old.dat
seq 1 60000 | sed 's/^/handoff-known-data-/' > /tmp/mem.dat
cp /tmp/mem.dat /mnt/new.dat
sync
echo "TRIM $(fstrim -v /mnt 2>&1)"
sync
echo WORKLOAD-DONE
( i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 300000; done ) &
while read cmd; do
  case "$cmd" in
  sum) echo "SUM $(md5sum /tmp/mem.dat | cut -d' ' -f1)" ;;
  dsum) sync; echo 3 > /proc/sys/vm/drop_caches; echo "DSUM $(md5sum /mnt/new.dat | cut -d' ' -f1)" ;;
  rmnew) rm /mnt/new.dat; sync; echo "TRIMMED $(fstrim -v /mnt 2>&1)"; sync ;;
  esac
done
`

// TestQEMUHandoffTrimmed: a guest on a drive with discard=unmap deletes a
// 16 MiB file its base disk holds and an 8 MiB download it wrote, and runs
// fstrim; the freed blocks become zero clusters in its qcow2 overlay, the
// handoff sends none of the download and old.dat's blocks as zero records
// (not their stale content: they are zeros at the destination, and
// the disk there equals the source's, whole-image digest included), and
// the guest carries on at the destination, reading its new file back from
// the rebuilt disk.
func TestQEMUHandoffTrimmed(t *testing.T) {
	for _, c := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed (e2fsprogs)", c)
		}
	}
	var oldBlocks []int64 // old.dat's blocks in the base disk
	base := func(path string) {
		src := filepath.Join(t.TempDir(), "root")
		os.MkdirAll(src, 0o755)
		old := make([]byte, 16<<20)
		rng := rngFor(7)
		for b := 0; b < len(old)/BlockSize; b++ {
			copy(old[b*BlockSize:], textBlock(rng))
		}
		os.WriteFile(filepath.Join(src, "old.dat"), old, 0o644)
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-U", "0c9b1f3e-5a7d-4e21-8f60-3d2c1b0a9e87",
			"-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", "-d", src, path, "40M").CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v: %s", err, out)
		}
		out, err := exec.Command("debugfs", "-R", "blocks /old.dat", path).Output()
		if err != nil {
			t.Fatalf("debugfs blocks: %v", err)
		}
		for _, f := range strings.Fields(string(out)) {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatalf("debugfs blocks: %q", out)
			}
			oldBlocks = append(oldBlocks, n)
		}
		if len(oldBlocks) != len(old)/BlockSize {
			t.Fatalf("old.dat has %d blocks, want %d", len(oldBlocks), len(old)/BlockSize)
		}
	}
	e := startVMWith(t, vmOpts{init: trimGuestInit, baseDisk: base, discard: true})
	t.Logf("guest: %s", strings.Join(e.trimLines(), "; "))

	a, c := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
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
	rep, err := Send(ctx, a, e.handoff(), SendConfig{Cache: e.src, Logger: zaptest.NewLogger(t).Named("sender")})
	res := <-rch
	if err != nil || res.err != nil {
		t.Fatalf("handoff: send %v, receive %v", err, res.err)
	}
	rec := res.rec
	if !rec.Go {
		t.Fatal("the destination committed without the go")
	}
	// The disk at B equals A's stopped disk (and the receiver checked the
	// whole-image digest before it committed).
	if out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", e.top.Top, rec.Images["disk"]).CombinedOutput(); err != nil {
		t.Fatalf("disk at B differs from A's: %v: %s", err, out)
	}
	// The trimmed blocks: old.dat's, all text in the base; at B zeros,
	// except those ext4 gave to new.dat.
	disk, err := os.ReadFile(rec.Images["disk"])
	if err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	for _, b := range oldBlocks {
		if isZero(disk[b*BlockSize : (b+1)*BlockSize]) {
			zero++
		}
	}
	newBlocks := int64(1_560_000/BlockSize + 1) // new.dat: 60,000 lines of ~26 bytes
	if zero < int64(len(oldBlocks))-newBlocks {
		t.Fatalf("%d of old.dat's %d trimmed blocks are zeros at B; want all but new.dat's ~%d", zero, len(oldBlocks), newBlocks)
	}
	if rep.Blocks.Zero < zero {
		t.Fatalf("the report counts %d zero records; %d trimmed blocks came as zeros", rep.Blocks.Zero, zero)
	}
	// dl.bin's 8 MiB of random data, written and deleted, are not sent.
	if lim := int64(4 << 20); rep.WireBytes > lim {
		t.Fatalf("%d bytes on the wire: the deleted download's 8 MiB were sent? want under %d", rep.WireBytes, lim)
	}
	t.Logf("trimmed: %d of old.dat's %d blocks zero at B; report: %d zero, %d base, %d dup, %d data records; changed %d bytes, wire %d, total %.2fs, downtime %.2fs",
		zero, len(oldBlocks), rep.Blocks.Zero, rep.Blocks.Base, rep.Blocks.Dup, rep.Blocks.Data, rep.ChangedBytes, rep.WireBytes, rep.TotalSec, rep.DowntimeSec)

	// The guest carries on at B.
	tickA := e.con.lastTick()
	vmDir := filepath.Join(e.dir, "vm-b")
	os.MkdirAll(vmDir, 0o755)
	qb, err := ResumeVM(ctx, e.dst, rec, QEMUConfig{Dir: vmDir, Logger: zaptest.NewLogger(t).Named("qemu-b")})
	if err != nil {
		t.Fatalf("the VM at B did not start: %v", err)
	}
	defer qb.Kill()
	t.Cleanup(func() { dumpLog(t, qb.SerialLog) })
	e.q.Quit()
	conB := openConsole(t, qb.Serial)
	n1 := atoi(conB.wait(t, tickRE, 30*time.Second)[1])
	n2 := atoi(conB.wait(t, tickRE, 30*time.Second)[1])
	if n1 <= tickA || n2 <= n1 {
		t.Fatalf("counter at B: %d then %d; A's last was %d: want it to carry on", n1, n2, tickA)
	}
	conB.send("sum")
	if sum := conB.wait(t, regexp.MustCompile(`^SUM ([0-9a-f]{32})$`), 30*time.Second)[1]; sum != e.sumA {
		t.Fatalf("guest data MD5 at B %s, at A %s", sum, e.sumA)
	}
	conB.send("dsum")
	if sum := conB.wait(t, regexp.MustCompile(`^DSUM ([0-9a-f]{32})$`), 30*time.Second)[1]; sum != e.sumA {
		t.Fatalf("new.dat read from B's disk: MD5 %s, the data's %s", sum, e.sumA)
	}
	// At B the drive passes discards on too (VMMeta.Discard): the guest
	// deletes new.dat and trims, and its blocks become holes in B's raw
	// image, so a handoff from B leaves them out as well.
	allocated := func() int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(rec.Images["disk"], &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	before := allocated()
	conB.send("rmnew")
	line := conB.wait(t, regexp.MustCompile(`^TRIMMED (.*)$`), 30*time.Second)[1]
	deadline := time.Now().Add(10 * time.Second)
	for allocated() > before-1_000_000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := allocated(); after > before-1_000_000 {
		t.Fatalf("B's disk after the guest deleted new.dat (~1.5 MB) and trimmed (%s): %d bytes allocated, %d before: the drive at B does not pass discards on",
			line, after, before)
	}
}

// trimLines returns what the guest said about its fstrim.
func (e *vmEnv) trimLines() []string {
	b, _ := os.ReadFile(e.q.SerialLog)
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("TRIM ")) || bytes.Contains(l, []byte("MOUNT-FAILED")) {
			out = append(out, string(bytes.TrimSpace(l)))
		}
	}
	return out
}
