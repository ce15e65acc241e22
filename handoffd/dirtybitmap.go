package handoffd

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// dirtyTracker follows a running VM's writes to one disk with QEMU dirty
// bitmaps (QMP block-dirty-bitmap-add), one per Refresh: each call starts
// a new bitmap and freezes the one before in the same transaction, so a
// guest write lands in the frozen one (before the switch) or the new one
// (after): none is lost between two Refreshes. The frozen bitmap is read
// through QEMU's NBD server (an export of the disk's node naming the
// bitmap: qemu-img map with x-dirty-bitmap reports its dirty ranges as
// "data": false), then dropped. QEMU 7.2 has no QMP command that returns
// a bitmap's bits.
type dirtyTracker struct {
	q    *QEMU
	img  string // qemu-img
	node string // the overlay's format node
	sock string // the NBD server's unix socket
	ours bool   // the NBD server was started here
	// id makes this tracker's bitmap and export names its own,
	// bitmapPrefix+"PID-RANDOM-n": a second tracker on the same QEMU (a
	// second handoff of the VM, from this process or another) neither
	// removes nor disables them, and sees them as a clash.
	id string
	n  int // the bitmap recording now: t.name(n) (0: none yet)
	// frozen: the stop hook (QEMU.Stop, after the pause and before the
	// device state is written out) read the bitmap already; next returns
	// pending instead of reading again. An export after the device state
	// was written re-activates the stopped VM's disk (bdrv_activate): up
	// to 0.16 s of the downtime.
	frozen  bool
	pending []Extent
	err     error // the stop hook's failure, for next
}

const bitmapPrefix = "gdp-handoff-"

// liveTrackers are this process's trackers by id: a bitmap of this
// process's pid not among them is one a closed tracker failed to remove.
var liveTrackers sync.Map

// errBitmapClash: another handoff of the same VM follows its writes.
var errBitmapClash = errors.New("another handoff of this VM follows its disk writes")

// bitmapOwner says whose a bitmap or export named by this package is:
// live (a running tracker's, here or in another live process) or stale
// (a killed sender's, a closed tracker's, or from before per-tracker
// names): stale ones may be removed, live ones never.
func bitmapOwner(name string) (live bool) {
	rest, ok := strings.CutPrefix(name, bitmapPrefix)
	if !ok {
		return false
	}
	f := strings.Split(rest, "-")
	if len(f) != 3 {
		return false // gdp-handoff-N: a sender from before per-tracker names
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		_, live = liveTrackers.Load(f[1])
		return live
	}
	// Another process: live while it runs (a reused pid reads as live:
	// the whole-overlay fallback, never a removed bitmap of a live one).
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// newDirtyTracker finds top's node in q (query-block: the device whose
// image is the same file as top), removes the bitmaps and exports a
// killed sender left, refuses (errBitmapClash) when another live tracker
// follows the VM, and starts QEMU's NBD server on a unix socket in q's
// directory.
func newDirtyTracker(q *QEMU, img, top string) (*dirtyTracker, error) {
	var rnd [4]byte
	crand.Read(rnd[:])
	t := &dirtyTracker{q: q, img: img, id: hex.EncodeToString(rnd[:])}
	clash := false
	liveTrackers.Range(func(_, v any) bool {
		clash = v.(*dirtyTracker).q == q
		return !clash
	})
	if clash {
		return nil, fmt.Errorf("%w (in this process)", errBitmapClash)
	}
	r, err := q.Run("query-block", nil)
	if err != nil {
		return nil, err
	}
	var devs []struct {
		Inserted *struct {
			NodeName string `json:"node-name"`
			File     string `json:"file"`
			Bitmaps  []struct {
				Name string `json:"name"`
			} `json:"dirty-bitmaps"`
		} `json:"inserted"`
	}
	if err := json.Unmarshal(r, &devs); err != nil {
		return nil, fmt.Errorf("query-block: %w", err)
	}
	want, err := os.Stat(top)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.Inserted == nil {
			continue
		}
		if fi, err := os.Stat(d.Inserted.File); err != nil || !os.SameFile(fi, want) {
			continue
		}
		t.node = d.Inserted.NodeName
		for _, b := range d.Inserted.Bitmaps {
			if bitmapOwner(b.Name) {
				return nil, fmt.Errorf("%w (its bitmap %s on %s; if no other handoff runs, remove it with QMP block-dirty-bitmap-remove)", errBitmapClash, b.Name, t.node)
			}
		}
		for _, b := range d.Inserted.Bitmaps {
			if strings.HasPrefix(b.Name, bitmapPrefix) {
				t.dropExport(b.Name)
				if _, err := q.Run("block-dirty-bitmap-remove", map[string]any{"node": t.node, "name": b.Name}); err != nil {
					return nil, fmt.Errorf("remove the stale bitmap %s: %w", b.Name, err)
				}
			}
		}
	}
	if t.node == "" {
		return nil, fmt.Errorf("no block device of the VM has %s open", top)
	}
	t.sock = filepath.Join(q.cfg.Dir, "gdp-nbd.sock")
	if len(t.sock) > 100 {
		return nil, fmt.Errorf("the NBD socket path %s is too long for a unix socket", t.sock)
	}
	start := func() error {
		os.Remove(t.sock)
		_, err := q.Run("nbd-server-start", map[string]any{"addr": map[string]any{"type": "unix", "data": map[string]any{"path": t.sock}}})
		return err
	}
	if err := start(); err != nil {
		// A server with no exports but ours is one a killed sender left
		// (or serves nothing): take it over. Any other is the operator's.
		if !t.onlyOurExports() {
			return nil, fmt.Errorf("QEMU runs an NBD server of its own (%w): the final round copies the whole overlay", err)
		}
		q.Run("nbd-server-stop", nil)
		if err := start(); err != nil {
			return nil, err
		}
	}
	t.ours = true
	liveTrackers.Store(t.id, t)
	q.onStop(t, t.freeze)
	return t, nil
}

// freeze runs in QEMU.Stop once the VM is paused (its disk drained and
// flushed): the bitmap that recorded since the last Refresh is read
// there, a new one started.
func (t *dirtyTracker) freeze() {
	if t.frozen || t.err != nil || t.n == 0 {
		return
	}
	dirty, ok, err := t.read()
	switch {
	case err != nil:
		t.err = err
	case ok:
		t.frozen, t.pending = true, dirty
	}
}

// flush has QEMU write the overlay's metadata out (HMP qemu-io flush):
// the qcow2 L2 entries of clusters the guest allocated since the last
// flush may sit in QEMU's cache, and qemu-img map reads the file. After
// the bitmap switch, a map then shows every range written before it where
// it is; one written after is the next bitmap's.
func (t *dirtyTracker) flush() error {
	r, err := t.q.Run("human-monitor-command", map[string]any{"command-line": fmt.Sprintf("qemu-io %s \"flush\"", t.node)})
	if err != nil {
		return fmt.Errorf("flush %s: %w", t.node, err)
	}
	var out string
	json.Unmarshal(r, &out)
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("flush %s: %s", t.node, strings.TrimSpace(out))
	}
	return nil
}

// onlyOurExports: QEMU exports nothing but this package's bitmaps' exports.
func (t *dirtyTracker) onlyOurExports() bool {
	r, err := t.q.Run("query-block-exports", nil)
	if err != nil {
		return false
	}
	var ex []struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(r, &ex) != nil {
		return false
	}
	for _, e := range ex {
		if !strings.HasPrefix(e.ID, bitmapPrefix) || bitmapOwner(e.ID) {
			return false
		}
	}
	for _, e := range ex {
		t.dropExport(e.ID)
	}
	return true
}

func (t *dirtyTracker) dropExport(id string) {
	t.q.Run("block-export-del", map[string]any{"id": id, "mode": "hard"})
}

func (t *dirtyTracker) name(n int) string {
	return fmt.Sprintf("%s%d-%s-%d", bitmapPrefix, os.Getpid(), t.id, n)
}

// next starts a new bitmap and returns the ranges written since the call
// before (ok false on the first call: nothing was recording), the
// overlay's metadata flushed (or the stop hook's reading).
func (t *dirtyTracker) next() (dirty []Extent, ok bool, err error) {
	if t.err != nil {
		return nil, false, t.err
	}
	if t.frozen {
		t.frozen = false
		return t.pending, true, nil
	}
	dirty, ok, err = t.read()
	if err == nil {
		err = t.flush()
	}
	return dirty, ok, err
}

// read starts a new bitmap, freezing the one before in the same
// transaction, and returns what the frozen one recorded.
func (t *dirtyTracker) read() (dirty []Extent, ok bool, err error) {
	prev := t.n
	t.n++
	actions := []map[string]any{{"type": "block-dirty-bitmap-add", "data": map[string]any{"node": t.node, "name": t.name(t.n)}}}
	if prev > 0 {
		actions = append(actions, map[string]any{"type": "block-dirty-bitmap-disable", "data": map[string]any{"node": t.node, "name": t.name(prev)}})
	}
	if _, err := t.q.Run("transaction", map[string]any{"actions": actions}); err != nil {
		t.n = prev
		return nil, false, err
	}
	if prev == 0 {
		return nil, false, nil
	}
	name := t.name(prev)
	defer t.q.Run("block-dirty-bitmap-remove", map[string]any{"node": t.node, "name": name})
	if _, err := t.q.Run("block-export-add", map[string]any{"type": "nbd", "id": name, "node-name": t.node, "name": name,
		"writable": false, "bitmaps": []string{name}}); err != nil {
		return nil, false, err
	}
	defer t.dropExport(name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := fmt.Sprintf("driver=nbd,server.type=unix,server.path=%s,export=%s,x-dirty-bitmap=qemu:dirty-bitmap:%s", t.sock, name, name)
	out, err := exec.CommandContext(ctx, t.img, "map", "--output=json", "--image-opts", opts).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, false, fmt.Errorf("qemu-img map of bitmap %s: %w", name, err)
	}
	var m []qcow2Extent
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, false, fmt.Errorf("qemu-img map of bitmap %s: %w", name, err)
	}
	for _, e := range m {
		if e.Data { // clean
			continue
		}
		if n := len(dirty); n > 0 && dirty[n-1].Start+dirty[n-1].Length == e.Start {
			dirty[n-1].Length += e.Length
			continue
		}
		dirty = append(dirty, Extent{e.Start, e.Length})
	}
	return dirty, true, nil
}

// close removes the bitmap recording and stops the NBD server.
func (t *dirtyTracker) close() {
	t.q.onStop(t, nil)
	defer liveTrackers.Delete(t.id)
	if t.n > 0 {
		t.q.Run("block-dirty-bitmap-remove", map[string]any{"node": t.node, "name": t.name(t.n)})
		t.n = 0
	}
	if t.ours {
		t.q.Run("nbd-server-stop", nil)
		os.Remove(t.sock)
		t.ours = false
	}
}
