package kv

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// WriterOptions tunes a Writer. Zero values take the defaults in the
// comments.
type WriterOptions struct {
	// Writer tunes the underlying client.Writer (replicas, W, cadence).
	Writer client.WriterOptions
	// Store tunes the Writer's own reader (Writer.Store).
	Store Options
	// CheckpointEvery writes a checkpoint once this many records were
	// written since the last one and they hold at least as many bytes as
	// it did (so the log a new reader replays stays no larger than the
	// state). Default 1024; negative: only on Checkpoint.
	CheckpointEvery int
	// Appender, when set, wraps the client writer: the KV records are
	// appended through what it returns (an encrypted capsule's
	// seal.Sealer, which seals each one). Store.Transform must undo it.
	Appender func(ctx context.Context, w *client.Writer) (Appender, error)
}

// Writer is the single writer of a KV capsule: it appends puts, deletes
// and checkpoints through a client.Writer and keeps the live state (for
// checkpoints). Reads go through Store, a verified reader like any other.
// Safe for concurrent use.
type Writer struct {
	cw    *client.Writer // nil for a writer over another appender (tests)
	app   Appender
	store *Store
	opts  WriterOptions

	mu        sync.Mutex
	live      map[string]Entry // the state at the head written
	ckpt      uint64           // first seqno of the newest complete checkpoint
	since     int              // records since it
	sinceB    int              // their bytes
	ckptBytes int              // its size
	lastTime  int64            // time of the newest record
}

// OpenWriter opens capsule c for writing with the writer key: it reads the
// current state (from the newest checkpoint), then continues the log.
func OpenWriter(ctx context.Context, cc *client.CapsuleClient, c pdu.Name, key ed25519.PrivateKey, opts WriterOptions) (*Writer, error) {
	cw, err := cc.NewWriter(ctx, c, key, opts.Writer)
	if err != nil {
		return nil, fmt.Errorf("kv writer %s: %w", c, err)
	}
	st, err := Open(ctx, cc, c, opts.Store)
	if err != nil {
		_ = cw.Close(ctx)
		return nil, err
	}
	// The nearest replica may lag the newest head the writer resumed from.
	if err := st.Sync(ctx, cw.Progress().Start); err != nil {
		_ = st.Close()
		_ = cw.Close(ctx)
		return nil, fmt.Errorf("kv writer %s: %w", c, err)
	}
	var app Appender = cw
	if opts.Appender != nil {
		if app, err = opts.Appender(ctx, cw); err != nil {
			_ = st.Close()
			_ = cw.Close(ctx)
			return nil, fmt.Errorf("kv writer %s: %w", c, err)
		}
	}
	w := newWriter(app, st.ix, opts)
	w.cw, w.store = cw, st
	return w, nil
}

// Appender is what a Writer appends its records through: a client.Writer,
// or a layer over it (seal.Sealer).
type Appender interface {
	AppendRecord(ctx context.Context, data []byte) (capsule.Record, error)
	Seqno() uint64
}

// newWriter starts a writer over app from the state ix holds at its head.
func newWriter(app Appender, ix *Index, opts WriterOptions) *Writer {
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 1024
	}
	w := &Writer{app: app, opts: opts, live: map[string]Entry{}}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	head := ix.head
	for k, vs := range ix.keys {
		if v, ok := versionAt(vs, head); ok && !v.del {
			w.live[k] = Entry{Key: []byte(k), Value: v.val, Seqno: v.seq, Time: uint64(v.time)}
		}
	}
	w.ckpt = ix.ckpt
	if n := len(ix.times); n > 0 {
		w.lastTime = ix.times[n-1]
	}
	if head > w.ckpt {
		w.since = int(head - w.ckpt)
	}
	return w
}

// Store is the writer's reader: its index follows the capsule (Sync to
// wait for a write).
func (w *Writer) Store() *Store { return w.store }

// Put sets key to value and returns the record's seqno. The record is sent
// with the writer's next batch: Flush waits until it is durable.
func (w *Writer) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return w.write(ctx, &Op{Kind: OpPut, Key: []byte(key), Value: value})
}

// Delete removes key and returns the record's seqno. Deleting a key that
// has no value writes nothing and returns 0.
func (w *Writer) Delete(ctx context.Context, key string) (uint64, error) {
	w.mu.Lock()
	_, ok := w.live[key]
	w.mu.Unlock()
	if !ok {
		return 0, nil
	}
	return w.write(ctx, &Op{Kind: OpDelete, Key: []byte(key)})
}

func (w *Writer) write(ctx context.Context, o *Op) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o.Ckpt = w.ckpt
	rec, n, err := w.append(ctx, o)
	if err != nil {
		return 0, fmt.Errorf("kv %s %q: %w", kindName(o.Kind), o.Key, err)
	}
	k := string(o.Key)
	if o.Kind == OpPut {
		w.live[k] = Entry{Key: o.Key, Value: o.Value, Seqno: rec.Seqno, Time: uint64(rec.Time)}
	} else {
		delete(w.live, k)
	}
	w.since++
	w.sinceB += n
	if w.opts.CheckpointEvery > 0 && w.since >= w.opts.CheckpointEvery && w.sinceB >= w.ckptBytes {
		if err := w.checkpointLocked(ctx); err != nil {
			return rec.Seqno, err
		}
	}
	return rec.Seqno, nil
}

func kindName(k uint64) string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return "checkpoint"
}

// append encodes o and appends it.
func (w *Writer) append(ctx context.Context, o *Op) (capsule.Record, int, error) {
	b, err := o.Marshal()
	if err != nil {
		return capsule.Record{}, 0, err
	}
	rec, err := w.app.AppendRecord(ctx, b)
	if err == nil {
		w.lastTime = rec.Time
	}
	return rec, len(b), err
}

// Checkpoint writes the whole live state now: later readers start from it.
func (w *Writer) Checkpoint(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkpointLocked(ctx)
}

// checkpointLocked writes the state at the head as checkpoint parts right
// after it. A writer that stops part way leaves parts no reader takes for
// a checkpoint (the next record is no part of it).
func (w *Writer) checkpointLocked(ctx context.Context) error {
	base := w.app.Seqno()
	if base == 0 {
		return nil // an empty log needs no checkpoint
	}
	keys := make([]string, 0, len(w.live))
	for k := range w.live {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	d := newDigester()
	var baseTime uint64
	var parts [][]Entry
	var cur []Entry
	size := 0
	for _, k := range keys {
		e := w.live[k]
		d.add(e.Key, e.Value, e.Seqno, int64(e.Time))
		n := len(e.Key) + len(e.Value) + 24
		if len(cur) > 0 && (size+n > maxPartBytes || len(cur) >= maxPartEntries) {
			parts = append(parts, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += n
	}
	if len(cur) > 0 || len(parts) == 0 {
		parts = append(parts, cur)
	}
	// The base record's time bounds every entry's; the writer's clock never
	// goes backwards, so now is at or after it.
	baseTime = uint64(w.lastTime)
	digest := d.sum()
	total := 0
	first := base + 1
	for i, p := range parts {
		o := &Op{Kind: OpCheckpoint, Ckpt: w.ckpt, Base: base, BaseTime: baseTime, Part: uint64(i),
			Parts: uint64(len(parts)), Digest: digest, Entries: p}
		rec, n, err := w.append(ctx, o)
		if err != nil {
			return fmt.Errorf("kv checkpoint at %d: %w", base, err)
		}
		if rec.Seqno != first+uint64(i) {
			// Another record came between the parts (a layer under the
			// writer wrote one, as seal.Sealer does on a reader change):
			// readers take this for no checkpoint; the next write tries
			// again.
			return nil
		}
		total += n
	}
	w.ckpt, w.since, w.sinceB, w.ckptBytes = first, 0, 0, total
	return nil
}

// Flush sends what is pending and waits until it is durable (or ctx ends).
func (w *Writer) Flush(ctx context.Context) (client.Durability, error) {
	return w.cw.Flush(ctx)
}

// Close flushes and stops the writer and its store.
func (w *Writer) Close(ctx context.Context) error {
	err := w.cw.Close(ctx)
	_ = w.store.Close()
	if err != nil {
		return fmt.Errorf("kv writer close: %w", err)
	}
	return nil
}
