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
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The dataset guest (make handoff-data, BenchmarkHandoffDataset): Debian's
// cloud kernel and a busybox initramfs that mounts the dataset's ext4 disk
// read-only at /mnt, says GUEST-READY (the booted, idle base), waits for
// "go", then runs a workload on the disk's own content: copies a directory
// tree, decompresses the packages' changelogs, tars a library tree into its
// RAM file system (all through the page cache) and starts the disk's
// Python, which builds ~100,000 records and stays resident; WORKLOAD-DONE
// once all of it is in memory.
const dataGuestInit = GuestBoot + `mount -t ext4 -o ro,noload /dev/vda /mnt || echo MOUNT-FAILED
sleep 2
echo GUEST-READY
read line
echo WORKLOAD-START
cp -a /mnt/etc /tmp/etc-copy
cat /mnt/usr/share/doc/*/changelog.Debian.gz 2>/dev/null | gzip -dc > /tmp/changelogs.txt 2>/dev/null
tar -C /mnt -cf /tmp/pylib.tar usr/lib/python3 usr/share/perl5 2>/dev/null
mount -t proc proc /mnt/proc 2>/dev/null
mount -t devtmpfs dev /mnt/dev 2>/dev/null
chroot /mnt /usr/bin/python3 -c '
import hashlib, json, time, sys
recs = [{"id": i, "user": "user%06d" % i, "sha1": hashlib.sha1(b"%d" % i).hexdigest(), "tags": ["edge", "cloudlet", str(i % 97)]} for i in range(100000)]
doc = json.dumps(recs[:20000])
print("PY-READY", len(recs), len(doc), flush=True)
while True:
    time.sleep(3600)
' > /tmp/py.log 2>&1 &
i=0; while ! grep -q PY-READY /tmp/py.log && [ $i -lt 600 ]; do sleep 1; i=$((i+1)); done
cat /tmp/py.log
sync
echo WORKLOAD-DONE
while read cmd; do echo "ECHO $cmd"; done
`

// dataGuestInitRW is dataGuestInit with the disk mounted read-write and a
// console command "trim": fstrim of the mounted file system (what Debian's
// weekly fstrim.timer runs), its report printed as "TRIM …". On a drive
// with discard=unmap the freed blocks (apt's deleted downloads) become zero
// clusters in the qcow2 overlay.
var dataGuestInitRW = strings.Replace(strings.Replace(dataGuestInit,
	"mount -t ext4 -o ro,noload /dev/vda /mnt", "mount -t ext4 /dev/vda /mnt", 1),
	`while read cmd; do echo "ECHO $cmd"; done`,
	`while read cmd; do case "$cmd" in trim) sync; echo "TRIM $(fstrim -v /mnt 2>&1)"; sync ;; *) echo "ECHO $cmd" ;; esac; done`, 1)

// FindGuestFiles locates the guest's pieces: Debian's cloud kernel and its
// modules under kernelDir (scripts/handoff-kernel.sh; default
// /var/cache/gdp/handoff-kernel) and a static busybox.
func FindGuestFiles(kernelDir string) (kernel string, mods map[string]string, busybox string, err error) {
	if kernelDir == "" {
		kernelDir = "/var/cache/gdp/handoff-kernel"
	}
	for _, b := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(b); err != nil {
			return "", nil, "", fmt.Errorf("%s not installed (apt-get install qemu-system-x86 qemu-utils)", b)
		}
	}
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if out, err := exec.Command("file", "-L", p).Output(); err == nil && bytes.Contains(out, []byte("statically linked")) {
			busybox = p
		}
	}
	if busybox == "" {
		return "", nil, "", errors.New("no static busybox (apt-get install busybox-static)")
	}
	ks, _ := filepath.Glob(filepath.Join(kernelDir, "boot", "vmlinuz-*"))
	if len(ks) == 0 {
		return "", nil, "", fmt.Errorf("no guest kernel in %s (run scripts/handoff-kernel.sh)", kernelDir)
	}
	kernel = ks[len(ks)-1]
	mods = map[string]string{}
	for _, m := range GuestModules {
		hits, _ := filepath.Glob(filepath.Join(kernelDir, "lib", "modules", "*", "kernel", "drivers", "*", m+".ko"))
		if len(hits) == 0 {
			return "", nil, "", fmt.Errorf("kernel module %s.ko missing under %s", m, kernelDir)
		}
		mods[m] = hits[0]
	}
	return kernel, mods, busybox, nil
}

// DataGuestConfig describes a dataset guest.
type DataGuestConfig struct {
	Dir      string // initramfs, sockets, logs; required
	Disk     string // the ext4 image, raw or qcow2 (DiskFmt)
	DiskFmt  string // default raw
	ReadOnly bool   // attach the disk read-only
	// Trim mounts the disk read-write on a drive with discard=unmap and
	// serves the console command "trim" (fstrim; dataGuestInitRW).
	Trim      bool
	MemoryMiB int    // default 256
	MemPath   string // guest RAM file; default Dir/ram
	KernelDir string
	Incoming  bool // wait for a migration (QEMU's own, for the baseline)
	Logger    *zap.Logger
}

// DataGuest is a running dataset guest and its console.
type DataGuest struct {
	Q      *QEMU
	Cfg    DataGuestConfig
	conn   net.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	lines  []string
	closed bool
}

// StartDataGuest builds the initramfs and starts QEMU; with Incoming it
// waits for a migration and has no console reader yet (call Console).
func StartDataGuest(ctx context.Context, cfg DataGuestConfig) (*DataGuest, error) {
	kernel, mods, busybox, err := FindGuestFiles(cfg.KernelDir)
	if err != nil {
		return nil, err
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 256
	}
	if cfg.MemPath == "" {
		cfg.MemPath = filepath.Join(cfg.Dir, "ram")
	}
	if cfg.DiskFmt == "" {
		cfg.DiskFmt = "raw"
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("data guest: %w", err)
	}
	initrd := filepath.Join(cfg.Dir, "initrd.gz")
	init := dataGuestInit
	if cfg.Trim {
		init = dataGuestInitRW
	}
	if err := BuildInitramfs(initrd, busybox, mods, init); err != nil {
		return nil, err
	}
	var extra []string
	if cfg.Disk != "" {
		ro := ""
		if cfg.ReadOnly {
			ro = ",readonly=on"
		}
		if cfg.Trim {
			ro += ",discard=unmap"
		}
		extra = append(extra, "-drive", fmt.Sprintf("file=%s,format=%s,if=virtio,cache=writeback,id=vd0%s", cfg.Disk, cfg.DiskFmt, ro))
	}
	q, err := StartQEMU(ctx, QEMUConfig{Dir: cfg.Dir, MemoryMiB: cfg.MemoryMiB, Kernel: kernel, Initrd: initrd,
		Append: "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off", MemPath: cfg.MemPath,
		Incoming: cfg.Incoming, ExtraArgs: extra, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	g := &DataGuest{Q: q, Cfg: cfg}
	g.cond = sync.NewCond(&g.mu)
	if !cfg.Incoming {
		if err := g.Console(); err != nil {
			q.Kill()
			return nil, err
		}
	}
	return g, nil
}

// Console connects to the guest's serial console.
func (g *DataGuest) Console() error {
	var err error
	for i := 0; i < 100; i++ {
		if g.conn, err = net.Dial("unix", g.Q.Serial); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("data guest console: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(g.conn)
		for sc.Scan() {
			g.mu.Lock()
			g.lines = append(g.lines, strings.TrimRight(sc.Text(), "\r"))
			g.cond.Broadcast()
			g.mu.Unlock()
		}
		g.mu.Lock()
		g.closed = true
		g.cond.Broadcast()
		g.mu.Unlock()
	}()
	return nil
}

// Send writes a line to the guest's console.
func (g *DataGuest) Send(s string) error {
	_, err := g.conn.Write([]byte(s + "\n"))
	return err
}

// Wait returns the first console line starting with prefix (consuming the
// lines up to it), or an error after d.
func (g *DataGuest) Wait(prefix string, d time.Duration) (string, error) {
	timer := time.AfterFunc(d, func() { g.mu.Lock(); g.cond.Broadcast(); g.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		for i, l := range g.lines {
			if strings.HasPrefix(l, prefix) {
				g.lines = g.lines[i+1:]
				return l, nil
			}
		}
		if g.closed || time.Now().After(deadline) {
			tail := g.lines[max(0, len(g.lines)-10):]
			return "", fmt.Errorf("data guest: no %q on the console within %s; last lines: %q", prefix, d, tail)
		}
		g.cond.Wait()
	}
}

// Close ends the guest.
func (g *DataGuest) Close() {
	if g.conn != nil {
		g.conn.Close()
	}
	g.Q.Kill()
}

// ImageDiff counts the 4 KiB blocks of a modified image that differ from
// its base (blocks beyond the base's end count when they are not zero).
type ImageDiff struct {
	Size        int64 // of the modified image
	Changed     int64 // blocks
	ChangedZero int64 // of them, zero in the modified image
}

// CompareImages reads both images once and counts the changed blocks.
func CompareImages(base, mod string) (ImageDiff, error) {
	var d ImageDiff
	err := ChangedBlocks(base, mod, func(_ int64, b []byte) error {
		d.Changed++
		if isZero(b) {
			d.ChangedZero++
		}
		return nil
	}, &d.Size)
	return d, err
}

func isZero(b []byte) bool {
	for len(b) > 0 { // memequal against zeros: vector compares, not a byte loop
		n := min(len(b), BlockSize)
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

var zeroBlock [BlockSize]byte

// ChangedBlocks calls fn with the index and content of every 4 KiB block
// of mod that differs from the same block of base (a ragged last block is
// zero-padded). size, when set, receives mod's size.
func ChangedBlocks(base, mod string, fn func(blk int64, data []byte) error, size *int64) error {
	bf, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	defer bf.Close()
	mf, err := os.Open(mod)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	defer mf.Close()
	fi, err := mf.Stat()
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if size != nil {
		*size = fi.Size()
	}
	const chunk = 4 << 20
	bb, mb := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < fi.Size(); off += chunk {
		n, err := mf.ReadAt(mb, off)
		if n == 0 && err != nil {
			return fmt.Errorf("compare %s: %w", mod, err)
		}
		clear(bb)
		bf.ReadAt(bb[:n], off) // short beyond the base's end: zeros
		clear(mb[n:])
		for o := 0; o < n; o += BlockSize {
			if !bytes.Equal(mb[o:o+BlockSize], bb[o:o+BlockSize]) {
				if err := fn((off+int64(o))/BlockSize, mb[o:o+BlockSize]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
