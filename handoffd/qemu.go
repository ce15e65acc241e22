package handoffd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"go.uber.org/zap"
)

// QEMUConfig describes one QEMU process: the machine, its RAM in a shared
// file (so a handoff reads guest memory straight from the file, and
// migration skips it with x-ignore-shared), one virtio disk, the serial
// console on a unix socket with a log file.
type QEMUConfig struct {
	Binary    string // default qemu-system-x86_64
	Dir       string // sockets, device state; required
	MemoryMiB int    // default 128
	// RAMPadKiB adds KiB to the guest's RAM beyond MemoryMiB (0: none; a
	// multiple of 8: QEMU rounds -m up to 8 KiB). Not for handoffs (their
	// machine is whole MiB, VMMeta): BenchmarkVMDowntime's QEMU baseline
	// uses 8 KiB. With the RAM not a multiple of 256 KiB, QEMU 7.2's live
	// migration syncs its dirty log page by page, resetting TCG's TLB for each dirty page; its 64-page
	// fast path does not reset it, so under TCG guest writes after a sync
	// go untracked and the destination's RAM ends up stale (QEMU's commit
	// 03bfc2188f "physmem: Fix migration dirty bitmap coherency with TCG
	// memory access", in 9.0, not in Debian 12's 7.2; docs/HANDOFF.md §8,
	// Session 20).
	RAMPadKiB int
	CPUs      int    // default 1
	Machine   string // default "pc"
	Kernel    string
	Initrd    string
	Append    string
	MemPath   string // guest RAM file; required
	Disk      string // optional
	DiskFmt   string // "qcow2" or "raw" (default raw)
	// Discard passes the guest's discards (TRIM: fstrim, mount -o discard)
	// to the disk image (discard=unmap): freed blocks become zero clusters
	// in a qcow2 overlay, or holes in a raw file, so a handoff sends them as
	// zero records instead of their stale content.
	Discard bool
	// Incoming starts the VM waiting for a migration stream (-incoming
	// defer): it runs nothing until a stream is loaded (Incoming), and runs
	// as soon as one is — no -S, no cont: a pause shorter by a QMP round
	// trip and a poll (Session 18).
	Incoming bool
	// ExtraArgs are appended to the command line (e.g. -accel kvm).
	ExtraArgs []string
	Logger    *zap.Logger
}

// QEMU is a running QEMU process and its QMP monitor.
type QEMU struct {
	cfg    QEMUConfig
	cmd    *exec.Cmd
	mon    *qmp.SocketMonitor
	mu     sync.Mutex
	exited chan struct{}
	err    error
	// Serial is the console socket, SerialLog the file QEMU logs it to.
	Serial, SerialLog string
	// attached: the operator's process (AttachQEMU); Kill only disconnects.
	attached bool
	started  time.Time // when StartQEMU started the process
	// stopHooks run in Stop once the VM is paused, before its device
	// state is written out (a disk's dirty bitmap read: dirtyTracker).
	stopHooks map[any]func()
}

// onStop sets (f nil: removes) the stop hook of owner.
func (q *QEMU) onStop(owner any, f func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if f == nil {
		delete(q.stopHooks, owner)
		return
	}
	if q.stopHooks == nil {
		q.stopHooks = map[any]func(){}
	}
	q.stopHooks[owner] = f
}

// StartQEMU starts QEMU and connects its monitor.
func StartQEMU(ctx context.Context, cfg QEMUConfig) (*QEMU, error) {
	if cfg.Binary == "" {
		cfg.Binary = "qemu-system-x86_64"
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 128
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 1
	}
	if cfg.Machine == "" {
		cfg.Machine = "pc"
	}
	if cfg.DiskFmt == "" {
		cfg.DiskFmt = "raw"
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Dir == "" || cfg.MemPath == "" {
		return nil, errors.New("qemu: dir and mem path are required")
	}
	// Refused before anything in Dir is touched (the sockets of a QEMU
	// that may still run there).
	if cfg.RAMPadKiB < 0 || cfg.RAMPadKiB%8 != 0 {
		return nil, fmt.Errorf("qemu: RAM padding %d KiB is not a multiple of 8 KiB (QEMU rounds -m up to 8 KiB)", cfg.RAMPadKiB)
	}
	q := &QEMU{cfg: cfg, exited: make(chan struct{}),
		Serial: filepath.Join(cfg.Dir, "serial.sock"), SerialLog: filepath.Join(cfg.Dir, "serial.log")}
	qmpSock := filepath.Join(cfg.Dir, "qmp.sock")
	os.Remove(qmpSock)
	os.Remove(q.Serial)
	ram := strconv.Itoa(cfg.MemoryMiB) + "M"
	if cfg.RAMPadKiB > 0 {
		ram = strconv.Itoa(cfg.MemoryMiB<<10+cfg.RAMPadKiB) + "K"
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", cfg.Machine + ",memory-backend=mem",
		"-object", fmt.Sprintf("memory-backend-file,id=mem,size=%s,mem-path=%s,share=on", ram, cfg.MemPath),
		"-m", ram, "-smp", strconv.Itoa(cfg.CPUs),
		"-chardev", fmt.Sprintf("socket,id=s0,path=%s,server=on,wait=off,logfile=%s,logappend=on", q.Serial, q.SerialLog),
		"-serial", "chardev:s0",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel)
	}
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	if cfg.Append != "" {
		args = append(args, "-append", cfg.Append)
	}
	if cfg.Disk != "" {
		drive := fmt.Sprintf("file=%s,format=%s,if=virtio,cache=writeback", cfg.Disk, cfg.DiskFmt)
		if cfg.Discard {
			drive += ",discard=unmap"
		}
		if cfg.Incoming {
			// Opened read-write now, not read-only until the migration
			// activates it: that activation would reopen the file by its
			// name, which a handoff's commit renamed (PrestartVM).
			drive += ",auto-read-only=off"
		}
		args = append(args, "-drive", drive)
	}
	if cfg.Incoming {
		args = append(args, "-incoming", "defer")
	}
	args = append(args, cfg.ExtraArgs...)
	q.cmd = exec.Command(cfg.Binary, args...)
	var stderr bytes.Buffer
	q.cmd.Stderr = &stderr
	q.started = time.Now()
	if err := q.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		err := q.cmd.Wait()
		q.mu.Lock()
		q.err = fmt.Errorf("qemu exited: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		q.mu.Unlock()
		close(q.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mon, err := qmp.NewSocketMonitor("unix", qmpSock, 5*time.Second)
		if err == nil {
			if err = mon.Connect(); err == nil {
				q.mon = mon
				break
			}
		}
		select {
		case <-q.exited:
			return nil, q.exitErr()
		case <-ctx.Done():
			q.Kill()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			q.Kill()
			return nil, fmt.Errorf("qemu monitor: %w", err)
		}
	}
	cfg.Logger.Info("qemu started", zap.Int("pid", q.cmd.Process.Pid), zap.Bool("incoming", cfg.Incoming))
	return q, nil
}

func (q *QEMU) exitErr() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Exited is closed when the process has ended.
func (q *QEMU) Exited() <-chan struct{} { return q.exited }

// Kill ends the process and waits for it.
func (q *QEMU) Kill() {
	if q.mon != nil {
		q.mon.Disconnect()
	}
	if q.attached {
		return
	}
	q.cmd.Process.Kill()
	<-q.exited
}

// Run sends one QMP command and returns its "return" value.
func (q *QEMU) Run(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	out, err := q.mon.Run(b)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	return resp.Return, nil
}

// Status is the VM's run state ("running", "paused", "postmigrate", ...).
func (q *QEMU) Status() (string, error) {
	r, err := q.Run("query-status", nil)
	if err != nil {
		return "", err
	}
	var s struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r, &s); err != nil {
		return "", fmt.Errorf("query-status: %w", err)
	}
	return s.Status, nil
}

func (q *QEMU) ignoreShared() error {
	_, err := q.Run("migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}}})
	return err
}

// waitMigration polls query-migrate until it completes or fails.
func (q *QEMU) waitMigration(ctx context.Context) error {
	for {
		r, err := q.Run("query-migrate", nil)
		if err != nil {
			return err
		}
		var s struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		json.Unmarshal(r, &s)
		switch s.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", s.Status, s.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-q.exited:
			return q.exitErr()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop pauses the VM and returns its device state: QEMU's migration stream
// with the shared RAM left out (x-ignore-shared). The RAM file and the disk
// are stable from here on.
func (q *QEMU) Stop(ctx context.Context) ([]byte, error) {
	if _, err := q.Run("stop", nil); err != nil {
		return nil, err
	}
	q.mu.Lock()
	hooks := make([]func(), 0, len(q.stopHooks))
	for _, f := range q.stopHooks {
		hooks = append(hooks, f)
	}
	q.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	if err := q.ignoreShared(); err != nil {
		return nil, err
	}
	state := filepath.Join(q.cfg.Dir, "state.out")
	os.Remove(state)
	if _, err := q.Run("migrate", map[string]any{"uri": "exec:cat > " + state}); err != nil {
		return nil, err
	}
	if err := q.waitMigration(ctx); err != nil {
		return nil, err
	}
	return os.ReadFile(state)
}

// Resume lets a stopped source VM run again (a handoff that failed) and
// checks that it runs. A Stop cut short (its context ended: the sender
// was interrupted) may have left the migration of the device state
// running, and its completion would pause the VM again after a cont
// (run state postmigrate): it is cancelled first, and waited for.
func (q *QEMU) Resume(ctx context.Context) error {
	if _, err := q.Run("migrate_cancel", nil); err != nil {
		return err
	}
	for {
		r, err := q.Run("query-migrate", nil)
		if err != nil {
			return err
		}
		var m struct {
			Status string `json:"status"`
		}
		json.Unmarshal(r, &m)
		if m.Status == "" || m.Status == "completed" || m.Status == "failed" || m.Status == "cancelled" {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("resume: the migration of the device state did not end (%s): %w", m.Status, ctx.Err())
		case <-q.exited:
			return q.exitErr()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := q.Run("cont", nil); err != nil {
		return err
	}
	st, err := q.Status()
	if err != nil {
		return err
	}
	if st != "running" {
		return fmt.Errorf("resume: the VM is %s after cont", st)
	}
	return nil
}

// Incoming loads the device state into a VM started with Incoming, which
// runs once it is loaded: its RAM is already in the shared file.
func (q *QEMU) Incoming(ctx context.Context, statePath string) error {
	if err := q.ignoreShared(); err != nil {
		return err
	}
	if _, err := q.Run("migrate-incoming", map[string]any{"uri": "exec:cat " + statePath}); err != nil {
		return err
	}
	if err := q.waitMigration(ctx); err != nil {
		return err
	}
	st, err := q.Status()
	if err != nil {
		return err
	}
	if st != "running" { // started with -S by an older caller
		_, err = q.Run("cont", nil)
	}
	return err
}

// moved tells q that its state directory was renamed to dir (a
// destination QEMU started on a handoff's staged images, before the
// commit renamed them): its sockets and files moved with it.
func (q *QEMU) moved(dir string) {
	q.cfg.Dir = dir
	q.Serial, q.SerialLog = filepath.Join(dir, "serial.sock"), filepath.Join(dir, "serial.log")
}

// Quit ends the VM through the monitor (the process exits), bounded.
func (q *QEMU) Quit() {
	q.Run("quit", nil)
	if q.attached {
		q.mon.Disconnect()
		return
	}
	select {
	case <-q.exited:
	case <-time.After(5 * time.Second):
		q.Kill()
	}
}

// QCOW2Top is the disk of a VM running on a qcow2 overlay over a base: the
// blocks it may have changed are the overlay's own extents (qemu-img map,
// depth 0), and their content is the overlay read without its backing file.
type QCOW2Top struct {
	QemuImg string // default qemu-img
	Top     string // the overlay
	Raw     string // where Refresh writes the overlay's content, raw and sparse
	// QEMU, when set, is the VM running on Top: Refresh then follows the
	// guest's writes with dirty bitmaps (dirtyTracker) and, from its
	// second call on, copies only the ranges written since the call
	// before, which Changed lists for the sender — a final round whose
	// disk work is what the guest wrote since the last round, not the
	// whole overlay. When QEMU cannot (an NBD server of the operator's own,
	// a node not found) every Refresh copies the whole overlay, as
	// without QEMU, and BitmapErr says why. Close removes the bitmap and
	// stops the NBD server.
	QEMU *QEMU
	made bool // Raw was created by this QCOW2Top's first Refresh

	tracker   *dirtyTracker
	bitmapErr error
	changed   []Extent
	changedOK bool
	copied    int64
}

// BitmapErr is why Refresh copies the whole overlay though QEMU is set
// (nil: it follows the guest's writes, or QEMU is not set).
func (d *QCOW2Top) BitmapErr() error { return d.bitmapErr }

// Changed returns the ranges the last Refresh found written since the
// Refresh before it (ok false: not known; the whole overlay may have
// changed). Image.Changed.
func (d *QCOW2Top) Changed() ([]Extent, bool) { return d.changed, d.changedOK }

// Copied is the bytes the last Refresh copied or zeroed in Raw.
func (d *QCOW2Top) Copied() int64 { return d.copied }

// Close stops following the guest's writes (QEMU set).
func (d *QCOW2Top) Close() {
	if d.tracker != nil {
		d.tracker.close()
		d.tracker = nil
	}
}

// track starts the next dirty bitmap and returns what the one before
// recorded; any failure drops to whole-overlay refreshes for good.
func (d *QCOW2Top) track() ([]Extent, bool) {
	if d.QEMU == nil || d.bitmapErr != nil {
		return nil, false
	}
	if d.tracker == nil {
		t, err := newDirtyTracker(d.QEMU, d.img(), d.Top)
		if err != nil {
			d.bitmapErr = err
			d.QEMU.cfg.Logger.Warn("dirty bitmap not available: every round copies the whole disk overlay", zap.String("disk", d.Top), zap.Error(err))
			return nil, false
		}
		d.tracker = t
	}
	dirty, ok, err := d.tracker.next()
	if err != nil {
		d.bitmapErr = err
		d.QEMU.cfg.Logger.Warn("dirty bitmap lost: every round copies the whole disk overlay from now on", zap.String("disk", d.Top), zap.Error(err))
		d.Close()
		return nil, false
	}
	return dirty, ok
}

func (d *QCOW2Top) img() string {
	if d.QemuImg == "" {
		return "qemu-img"
	}
	return d.QemuImg
}

// qcow2Extent is one entry of qemu-img map --output=json.
type qcow2Extent struct {
	Start  int64  `json:"start"`
	Length int64  `json:"length"`
	Depth  int    `json:"depth"`
	Data   bool   `json:"data"`
	Zero   bool   `json:"zero"`
	Offset *int64 `json:"offset"` // where the data is in the image file (absent: compressed, external)
}

// mapTop runs qemu-img map on the overlay (-U: the VM may hold the image).
func (d *QCOW2Top) mapTop() ([]qcow2Extent, error) {
	out, err := exec.Command(d.img(), "map", "-U", "--output=json", "-f", "qcow2", d.Top).Output()
	if err != nil {
		return nil, fmt.Errorf("qemu-img map %s: %w", d.Top, err)
	}
	var m []qcow2Extent
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("qemu-img map %s: %w", d.Top, err)
	}
	return m, nil
}

// Refresh brings Raw up to date with the overlay: each of the overlay's
// own data extents is copied from the overlay file at its host offset
// (qemu-img map gives it; copy_file_range, no copy through user space),
// each of its zero extents (a discarded or zero-written cluster) becomes a
// hole; the rest of Raw stays a hole. Between refreshes this is an update
// in place: a qcow2 overlay over a backing file never gives a cluster back
// to the backing file (a discard makes it a zero cluster), so what the
// overlay does not hold now it never held. The first Refresh creates Raw
// afresh. It used to write the whole overlay out with qemu-img convert
// every round, the final one included: 1.3–2.5 s of the downtime for the
// dataset guest's 254 MB overlay. An overlay with data that has no host
// offset (compressed clusters, an external data file) still goes through
// qemu-img convert.
//
// With QEMU set, a Refresh after the first copies only the overlay's
// extents that the guest wrote since the Refresh before (its dirty
// bitmap), and Changed lists those ranges. Raw is only ever brought up to
// date whole: a Refresh that fails leaves the next one to rewrite it.
func (d *QCOW2Top) Refresh() error {
	d.changed, d.changedOK, d.copied = nil, false, 0
	// The bitmap first: what the guest writes from here on is the next
	// Refresh's, whatever this one reads.
	dirty, incremental := d.track()
	incremental = incremental && d.made
	made := d.made
	d.made = false // until this Refresh succeeds
	m, err := d.mapTop()
	if err != nil {
		return err
	}
	var size int64
	for _, e := range m {
		size = max(size, e.Start+e.Length)
		if e.Depth == 0 && e.Data && !e.Zero && e.Offset == nil {
			return d.convert()
		}
	}
	flags := os.O_RDWR | os.O_CREATE
	if !made {
		flags |= os.O_TRUNC
	}
	raw, err := os.OpenFile(d.Raw, flags, 0o644)
	if err != nil {
		return fmt.Errorf("refresh %s: %w", d.Raw, err)
	}
	defer raw.Close()
	top, err := os.Open(d.Top)
	if err != nil {
		return fmt.Errorf("refresh %s: %w", d.Top, err)
	}
	defer top.Close()
	if fi, err := raw.Stat(); err != nil || fi.Size() != size {
		if err := raw.Truncate(size); err != nil {
			return fmt.Errorf("refresh %s: %w", d.Raw, err)
		}
	}
	for _, e := range m {
		if e.Depth != 0 || !(e.Zero || e.Data) {
			continue
		}
		pieces := []Extent{{e.Start, e.Length}}
		if incremental {
			pieces = intersect(dirty, e.Start, e.Length)
		}
		for _, p := range pieces {
			if e.Zero {
				err = zeroRange(raw, p.Start, p.Length)
			} else {
				err = copyBetween(raw, p.Start, top, *e.Offset+p.Start-e.Start, p.Length)
			}
			if err != nil {
				return fmt.Errorf("refresh %s at %d: %w", d.Raw, p.Start, err)
			}
			d.copied += p.Length
		}
	}
	d.made = true
	d.changed, d.changedOK = dirty, incremental
	return nil
}

// intersect returns the parts of [start, start+length) that the sorted,
// disjoint ranges ext cover.
func intersect(ext []Extent, start, length int64) []Extent {
	end := start + length
	i := sort.Search(len(ext), func(i int) bool { return ext[i].Start+ext[i].Length > start })
	var out []Extent
	for ; i < len(ext) && ext[i].Start < end; i++ {
		s, e := max(ext[i].Start, start), min(ext[i].Start+ext[i].Length, end)
		if s < e {
			out = append(out, Extent{s, e - s})
		}
	}
	return out
}

// convert rewrites Raw from the overlay with qemu-img convert.
func (d *QCOW2Top) convert() error {
	spec := fmt.Sprintf(`json:{"driver":"qcow2","file":{"driver":"file","filename":%q},"backing":null}`, d.Top)
	tmp := d.Raw + ".tmp"
	out, err := exec.Command(d.img(), "convert", "-U", "-O", "raw", "-S", "4k", spec, tmp).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img convert %s: %v: %s", d.Top, err, bytes.TrimSpace(out))
	}
	d.made = true
	return os.Rename(tmp, d.Raw)
}

// Extents lists the overlay's own extents.
func (d *QCOW2Top) Extents() ([]Extent, error) {
	m, err := d.mapTop()
	if err != nil {
		return nil, err
	}
	var ext []Extent
	for _, e := range m {
		if e.Depth == 0 && (e.Data || e.Zero) {
			ext = append(ext, Extent{e.Start, e.Length})
		}
	}
	return ext, nil
}

// ResumeVM starts the VM a committed handoff describes on its rebuilt
// images: QEMU with the same machine, the RAM file and disk from rec, the
// boot files from the base cache, waiting for the device state, which it
// then loads; the VM runs when ResumeVM returns. base supplies the binary,
// the working directory and extra arguments. When the receiver started
// the QEMU already (ReceiveConfig.PrestartVM: rec.QEMU), only the device
// state is loaded: the process start is not in the pause.
func ResumeVM(ctx context.Context, cache *BaseCache, rec *Received, base QEMUConfig) (*QEMU, error) {
	if !rec.VM {
		return nil, errors.New("resume: the handoff carried no VM")
	}
	if q := rec.QEMU; q != nil {
		rec.QEMU = nil
		select {
		case <-q.Exited():
			q.cfg.Logger.Warn("the destination VM started ahead has exited: starting it again", zap.String("name", rec.ID), zap.Error(q.exitErr()))
		default:
			if err := q.Incoming(ctx, rec.State); err != nil {
				q.Kill()
				return nil, fmt.Errorf("resume: %w", err)
			}
			return q, nil
		}
	}
	if base.Dir == "" {
		base.Dir = rec.Dir
	}
	cfg, err := vmConfig(cache, rec.Meta, rec.Images, base)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	q, err := StartQEMU(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if err := q.Incoming(ctx, rec.State); err != nil {
		q.Kill()
		return nil, fmt.Errorf("resume: %w", err)
	}
	return q, nil
}

// vmConfig is the QEMU configuration of a handed-off VM: base (binary,
// state directory, extra arguments, logger) with the machine from m, the
// images (name -> path) and the boot files from the base cache, waiting
// for its device state (Incoming).
func vmConfig(cache *BaseCache, m VMMeta, images map[string]string, base QEMUConfig) (QEMUConfig, error) {
	mem := images["memory"]
	if mem == "" {
		return QEMUConfig{}, errors.New("no memory image")
	}
	cfg := base
	cfg.MemoryMiB, cfg.CPUs, cfg.Machine, cfg.Append = m.MemoryMiB, m.CPUs, m.Machine, m.Append
	cfg.MemPath = mem
	cfg.Incoming = true
	for _, f := range []struct {
		id  string
		dst *string
	}{{m.Kernel, &cfg.Kernel}, {m.Initrd, &cfg.Initrd}} {
		if f.id == "" {
			continue
		}
		b, err := cache.Get(f.id)
		if err != nil {
			return QEMUConfig{}, err
		}
		*f.dst = b.Path
	}
	if m.Disk {
		cfg.Disk, cfg.DiskFmt, cfg.Discard = images["disk"], "raw", m.Discard
		if cfg.Disk == "" {
			return QEMUConfig{}, errors.New("no disk image")
		}
	}
	return cfg, nil
}

// AttachQEMU connects to the QMP monitor (a unix socket) of a QEMU the
// operator started, to hand its VM off: Stop and Resume work as for a VM
// StartQEMU started, but Kill only disconnects — the process is not ours.
// dir is where Stop has QEMU write the device state: QEMU must be able to
// write there (it runs `cat > DIR/state.out`).
func AttachQEMU(ctx context.Context, qmpSocket, dir string, log *zap.Logger) (*QEMU, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if dir == "" {
		return nil, errors.New("qemu: a directory for the device state is required")
	}
	mon, err := qmp.NewSocketMonitor("unix", qmpSocket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", qmpSocket, err)
	}
	// QEMU serves one client per QMP socket: a second one is accepted by
	// the kernel but never greeted. Do not wait for that forever.
	connected := make(chan error, 1)
	go func() { connected <- mon.Connect() }()
	select {
	case err := <-connected:
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", qmpSocket, err)
		}
	case <-time.After(10 * time.Second):
		mon.Disconnect()
		return nil, fmt.Errorf("qmp %s: no greeting in 10 s — another client holds the socket? Give QEMU a second -qmp socket for gdp", qmpSocket)
	case <-ctx.Done():
		mon.Disconnect()
		return nil, ctx.Err()
	}
	q := &QEMU{cfg: QEMUConfig{Dir: dir, Logger: log}, mon: mon, exited: make(chan struct{}), attached: true}
	if _, err := q.Status(); err != nil {
		mon.Disconnect()
		return nil, err
	}
	return q, nil
}

// GuestRAM is a VM's RAM as a handoff needs it: a memory backend file
// shared with QEMU.
type GuestRAM struct {
	Backend string // the backend's QOM id
	Path    string // its mem-path
	Size    int64  // bytes
}

// RAM finds the VM's file-backed, shared memory backend (query-memdev,
// then qom-get of its mem-path); a VM whose RAM is not in a shared file
// cannot be handed off this way, and the error says how to start it.
func (q *QEMU) RAM() (GuestRAM, error) {
	r, err := q.Run("query-memdev", nil)
	if err != nil {
		return GuestRAM{}, err
	}
	var devs []struct {
		ID    string `json:"id"`
		Size  int64  `json:"size"`
		Share bool   `json:"share"`
	}
	if err := json.Unmarshal(r, &devs); err != nil {
		return GuestRAM{}, fmt.Errorf("query-memdev: %w", err)
	}
	const how = "start QEMU with -object memory-backend-file,id=mem,size=…,mem-path=FILE,share=on -machine …,memory-backend=mem"
	if len(devs) != 1 {
		return GuestRAM{}, fmt.Errorf("the VM has %d memory backends, want exactly one: %s", len(devs), how)
	}
	d := devs[0]
	if !d.Share {
		return GuestRAM{}, fmt.Errorf("memory backend %s is not shared (share=on): %s", d.ID, how)
	}
	r, err = q.Run("qom-get", map[string]any{"path": "/objects/" + d.ID, "property": "mem-path"})
	if err != nil {
		return GuestRAM{}, fmt.Errorf("memory backend %s has no file: %w (%s)", d.ID, err, how)
	}
	var path string
	if err := json.Unmarshal(r, &path); err != nil || path == "" {
		return GuestRAM{}, fmt.Errorf("memory backend %s has no file (%s)", d.ID, how)
	}
	return GuestRAM{Backend: d.ID, Path: path, Size: d.Size}, nil
}

// CPUs is the number of the VM's vCPUs (query-cpus-fast).
func (q *QEMU) CPUs() (int, error) {
	r, err := q.Run("query-cpus-fast", nil)
	if err != nil {
		return 0, err
	}
	var cpus []json.RawMessage
	if err := json.Unmarshal(r, &cpus); err != nil {
		return 0, fmt.Errorf("query-cpus-fast: %w", err)
	}
	return len(cpus), nil
}
