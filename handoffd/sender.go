package handoffd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Image is one image to hand off: its current content as a raw file and the
// cached base it was derived from.
type Image struct {
	Name string // "disk", "memory": [a-z0-9-]{1,32}
	Base string // base cache id
	Path string // current content, raw
	// Dirty, when set, returns the only byte ranges that may differ from the
	// base (a qcow2 overlay's extents); nil scans every block.
	Dirty func() ([]Extent, error)
	// Refresh, when set, is called before every round to bring Path up to
	// date (a qcow2 overlay's content written out raw); Path is reopened.
	Refresh func() error
	// Changed, when set, returns after a Refresh the byte ranges that may
	// have changed since the Refresh before it (a dirty bitmap's; QCOW2Top
	// with QEMU set), ok false when it cannot tell (the first Refresh, a
	// bitmap lost). From its second round on a handoff then scans only
	// those ranges instead of Dirty's: the final round, the VM stopped,
	// reads what the guest wrote since the last round, not the whole
	// overlay.
	Changed func() (ext []Extent, ok bool)
	// FS, when "ext4", says Path is a cleanly unmounted ext4 file system
	// (from offset 0): the blocks it leaves unallocated are not sent, the
	// destination keeps its base's bytes there (ext4.go). Image pairs only;
	// "" sends every changed block.
	FS string
}

// Extent is a byte range.
type Extent struct{ Start, Length int64 }

// Handoff is one transfer.
type Handoff struct {
	ID     string // names the result at the destination; random when empty
	Images []Image
	VM     VM // nil: a static image pair, one round
	Meta   VMMeta
}

// SendConfig tunes the sender. The zero value works.
type SendConfig struct {
	Cache *BaseCache // required
	// Workers is the number of scan and of compress workers (default GOMAXPROCS).
	Workers int
	// BlobSize is the unique data per blob before compression (default 1 MiB).
	BlobSize int
	// QueueBlobs bounds each inter-stage queue, in blobs (default 4).
	QueueBlobs int
	// Mode, when set ("zstd-2", "lz4+xor"), fixes the mode: no adaptation.
	Mode string
	// Modes is the adapter's choice space (default DefaultModes).
	Modes []Mode
	// AdaptInterval is how often the adapter decides (default 3 s); a
	// bandwidth change of more than a third triggers a decision at once.
	AdaptInterval time.Duration
	// Seed fixes the randomised block order (0: random).
	Seed uint64
	// PreCopyRounds bounds the rounds while the VM runs (default 4;
	// negative: none, the VM stops at once).
	PreCopyRounds int
	// PreCopyLimit bounds the time spent in pre-copy (default 30 s).
	PreCopyLimit time.Duration
	// PreCopyConverged ends pre-copy once a round changes fewer bytes (default 4 MiB).
	PreCopyConverged int64
	// Sequential runs the stages one after another instead of overlapping
	// them (scan everything, then dedup, then compress, then send): the
	// benchmark's baseline for the saving of pipelining. It holds every
	// changed block in memory; image pairs only (refused with a VM).
	Sequential bool
	// ResultTimeout bounds the wait for the receiver's verdict after the
	// last byte (default 2 min: it re-reads every image).
	ResultTimeout time.Duration
	// IdleTimeout is how long the sender waits with nothing from the agent
	// — not even a keepalive frame, which it asks for every IdleTimeout/5
	// — before it fails the handoff with ErrAgentSilent: a destination
	// host gone (over TCP only a retransmission timeout of minutes
	// would tell). Armed at the first keepalive (agents before Session 14
	// send none: then only ctx and ResultTimeout bound the waits). Default
	// SenderIdleTimeout (5 s); negative: no keepalives asked.
	IdleTimeout time.Duration
	Logger      *zap.Logger
	// Progress, when set, is called about every 250 ms and at the end.
	Progress func(Progress)
}

func (c *SendConfig) fill() error {
	if c.Cache == nil {
		return errors.New("send: no base cache")
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.BlobSize <= 0 {
		c.BlobSize = 1 << 20
	}
	if c.BlobSize > MaxFrame/2 {
		return fmt.Errorf("send: blob size %d exceeds %d", c.BlobSize, MaxFrame/2)
	}
	if c.QueueBlobs <= 0 {
		c.QueueBlobs = 4
	}
	if len(c.Modes) == 0 {
		c.Modes = DefaultModes()
	}
	if c.AdaptInterval <= 0 {
		c.AdaptInterval = 3 * time.Second
	}
	if c.PreCopyRounds == 0 {
		c.PreCopyRounds = 4
	}
	if c.PreCopyLimit <= 0 {
		c.PreCopyLimit = 30 * time.Second
	}
	if c.PreCopyConverged <= 0 {
		c.PreCopyConverged = 4 << 20
	}
	if c.ResultTimeout <= 0 {
		c.ResultTimeout = 2 * time.Minute
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = SenderIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// Progress is a snapshot for the operator's view.
type Progress struct {
	Round      int
	Final      bool    // the VM is stopped (or there is no VM)
	Scanned    int64   // bytes of changed blocks found so far
	Planned    int64   // bytes to scan this round
	ScanDone   int64   // bytes scanned this round
	Wire       int64   // bytes written to the stream
	Acked      int64   // bytes the receiver has acknowledged
	Ratio      float64 // wire / changed so far
	Mode       string
	Bandwidth  float64 // estimated network rate, bytes/s
	ElapsedSec float64
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// CheckName reports whether s is a name a destination takes for a handoff
// or an image ([a-z0-9-], at most 32, not starting with '-'), so a sender
// can refuse a bad one before it connects.
func CheckName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q: want [a-z0-9-], at most 32, not starting with '-'", s)
	}
	return nil
}

// imgState is the sender's per-image view.
type imgState struct {
	Image
	idx    uint8
	size   int64
	base   *Base
	baseF  *os.File
	cur    *os.File
	have   []Hash   // what the receiver holds at each block
	nbBase int64    // blocks in the base
	free   []uint64 // FS "ext4": the file system's unallocated blocks (a bit each)
}

// baseSpan returns the byte range, relative to block start, of the base
// that the scan of blocks [start, start+n) compares against: from the
// first to the last block that is non-zero in the base's index and either
// still held by the destination as that base block or free in the file
// system, cut at the base's end. Empty (lo == hi) when none is.
func (im *imgState) baseSpan(start, n int64) (lo, hi int64) {
	first, last := int64(-1), int64(-1)
	for i := start; i < min(start+n, im.nbBase); i++ {
		bh := im.base.Hashes[i]
		if bh != zeroHash && (im.have[i] == bh || bitSet(im.free, i)) {
			if first < 0 {
				first = i
			}
			last = i + 1
		}
	}
	if first < 0 {
		return 0, 0
	}
	lo = (first - start) * BlockSize
	hi = min((last-start)*BlockSize, im.base.Size-start*BlockSize)
	return lo, max(hi, lo)
}

type item struct {
	img  uint8
	blk  uint64
	hash Hash
	data []byte
	end  int // > 0: end of round marker
}

type blob struct {
	round int
	recs  []record
	data  int // data/xor records
	input int64
}

type outFrame struct {
	round   int
	payload []byte
	raw     int
	input   int64
	mode    Mode
	reuse   bool // payload goes back to sender.frames once written
}

// frameBuf returns a recycled blob buffer, or nil.
func (s *sender) frameBuf() []byte {
	if p, ok := s.frames.Get().(*[]byte); ok {
		return *p
	}
	return nil
}

// recycle hands a blob buffer nothing refers to any more back.
func (s *sender) recycle(b []byte) { s.frames.Put(&b) }

type sender struct {
	cfg   SendConfig
	log   *zap.Logger
	imgs  []*imgState
	index map[Hash]struct{}
	sent  map[Hash]struct{}
	ad    *adapter
	start time.Time

	conn io.ReadWriter
	bw   *bufio.Writer

	// counters (atomic)
	scanned, planned, scanDone, wire, acked, unique, changed atomic.Int64
	freeSkipped                                              atomic.Int64 // bytes of free blocks that differ, not sent
	compIn                                                   atomic.Int64 // changed bytes of the blobs compressed so far
	kinds                                                    [6]atomic.Int64
	round                                                    atomic.Int64
	final                                                    atomic.Bool
	// goSent: the go was written (or its write tried) after the
	// destination committed — it may run its copy now, so the source VM
	// is never resumed from here on (two running copies are worse than
	// two paused ones).
	goSent                atomic.Bool
	stageBusy             [4]atomic.Int64 // scan, dedup, compress, send (ns)
	stageIn, stageOut     [4]atomic.Int64
	stageFirst, stageLast [4]atomic.Int64 // ns since start (+1 in first: 0 = never)

	// The final round's marks for Report.Downtime (set by scan).
	refreshDur time.Duration
	scanEnd    time.Time
	scannedImg []atomic.Int64 // bytes read this round, per image

	// frames recycles blob buffers (*[]byte, about BlobSize each): a
	// fresh one per blob cost more CPU, in clearing and in the kernel's
	// faults on new pages, than mode none's copy into it (Session 17).
	frames sync.Pool

	results chan result
	ackErr  chan error
	// heard is when the agent last sent a frame (unix ns; 0 until its
	// first keepalive arms the watchdog); silent is set when it fired.
	heard  atomic.Int64
	silent atomic.Bool
	// done is closed when Send returns: readAcks hands nothing on after
	// that (an agent sending more results than asked must not leave it
	// blocked on a channel nobody reads).
	done chan struct{}
}

// Send hands h over conn to a receiver and returns the report. On any
// failure after the VM was stopped and before the destination was told to
// run its copy (ctx ended included: an interrupted sender), the VM is
// resumed before Send returns and the error says so; once the go was sent
// it never is.
func Send(ctx context.Context, conn io.ReadWriter, h *Handoff, cfg SendConfig) (*Report, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &sender{cfg: cfg, log: cfg.Logger, start: time.Now(), conn: conn,
		index: map[Hash]struct{}{}, sent: map[Hash]struct{}{},
		results: make(chan result, 2), ackErr: make(chan error, 1), done: make(chan struct{})}
	if h.ID == "" {
		var b [8]byte
		rand.Read(b[:])
		h.ID = hex.EncodeToString(b[:])
	}
	if !nameRE.MatchString(h.ID) {
		return nil, fmt.Errorf("send: handoff id %q: want [a-z0-9-], at most 32", h.ID)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.IdleTimeout > 0 {
		stop := s.watchdog(cancel)
		defer stop()
	}
	rep, err := s.run(ctx, h)
	if err != nil && s.silent.Load() {
		err = fmt.Errorf("%w: nothing from it in %s, not even a keepalive (its host gone, the agent killed or the network cut)", ErrAgentSilent, cfg.IdleTimeout)
	}
	for _, im := range s.imgs {
		if im.cur != nil {
			im.cur.Close()
		}
		if im.baseF != nil {
			im.baseF.Close()
		}
	}
	if err != nil && h.VM != nil && s.final.Load() && !s.goSent.Load() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if rerr := h.VM.Resume(rctx); rerr != nil {
			err = fmt.Errorf("%w (and resuming the source VM failed: %v; resume it with QMP cont)", err, rerr)
		} else {
			s.log.Warn("handoff failed after the stop; source VM resumed", zap.String("name", h.ID), zap.Error(err))
			err = fmt.Errorf("%w; %w", err, ErrSourceResumed)
		}
		rcancel()
	}
	return rep, err
}

// watchdog fails the handoff when the agent, once it sent a keepalive,
// is silent for IdleTimeout: it cancels the handoff and unblocks the
// stream (deadlines now, or closed).
func (s *sender) watchdog(cancel context.CancelFunc) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(s.cfg.IdleTimeout/10, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				h := s.heard.Load()
				if h == 0 || now.Sub(time.Unix(0, h)) < s.cfg.IdleTimeout {
					continue
				}
				s.silent.Store(true)
				cancel()
				switch c := s.conn.(type) {
				case interface{ SetDeadline(time.Time) error }:
					_ = c.SetDeadline(time.Now())
				case io.Closer:
					_ = c.Close()
				}
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// heardFrom notes a frame from the agent; a keepalive arms the watchdog.
func (s *sender) heardFrom(typ byte) {
	if typ == frameKeepAlive || s.heard.Load() != 0 {
		s.heard.Store(time.Now().UnixNano())
	}
}

func (s *sender) run(ctx context.Context, h *Handoff) (*Report, error) {
	if s.cfg.Sequential && h.VM != nil {
		return nil, errors.New("send: sequential stages are for image pairs, not a VM")
	}
	if len(h.Images) == 0 || len(h.Images) > maxImages {
		return nil, fmt.Errorf("send: %d images, want 1..%d", len(h.Images), maxImages)
	}
	hl := hello{Version: 1, ID: h.ID, VM: h.VM != nil, Meta: h.Meta}
	s.scannedImg = make([]atomic.Int64, len(h.Images))
	bases := map[string]bool{}
	seen := map[string]bool{}
	for i, im := range h.Images {
		if !nameRE.MatchString(im.Name) || seen[im.Name] {
			return nil, fmt.Errorf("send: image name %q: want unique [a-z0-9-]", im.Name)
		}
		seen[im.Name] = true
		b, err := s.cfg.Cache.Get(im.Base)
		if err != nil {
			return nil, fmt.Errorf("send image %s: %w", im.Name, err)
		}
		st := &imgState{Image: im, idx: uint8(i), base: b, nbBase: int64(len(b.Hashes))}
		s.imgs = append(s.imgs, st)
		if im.Refresh != nil {
			if err := im.Refresh(); err != nil {
				return nil, fmt.Errorf("send image %s: refresh: %w", im.Name, err)
			}
		}
		if st.cur, err = os.Open(im.Path); err != nil {
			return nil, fmt.Errorf("send image %s: %w", im.Name, err)
		}
		if st.baseF, err = os.Open(b.Path); err != nil {
			return nil, fmt.Errorf("send image %s base: %w", im.Name, err)
		}
		fi, err := st.cur.Stat()
		if err != nil {
			return nil, fmt.Errorf("send image %s: %w", im.Name, err)
		}
		st.size = fi.Size()
		if st.size > maxImageSize {
			return nil, fmt.Errorf("send image %s: %d bytes exceeds %d", im.Name, st.size, int64(maxImageSize))
		}
		switch im.FS {
		case "":
		case "ext4":
			if h.VM != nil || im.Refresh != nil {
				return nil, fmt.Errorf("send image %s: free-block elision (fs ext4) is for image pairs: a running guest's file system is not quiescent", im.Name)
			}
			var nfree int64
			if st.free, nfree, err = ext4Free(st.cur, st.size); err != nil {
				return nil, fmt.Errorf("send image %s: %w", im.Name, err)
			}
			s.log.Info("free blocks of the file system are not sent", zap.String("name", h.ID), zap.String("image", im.Name), zap.Int64("free_blocks", nfree))
		default:
			return nil, fmt.Errorf("send image %s: file system %q: want \"ext4\" or none", im.Name, im.FS)
		}
		n := blocksOf(st.size)
		st.have = make([]Hash, n)
		for j := int64(0); j < n; j++ {
			if j < st.nbBase {
				st.have[j] = b.Hashes[j]
			} else {
				st.have[j] = zeroHash
			}
		}
		hl.Images = append(hl.Images, helloImage{Name: im.Name, Base: im.Base, Size: st.size})
		if !bases[im.Base] {
			bases[im.Base] = true
			hl.Bases = append(hl.Bases, im.Base)
			for _, x := range b.Hashes {
				s.index[x] = struct{}{}
			}
		}
	}
	delete(s.index, zeroHash)

	fixed := Mode{}
	if s.cfg.Mode != "" {
		m, err := ParseMode(s.cfg.Mode)
		if err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		fixed = m
	}
	s.ad = newAdapter(s.cfg.Modes, s.cfg.Workers, s.cfg.AdaptInterval, s.log, s.start)
	s.ad.remaining = s.remainingInput
	defer s.ad.wg.Wait()
	if s.cfg.Mode != "" {
		s.ad.fix(fixed)
	}

	if s.cfg.IdleTimeout > 0 {
		hl.KeepAliveMS = max(s.cfg.IdleTimeout/5, minKeepAlive).Milliseconds()
	}
	s.bw = bufio.NewWriterSize(s.conn, 64<<10)
	if err := writeJSON(s.bw, frameHello, hl); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	if err := s.bw.Flush(); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	br := bufio.NewReaderSize(s.conn, 64<<10)
	// The read of the agent's answer ends with ctx: an agent that never
	// answers (stuck, or not an agent) must not hold the sender past its
	// deadline. Streams without deadlines are the caller's to close.
	stopWait := func() bool { return true }
	if d, ok := s.conn.(deadliner); ok {
		stopWait = context.AfterFunc(ctx, func() { _ = d.SetReadDeadline(time.Now()) })
	}
	typ, p, err := readFrame(br, nil)
	for err == nil && typ == frameKeepAlive {
		s.heardFrom(typ)
		typ, p, err = readFrame(br, nil)
	}
	if err == nil {
		s.heardFrom(typ)
	}
	if !stopWait() {
		return nil, fmt.Errorf("wait for ready: the agent did not answer: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("wait for ready: %w", err)
	}
	var rd result
	if typ != frameReady || json.Unmarshal(p, &rd) != nil {
		return nil, fmt.Errorf("wait for ready: unexpected frame %d", typ)
	}
	if !rd.OK {
		return nil, fmt.Errorf("destination refused: %s", rd.Error)
	}
	go s.readAcks(br)
	defer close(s.done)

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(2)
	sampler := newSampler(s)
	go func() { defer wg.Done(); s.ad.loop(ctx) }()
	go func() { defer wg.Done(); sampler.loop(ctx) }()

	rep, err := s.pipeline(ctx, h)
	sampler.stop()
	if err != nil {
		return nil, err
	}
	rep.Samples = sampler.samples()
	rep.Modes = s.ad.timeline()
	rep.ModeSwitches = s.ad.switches()
	if s.cfg.Progress != nil {
		s.cfg.Progress(s.progress())
	}
	return rep, nil
}

func (s *sender) progress() Progress {
	ch := s.changed.Load()
	p := Progress{Round: int(s.round.Load()), Final: s.final.Load(), Scanned: ch,
		Planned: s.planned.Load(), ScanDone: s.scanDone.Load(), Wire: s.wire.Load(), Acked: s.acked.Load(),
		Mode: s.ad.current().String(), Bandwidth: s.ad.bandwidth(), ElapsedSec: time.Since(s.start).Seconds()}
	if ch > 0 {
		p.Ratio = float64(p.Wire) / float64(ch)
	}
	return p
}

func (s *sender) readAcks(br *bufio.Reader) {
	fail := func(err error) {
		select {
		case s.ackErr <- err:
		case <-s.done:
		}
	}
	var buf []byte
	for {
		typ, p, err := readFrame(br, buf)
		if err != nil {
			fail(fmt.Errorf("receiver stream: %w", err))
			return
		}
		buf = p
		s.heardFrom(typ)
		switch typ {
		case frameKeepAlive:
		case frameAck:
			if len(p) != 16 {
				fail(fmt.Errorf("ack of %d bytes", len(p)))
				return
			}
			n := int64(binary.BigEndian.Uint64(p))
			s.acked.Store(n)
			s.ad.ack(time.Now(), n)
		case frameResult:
			var r result
			if err := json.Unmarshal(p, &r); err != nil {
				r = result{Error: "unreadable result: " + err.Error()}
			}
			if !r.OK {
				fail(fmt.Errorf("destination refused the handoff: %s", r.Error))
				return
			}
			if r.Dir == "" {
				// A receiver sends one result: an error, or the
				// directory it committed. Anything else is not a
				// verdict (and must not read as a committed handoff).
				fail(errors.New("the destination's verdict names no committed directory"))
				return
			}
			select {
			case s.results <- r:
			case <-s.done:
				return
			}
			if r.Dir != "" {
				return
			}
		default:
			fail(fmt.Errorf("unexpected frame %d from the receiver", typ))
			return
		}
	}
}

// pipeline runs the rounds: scan -> dedup -> compress -> send, joined by
// bounded channels.
func (s *sender) pipeline(ctx context.Context, h *Handoff) (*Report, error) {
	items := make(chan item, 1024)
	blobs := make(chan blob, s.cfg.QueueBlobs)
	frames := make(chan outFrame, s.cfg.QueueBlobs)
	marks := make(chan roundEnd, 4)
	roundSent := make(chan roundEnd, 4)
	errc := make(chan error, 8)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		cancel()
	}

	var stages sync.WaitGroup
	stages.Add(1)
	go func() { defer stages.Done(); defer close(blobs); s.dedup(ctx, items, blobs, marks) }()
	var comp sync.WaitGroup
	for w := 0; w < s.cfg.Workers; w++ {
		comp.Add(1)
		go func() {
			defer comp.Done()
			if err := s.compressor(ctx, blobs, frames); err != nil {
				fail(err)
			}
		}()
	}
	go func() { comp.Wait(); close(frames) }()
	wframes, wmarks := (<-chan outFrame)(frames), (<-chan roundEnd)(marks)
	if s.cfg.Sequential {
		wframes, wmarks = s.barrier(ctx, frames, marks)
	}
	stages.Add(1)
	go func() {
		defer stages.Done()
		if err := s.writer(ctx, wframes, wmarks, roundSent); err != nil {
			fail(err)
		}
	}()

	rep := &Report{ID: h.ID, Start: s.start.UTC()}
	var stopAt time.Time
	var dt DowntimeReport
	var state []byte
	var runErr error
	round := 0
rounds:
	for {
		round++
		s.round.Store(int64(round))
		last := h.VM == nil
		if h.VM != nil && round > 1 {
			prev := rep.Rounds[len(rep.Rounds)-1]
			if prev.Changed < s.cfg.PreCopyConverged || round > s.cfg.PreCopyRounds || time.Since(s.start) > s.cfg.PreCopyLimit {
				last = true
			}
		}
		if h.VM != nil && s.cfg.PreCopyRounds < 0 {
			last = true
		}
		if last && h.VM != nil {
			stopAt = time.Now()
			s.final.Store(true)
			st, err := h.VM.Stop(ctx)
			if err != nil {
				runErr = fmt.Errorf("stop vm: %w", err)
				break
			}
			state = st
			dt.StopSec = time.Since(stopAt).Seconds()
			s.log.Info("vm stopped for the final round", zap.String("name", h.ID), zap.Int("round", round), zap.Int("state_bytes", len(state)))
		}
		if last {
			s.final.Store(true)
		}
		rs := RoundReport{Round: round, Final: last, Start: time.Since(s.start).Seconds()}
		before := s.changed.Load()
		if err := s.scan(ctx, round, last && h.VM != nil, items); err != nil {
			runErr = err
			break
		}
		select {
		case items <- item{end: round}:
		case <-ctx.Done():
			runErr = ctx.Err()
			break rounds
		}
		select {
		case re := <-roundSent:
			rs.Blobs, rs.Records = re.Blobs, re.Records
		case err := <-errc:
			runErr = err
			break rounds
		case err := <-s.ackErr:
			runErr = err
			break rounds
		case <-ctx.Done():
			runErr = ctx.Err()
			break rounds
		}
		rs.Changed = s.changed.Load() - before
		rs.End = time.Since(s.start).Seconds()
		rs.Scanned = map[string]int64{}
		for i, im := range s.imgs {
			rs.Scanned[im.Name] = s.scannedImg[i].Load()
		}
		if last && h.VM != nil {
			dt.RefreshSec = s.refreshDur.Seconds()
			dt.ScanSec = s.scanEnd.Sub(stopAt).Seconds() - dt.StopSec - dt.RefreshSec
			dt.RoundSec = time.Since(s.scanEnd).Seconds()
			dt.Scanned = rs.Scanned
		}
		rep.Rounds = append(rep.Rounds, rs)
		s.log.Info("round sent", zap.String("name", h.ID), zap.Int("round", round), zap.Int64("changed", rs.Changed), zap.Int("blobs", rs.Blobs), zap.Bool("final", last))
		if last {
			break
		}
	}
	close(items)
	if runErr == nil {
		stages.Wait()
		select {
		case err := <-errc:
			runErr = err
		default:
		}
	}
	if runErr != nil {
		cancel()
		stages.Wait()
		return nil, runErr
	}

	// The stream is ours alone now: device state, then the end.
	end := endMsg{StateSize: int64(len(state))}
	for _, rr := range rep.Rounds {
		end.Blobs += rr.Blobs
	}
	sh := sha256.Sum256(state)
	end.StateHash = hex.EncodeToString(sh[:])
	for off := 0; off < len(state); off += 1 << 20 {
		chunk := state[off:min(off+1<<20, len(state))]
		if err := writeFrame(s.bw, frameState, chunk); err != nil {
			return nil, fmt.Errorf("send state: %w", err)
		}
		s.wire.Add(int64(len(chunk)) + 5)
	}
	for _, im := range s.imgs {
		d := digestOf(im.size, im.have)
		end.Digests = append(end.Digests, hex.EncodeToString(d[:]))
	}
	if err := writeJSON(s.bw, frameEnd, end); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	if err := s.bw.Flush(); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	endAt := time.Now()
	if !stopAt.IsZero() {
		dt.StateSec = endAt.Sub(stopAt).Seconds() - dt.StopSec - dt.RefreshSec - dt.ScanSec - dt.RoundSec
	}
	timer := time.NewTimer(s.cfg.ResultTimeout)
	defer timer.Stop()
	select {
	case r := <-s.results:
		if !r.OK {
			return nil, fmt.Errorf("destination refused the handoff: %s", r.Error)
		}
		rep.Dest = r.Dir
		// The source VM stays stopped from here on; only now may the
		// destination run its copy (never two running copies).
		s.goSent.Store(true)
		err := writeFrame(s.bw, frameGo, nil)
		if err == nil {
			err = s.bw.Flush()
		}
		if err != nil && h.VM != nil {
			// The go may or may not have arrived: neither copy is
			// resumed here, the operator decides.
			return nil, fmt.Errorf("the destination committed %s but the go to run it may not have arrived (%w): the source VM stays paused; if the agent logged \"not resumed\", resume the source with QMP cont", h.ID, err)
		}
	case err := <-s.ackErr:
		return nil, fmt.Errorf("waiting for the destination's verdict: %w", err)
	case <-timer.C:
		return nil, fmt.Errorf("no verdict from the destination within %s", s.cfg.ResultTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	now := time.Now()
	rep.TotalSec = now.Sub(s.start).Seconds()
	if !stopAt.IsZero() {
		rep.DowntimeSec = now.Sub(stopAt).Seconds()
		dt.VerdictSec = now.Sub(endAt).Seconds()
		rep.Downtime = &dt
	}
	rep.StateBytes = int64(len(state))
	s.fillReport(rep)
	return rep, nil
}

// scan hashes every candidate block of every image in randomised chunk
// order and feeds the changed ones (hash differs from what the receiver
// holds) to the dedup stage.
func (s *sender) scan(ctx context.Context, round int, stopped bool, items chan<- item) error {
	type chunk struct {
		img   *imgState
		start int64 // block
		n     int64
	}
	const chunkBlocks = 256
	var chunks []chunk
	var planned int64
	s.refreshDur = 0
	for i := range s.scannedImg {
		s.scannedImg[i].Store(0)
	}
	for _, im := range s.imgs {
		// run() refreshed every image for round 1; a VM stopped for
		// round 1 (no pre-copy) may have written since.
		if im.Refresh != nil && (round > 1 || stopped) {
			tr := time.Now()
			err := im.Refresh()
			s.refreshDur += time.Since(tr)
			if err != nil {
				return fmt.Errorf("image %s: refresh: %w", im.Name, err)
			}
			f, err := os.Open(im.Path)
			if err != nil {
				return fmt.Errorf("image %s: %w", im.Name, err)
			}
			if fi, err := f.Stat(); err != nil || fi.Size() != im.size {
				f.Close()
				return fmt.Errorf("image %s: size changed during the handoff", im.Name)
			}
			im.cur.Close()
			im.cur = f
		}
		nb := blocksOf(im.size)
		add := func(first, last int64) { // blocks [first, last)
			for b := first; b < last; b += chunkBlocks {
				chunks = append(chunks, chunk{im, b, min(chunkBlocks, last-b)})
				planned += min(chunkBlocks, last-b) * BlockSize
			}
		}
		var exts []Extent
		since := false // exts: what changed since the round before
		if im.Changed != nil && round > 1 {
			exts, since = im.Changed()
		}
		if !since {
			if im.Dirty == nil {
				add(0, nb)
				continue
			}
			var err error
			if exts, err = im.Dirty(); err != nil {
				return fmt.Errorf("image %s: dirty extents: %w", im.Name, err)
			}
		}
		next := int64(0) // extents may overlap or touch: never scan a block twice
		for _, e := range exts {
			first := max(e.Start/BlockSize, next)
			last := min(blocksOf(e.Start+e.Length), nb)
			if first < last {
				add(first, last)
				next = last
			}
		}
		// Blocks beyond the base's end exist on the destination only as
		// zeros after its resize: scan them even when no extent names them
		// (once: later rounds see their changes among what changed).
		if !since && nb > im.nbBase && next < nb {
			add(max(next, im.nbBase), nb)
		}
	}
	seed := s.cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	rng := mrand.New(mrand.NewPCG(seed, uint64(round)))
	rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	s.planned.Store(planned)
	s.scanDone.Store(0)

	jobs := make(chan chunk)
	var held struct { // Sequential: the stage's whole output
		sync.Mutex
		items []item
	}
	var wg sync.WaitGroup
	var sendMu sync.Mutex // one chunk's items at a time
	errc := make(chan error, s.cfg.Workers)
	for w := 0; w < s.cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The chunk's blocks are read into buf, reused: only the
			// changed ones are copied out, for the stages after this one
			// (a fresh buffer per chunk cost more CPU, in clearing and in
			// the kernel's faults on new pages, than the copy: Session 17).
			var buf, bbuf []byte // the chunk's blocks, the base's
			for c := range jobs {
				t0 := time.Now()
				if int64(cap(buf)) < c.n*BlockSize {
					buf = make([]byte, c.n*BlockSize)
				}
				buf = buf[:c.n*BlockSize]
				want := min(int64(len(buf)), c.img.size-c.start*BlockSize)
				if got, err := c.img.cur.ReadAt(buf[:want], c.start*BlockSize); int64(got) != want {
					errc <- fmt.Errorf("image %s: read block %d: %w", c.img.Name, c.start, err)
					return
				}
				clear(buf[want:]) // a ragged last block is sent zero-padded
				// Fast paths: a whole block that the destination holds as the
				// base's block at this offset, and whose bytes equal that
				// block's, is unchanged without hashing it (a compare and a
				// read cost a fraction of SHA-256); so is an all-zero block
				// where the destination holds zeros (its hash is zeroHash).
				// Anything else is hashed. The base is read only over the
				// blocks the compare needs: non-zero in its index and held
				// by the destination (or free, to count a difference) —
				// most of a base is zeros, and reading them cost as much CPU
				// as the scan's other work (Session 17).
				bLo, bHi := c.img.baseSpan(c.start, c.n)
				if bHi > bLo {
					if int64(cap(bbuf)) < c.n*BlockSize {
						bbuf = make([]byte, c.n*BlockSize)
					}
					bbuf = bbuf[:c.n*BlockSize]
					if got, _ := c.img.baseF.ReadAt(bbuf[bLo:bHi], c.start*BlockSize+bLo); int64(got) != bHi-bLo {
						bLo, bHi = 0, 0 // the base did not read: hash everything
					}
				}
				var out []item
				for i := int64(0); i < c.n; i++ {
					o := i * BlockSize
					b := buf[o : o+BlockSize]
					blk := c.start + i
					baseZero := blk < c.img.nbBase && c.img.base.Hashes[blk] == zeroHash
					haveBase := o >= bLo && o+BlockSize <= bHi
					if bitSet(c.img.free, blk) {
						// Unallocated in the file system: the destination keeps
						// what it holds. Counted when that differs.
						differs := true
						switch {
						case haveBase:
							differs = !bytes.Equal(b, bbuf[o:o+BlockSize])
						case baseZero || blk >= c.img.nbBase:
							differs = !isZero(buf[o:min(o+BlockSize, want)])
						}
						if differs {
							s.freeSkipped.Add(BlockSize)
						}
						continue
					}
					if o+BlockSize <= want {
						if h := c.img.have[blk]; h == zeroHash && isZero(b) ||
							haveBase && h == c.img.base.Hashes[blk] && bytes.Equal(b, bbuf[o:o+BlockSize]) {
							continue
						}
					}
					hh := hashBlock(buf[o:min(o+BlockSize, want)])
					if hh != c.img.have[blk] {
						out = append(out, item{img: c.img.idx, blk: uint64(blk), hash: hh, data: b})
					}
				}
				if len(out) > 0 {
					own := make([]byte, len(out)*BlockSize)
					for k := range out {
						d := own[k*BlockSize : (k+1)*BlockSize]
						copy(d, out[k].data)
						out[k].data = d
					}
				}
				s.stageBusy[0].Add(int64(time.Since(t0)))
				s.active(0, t0)
				s.stageIn[0].Add(want)
				s.stageOut[0].Add(int64(len(out)) * BlockSize)
				s.scanDone.Add(want)
				s.scannedImg[c.img.idx].Add(want)
				if s.cfg.Sequential {
					held.Lock()
					held.items = append(held.items, out...)
					held.Unlock()
					continue
				}
				// A chunk's changed blocks go out together and in image
				// order: a file's blocks stay neighbours in a blob, which
				// compresses them 4 % smaller than blocks shuffled within
				// the chunk and interleaved with another worker's.
				sendMu.Lock()
				for _, it := range out {
					select {
					case items <- it:
					case <-ctx.Done():
						sendMu.Unlock()
						return
					}
				}
				sendMu.Unlock()
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, c := range chunks {
			select {
			case jobs <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	s.scanEnd = time.Now()
	select {
	case err := <-errc:
		return err
	default:
	}
	for _, it := range held.items {
		select {
		case items <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// dedup is the one stage that sees every changed block in order: it owns the
// table of zero, base and already-sent hashes and cuts blobs.
func (s *sender) dedup(ctx context.Context, items <-chan item, blobs chan<- blob, marks chan<- roundEnd) {
	cur := blob{round: 1}
	nblobs := 0
	var nrec int64
	const maxRecs = 16384
	var held []blob // Sequential: the round's blobs, released at its end
	flush := func() bool {
		if len(cur.recs) == 0 {
			return true
		}
		if s.cfg.Sequential {
			held = append(held, cur)
			nblobs++
			cur = blob{round: cur.round}
			return true
		}
		select {
		case blobs <- cur:
		case <-ctx.Done():
			return false
		}
		nblobs++
		cur = blob{round: cur.round}
		return true
	}
	for it := range items {
		if it.end > 0 {
			if !flush() {
				return
			}
			for _, b := range held {
				select {
				case blobs <- b:
				case <-ctx.Done():
					return
				}
			}
			held = nil
			cur.round = it.end + 1
			select {
			case marks <- roundEnd{Round: it.end, Blobs: nblobs, Records: nrec}:
			case <-ctx.Done():
				return
			}
			nblobs, nrec = 0, 0
			continue
		}
		t0 := time.Now()
		r := record{Image: it.img, Block: it.blk, Hash: it.hash}
		switch _, inBase := s.index[it.hash]; {
		case it.hash == zeroHash:
			r.Kind = recZero
		case inBase:
			r.Kind = recBase
		default:
			if _, ok := s.sent[it.hash]; ok {
				r.Kind = recDup
			} else {
				s.sent[it.hash] = struct{}{}
				r.Kind = recData
				r.Data = it.data
				cur.data++
				s.unique.Add(BlockSize)
			}
		}
		s.kinds[r.Kind].Add(1)
		s.changed.Add(BlockSize)
		s.imgs[it.img].have[it.blk] = it.hash
		cur.recs = append(cur.recs, r)
		cur.input += BlockSize
		nrec++
		s.stageBusy[1].Add(int64(time.Since(t0)))
		s.active(1, t0)
		s.stageIn[1].Add(BlockSize)
		if r.Kind == recData {
			s.stageOut[1].Add(BlockSize)
		}
		if cur.data*BlockSize >= s.cfg.BlobSize || len(cur.recs) >= maxRecs {
			if !flush() {
				return
			}
		}
	}
}

// compressor turns blobs into frames in the adapter's current mode.
func (s *sender) compressor(ctx context.Context, blobs <-chan blob, frames chan<- outFrame) error {
	var xbuf []byte
	for b := range blobs {
		t0 := time.Now()
		m := s.ad.current()
		recs := b.recs
		if m.Delta {
			recs = make([]record, len(b.recs))
			copy(recs, b.recs)
			for i := range recs {
				r := &recs[i]
				im := s.imgs[r.Image]
				if r.Kind != recData || int64(r.Block) >= im.nbBase {
					continue
				}
				if cap(xbuf) < BlockSize {
					xbuf = make([]byte, BlockSize)
				}
				xbuf = xbuf[:BlockSize]
				clear(xbuf)
				if _, err := im.baseF.ReadAt(xbuf, int64(r.Block)*BlockSize); err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("image %s: read base block %d: %w", im.Name, r.Block, err)
				}
				x := make([]byte, BlockSize)
				for j := range x {
					x[j] = r.Data[j] ^ xbuf[j]
				}
				r.Kind, r.Data = recXOR, x
			}
		}
		framed := appendFramedRawBlob(s.frameBuf(), recs)
		raw := framed[blobHeaderLen:]
		s.ad.maybeProfile(b.recs, s)
		var payload []byte
		var used Mode
		var err error
		cpu, wall := timed(func() { payload, used, err = encodeFramed(m, len(recs), framed) })
		if err != nil {
			return fmt.Errorf("compress blob: %w", err)
		}
		s.ad.observe(m, len(raw), len(payload), cpu, wall)
		s.stageBusy[2].Add(int64(time.Since(t0)))
		s.active(2, t0)
		s.stageIn[2].Add(int64(len(raw)))
		s.stageOut[2].Add(int64(len(payload)))
		s.compIn.Add(b.input)
		// Mode none sends framed itself: it is recycled once written.
		reuse := &payload[0] == &framed[0]
		if !reuse {
			s.recycle(framed)
		}
		select {
		case frames <- outFrame{round: b.round, payload: payload, raw: len(raw), input: b.input, mode: used, reuse: reuse}:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// remainingInput estimates the compress input still to come this round:
// the changed blocks found but not yet compressed (queued between the
// stages), plus the images left to scan times the changed share of what
// was scanned (blocks are scanned in a random order, so it is even), in
// compress input bytes per changed byte so far. 0 before anything was
// compressed.
func (s *sender) remainingInput() float64 {
	in0, out0, in2, done := s.stageIn[0].Load(), s.stageOut[0].Load(), s.stageIn[2].Load(), s.compIn.Load()
	if in0 == 0 || in2 == 0 || done == 0 {
		return 0
	}
	left := float64(max(s.planned.Load()-s.scanDone.Load(), 0)) * float64(out0) / float64(in0)
	changed := max(float64(out0)+left-float64(done), 0)
	return changed * float64(in2) / float64(done)
}

// active records that stage i worked from t0 to now.
func (s *sender) active(i int, t0 time.Time) {
	first := int64(t0.Sub(s.start)) + 1
	for {
		f := s.stageFirst[i].Load()
		if (f != 0 && f <= first) || s.stageFirst[i].CompareAndSwap(f, first) {
			break
		}
	}
	last := int64(time.Since(s.start))
	for {
		l := s.stageLast[i].Load()
		if l >= last || s.stageLast[i].CompareAndSwap(l, last) {
			break
		}
	}
}

// barrier (Sequential) holds each round's frames until all of them are
// compressed, so the send stage starts only when compression has ended.
func (s *sender) barrier(ctx context.Context, frames <-chan outFrame, marks <-chan roundEnd) (<-chan outFrame, <-chan roundEnd) {
	fo := make(chan outFrame, s.cfg.QueueBlobs)
	mo := make(chan roundEnd, 4)
	go func() {
		defer close(fo) // never mo: the writer drains marks once frames end
		held := map[int][]outFrame{}
		var pend []roundEnd
		release := func(all bool) bool {
			for len(pend) > 0 && (all || len(held[pend[0].Round]) >= pend[0].Blobs) {
				m := pend[0]
				pend = pend[1:]
				for _, f := range held[m.Round] {
					select {
					case fo <- f:
					case <-ctx.Done():
						return false
					}
				}
				delete(held, m.Round)
				select {
				case mo <- m:
				case <-ctx.Done():
					return false
				}
			}
			return true
		}
		for frames != nil {
			select {
			case f, ok := <-frames:
				if !ok {
					frames = nil
					pend = drainMarks(marks, pend)
					continue
				}
				held[f.round] = append(held[f.round], f)
			case m := <-marks:
				pend = append(pend, m)
			case <-ctx.Done():
				return
			}
			if !release(false) {
				return
			}
		}
		// Frames have ended: pass on whatever is left (a short round is
		// the writer's to report).
		release(true)
	}()
	return fo, mo
}

// drainMarks appends to into every round end already queued on marks,
// without waiting for more.
func drainMarks(marks <-chan roundEnd, into []roundEnd) []roundEnd {
	for {
		select {
		case m := <-marks:
			into = append(into, m)
		default:
			return into
		}
	}
}

// writer is the only goroutine writing to the stream until the last round
// is out; it writes a round's end once all of that round's blobs are sent.
func (s *sender) writer(ctx context.Context, frames <-chan outFrame, marks <-chan roundEnd, roundSent chan<- roundEnd) error {
	sentIn := map[int]int{}
	var pending []roundEnd
	check := func() error {
		for len(pending) > 0 && sentIn[pending[0].Round] == pending[0].Blobs {
			re := pending[0]
			pending = pending[1:]
			if err := writeJSON(s.bw, frameRound, re); err != nil {
				return fmt.Errorf("send round end: %w", err)
			}
			if err := s.bw.Flush(); err != nil {
				return fmt.Errorf("send round end: %w", err)
			}
			s.wire.Add(5 + 40)
			select {
			case roundSent <- re:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	for frames != nil || marks != nil {
		select {
		case f, ok := <-frames:
			if !ok {
				// Every round's end is queued before the last blob: take them all.
				frames = nil
				pending = drainMarks(marks, pending)
				if err := check(); err != nil {
					return err
				}
				if len(pending) > 0 {
					return fmt.Errorf("round %d ended with %d of %d blobs sent", pending[0].Round, sentIn[pending[0].Round], pending[0].Blobs)
				}
				return nil
			}
			t0 := time.Now()
			s.ad.writing()
			if err := writeFrame(s.bw, frameBlob, f.payload); err != nil {
				return fmt.Errorf("send blob: %w", err)
			}
			if err := s.bw.Flush(); err != nil {
				return fmt.Errorf("send blob: %w", err)
			}
			if f.reuse { // written out: the stream keeps none of it
				s.recycle(f.payload)
			}
			s.ad.sent(time.Since(t0), len(f.payload)+5)
			s.stageBusy[3].Add(int64(time.Since(t0)))
			s.active(3, t0)
			s.stageIn[3].Add(int64(len(f.payload)))
			s.stageOut[3].Add(int64(len(f.payload) + 5))
			s.wire.Add(int64(len(f.payload) + 5))
			sentIn[f.round]++
		case m, ok := <-marks:
			if !ok {
				marks = nil
				continue
			}
			pending = append(pending, m)
		case <-ctx.Done():
			return nil
		}
		if err := check(); err != nil {
			return err
		}
		if frames == nil && len(pending) == 0 {
			return nil
		}
	}
	return nil
}
