package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/internal/detcbor"
	"github.com/gdpnet/gdpnet/internal/vfsutil"
	"github.com/gdpnet/gdpnet/pdu"
)

// Store holds capsules durably. It is safe for concurrent use; appends to
// different capsules proceed in parallel and share fsyncs.
type Store struct {
	opts Options
	eng  engine
	log  *zap.Logger

	mu       sync.RWMutex
	capsules map[pdu.Name]*capsuleState

	commit committer
	nodes  *lru.Cache[nodeCacheKey, capsule.Hash]
	// entriesRead counts the entries read from the engine (Stats).
	entriesRead atomic.Uint64
	// heartbeatsRead counts the heartbeats HeartbeatsRaw read (Stats).
	heartbeatsRead atomic.Uint64
	ahead          *readAhead // nil: off

	// closeMu is held shared by every operation that touches the engine
	// and exclusively by Close, so nothing reaches a closed engine.
	closeMu sync.RWMutex
	closed  bool
	// bg: read-ahead fills running off a READ (started under enter);
	// Close waits for them before closing the engine.
	bg sync.WaitGroup
	// stopSweep ends the read-ahead's idle sweeper (nil: no read-ahead).
	stopSweep chan struct{}
	sweeping  sync.WaitGroup
}

// capsuleState is one capsule's in-memory state. mu serialises appends;
// head runs ahead of the disk by the writes still queued, durable is what
// the last fsync covered and what readers see.
type capsuleState struct {
	info capsule.Info
	meta []byte

	mu       sync.Mutex
	moved    *sync.Cond // on mu: an append finished its turn
	checking int        // appends of this capsule in CheckBatch
	head     capsule.Head
	last     *pendingWrite // newest queued write, nil when none
	durable  atomic.Pointer[capsule.Head]
	gen      atomic.Uint64 // keys the node cache; a new one (nodeGens) when a branch rewrites nodes
	// bytes are the bytes of the entries stored (Bytes): set under mu by
	// extend, with the 'b' key in the same write batch.
	bytes atomic.Uint64
	// deleted (under mu): Delete took the capsule away. A write that got
	// this state before (an append, an adoption) and its turn after finds
	// it set and fails with ErrUnknownCapsule instead of writing keys of
	// a deleted capsule after Delete's range deletion (keys a capsule
	// created again under the name would have found).
	deleted bool
}

func newCapsuleState(info capsule.Info, meta []byte) *capsuleState {
	cs := &capsuleState{info: info, meta: meta}
	cs.moved = sync.NewCond(&cs.mu)
	cs.gen.Store(nodeGens.Add(1))
	return cs
}

// deleteHook, set only by tests, runs in Delete once the capsule's state
// is marked deleted, before its range deletion is queued.
var deleteHook func(c pdu.Name)

// nodeGens hands out the node cache's generations: every capsule state
// and every branch gets one no other has had in this process. A READ
// that raced a Delete may add an entry of the deleted capsule to the
// cache after Delete purged it; keyed by a generation the capsule created
// again under that name never uses, it is never served.
var nodeGens atomic.Uint64

// Open opens (or creates) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := vfsutil.MkdirAll(opts.fs, dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	var eng engine
	if opts.Engine == "bbolt" {
		eng, err = openBolt(dir)
	} else {
		eng, err = openPebble(dir, opts.fs, opts.memTable)
	}
	if err != nil {
		return nil, err
	}
	if opts.wrapEngine != nil {
		eng = opts.wrapEngine(eng)
	}
	cache, err := lru.New[nodeCacheKey, capsule.Hash](opts.NodeCache)
	if err != nil {
		eng.close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{opts: opts, eng: eng, log: opts.Logger, capsules: map[pdu.Name]*capsuleState{}, nodes: cache, ahead: newReadAhead(opts)}
	if err := s.load(); err != nil {
		eng.close()
		return nil, err
	}
	s.commit.dir, s.commit.minFree, s.commit.free, s.commit.log = dir, opts.MinFreeBytes, opts.freeBytes, opts.Logger
	s.commit.roomy.Store(true)
	s.commit.start(eng, opts.MaxGroupBytes)
	if s.ahead != nil {
		s.stopSweep = make(chan struct{})
		s.sweeping.Add(1)
		go func() {
			defer s.sweeping.Done()
			s.ahead.sweeper(s.stopSweep)
		}()
	}
	return s, nil
}

// Close stops intake, waits for queued writes to become durable, and closes
// the engine.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	if s.stopSweep != nil {
		close(s.stopSweep)
		s.sweeping.Wait()
	}
	s.bg.Wait()
	s.commit.stop()
	return s.eng.close()
}

// enter admits an operation unless the store is closed; leave ends it.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.closeMu.RUnlock() }

type metaWire struct {
	Writer []byte `cbor:"1,keyasint"`
	Meta   []byte `cbor:"2,keyasint,omitempty"`
}

// load reads every capsule's head: its newest heartbeat, the tree frontier
// and the head entry.
func (s *Store) load() error {
	var metas [][2][]byte
	err := s.eng.scan([]byte{tMeta}, []byte{tMeta + 1}, func(k, v []byte) bool {
		metas = append(metas, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
		return true
	})
	if err != nil {
		return fmt.Errorf("load capsules: %w", err)
	}
	for _, kv := range metas {
		if len(kv[0]) != 33 {
			return fmt.Errorf("load capsules: bad meta key %x", kv[0])
		}
		var m metaWire
		if err := cborDec.Unmarshal(kv[1], &m); err != nil || len(m.Writer) != ed25519.PublicKeySize {
			return fmt.Errorf("load capsules: bad meta for %x: %v", kv[0][1:], err)
		}
		cs := newCapsuleState(capsule.Info{Name: pdu.Name(kv[0][1:]), Writer: ed25519.PublicKey(m.Writer)}, m.Meta)
		if err := s.loadHead(cs); err != nil {
			return fmt.Errorf("load capsule %s: %w", cs.info.Name, err)
		}
		if err := s.loadBytes(cs); err != nil {
			return fmt.Errorf("load capsule %s: %w", cs.info.Name, err)
		}
		s.capsules[cs.info.Name] = cs
	}
	return nil
}

// loadBytes reads the count of a capsule's stored bytes; a store written
// before the count existed (Session 13) has none, and the capsule's entries
// are summed once (the next append writes the count).
func (s *Store) loadBytes(cs *capsuleState) error {
	c := cs.info.Name
	v, err := s.eng.get(key(tBytes, c))
	switch {
	case err == nil && len(v) == 8:
		cs.bytes.Store(u64(v))
		return nil
	case err == nil:
		return fmt.Errorf("bad byte count of %d bytes", len(v))
	case !errors.Is(err, errNotFound):
		return err
	}
	var n uint64
	for _, t := range []byte{tEntry, tAbandoned} {
		if err := s.eng.scan(key(t, c), prefixEnd(key(t, c)), func(_, v []byte) bool {
			n += uint64(len(v))
			return true
		}); err != nil {
			return err
		}
	}
	cs.bytes.Store(n)
	return nil
}

// Bytes is how many bytes of entries (records and holes in wire form, those
// of abandoned branches too) the store holds for capsule c: what its
// writer's appends have cost this server's disk, before the engine's own
// overhead (hashes, Merkle nodes, heartbeats: about 150 bytes an entry).
func (s *Store) Bytes(c pdu.Name) (uint64, error) {
	cs, err := s.state(c)
	if err != nil {
		return 0, err
	}
	return cs.bytes.Load(), nil
}

func (s *Store) loadHead(cs *capsuleState) error {
	c := cs.info.Name
	h := capsule.Head{Tree: &capsule.Tree{}}
	_, v, err := s.eng.last(key(tHeartbeat, c), prefixEnd(key(tHeartbeat, c)))
	switch {
	case errors.Is(err, errNotFound):
	case err != nil:
		return err
	default:
		hb, err := capsule.UnmarshalHeartbeat(v)
		if err != nil {
			return err
		}
		h.Heartbeat, h.Seqno = hb, hb.Seqno
		if h.Tree, err = capsule.LoadTree(s.nodeSource(cs), hb.Seqno); err != nil {
			return err
		}
		if h.Tree.Root() != hb.Root {
			return fmt.Errorf("stored tree does not match heartbeat %d", hb.Seqno)
		}
		if h.Seqno > 0 {
			e, err := s.entry(c, h.Seqno)
			if err != nil {
				return err
			}
			h.Hash = e.Hash()
			if h.Time, err = s.lastTime(c, h.Seqno); err != nil {
				return err
			}
		}
	}
	cs.head = h
	d := h
	cs.durable.Store(&d)
	return nil
}

// lastTime is the time of the newest data record at or below seqno.
func (s *Store) lastTime(c pdu.Name, seqno uint64) (int64, error) {
	var t int64
	var ierr error
	// Holes are rare; walk back in small windows.
	for end := seqno; end > 0; {
		start := uint64(1)
		if end > 64 {
			start = end - 63
		}
		found := false
		err := s.eng.scan(key(tEntry, c, start), key(tEntry, c, end+1), func(k, v []byte) bool {
			e, err := capsule.UnmarshalRecord(v)
			if err != nil {
				ierr = err
				return false
			}
			if !e.Hole {
				t, found = e.Time, true
			}
			return true
		})
		if err = errors.Join(err, ierr); err != nil || found {
			return t, err
		}
		end = start - 1
	}
	return 0, nil
}

// Room is the free-space guard on its own: ErrDiskFull while the file
// system holding the store has less than MinFreeBytes free (a CREATE is
// refused before it advertises anything).
func (s *Store) Room() error { return s.commit.room() }

// Create registers capsule name with its canonical metadata (certs.Metadata
// bytes), which must hash to name and be a capsule's: its writer key is the
// one every heartbeat must verify with. The metadata is kept and served
// back (Info). Creating the same capsule again is a no-op.
func (s *Store) Create(ctx context.Context, name pdu.Name, meta []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	info, err := capsule.ParseInfo(name, meta)
	if err != nil {
		return fmt.Errorf("create capsule: %w", err)
	}
	return s.create(ctx, info, meta)
}

func (s *Store) create(ctx context.Context, info capsule.Info, meta []byte) error {
	if err := info.Check(); err != nil {
		return fmt.Errorf("create capsule: %w", err)
	}
	s.mu.Lock()
	if cs, ok := s.capsules[info.Name]; ok {
		s.mu.Unlock()
		if !cs.info.Writer.Equal(info.Writer) {
			return fmt.Errorf("create capsule %s: %w", info.Name, ErrCapsuleExists)
		}
		return nil
	}
	// a new capsule takes disk as an append does: refused below
	// MinFreeBytes (a renewal above writes nothing)
	if err := s.commit.room(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("create capsule %s: %w", info.Name, err)
	}
	cs := newCapsuleState(capsule.Info{Name: info.Name, Writer: append(ed25519.PublicKey(nil), info.Writer...)},
		append([]byte(nil), meta...))
	cs.head = capsule.Head{Tree: &capsule.Tree{}}
	d := cs.head
	cs.durable.Store(&d)
	v, err := detcbor.Marshal(metaWire{Writer: info.Writer, Meta: meta})
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("create capsule %s: %w", info.Name, err)
	}
	var b writeBatch
	b.set(key(tMeta, info.Name), v)
	w, err := s.commit.enqueue(&b, nil)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("create capsule %s: %w", info.Name, err)
	}
	s.capsules[info.Name] = cs
	s.mu.Unlock()
	if err := w.wait(ctx); err != nil {
		return fmt.Errorf("create capsule %s: %w", info.Name, err)
	}
	return nil
}

// Info returns a capsule's name, writer key and metadata bytes.
func (s *Store) Info(c pdu.Name) (capsule.Info, []byte, error) {
	cs, err := s.state(c)
	if err != nil {
		return capsule.Info{}, nil, err
	}
	return cs.info, cs.meta, nil
}

// Capsules lists the capsules held.
func (s *Store) Capsules() []pdu.Name {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]pdu.Name, 0, len(s.capsules))
	for n := range s.capsules {
		out = append(out, n)
	}
	return out
}

func (s *Store) state(c pdu.Name) (*capsuleState, error) {
	s.mu.RLock()
	cs := s.capsules[c]
	s.mu.RUnlock()
	if cs == nil {
		return nil, fmt.Errorf("capsule %s: %w", c, ErrUnknownCapsule)
	}
	return cs, nil
}

// Delete removes capsule c and everything held for it (entries, heartbeats,
// nodes, abandoned branches, evidence), durably. Appends that race with it
// either land before it (and are deleted too) or fail with
// ErrUnknownCapsule: the capsule's state is marked deleted under its lock
// first, so no write of it is queued after the range deletion. The range
// deletion is queued under the store's lock, in the step that takes the
// capsule off the map, so a Create of the name after that queues its
// metadata after it (not before, to be deleted with the old capsule).
func (s *Store) Delete(ctx context.Context, c pdu.Name) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return fmt.Errorf("delete capsule %s: %w", c, ErrUnknownCapsule)
	}
	cs.mu.Lock()
	cs.deleted = true
	cs.moved.Broadcast() // appends waiting for a predecessor: none is coming
	cs.mu.Unlock()
	if deleteHook != nil {
		deleteHook(c)
	}
	var b writeBatch
	for _, t := range []byte{tMeta, tEntry, tHash, tNode, tHeartbeat, tAbandoned, tAbandonHB, tEvidence, tBytes} {
		p := key(t, c)
		b.delRange(p, prefixEnd(p))
	}
	s.mu.Lock()
	if s.capsules[c] != cs {
		// Another Delete took it (and a Create may have made it again).
		s.mu.Unlock()
		return fmt.Errorf("delete capsule %s: %w", c, ErrUnknownCapsule)
	}
	delete(s.capsules, c)
	w, err := s.commit.enqueue(&b, nil)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete capsule %s: %w", c, err)
	}
	if err := w.wait(ctx); err != nil {
		return fmt.Errorf("delete capsule %s: %w", c, err)
	}
	// The deleted capsule's nodes are of no further use (one created
	// again under this name keys the cache by new generations).
	for _, k := range s.nodes.Keys() {
		if k.c == c {
			s.nodes.Remove(k)
		}
	}
	return nil
}
