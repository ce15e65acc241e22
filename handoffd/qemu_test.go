package handoffd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/client"
)

// guestFiles finds what a real guest needs: QEMU, qemu-img, a static
// busybox and Debian's kernel with its virtio modules (FindGuestFiles).
// Missing pieces skip the test, saying which.
func guestFiles(t testing.TB) (kernel string, mods map[string]string, busybox string) {
	t.Helper()
	kernel, mods, busybox, err := FindGuestFiles(os.Getenv("GDP_HANDOFF_KERNEL_DIR"))
	if err != nil {
		t.Skipf("%v: the QEMU handoff test cannot run", err)
	}
	return kernel, mods, busybox
}

// guestModules in load order: virtio-blk for the disk.
var guestModules = GuestModules

// guestInit: boot, say GUEST-READY, wait for "go", then the workload: 5 MB
// of known data in a RAM file system (guest memory) and written to the disk
// at 1 MiB, then a counter on the console every 300 ms; "sum" prints the
// data's MD5 from guest memory.
const guestInit = GuestBoot + `echo GUEST-READY
read line
seq 1 60000 | sed 's/^/handoff-known-data-/' > /tmp/mem.dat
dd if=/tmp/mem.dat of=/dev/vda bs=4096 seek=256 conv=notrunc 2>/dev/null
sync
echo WORKLOAD-DONE
( i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 300000; done ) &
while read cmd; do
  case "$cmd" in
  sum) echo "SUM $(md5sum /tmp/mem.dat | cut -d' ' -f1)" ;;
  esac
done
`

func buildInitramfs(t testing.TB, path, busybox string, mods map[string]string, init string) {
	t.Helper()
	if err := BuildInitramfs(path, busybox, mods, init); err != nil {
		t.Fatal(err)
	}
}

// console is a guest's serial console: lines in, commands out.
type console struct {
	conn  net.Conn
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

func openConsole(t testing.TB, sock string) *console {
	t.Helper()
	var conn net.Conn
	var err error
	for i := 0; i < 100; i++ {
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("console %s: %v", sock, err)
	}
	c := &console{conn: conn}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, strings.TrimRight(sc.Text(), "\r"))
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.lines = append(c.lines, "<closed>")
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *console) send(s string) { c.conn.Write([]byte(s + "\n")) }

// wait returns the first line (from index from) matching re, or fails after d.
func (c *console) wait(t testing.TB, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	m, err := c.waitErr(re, d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitErr is wait for a goroutine other than the test's: an error, not a
// failed test.
func (c *console) waitErr(re *regexp.Regexp, d time.Duration) ([]string, error) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := 0
	for {
		for ; seen < len(c.lines); seen++ {
			if m := re.FindStringSubmatch(c.lines[seen]); m != nil {
				c.lines = c.lines[seen+1:]
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			tail := c.lines[max(0, len(c.lines)-15):]
			return nil, fmt.Errorf("console: no line matching %q within %s; last lines:\n%s", re, d, strings.Join(tail, "\n"))
		}
		c.cond.Wait()
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

var tickRE = regexp.MustCompile(`^tick (\d+)$`)

// lastTick drains the lines seen so far and returns the highest tick.
func (c *console) lastTick() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if m := tickRE.FindStringSubmatch(l); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
	}
	c.lines = nil
	return n
}

// vmEnv is a VM on cloudlet A booted on a base disk, with its base memory
// (the RAM file just after boot) in both cloudlets' caches, then dirtied by
// its workload.
type vmEnv struct {
	dir                string
	src, dst           *BaseCache
	q                  *QEMU
	con                *console
	top                *QCOW2Top
	memPath            string
	memBase, diskBase  string
	kernelID, initrdID string
	sumA               string
	appendLine         string
	discard            bool
	memMiB             int
	ramPadKiB          int // QEMUConfig.RAMPadKiB (vmOpts.ramPadKiB)
	// ticks: the guest's ticker port (vmOpts.ticks), read from the start.
	ticks *tickLog
	extra func(dir string) []string // QEMU arguments beside QEMUConfig's, by state dir
}

const guestMiB = 128

// vmOpts varies the VM startVMWith boots.
type vmOpts struct {
	init     string            // the guest's /init (its workload); default guestInit
	baseDisk func(path string) // writes the base disk; default 32 MiB of text-like blocks and zeros
	discard  bool              // the drive passes the guest's discards on (discard=unmap)
	memMiB   int               // the guest's RAM (default guestMiB)
	cluster  int               // the overlay's cluster size (default 4096)
	// fill, when set, writes the overlay's own content before the guest
	// boots (a disk the VM has been changing for a while).
	fill func(top string)
	// ticks gives the VM the ticker's serial port (tickSerial); the
	// guest's init starts guestTicker on it.
	ticks bool
	// ramPadKiB: QEMUConfig.RAMPadKiB (QEMU's own migration under TCG).
	ramPadKiB int
	// tickEvery: how often the workload's console ticks, when slower
	// than guestInit's (the wait for its third tick allows three).
	tickEvery time.Duration
}

func startVM(t testing.TB) *vmEnv { return startVMWith(t, vmOpts{}) }

func startVMWith(t testing.TB, o vmOpts) *vmEnv {
	t.Helper()
	if o.init == "" {
		o.init = guestInit
	}
	if o.memMiB == 0 {
		o.memMiB = guestMiB
	}
	if o.cluster == 0 {
		o.cluster = 4096
	}
	kernel, mods, busybox := guestFiles(t)
	e := &vmEnv{dir: t.TempDir(), appendLine: "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off"}
	initrd := filepath.Join(e.dir, "initrd.gz")
	buildInitramfs(t, initrd, busybox, mods, o.init)
	var err error
	if e.src, err = OpenBaseCache(filepath.Join(e.dir, "cache-a")); err != nil {
		t.Fatal(err)
	}
	if e.dst, err = OpenBaseCache(filepath.Join(e.dir, "cache-b")); err != nil {
		t.Fatal(err)
	}
	add := func(path, label string) string {
		m, err := e.src.Add(path, label)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.dst.Add(path, label); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	e.kernelID, e.initrdID = add(kernel, "kernel"), add(initrd, "initrd")
	baseDisk := filepath.Join(e.dir, "base-disk.img")
	if o.baseDisk != nil {
		o.baseDisk(baseDisk)
	} else { // 32 MiB of text-like content and zeros
		disk := make([]byte, 32<<20)
		rng := rngFor(5)
		for b := 0; b < len(disk)/BlockSize; b += 3 {
			copy(disk[b*BlockSize:], textBlock(rng))
		}
		os.WriteFile(baseDisk, disk, 0o644)
	}
	e.diskBase = add(baseDisk, "disk")
	db, _ := e.src.Get(e.diskBase)
	e.top = &QCOW2Top{Top: filepath.Join(e.dir, "top.qcow2"), Raw: filepath.Join(e.dir, "top.raw")}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", db.Path, "-F", "raw", "-o", fmt.Sprintf("cluster_size=%d", o.cluster), e.top.Top).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	if o.fill != nil {
		o.fill(e.top.Top)
	}
	e.memMiB, e.ramPadKiB = o.memMiB, o.ramPadKiB
	e.memPath = filepath.Join(e.dir, "ram-a")
	vmDir := filepath.Join(e.dir, "vm-a")
	os.MkdirAll(vmDir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.extra = func(string) []string { return nil }
	if o.ticks {
		e.extra = tickSerial
	}
	e.q, err = StartQEMU(ctx, QEMUConfig{Dir: vmDir, MemoryMiB: e.memMiB, RAMPadKiB: e.ramPadKiB, Kernel: kernel, Initrd: initrd, Append: e.appendLine,
		MemPath: e.memPath, Disk: e.top.Top, DiskFmt: "qcow2", Discard: o.discard, ExtraArgs: e.extra(vmDir), Logger: zaptest.NewLogger(t).Named("qemu-a")})
	e.discard = o.discard
	if err != nil {
		t.Fatal(err)
	}
	e.top.QEMU = e.q
	t.Cleanup(e.q.Kill)
	t.Cleanup(func() { dumpLog(t, e.q.SerialLog) })
	if o.ticks {
		if e.ticks, err = openTicks(vmDir, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.ticks.close)
	}
	e.con = openConsole(t, e.q.Serial)
	t0 := time.Now()
	e.con.wait(t, regexp.MustCompile(`^GUEST-READY`), 150*time.Second)
	t.Logf("guest booted in %s", time.Since(t0).Round(time.Millisecond))
	// The base memory: the RAM file of the booted, idle guest.
	if _, err := e.q.Run("stop", nil); err != nil {
		t.Fatal(err)
	}
	baseMem := filepath.Join(e.dir, "base-mem.img")
	if err := copyFile(e.memPath, baseMem); err != nil {
		t.Fatal(err)
	}
	e.memBase = add(baseMem, "memory")
	if _, err := e.q.Run("cont", nil); err != nil {
		t.Fatal(err)
	}
	e.con.send("go")
	e.con.wait(t, regexp.MustCompile(`^WORKLOAD-DONE`), 90*time.Second)
	e.con.wait(t, regexp.MustCompile(`^tick 3$`), 20*time.Second+3*o.tickEvery)
	e.con.send("sum")
	e.sumA = e.con.wait(t, regexp.MustCompile(`^SUM ([0-9a-f]{32})$`), 20*time.Second)[1]
	t.Logf("workload done after %s", time.Since(t0).Round(time.Millisecond))
	return e
}

func (e *vmEnv) handoff() *Handoff {
	return &Handoff{
		Images: []Image{
			{Name: "memory", Base: e.memBase, Path: e.memPath},
			{Name: "disk", Base: e.diskBase, Path: e.top.Raw, Dirty: e.top.Extents, Refresh: e.top.Refresh, Changed: e.top.Changed},
		},
		VM:   e.q,
		Meta: VMMeta{MemoryMiB: e.memMiB, CPUs: 1, Machine: "pc", Kernel: e.kernelID, Initrd: e.initrdID, Append: e.appendLine, Disk: true, Discard: e.discard},
	}
}

// TestQEMUHandoff: a real VM on cloudlet A, disk and RAM dirtied by a guest
// process, handed to cloudlet B through two routers (QUIC over names); at B
// the memory and disk are byte-identical to A's at stop time, and the guest
// carries on: its counter keeps rising, its data in RAM has the same MD5.
// B's agent starts the destination QEMU at the hello (PrestartVM): it was
// started before A's VM stopped (its start is not in the pause), it has
// not run at the commit (inmigrate: nothing unverified runs), ResumeVM
// runs that same process, and the attempt that failed left none behind.
func TestQEMUHandoff(t *testing.T) {
	e := startVM(t)
	w := newWorld(t)
	out := filepath.Join(e.dir, "out")
	var qb *QEMU
	var stopAt atomic.Pointer[time.Time]
	checked := make(chan error, 1)
	started := make(chan error, 1)
	resume := func(ctx context.Context, rec *Received) error {
		// Before B runs anything: its images against A's, stopped.
		tc := time.Now()
		defer func() { t.Logf("B: compared and resumed in %s", time.Since(tc).Round(time.Millisecond)) }()
		pre := rec.QEMU
		err := func() error {
			if st, _ := e.q.Status(); st == "running" {
				return fmt.Errorf("source VM is %s at commit", st)
			}
			if pre == nil {
				return errors.New("B's QEMU was not started at the hello (PrestartVM): its start would be in the pause")
			}
			if s := stopAt.Load(); s == nil || !pre.started.Before(*s) {
				return fmt.Errorf("B's QEMU started at %v, A's VM stopped at %v: want the start before the stop", pre.started, s)
			}
			if st, err := pre.Status(); err != nil || st != "inmigrate" {
				return fmt.Errorf("B's QEMU at the commit: %q, %v; want inmigrate (it has run nothing)", st, err)
			}
			a, _ := os.ReadFile(e.memPath)
			b, _ := os.ReadFile(rec.Images["memory"])
			if !bytes.Equal(a, b) {
				return fmt.Errorf("memory at B differs from A's (%d vs %d bytes)", len(b), len(a))
			}
			if out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", e.top.Top, rec.Images["disk"]).CombinedOutput(); err != nil {
				return fmt.Errorf("disk at B differs from A's: %v: %s", err, out)
			}
			return nil
		}()
		t.Logf("B: images compared with A's in %s", time.Since(tc).Round(time.Millisecond))
		checked <- err
		if err != nil {
			return err
		}
		vmDir := filepath.Join(e.dir, "vm-b")
		os.MkdirAll(vmDir, 0o755)
		q, err := ResumeVM(ctx, e.dst, rec, QEMUConfig{Dir: vmDir, Logger: zaptest.NewLogger(t).Named("qemu-b")})
		if err == nil && q != pre {
			q.Kill()
			err = errors.New("ResumeVM started another QEMU instead of the one started at the hello")
		}
		qb = q
		started <- err
		return err
	}
	cl := startCloudletsPrestart(t, w, e.dst, out, resume, &QEMUConfig{Logger: zaptest.NewLogger(t).Named("qemu-b")})
	quic := &client.QUICConfig{IdleTimeout: 3 * time.Second, KeepAlive: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// 1. The destination agent dies mid-transfer, after the source VM
	// stopped: the handoff fails, the source VM runs on, nothing is kept.
	st, err := DialOverlay(ctx, cl.src, cl.dst.Name(), quic)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	crashed := false
	_, err = Send(ctx, NewLink(2e6).Stream(st), e.handoff(), SendConfig{Cache: e.src, PreCopyRounds: -1, Logger: zaptest.NewLogger(t).Named("sender-1"),
		Progress: func(p Progress) {
			if p.Final && p.Wire > 128<<10 {
				once.Do(func() { crashed = true; cl.crash() })
			}
		}})
	st.Close()
	if err == nil || !crashed {
		t.Fatalf("handoff with the destination killed mid-transfer: err %v, crashed %v", err, crashed)
	}
	t.Logf("first attempt failed as it should: %v", err)
	if s, err := e.q.Status(); err != nil || s != "running" {
		t.Fatalf("source VM after the failed handoff: %q, %v; want running", s, err)
	}
	// The QEMU B started for it was killed with the failed handoff.
	if left := qemusUnder(t, out, 20*time.Second); len(left) > 0 {
		t.Fatalf("after the failed handoff B still runs QEMU %v", left)
	}
	tick0 := e.con.lastTick()
	m1 := e.con.wait(t, tickRE, 60*time.Second)
	m2 := e.con.wait(t, tickRE, 60*time.Second)
	if n1, n2 := atoi(m1[1]), atoi(m2[1]); n1 < tick0 || n2 <= n1 {
		t.Fatalf("source counter after the failed handoff: %d then %d (before: %d); want it to go on", n1, n2, tick0)
	}

	// 2. The agent restarts under the same name; the retry succeeds.
	cl.restart(t, e.dst, out, resume)
	if left, _ := filepath.Glob(filepath.Join(out, "*")); len(left) != 0 {
		t.Fatalf("after the crash and restart the destination holds %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".partial-*")); len(left) != 0 {
		t.Fatalf("after the restart the destination still holds %v", left)
	}
	st, err = DialOverlay(ctx, cl.src, cl.dst.Name(), quic)
	if err != nil {
		t.Fatal(err)
	}
	h := e.handoff()
	h.VM = stopTimer{e.q, &stopAt}
	rep, err := Send(ctx, st, h, SendConfig{Cache: e.src, Logger: zaptest.NewLogger(t).Named("sender")})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-checked; err != nil {
		t.Fatal(err)
	}
	tickA := e.con.lastTick()
	if err := <-started; err != nil {
		t.Fatalf("the VM at B did not start: %v", err)
	}
	defer qb.Kill()
	e.q.Quit()
	conB := openConsole(t, qb.Serial)
	m := conB.wait(t, tickRE, 30*time.Second)
	n, _ := strconv.Atoi(m[1])
	m = conB.wait(t, tickRE, 30*time.Second)
	n2, _ := strconv.Atoi(m[1])
	if n <= tickA || n2 <= n {
		t.Fatalf("counter at B: %d then %d; A's last was %d: want it to carry on", n, n2, tickA)
	}
	conB.send("sum")
	if sum := conB.wait(t, regexp.MustCompile(`^SUM ([0-9a-f]{32})$`), 30*time.Second)[1]; sum != e.sumA {
		t.Fatalf("guest data MD5 at B %s, at A %s", sum, e.sumA)
	}
	modified := rep.ChangedBytes
	t.Logf("handoff: %d rounds, %d changed bytes, %d on the wire (ratio %.3f), state %d bytes, total %.2fs, downtime %.2fs; counter A %d -> B %d",
		len(rep.Rounds), modified, rep.WireBytes, rep.Ratio, rep.StateBytes, rep.TotalSec, rep.DowntimeSec, tickA, n2)
}

var _ = zap.NewNop

// stopTimer is a VM that notes when its Stop began.
type stopTimer struct {
	*QEMU
	at *atomic.Pointer[time.Time]
}

func (v stopTimer) Stop(ctx context.Context) ([]byte, error) {
	now := time.Now()
	v.at.Store(&now)
	return v.QEMU.Stop(ctx)
}

// qemusUnder waits up to d for no process whose command line names a
// path under dir (a destination QEMU on a handoff's images) and returns
// those still running then.
func qemusUnder(t testing.TB, dir string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte("qemu")) && bytes.Contains(b, []byte(dir+"/")) {
				left = append(left, filepath.Base(filepath.Dir(p)))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpLog shows the end of a guest's console log when the test failed.
func dumpLog(t testing.TB, path string) {
	if !t.Failed() {
		return
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	t.Logf("%s (last lines):\n%s", path, strings.Join(lines[max(0, len(lines)-60):], "\n"))
}
