package kv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// Options tunes a Store. Zero values take the defaults in the comments.
type Options struct {
	// Reader picks the replica (default: the nearest) and the quorum of
	// the underlying client.Reader.
	Reader client.ReaderOptions
	// FullHistory reads the whole log at Open instead of starting from
	// the newest checkpoint. Default false: start from the checkpoint and
	// read the older log only when a read asks for a point before it.
	FullHistory bool
	// NoFollow reads the log once at Open and does not subscribe: the
	// index stays at the head it found (Refresh reads what came since).
	NoFollow bool
	// Transform, when set, turns each verified record's data into the KV
	// record it carries (an encrypted capsule decrypts here:
	// seal.Opener.Transform). Empty data: nothing to index (a key record).
	// An error fails the read, or stops a following store.
	Transform func(ctx context.Context, r capsule.Record) ([]byte, error)
	// Logger; default none.
	Logger *zap.Logger
}

// Store is a reader of a KV capsule with a local verified index that a
// subscription keeps current. Reads are answered from the index; a read of
// a point before the checkpoint the store started from reads the older log
// once (verified, and checked against the checkpoint). Safe for concurrent
// use.
type Store struct {
	rd   *client.Reader // nil for a store over another source (tests)
	src  source
	ix   *Index
	opts Options
	log  *zap.Logger

	backfill sync.Mutex // one backfill at a time
	scanMu   sync.Mutex // Refresh and the follower apply in order

	mu  sync.Mutex
	err error // the follower stopped on it

	cancel context.CancelFunc
	done   chan struct{}
}

// Open reads capsule c's newest checkpoint and the records after it into
// a local index, verifying every page, and (unless opts.NoFollow) follows
// the capsule from there.
func Open(ctx context.Context, cc *client.CapsuleClient, c pdu.Name, opts Options) (*Store, error) {
	rd, err := cc.NewReader(ctx, c, opts.Reader)
	if err != nil {
		return nil, fmt.Errorf("kv open %s: %w", c, err)
	}
	return OpenReader(ctx, rd, opts)
}

// source is where a store reads verified entries: a client.Reader, or an
// in-memory log in tests.
type source interface {
	Info() capsule.Info
	Heartbeat() *capsule.Heartbeat
	Read(ctx context.Context, from, to uint64) ([]capsule.Record, error)
	Scan(ctx context.Context, from, to uint64, fn func(capsule.Record) error) error
}

// OpenReader is Open over a reader the caller made.
func OpenReader(ctx context.Context, rd *client.Reader, opts Options) (*Store, error) {
	s, err := openSource(ctx, rd, opts)
	if err != nil {
		return nil, err
	}
	s.rd = rd
	if !opts.NoFollow {
		sub, err := rd.Subscribe(ctx, s.ix.Head()+1)
		if err != nil {
			return nil, fmt.Errorf("kv open %s: %w", rd.Info().Name, err)
		}
		fctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go s.follow(fctx, sub)
	}
	return s, nil
}

// openSource reads the newest checkpoint and what follows it from src.
func openSource(ctx context.Context, src source, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{src: src, ix: NewIndex(src.Info()), opts: opts, log: log.With(zap.Stringer("capsule", src.Info().Name))}
	if !opts.FullHistory {
		if err := s.loadCheckpoint(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Index is the store's local index (for reads without a context).
func (s *Store) Index() *Index { return s.ix }

// Reader is the underlying capsule reader.
func (s *Store) Reader() *client.Reader { return s.rd }

// Close stops following the capsule.
func (s *Store) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return nil
}

// Err is the error that stopped the follower (nil while it runs).
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Store) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.ix.mu.Lock()
	s.ix.notify() // wake Sync callers
	s.ix.mu.Unlock()
}

// loadCheckpoint finds the newest complete checkpoint from the head entry
// and starts the index from it. With none, the index starts empty.
func (s *Store) loadCheckpoint(ctx context.Context) error {
	c := s.src.Info().Name
	hb := s.src.Heartbeat()
	if hb == nil || hb.Seqno == 0 {
		return nil
	}
	// The newest data entry names the newest complete checkpoint (holes
	// name nothing: look further back, a page at a time).
	var first uint64
	for to := hb.Seqno; to > 0 && first == 0; {
		from := max(1, to-min(to, 63))
		entries, err := s.src.Read(ctx, from, to)
		if err != nil {
			return fmt.Errorf("kv open %s: %w", c, err)
		}
		found := false
		for i := len(entries) - 1; i >= 0 && !found; i-- {
			e := entries[i]
			if e.Hole {
				continue
			}
			data, err := s.data(ctx, e)
			if err != nil {
				return err
			}
			if len(data) == 0 {
				continue // a record with nothing for the index (a key record)
			}
			o, err := UnmarshalOp(data)
			if err != nil {
				// Not a KV record: another program's, written with the
				// writer key (a files put, a plain append). Look further
				// back for the newest KV record (Session 20: this read
				// the whole log from record 1 instead); the index counts
				// it in Dropped when it applies it.
				continue
			}
			found = true
			first = o.Ckpt
			if o.Kind == OpCheckpoint && o.Part+1 == o.Parts {
				first = e.Seqno - o.Part
			}
		}
		if found || from == 1 {
			break
		}
		to = from - 1
	}
	if first == 0 {
		return nil
	}
	head, err := s.src.Read(ctx, first, first)
	if err != nil {
		return fmt.Errorf("kv open %s: checkpoint at %d: %w", c, first, err)
	}
	if len(head) != 1 || head[0].Hole {
		return fmt.Errorf("kv open %s: %w: no checkpoint at %d", c, ErrBadCheckpoint, first)
	}
	data, err := s.data(ctx, head[0])
	if err != nil {
		return err
	}
	o, err := UnmarshalOp(data)
	if err != nil || o.Kind != OpCheckpoint || o.Part != 0 {
		return fmt.Errorf("kv open %s: %w: entry %d is no checkpoint's first part", c, ErrBadCheckpoint, first)
	}
	parts, err := s.src.Read(ctx, first, first+o.Parts-1)
	if err != nil {
		return fmt.Errorf("kv open %s: checkpoint at %d: %w", c, first, err)
	}
	if err := s.transform(ctx, parts); err != nil {
		return err
	}
	if err := s.ix.loadCheckpoint(parts); err != nil {
		return fmt.Errorf("kv open %s: %w", c, err)
	}
	s.log.Debug("started from checkpoint", zap.Uint64("seqno", first), zap.Uint64("base", o.Base))
	return nil
}

// data is the KV record an entry carries.
func (s *Store) data(ctx context.Context, e capsule.Record) ([]byte, error) {
	if s.opts.Transform == nil {
		return e.Data, nil
	}
	d, err := s.opts.Transform(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("kv %s entry %d: %w", e.Capsule, e.Seqno, err)
	}
	return d, nil
}

// transform replaces the data of verified entries by the KV records they
// carry. (An entry's hash covers its data hash, not its data, so the
// index's chain checks still hold.)
func (s *Store) transform(ctx context.Context, entries []capsule.Record) error {
	if s.opts.Transform == nil {
		return nil
	}
	for i := range entries {
		if entries[i].Hole {
			continue
		}
		d, err := s.data(ctx, entries[i])
		if err != nil {
			return err
		}
		entries[i].Data = d
	}
	return nil
}

// Refresh reads what the replica holds beyond the index's head (verified)
// into the index. Open does it once; a store with NoFollow calls it to
// catch up.
func (s *Store) Refresh(ctx context.Context) error {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	c := s.src.Info().Name
	batch := make([]capsule.Record, 0, 256)
	flush := func() error {
		if err := s.transform(ctx, batch); err != nil {
			return err
		}
		if err := s.ix.apply(batch, false); err != nil {
			return fmt.Errorf("kv %s: %w", c, err)
		}
		batch = batch[:0]
		return nil
	}
	err := s.src.Scan(ctx, s.ix.Head()+1, 0, func(e capsule.Record) error {
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("kv refresh %s: %w", c, err)
	}
	return nil
}

// follow applies the subscription's verified pushes until ctx ends. A
// transport failure resubscribes; a verification failure (or a page that
// does not continue the index) stops the store: Err reports it and reads
// fail.
func (s *Store) follow(ctx context.Context, sub *client.Subscription) {
	defer close(s.done)
	defer func() { _ = sub.Close() }()
	backoff := 100 * time.Millisecond
	for {
		ev, err := sub.Next(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			s.scanMu.Lock()
			if len(ev.Entries) > 0 && ev.Entries[0].Seqno <= s.ix.Head() {
				// Refresh got there first.
				skip := min(int(s.ix.Head()-ev.Entries[0].Seqno+1), len(ev.Entries))
				ev.Entries = ev.Entries[skip:]
			}
			if err = s.transform(ctx, ev.Entries); err == nil {
				err = s.ix.apply(ev.Entries, false)
			}
			s.scanMu.Unlock()
			if err != nil {
				s.log.Error("kv index stopped", zap.Error(err))
				s.fail(err)
				return
			}
			backoff = 100 * time.Millisecond
			continue
		}
		if verificationError(err) {
			s.log.Error("kv follower stopped: a replica sent what does not verify", zap.Error(err))
			s.fail(fmt.Errorf("kv %s: %w", s.src.Info().Name, err))
			return
		}
		s.log.Warn("kv subscription failed, resubscribing", zap.Error(err))
		_ = sub.Close()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		if nsub, err := s.rd.Subscribe(ctx, s.ix.Head()+1); err == nil {
			sub = nsub
		}
	}
}

// verificationError reports whether err means a replica sent something
// that does not verify (as opposed to a lost answer).
func verificationError(err error) bool {
	for _, target := range []error{capsule.ErrBadProof, capsule.ErrBadSignature, capsule.ErrBadDataHash,
		capsule.ErrBrokenChain, capsule.ErrGap, capsule.ErrEquivocation, capsule.ErrBadTime, capsule.ErrMalformed,
		capsule.ErrWrongCapsule, capsule.ErrRootMismatch} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Sync waits until the index holds seqno (a writer's Put returns it) or
// ctx ends: read-your-writes across processes.
func (s *Store) Sync(ctx context.Context, seqno uint64) error {
	for {
		ch := s.ix.wait()
		if s.ix.Head() >= seqno {
			return nil
		}
		if err := s.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kv sync %s to %d (at %d): %w", s.src.Info().Name, seqno, s.ix.Head(), ctx.Err())
		case <-ch:
		}
	}
}

// ready fails when the follower stopped on a verification error: the
// index may miss what the capsule holds, so reads say so.
func (s *Store) ready() error {
	if err := s.Err(); err != nil {
		return fmt.Errorf("kv %s: index stopped: %w", s.src.Info().Name, err)
	}
	return nil
}

// Get returns key's newest value the index holds.
func (s *Store) Get(ctx context.Context, key string) (Value, error) {
	return s.GetAt(ctx, key, Latest)
}

// GetAt returns key's value at at (a seqno or a time): exactly what was
// current right after that record. ErrNotFound when the key had no value
// then.
func (s *Store) GetAt(ctx context.Context, key string, at At) (Value, error) {
	if err := s.ready(); err != nil {
		return Value{}, err
	}
	v, err := s.ix.GetAt(key, at)
	if errors.Is(err, ErrNotIndexed) && s.ix.Base() > 0 {
		if berr := s.Backfill(ctx); berr != nil {
			return Value{}, berr
		}
		v, err = s.ix.GetAt(key, at)
	}
	return v, err
}

// ListAt returns the keys under prefix with their values at at, in byte
// order.
func (s *Store) ListAt(ctx context.Context, prefix string, at At) ([]Value, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	vs, err := s.ix.ListAt(prefix, at)
	if errors.Is(err, ErrNotIndexed) && s.ix.Base() > 0 {
		if berr := s.Backfill(ctx); berr != nil {
			return nil, berr
		}
		vs, err = s.ix.ListAt(prefix, at)
	}
	return vs, err
}

// History returns every version of key, oldest first (puts and deletes).
// A store that started from a checkpoint reads the older log first.
func (s *Store) History(ctx context.Context, key string) ([]Value, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if s.ix.Base() > 0 {
		if err := s.Backfill(ctx); err != nil {
			return nil, err
		}
	}
	return s.ix.History(key), nil
}

// Backfill reads the log before the checkpoint the store started from,
// verified, checks that it leads to exactly the checkpointed state, and
// merges it into the index: every point of the log is then answerable.
func (s *Store) Backfill(ctx context.Context) error {
	s.backfill.Lock()
	defer s.backfill.Unlock()
	base := s.ix.Base()
	if base == 0 {
		return nil
	}
	c := s.src.Info().Name
	old := NewIndex(s.src.Info())
	batch := make([]capsule.Record, 0, 256)
	flush := func() error {
		if err := s.transform(ctx, batch); err != nil {
			return err
		}
		if err := old.apply(batch, false); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	err := s.src.Scan(ctx, 1, base, func(e capsule.Record) error {
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = s.ix.mergeOlder(old)
	}
	if err != nil {
		return fmt.Errorf("kv %s: read the log before checkpoint base %d: %w", c, base, err)
	}
	return nil
}
