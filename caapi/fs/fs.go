package fs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// Options tunes an FS.
type Options struct {
	// At shows the tree as of capsule seqno At (every manifest up to it).
	// Default 0: the newest the replica's heartbeat shows.
	At uint64
	// Server is the replica read first. Default: the nearest (the
	// capsule's name), then pinned to the one that answered.
	Server pdu.Name
	// Quorum is passed to the first reader (client.ReaderOptions); -1
	// or 0: the nearest replica.
	Quorum int
	// Parallel bounds the chunk reads in flight across all open files.
	// Default 8: on the loaded 2-core test machine more requests in
	// flight did not read faster (docs/FILES.md §5).
	Parallel int
	// ReadAhead is how many chunks a sequential reader fetches ahead of
	// the one it reads. Default 16 (about 0.9 MB).
	ReadAhead int
	// Bulk, when > 0, reads runs of up to Bulk consecutive chunks over
	// one bulk read stream each (QUIC over names to the replica,
	// PROTOCOL.md §8.8): pages back to back instead of one READ round
	// trip per chunk. A replica that serves no bulk reads, or a stream
	// that fails, falls back to READs (Stats.BulkFallbacks). Default 0:
	// READs only — on the loaded 2-core test machine (loopback, CPU-bound)
	// bulk streams read at 0.68x the speed of READs for 1.85x the CPU per
	// MB (BenchmarkBulkVsRead, docs/FILES.md §5): each 1,300-byte QUIC
	// packet is a PDU every router forwards, where a READ answer is one
	// 56 KB PDU on a tunnel stream. They pay where round trips dominate
	// (a long path, an idle CPU).
	Bulk int
}

func (o Options) withDefaults() Options {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.ReadAhead <= 0 {
		o.ReadAhead = 16
	}
	if o.Quorum < 0 {
		o.Quorum = 0
	}
	return o
}

// Stats count what an FS did.
type Stats struct {
	Chunks    atomic.Uint64 // chunk records fetched and verified
	Bytes     atomic.Uint64 // content bytes they carried
	BadReads  atomic.Uint64 // reads that failed verification (or got no answer) at a replica
	Failovers atomic.Uint64 // times reads moved to another replica
	// BulkChunks are the chunks that came over bulk read streams;
	// BulkFallbacks the bulk reads that failed (their chunks then read
	// with READs). After a replica refused bulk reads (client.ErrNoBulk),
	// this FS reads with READs only.
	BulkChunks    atomic.Uint64
	BulkFallbacks atomic.Uint64
	// Skipped counts the records passed over when the tree was read
	// because they are not files-capsule records (Session 20): another
	// program's records (a KV put, a plain append) written into the files
	// capsule with its writer key after the files. The tree is read from
	// the newest files record below them, every file and version intact.
	Skipped atomic.Uint64
}

// FS reads a files capsule. Every record it returns was verified by the
// capsule reader (hash chain and inclusion proof against a writer-signed
// heartbeat), and every chunk also against the hash its file's manifest
// lists. When a replica serves a record that fails, reads move to the next
// replica of the capsule's placement; only when every replica fails does
// the read fail (never with unverified bytes).
type FS struct {
	cc   *client.CapsuleClient
	name pdu.Name
	opts Options

	sem chan struct{} // Parallel slots

	rmu     sync.Mutex
	servers []pdu.Name
	readers []*client.Reader // per server, opened on first use
	cur     int              // the server reads go to

	mu sync.Mutex
	ix *index

	bulkOff atomic.Bool

	Stats Stats
}

// Open reads the tree of files capsule c.
func Open(ctx context.Context, cc *client.CapsuleClient, c pdu.Name, opts Options) (*FS, error) {
	opts = opts.withDefaults()
	rd, err := cc.NewReader(ctx, c, client.ReaderOptions{Server: opts.Server, Quorum: opts.Quorum})
	if err != nil {
		return nil, fmt.Errorf("fs open %s: %w", c, err)
	}
	in := rd.Opened()
	first := in.Server
	if !opts.Server.IsZero() {
		first = opts.Server
	}
	rd.SetServer(first)
	f := &FS{cc: cc, name: c, opts: opts, sem: make(chan struct{}, opts.Parallel), ix: newIndex()}
	f.servers = []pdu.Name{first}
	for _, s := range in.Replicas {
		if s != first {
			f.servers = append(f.servers, s)
		}
	}
	f.readers = make([]*client.Reader, len(f.servers))
	f.readers[0] = rd
	head := opts.At
	if hb := rd.Heartbeat(); head == 0 && hb != nil {
		head = hb.Seqno
	}
	err = f.ix.build(ctx, head, f.fetchRecord, f.fetchPage)
	f.Stats.Skipped.Add(f.ix.skipped)
	if err != nil {
		return nil, fmt.Errorf("fs open %s: %w", c, err)
	}
	return f, nil
}

// Close releases nothing today (readers share the CapsuleClient); kept
// so callers need not change when it does.
func (f *FS) Close() {}

// Name is the capsule read.
func (f *FS) Name() pdu.Name { return f.name }

// Head is the seqno of the newest manifest in the tree (0: empty).
func (f *FS) Head() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ix.head
}

// Server is the replica reads go to now.
func (f *FS) Server() pdu.Name {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	return f.servers[f.cur]
}

// Stat says what path p is.
func (f *FS) Stat(p string) (Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ix.stat(p)
}

// ReadDir lists directory p.
func (f *FS) ReadDir(p string) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ix.readDir(p)
}

// Log is p's versions, newest first (a removal is a version of type
// TypeRemoved).
func (f *FS) Log(p string) ([]*Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ix.log(p)
}

// reader returns the reader of server i, opening it (and tying it to the
// newest heartbeat the first one verified) on first use.
func (f *FS) reader(ctx context.Context, i int) (*client.Reader, error) {
	f.rmu.Lock()
	rd := f.readers[i]
	f.rmu.Unlock()
	if rd != nil {
		return rd, nil
	}
	rd, err := f.cc.NewReader(ctx, f.name, client.ReaderOptions{Server: f.servers[i]})
	if err != nil {
		return nil, err
	}
	// The new replica must show a log consistent with what was verified.
	if hb := f.readers[0].Heartbeat(); hb != nil {
		if err := rd.Observe(hb); err != nil {
			return nil, err
		}
	}
	f.rmu.Lock()
	defer f.rmu.Unlock()
	if f.readers[i] == nil {
		f.readers[i] = rd
	}
	return f.readers[i], nil
}

// fetchRecord reads record seqno, verified, from the current replica and
// moves on to the next replica when that one fails: a verification
// failure, no answer, or a record other than the one asked.
func (f *FS) fetchRecord(ctx context.Context, seqno uint64) ([]byte, time.Time, error) {
	rec, err := f.fetch(ctx, seqno, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	return rec.Data, time.Unix(0, rec.Time), nil
}

// fetch reads record seqno; want, when set, is the hash of its data the
// manifest lists.
func (f *FS) fetch(ctx context.Context, seqno uint64, want *[32]byte) (capsule.Record, error) {
	var rec capsule.Record
	err := f.failover(ctx, func(i int) error {
		r, err := f.fetchFrom(ctx, i, seqno, want)
		rec = r
		return err
	})
	if err != nil {
		var all *allFailed
		if errors.As(err, &all) {
			return capsule.Record{}, fmt.Errorf("read %s record %d: every replica failed; first: %w", f.name, seqno, all.first)
		}
		return capsule.Record{}, err
	}
	return rec, nil
}

// tipPage is how many records one read takes when the tree's newest
// files record is looked for below records of another kind.
const tipPage = 16

// fetchPage reads the records of [max(1, hi-tipPage+1), hi], verified,
// moving on to the next replica as fetch does; a hole fails the page.
func (f *FS) fetchPage(ctx context.Context, hi uint64) (uint64, [][]byte, error) {
	lo := uint64(1)
	if hi > tipPage {
		lo = hi - tipPage + 1
	}
	var data [][]byte
	err := f.failover(ctx, func(i int) error {
		rd, err := f.reader(ctx, i)
		if err != nil {
			return err
		}
		recs, err := rd.Read(ctx, lo, hi)
		if err != nil {
			return err
		}
		if uint64(len(recs)) != hi-lo+1 {
			return fmt.Errorf("read %s records [%d, %d]: %w: the replica does not have them", f.name, lo, hi, ErrNotExist)
		}
		data = data[:0]
		for k, rec := range recs {
			if rec.Seqno != lo+uint64(k) {
				return fmt.Errorf("read %s records [%d, %d]: %w: the replica does not have them", f.name, lo, hi, ErrNotExist)
			}
			if rec.Hole {
				return fmt.Errorf("read %s record %d: %w: a hole", f.name, rec.Seqno, ErrNotFS)
			}
			data = append(data, rec.Data)
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read %s records [%d, %d]: %w", f.name, lo, hi, err)
	}
	return lo, data, nil
}

// failover runs read against the current replica and, while it fails,
// against the next ones (fetch's rule): the first error when all fail.
func (f *FS) failover(ctx context.Context, read func(i int) error) error {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.sem }()
	var first error
	f.rmu.Lock()
	i, n := f.cur, len(f.servers)
	f.rmu.Unlock()
	for tries := 0; tries < n; tries++ {
		err := read(i)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.Stats.BadReads.Add(1)
		if first == nil {
			first = err
		}
		f.rmu.Lock()
		if f.cur == i {
			f.cur = (i + 1) % n
			if n > 1 {
				f.Stats.Failovers.Add(1)
			}
		}
		i = f.cur
		f.rmu.Unlock()
	}
	if n > 1 {
		return &allFailed{first: first}
	}
	return first
}

// allFailed is failover's error when every one of several replicas failed.
type allFailed struct{ first error }

func (e *allFailed) Error() string { return "every replica failed; first: " + e.first.Error() }
func (e *allFailed) Unwrap() error { return e.first }

func (f *FS) fetchFrom(ctx context.Context, i int, seqno uint64, want *[32]byte) (capsule.Record, error) {
	rd, err := f.reader(ctx, i)
	if err != nil {
		return capsule.Record{}, err
	}
	recs, err := rd.Read(ctx, seqno, seqno)
	if err != nil {
		return capsule.Record{}, err
	}
	if len(recs) != 1 || recs[0].Seqno != seqno {
		return capsule.Record{}, fmt.Errorf("read %s record %d: %w: the replica does not have it", f.name, seqno, ErrNotExist)
	}
	rec := recs[0]
	if rec.Hole {
		return capsule.Record{}, fmt.Errorf("read %s record %d: %w: a hole", f.name, seqno, ErrNotFS)
	}
	if want != nil && [32]byte(rec.DataHash) != *want {
		return capsule.Record{}, fmt.Errorf("read %s record %d: %w", f.name, seqno, ErrCorrupt)
	}
	return rec, nil
}

func (f *FS) bulkOn() bool { return f.opts.Bulk > 0 && !f.bulkOff.Load() }

// bulkFailed counts a failed bulk read; a replica without bulk reads
// turns them off for this FS.
func (f *FS) bulkFailed(err error) {
	f.Stats.BulkFallbacks.Add(1)
	if errors.Is(err, client.ErrNoBulk) {
		f.bulkOff.Store(true)
	}
}

// scanBulk reads [from, to] over a bulk stream from the current replica.
func (f *FS) scanBulk(ctx context.Context, from, to uint64, fn func(capsule.Record) error) error {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.sem }()
	f.rmu.Lock()
	i := f.cur
	f.rmu.Unlock()
	rd, err := f.reader(ctx, i)
	if err != nil {
		return err
	}
	return rd.ScanBulk(ctx, from, to, fn)
}

// errClosed: the file was closed.
var errClosed = errors.New("fs: file closed")
