package handoffd

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
)

// ReceiveConfig tunes the receiver. Cache and Dir are required.
type ReceiveConfig struct {
	Cache *BaseCache
	// Dir holds the results, one directory per committed handoff: DIR/ID/
	// with one file per image, "state" and "hello.json".
	Dir string
	// IdleTimeout bounds the silence between two frames (default 30 s).
	IdleTimeout time.Duration
	Logger      *zap.Logger
	Metrics     *Metrics // may be nil
	// LogLimit, if set, bounds the "handoff receiving" line per LogKey
	// (the agent's: a few per sender and interval, so a sender that
	// opens and drops handoffs in a loop costs a few lines).
	LogLimit *logging.Limiter
	LogKey   string
	// MinFreeBytes is the free space Dir's file system keeps: a handoff
	// whose declared images (counted in full, as if no block were shared
	// with the base) would leave less is refused at its hello, and one in
	// progress fails as soon as less is free (checked on every blob and
	// device-state frame). ErrDiskFull either way. Zero: no guard.
	MinFreeBytes int64
	// FreeBytes reports the bytes free to unprivileged users on dir's file
	// system. Default statfs(2).
	FreeBytes func(dir string) (uint64, error)
	// Reserve, if set, is asked for every byte staged before it is
	// written: the declared image sizes at the hello, then each spilled
	// block and device-state frame. Its error (ErrPeerBytes from the
	// agent) ends the handoff.
	Reserve func(n int64) error
	// PrestartVM, when set, starts the destination's QEMU for a VM
	// handoff as soon as its images are staged (at the hello, before the
	// background verification reads them): the machine from the hello,
	// the staged RAM file and disk, waiting for its device state
	// (-incoming defer: it runs nothing before ResumeVM loads the state,
	// which is after the commit). The committed Received carries it
	// (Received.QEMU) and ResumeVM only loads the state: the QEMU's start
	// is not in the pause. Its Dir is ignored (the staging directory's
	// "vm", then the result's); a QEMU that cannot start is one log line,
	// and ResumeVM starts it after the commit as without PrestartVM. A
	// failed handoff kills it.
	PrestartVM *QEMUConfig
}

// ErrDiskFull: the handoff would leave less than MinFreeBytes free where
// it is staged.
var ErrDiskFull = errors.New("not enough free space to stage the handoff")

// ErrPeerBytes: the sender's handoffs in progress would stage more than
// its share (AgentConfig.MaxBytesPerPeer).
var ErrPeerBytes = errors.New("the sender's handoffs in progress would stage more than its share")

// statfsFree is the bytes available to unprivileged users on dir's file
// system.
func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// roomFor checks that n more bytes can be staged: within the sender's
// share (Reserve) and leaving MinFreeBytes free.
func (r *receiver) roomFor(n int64) error {
	if err := r.reserve(n); err != nil {
		return err
	}
	if r.cfg.MinFreeBytes <= 0 {
		return nil
	}
	free, err := r.cfg.FreeBytes(r.cfg.Dir)
	if err != nil {
		return fmt.Errorf("free space of %s: %w", r.cfg.Dir, err)
	}
	if free < uint64(n)+uint64(r.cfg.MinFreeBytes) {
		return fmt.Errorf("%w: %d bytes free in %s, %d more to stage, %d to keep free (min_free_bytes)", ErrDiskFull, free, r.cfg.Dir, n, r.cfg.MinFreeBytes)
	}
	return nil
}

// reserve takes n bytes of the sender's share.
func (r *receiver) reserve(n int64) error {
	if r.cfg.Reserve == nil || n <= 0 {
		return nil
	}
	return r.cfg.Reserve(n)
}

// stagingLimit says err is a refusal for space, not bad input.
func stagingLimit(err error) bool {
	return errors.Is(err, ErrDiskFull) || errors.Is(err, ErrPeerBytes)
}

// Received is a committed handoff.
type Received struct {
	ID     string
	Dir    string
	Images map[string]string // name -> path
	State  string            // path of the device state ("" for a pair)
	VM     bool
	Meta   VMMeta
	Bytes  int64
	// Go: the sender confirmed it heard the commit (its VM stays stopped);
	// only then may the VM be resumed here.
	Go bool
	// Commit is where the time from the end frame to the verdict went
	// (the sender's Report.Downtime.VerdictSec, less the network).
	Commit CommitTiming
	// QEMU: the destination's QEMU started ahead on the images
	// (ReceiveConfig.PrestartVM), waiting for the device state; ResumeVM
	// loads it. Whoever does not resume the VM must Kill it.
	QEMU *QEMU
}

// CommitTiming splits the destination's commit, in seconds: the pending
// duplicates resolved, the wait for the background verification of the
// blocks the stream did not write, the images' fsync and digests, the
// device state's hash and fsync, the rename.
type CommitTiming struct {
	ResolveSec, VerifyWaitSec, SyncSec, StateSec, RenameSec float64
}

// deadliner is implemented by net.Conn.
type deadliner interface{ SetReadDeadline(time.Time) error }

type rimg struct {
	helloImage
	f      *os.File
	base   *Base
	baseF  *os.File
	blocks int64
	// The hash of every block of f as it will be at the commit: a block
	// applied from the stream has the hash its bytes were checked against
	// just before they were written (written set); every other block the
	// hash verifyUnchanged read from f. The whole-image digest is computed
	// from these, so the commit no longer re-reads the images.
	mu      sync.Mutex
	hashes  []Hash
	written []bool
}

// mark records that block blk now holds bytes with hash h.
func (im *rimg) mark(blk int64, h Hash) {
	im.mu.Lock()
	im.hashes[blk], im.written[blk] = h, true
	im.mu.Unlock()
}

type baseLoc struct {
	f   *os.File
	blk int64
}

type receiver struct {
	cfg   ReceiveConfig
	log   *zap.Logger
	work  string
	imgs  []*rimg
	index map[Hash]baseLoc
	spill *os.File
	// stored: where the data of every block sent as data (or xor) can be
	// read again for a later duplicate: the image block it was written to,
	// or the spill file once that block was overwritten with other content.
	stored  map[Hash]storedLoc
	nspill  int64    // blocks in the spill file
	pending []record // dups whose data has not arrived yet
	state   *os.File
	stateN  int64
	bytes   int64
	blobs   int
	bw      *bufio.Writer // under wmu: the keepalives write beside the loop
	wmu     sync.Mutex
	wdl     interface{ SetWriteDeadline(time.Time) error } // the stream's, if it has them
	ackBuf  [16]byte
	files   []*os.File
	next    func() (byte, []byte, error)
	// verifyUnchanged, running from the setup to the commit
	verr  chan error
	vstop atomic.Bool
	// Background fsync of the images (syncSoon): the commit's own fsync
	// then writes out only what came since, not the whole transfer.
	syncWG   sync.WaitGroup
	syncing  atomic.Bool
	syncErr  atomic.Pointer[error]
	unsynced int64 // bytes of blobs applied since the last syncSoon
	qemu     *QEMU // PrestartVM's, until the commit hands it on
}

// syncEvery is how many bytes of applied blocks start a background fsync
// (a variable for tests).
var syncEvery int64 = 32 << 20

// backgroundSync is syncSoon's fsync (tests inject a writeback error).
var backgroundSync = (*os.File).Sync

// syncSoon starts an fsync of every image in the background unless one
// runs. A VM handoff's commit comes right after the final round, the VM
// stopped: its fsync used to write out every block of the transfer still
// in the page cache (0.3–0.4 s of the downtime for 200 MB). Its error is
// kept for the commit: Linux reports a writeback error to one fsync only.
func (r *receiver) syncSoon() {
	r.unsynced = 0
	if r.syncing.Swap(true) {
		return
	}
	r.syncWG.Add(1)
	go func() {
		defer r.syncWG.Done()
		defer r.syncing.Store(false)
		for _, im := range r.imgs {
			if err := backgroundSync(im.f); err != nil {
				err = fmt.Errorf("image %s: sync: %w", im.Name, err)
				r.syncErr.CompareAndSwap(nil, &err)
				return
			}
		}
	}()
}

// Receive runs one handoff's destination side on conn. Nothing is left
// under cfg.Dir unless every block and every image digest checked out.
func Receive(ctx context.Context, conn io.ReadWriter, cfg ReceiveConfig) (*Received, error) {
	if cfg.Cache == nil || cfg.Dir == "" {
		return nil, errors.New("receive: cache and dir are required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.FreeBytes == nil {
		cfg.FreeBytes = statfsFree
	}
	r := &receiver{cfg: cfg, log: cfg.Logger, index: map[Hash]baseLoc{}, stored: map[Hash]storedLoc{}}
	r.bw = bufio.NewWriter(conn)
	r.wdl, _ = conn.(interface{ SetWriteDeadline(time.Time) error })
	rec, err := r.run(ctx, conn)
	r.syncWG.Wait()
	if r.verr != nil && err != nil {
		r.vstop.Store(true)
		<-r.verr
	}
	for _, f := range r.files {
		f.Close()
	}
	if err != nil {
		if r.qemu != nil {
			r.qemu.Kill()
			r.qemu = nil
		}
		if r.work != "" {
			os.RemoveAll(r.work)
		}
		// Best effort: tell the sender why.
		r.sendJSON(frameResult, result{Error: err.Error()})
		cfg.Metrics.failed(err)
		return nil, err
	}
	cfg.Metrics.committed(r.bytes)
	return rec, nil
}

// sendFrame writes one frame to the sender and flushes it, within
// IdleTimeout where the stream has write deadlines: a sender that is gone
// does not hold the keepalives (or the loop) in a write for a TCP timeout.
func (r *receiver) sendFrame(typ byte, p []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.wdl != nil {
		r.wdl.SetWriteDeadline(time.Now().Add(r.cfg.IdleTimeout))
	}
	if err := writeFrame(r.bw, typ, p); err != nil {
		return err
	}
	return r.bw.Flush()
}

func (r *receiver) sendJSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.sendFrame(typ, b)
}

// keepAlive sends a keepalive frame at once and then every interval
// (clamped) until stop, which waits for the goroutine.
func (r *receiver) keepAlive(interval time.Duration) (stop func()) {
	interval = min(max(interval, minKeepAlive), maxKeepAlive)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := r.sendFrame(frameKeepAlive, nil); err != nil {
				return // the stream is gone; the loop finds out too
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (r *receiver) open(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o644)
	if err == nil {
		r.files = append(r.files, f)
	}
	return f, err
}

func (r *receiver) run(ctx context.Context, conn io.ReadWriter) (*Received, error) {
	dl, _ := conn.(deadliner)
	br := bufio.NewReaderSize(conn, 256<<10)
	var buf []byte
	r.next = func() (byte, []byte, error) {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		if dl != nil {
			dl.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
		}
		typ, p, err := readFrame(br, buf)
		if err == nil {
			buf = p
			r.bytes += int64(len(p)) + 5
		}
		return typ, p, err
	}
	next := r.next
	typ, p, err := next()
	if err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	if typ != frameHello {
		return nil, fmt.Errorf("first frame is type %d, want hello", typ)
	}
	var h hello
	if err := json.Unmarshal(p, &h); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if h.KeepAliveMS > 0 {
		// From now on, whatever the setup (a base copied) or the disk
		// costs: the sender tells a busy agent from a gone one by them.
		stop := r.keepAlive(time.Duration(h.KeepAliveMS) * time.Millisecond)
		defer stop()
	}
	if err := r.setup(&h); err != nil {
		r.sendJSON(frameReady, result{Error: err.Error()})
		return nil, err
	}
	if err := r.sendJSON(frameReady, result{OK: true}); err != nil {
		return nil, fmt.Errorf("send ready: %w", err)
	}
	r.cfg.LogLimit.Info(r.log, r.cfg.LogKey, "handoff receiving", zap.String("name", h.ID), zap.Int("images", len(h.Images)), zap.Bool("vm", h.VM))
	for {
		typ, p, err := next()
		if err != nil {
			return nil, fmt.Errorf("handoff %s: read: %w", h.ID, err)
		}
		switch typ {
		case frameBlob:
			recs, err := decodeBlob(p)
			if err != nil {
				r.cfg.Metrics.badInput("blob")
				return nil, fmt.Errorf("handoff %s: %w", h.ID, err)
			}
			if err := r.roomFor(0); err != nil {
				return nil, fmt.Errorf("handoff %s: %w", h.ID, err)
			}
			if err := r.applyBlob(recs); err != nil {
				if stagingLimit(err) {
					return nil, fmt.Errorf("handoff %s: %w", h.ID, err)
				}
				r.cfg.Metrics.badInput("record")
				return nil, fmt.Errorf("handoff %s: %w", h.ID, err)
			}
			r.blobs++
			r.cfg.Metrics.blob(len(p)+5, recs)
			if r.unsynced += int64(len(recs)) * BlockSize; r.unsynced >= syncEvery {
				r.syncSoon()
			}
			binary.BigEndian.PutUint64(r.ackBuf[:8], uint64(r.bytes))
			binary.BigEndian.PutUint64(r.ackBuf[8:], uint64(r.blobs))
			if err := r.sendFrame(frameAck, r.ackBuf[:]); err != nil {
				return nil, fmt.Errorf("send ack: %w", err)
			}
		case frameRound:
			var re roundEnd
			if err := json.Unmarshal(p, &re); err != nil {
				return nil, fmt.Errorf("handoff %s: round end: %w", h.ID, err)
			}
			if err := r.resolve(); err != nil {
				return nil, fmt.Errorf("handoff %s: round %d: %w", h.ID, re.Round, err)
			}
			r.syncSoon()
		case frameState:
			if !h.VM {
				return nil, fmt.Errorf("handoff %s: device state in an image-pair handoff", h.ID)
			}
			if r.stateN+int64(len(p)) > maxStateSize {
				return nil, fmt.Errorf("handoff %s: device state exceeds %d bytes", h.ID, maxStateSize)
			}
			if err := r.roomFor(int64(len(p))); err != nil {
				return nil, fmt.Errorf("handoff %s: device state: %w", h.ID, err)
			}
			if _, err := r.state.Write(p); err != nil {
				return nil, fmt.Errorf("handoff %s: write state: %w", h.ID, err)
			}
			r.stateN += int64(len(p))
		case frameEnd:
			var e endMsg
			if err := json.Unmarshal(p, &e); err != nil {
				return nil, fmt.Errorf("handoff %s: end: %w", h.ID, err)
			}
			return r.commit(&h, &e)
		default:
			return nil, fmt.Errorf("handoff %s: unexpected frame type %d", h.ID, typ)
		}
	}
}

func (r *receiver) setup(h *hello) error {
	if h.Version != 1 {
		return fmt.Errorf("hello: version %d, want 1", h.Version)
	}
	if !nameRE.MatchString(h.ID) {
		return fmt.Errorf("hello: handoff id %q: want [a-z0-9-], at most 32", h.ID)
	}
	if len(h.Images) == 0 || len(h.Images) > maxImages {
		return fmt.Errorf("hello: %d images, want 1..%d", len(h.Images), maxImages)
	}
	if _, err := os.Stat(filepath.Join(r.cfg.Dir, h.ID)); err == nil {
		return fmt.Errorf("hello: handoff %s already committed here", h.ID)
	}
	var declared int64
	for _, im := range h.Images {
		if im.Size <= 0 || im.Size > maxImageSize {
			return fmt.Errorf("hello: image %s: size %d out of range", im.Name, im.Size)
		}
		declared += im.Size
	}
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("result dir: %w", err)
	}
	// Before anything is staged: the images as declared must fit, in the
	// sender's share and above the free-space floor.
	if err := r.roomFor(declared); err != nil {
		return fmt.Errorf("hello: %d images of %d bytes: %w", len(h.Images), declared, err)
	}
	work, err := os.MkdirTemp(r.cfg.Dir, ".partial-"+h.ID+"-")
	if err != nil {
		return fmt.Errorf("result dir: %w", err)
	}
	r.work = work
	names := map[string]bool{}
	baseFiles := map[string]*os.File{}
	baseOf := func(id string) (*Base, *os.File, error) {
		b, err := r.cfg.Cache.Get(id)
		if err != nil {
			return nil, nil, err
		}
		if f := baseFiles[id]; f != nil {
			return b, f, nil
		}
		f, err := r.open(b.Path, os.O_RDONLY)
		if err != nil {
			return nil, nil, fmt.Errorf("base %s: %w", id, err)
		}
		baseFiles[id] = f
		return b, f, nil
	}
	for _, id := range h.Bases {
		b, f, err := baseOf(id)
		if err != nil {
			return fmt.Errorf("hello: %w", err)
		}
		for i, x := range b.Hashes {
			if _, ok := r.index[x]; !ok {
				r.index[x] = baseLoc{f, int64(i)}
			}
		}
	}
	for _, im := range h.Images {
		if !nameRE.MatchString(im.Name) || names[im.Name] || im.Name == "state" || im.Name == "blocks" {
			return fmt.Errorf("hello: image name %q: want unique [a-z0-9-]", im.Name)
		}
		names[im.Name] = true // sizes: checked above, before roomFor
		b, bf, err := baseOf(im.Base)
		if err != nil {
			return fmt.Errorf("hello: image %s: %w", im.Name, err)
		}
		listed := false
		for _, id := range h.Bases {
			listed = listed || id == im.Base
		}
		if !listed {
			return fmt.Errorf("hello: image %s: base %s not among the listed bases", im.Name, im.Base)
		}
		t0 := time.Now()
		f, how, err := prepareImage(b, filepath.Join(work, im.Name), im.Size)
		if err != nil {
			return fmt.Errorf("image %s: copy base: %w", im.Name, err)
		}
		r.files = append(r.files, f)
		r.log.Debug("handoff image prepared", zap.String("name", h.ID), zap.String("image", im.Name), zap.String("how", how),
			zap.Duration("took", time.Since(t0)))
		nb := blocksOf(im.Size)
		r.imgs = append(r.imgs, &rimg{helloImage: im, f: f, base: b, baseF: bf, blocks: nb,
			hashes: make([]Hash, nb), written: make([]bool, nb)})
	}
	if r.spill, err = r.open(filepath.Join(work, "blocks"), os.O_CREATE|os.O_RDWR|os.O_TRUNC); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	if r.state, err = r.open(filepath.Join(work, "state"), os.O_CREATE|os.O_RDWR|os.O_TRUNC); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	hb, _ := json.MarshalIndent(h, "", "  ")
	if err := os.WriteFile(filepath.Join(work, "hello.json"), hb, 0o644); err != nil {
		return fmt.Errorf("hello.json: %w", err)
	}
	if h.VM && r.cfg.PrestartVM != nil {
		r.prestart(h)
	}
	r.verr = make(chan error, 1)
	go func() { r.verr <- r.verifyUnchanged() }()
	return nil
}

// prestart starts the destination's QEMU on the staged images (PrestartVM).
// Before the verification starts: whatever QEMU's start touched in them
// would be read, and the digests would tell.
func (r *receiver) prestart(h *hello) {
	base := *r.cfg.PrestartVM
	base.Dir = filepath.Join(r.work, "vm")
	if base.Logger == nil {
		base.Logger = r.log
	}
	images := map[string]string{}
	var err error
	for _, im := range r.imgs {
		images[im.Name] = im.f.Name()
		// QEMU would grow a RAM file smaller than the machine's memory:
		// a staged image is never changed by anyone but the stream.
		if im.Name == "memory" && im.Size != int64(h.Meta.MemoryMiB)<<20 {
			err = fmt.Errorf("the memory image has %d bytes, the machine %d MiB", im.Size, h.Meta.MemoryMiB)
		}
	}
	t0 := time.Now()
	if err == nil {
		err = os.MkdirAll(base.Dir, 0o755)
	}
	var cfg QEMUConfig
	if err == nil {
		cfg, err = vmConfig(r.cfg.Cache, h.Meta, images, base)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r.qemu, err = StartQEMU(ctx, cfg)
		cancel()
	}
	if err != nil {
		// Per sender, bounded like "handoff receiving": a sender may cause it
		// on every handoff (a machine size that does not match its RAM).
		r.cfg.LogLimit.Warn(r.log, r.cfg.LogKey, "destination VM not started ahead: it starts after the commit, a longer pause", zap.String("name", h.ID), zap.Error(err))
		return
	}
	r.log.Debug("destination VM started ahead", zap.String("name", h.ID), zap.Duration("took", time.Since(t0)))
}

var errVerifyStopped = errors.New("verification stopped")

// verifyHook, set by tests, runs as the background verification starts.
var verifyHook func()

// verifyUnchanged hashes every block of every working image while the
// transfer runs (one goroutine, in the background), keeping the hash of
// each block the stream has not written: what the base copy holds there.
// A block written meanwhile keeps the hash apply checked it against (its
// bytes are what was written), whichever of the two comes first. A block
// the stream wrote before the verification reached it is not read; nor is
// one wholly inside a hole of the working image (SEEK_HOLE: it reads as
// zeros, its hash is zeroHash) — a base is mostly zeros, and its copy
// holds them as holes: reading them cost more CPU than the stream's
// blocks (Session 17).
func (r *receiver) verifyUnchanged() error {
	if verifyHook != nil {
		verifyHook()
	}
	const chunk = 256
	buf := make([]byte, chunk*BlockSize)
	var hs [chunk]Hash
	var need [chunk]bool
	for _, im := range r.imgs {
		exts, holes := dataExtents(im.f, im.Size)
		for start := int64(0); start < im.blocks; start += chunk {
			if r.vstop.Load() {
				return errVerifyStopped
			}
			end := min(start+chunk, im.blocks)
			n := end - start
			im.mu.Lock()
			for i := int64(0); i < n; i++ {
				need[i] = !im.written[start+i]
			}
			im.mu.Unlock()
			if holes {
				// Extents are sorted and apart: drop the ones that end
				// before this chunk, then keep only blocks one touches.
				for len(exts) > 0 && exts[0].Start+exts[0].Length <= start*BlockSize {
					exts = exts[1:]
				}
				for i := int64(0); i < n; i++ {
					if need[i] && !touchesData(exts, (start+i)*BlockSize) {
						need[i] = false
						hs[i] = zeroHash
					}
				}
			}
			for i := int64(0); i < n; {
				if !need[i] {
					i++
					continue
				}
				j := i + 1
				for j < n && need[j] {
					j++
				}
				off := (start + i) * BlockSize
				want := min(im.Size-off, (j-i)*BlockSize)
				if got, err := im.f.ReadAt(buf[:want], off); int64(got) != want {
					return fmt.Errorf("image %s: verify: read at block %d: %w", im.Name, start+i, orEOF(err))
				}
				for k := i; k < j; k++ {
					o := (k - i) * BlockSize
					hs[k] = hashBlock(buf[o:min(o+BlockSize, want)])
				}
				i = j
			}
			im.mu.Lock()
			for i := int64(0); i < n; i++ {
				if !im.written[start+i] && (need[i] || holes) {
					im.hashes[start+i] = hs[i]
				}
			}
			im.mu.Unlock()
		}
	}
	return nil
}

// touchesData says whether the block at byte off overlaps an extent of
// exts (sorted, those wholly before off already dropped).
func touchesData(exts []Extent, off int64) bool {
	for _, e := range exts {
		if e.Start >= off+BlockSize {
			return false
		}
		if e.Start+e.Length > off {
			return true
		}
	}
	return false
}

// write puts blocks from blk on, whose hashes are already checked, in
// their place; the last block of an image is cut at the image's size.
func (r *receiver) write(im *rimg, blk int64, data []byte) error {
	off := blk * BlockSize
	n := min(int64(len(data)), im.Size-off)
	if _, err := im.f.WriteAt(data[:n], off); err != nil {
		return fmt.Errorf("image %s: write block %d: %w", im.Name, blk, err)
	}
	return nil
}

// storedLoc is image img's block blk, or (img < 0) the spill file's.
type storedLoc struct {
	img int
	blk int64
}

// read reads a stored block into data (zero-padded at an image's end).
func (r *receiver) read(loc storedLoc, data []byte) error {
	if loc.img < 0 {
		if _, err := r.spill.ReadAt(data, loc.blk*BlockSize); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		return nil
	}
	im := r.imgs[loc.img]
	if _, err := im.f.ReadAt(data, loc.blk*BlockSize); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("image %s: read block %d: %w", im.Name, loc.blk, err)
	}
	return nil
}

// preserve is called before block blk of image i is written with content
// of hash h: when the block holds the only stored copy of other content,
// that content moves to the spill file first (a later duplicate may need
// it; this happens when a pre-copy round rewrites a block).
func (r *receiver) preserve(i int, blk int64, h Hash) error {
	im := r.imgs[i]
	im.mu.Lock()
	old, written := im.hashes[blk], im.written[blk]
	im.mu.Unlock()
	if !written || old == h {
		return nil
	}
	if loc, ok := r.stored[old]; !ok || loc.img != i || loc.blk != blk {
		return nil
	}
	// The free space is checked on every blob; the share here.
	if err := r.reserve(BlockSize); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	var buf [BlockSize]byte
	if err := r.read(storedLoc{i, blk}, buf[:]); err != nil {
		return err
	}
	if _, err := r.spill.WriteAt(buf[:], r.nspill*BlockSize); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	r.stored[old] = storedLoc{-1, r.nspill}
	r.nspill++
	return nil
}

func (r *receiver) apply(rc *record) error {
	var buf [BlockSize]byte
	im, blk, data, err := r.check(rc, &buf)
	if err != nil || data == nil {
		return err
	}
	return r.write(im, blk, data)
}

// applyBlob applies a blob's records in order. Data records for
// consecutive blocks of one image whose bytes lie back to back in the blob
// (the data section holds them in record order) are written with one
// pwrite: a handoff's changed blocks come in runs, and a write of each 4
// KiB block on its own cost more CPU than its hash (Session 17). Every
// block's hash is checked before its run is written; anything else first
// writes the run out, so a record that reads an image (a duplicate, a
// block moved to the spill file) sees every earlier block in place.
func (r *receiver) applyBlob(recs []record) error {
	var (
		run      []byte // the bytes of blocks first.. of image runIm
		runIm    *rimg
		runFirst int64
		buf      [BlockSize]byte
	)
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		err := r.write(runIm, runFirst, run)
		run = nil
		return err
	}
	for i := range recs {
		rc := &recs[i]
		extends := rc.Kind == recData && len(run) > 0 && int(rc.Image) < len(r.imgs) && r.imgs[rc.Image] == runIm &&
			int64(rc.Block) == runFirst+int64(len(run))/BlockSize && adjacent(run, rc.Data)
		if !extends {
			if err := flush(); err != nil {
				return err
			}
		}
		im, blk, data, err := r.check(rc, &buf)
		if err != nil {
			return err
		}
		switch {
		case data == nil: // a duplicate whose data comes later
		case extends:
			run = run[:len(run)+BlockSize]
		case rc.Kind == recData:
			run, runIm, runFirst = rc.Data, im, blk
		default: // rebuilt in buf: written now, buf is reused
			if err := r.write(im, blk, data); err != nil {
				return err
			}
		}
	}
	return flush()
}

// adjacent says whether b starts right where run ends in the same array.
func adjacent(run, b []byte) bool {
	return len(b) > 0 && cap(run)-len(run) >= len(b) && &run[:len(run)+1][len(run)] == &b[0]
}

// check validates record rc, rebuilds its block (in buf, or rc.Data for a
// data record) and checks the block's hash, then moves an only copy it
// would overwrite to the spill file and marks the block written. It
// returns the image, the block and the bytes to write there; nil bytes
// (and no error) for a duplicate whose data has not arrived yet.
func (r *receiver) check(rc *record, buf *[BlockSize]byte) (*rimg, int64, []byte, error) {
	if int(rc.Image) >= len(r.imgs) {
		return nil, 0, nil, fmt.Errorf("record for image %d of %d", rc.Image, len(r.imgs))
	}
	im := r.imgs[rc.Image]
	blk := int64(rc.Block)
	if rc.Block >= uint64(im.blocks) {
		return nil, 0, nil, fmt.Errorf("image %s: block %d beyond its %d blocks", im.Name, rc.Block, im.blocks)
	}
	data := buf[:]
	switch rc.Kind {
	case recZero:
		if rc.Hash != zeroHash {
			return nil, 0, nil, fmt.Errorf("image %s block %d: zero record with another hash", im.Name, blk)
		}
		clear(data)
	case recBase:
		loc, ok := r.index[rc.Hash]
		if !ok {
			return nil, 0, nil, fmt.Errorf("image %s block %d: no base block with hash %x", im.Name, blk, rc.Hash[:8])
		}
		clear(data)
		if _, err := loc.f.ReadAt(data, loc.blk*BlockSize); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, nil, fmt.Errorf("read base block: %w", err)
		}
	case recData:
		data = rc.Data
	case recXOR:
		if blk >= int64(len(im.base.Hashes)) {
			return nil, 0, nil, fmt.Errorf("image %s block %d: xor beyond the base", im.Name, blk)
		}
		clear(data)
		if _, err := im.baseF.ReadAt(data, blk*BlockSize); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, nil, fmt.Errorf("read base block: %w", err)
		}
		for i := range data {
			data[i] ^= rc.Data[i]
		}
	case recDup:
		loc, ok := r.stored[rc.Hash]
		if !ok {
			if len(r.pending) > 1<<22 {
				return nil, 0, nil, errors.New("too many pending duplicate blocks")
			}
			r.pending = append(r.pending, record{Kind: recDup, Image: rc.Image, Block: rc.Block, Hash: rc.Hash})
			return im, blk, nil, nil
		}
		clear(data)
		if err := r.read(loc, data); err != nil {
			return nil, 0, nil, err
		}
	default:
		// decodeBlob lets no other kind through; a zero block, as before.
		clear(data)
	}
	if got := hashBlock(data); got != rc.Hash {
		return nil, 0, nil, fmt.Errorf("image %s block %d: rebuilt block hash %x, want %x", im.Name, blk, got[:8], rc.Hash[:8])
	}
	if err := r.preserve(int(rc.Image), blk, rc.Hash); err != nil {
		return nil, 0, nil, err
	}
	if _, ok := r.stored[rc.Hash]; !ok && (rc.Kind == recData || rc.Kind == recXOR) {
		// Read back from where it is written, when a duplicate comes.
		r.stored[rc.Hash] = storedLoc{int(rc.Image), blk}
	}
	im.mark(blk, rc.Hash)
	return im, blk, data, nil
}

// resolve applies the duplicates whose data came in a later blob.
func (r *receiver) resolve() error {
	p := r.pending
	r.pending = nil
	for i := range p {
		if _, ok := r.stored[p[i].Hash]; !ok {
			return fmt.Errorf("image %s block %d: duplicate of a block never sent", r.imgs[p[i].Image].Name, p[i].Block)
		}
		if err := r.apply(&p[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *receiver) commit(h *hello, e *endMsg) (*Received, error) {
	var ct CommitTiming
	mark := time.Now()
	lap := func(d *float64) {
		now := time.Now()
		*d = now.Sub(mark).Seconds()
		mark = now
	}
	if err := r.resolve(); err != nil {
		return nil, err
	}
	lap(&ct.ResolveSec)
	if len(e.Digests) != len(r.imgs) {
		return nil, fmt.Errorf("end: %d digests for %d images", len(e.Digests), len(r.imgs))
	}
	if e.Blobs != r.blobs {
		r.cfg.Metrics.badInput("blob")
		return nil, fmt.Errorf("end: the source sent %d blobs, %d arrived", e.Blobs, r.blobs)
	}
	rec := &Received{ID: h.ID, Dir: filepath.Join(r.cfg.Dir, h.ID), Images: map[string]string{}, VM: h.VM, Meta: h.Meta, Bytes: r.bytes}
	// Every block not written from the stream was hashed from the image by
	// verifyUnchanged (usually long done by now); every written one was
	// checked against its record's hash as it was applied.
	err := <-r.verr
	r.verr = nil
	if err != nil {
		return nil, err
	}
	lap(&ct.VerifyWaitSec)
	r.syncWG.Wait()
	if err := r.syncErr.Load(); err != nil {
		return nil, *err
	}
	for i, im := range r.imgs {
		if err := im.f.Sync(); err != nil {
			return nil, fmt.Errorf("image %s: sync: %w", im.Name, err)
		}
		d := digestOf(im.Size, im.hashes)
		if hex.EncodeToString(d[:]) != e.Digests[i] {
			r.cfg.Metrics.badInput("digest")
			return nil, fmt.Errorf("image %s: digest of the rebuilt image does not match the source", im.Name)
		}
		rec.Images[im.Name] = filepath.Join(rec.Dir, im.Name)
	}
	lap(&ct.SyncSec)
	if e.StateSize != r.stateN {
		return nil, fmt.Errorf("device state: %d bytes, the source sent %d", r.stateN, e.StateSize)
	}
	if _, err := r.state.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	sh := sha256.New()
	if _, err := io.Copy(sh, r.state); err != nil {
		return nil, fmt.Errorf("device state: %w", err)
	}
	if hex.EncodeToString(sh.Sum(nil)) != e.StateHash {
		return nil, errors.New("device state: hash does not match the source")
	}
	if err := r.state.Sync(); err != nil {
		return nil, fmt.Errorf("device state: %w", err)
	}
	if h.VM {
		rec.State = filepath.Join(rec.Dir, "state")
	}
	lap(&ct.StateSec)
	r.spill.Close()
	os.Remove(filepath.Join(r.work, "blocks"))
	if err := os.Rename(r.work, rec.Dir); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	r.work = ""
	lap(&ct.RenameSec)
	rec.Commit = ct
	if err := r.sendJSON(frameResult, result{OK: true, Dir: rec.Dir}); err != nil {
		return rec, fmt.Errorf("send result: %w", err)
	}
	r.log.Info("handoff committed", zap.String("name", h.ID), zap.String("dir", rec.Dir), zap.Int64("bytes", r.bytes),
		zap.Float64("verify_wait_sec", ct.VerifyWaitSec), zap.Float64("sync_sec", ct.SyncSec))
	// The sender's go: it heard the commit and keeps its VM stopped. Without
	// it a VM is not resumed here (the source may have resumed its own).
	if typ, _, err := r.next(); err == nil && typ == frameGo {
		rec.Go = true
	} else {
		r.log.Warn("handoff committed but the sender never confirmed; a VM is not resumed", zap.String("name", h.ID))
	}
	if r.qemu != nil {
		r.qemu.moved(filepath.Join(rec.Dir, "vm"))
		rec.QEMU, r.qemu = r.qemu, nil
	}
	return rec, nil
}
