package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/gdpnet/gdpnet/capsule"
)

// File is one version of a file, open for reading. Reads fetch chunks in
// parallel: a reader moving forward gets the next ReadAhead chunks fetched
// ahead of it. It is safe for concurrent use.
type File struct {
	fs     *FS
	v      *Version
	starts []uint64 // starts[k]: index of the first chunk of extent k
	hashes [][32]byte

	ctx    context.Context // prefetches run under it; Close cancels it
	cancel context.CancelFunc

	mu     sync.Mutex
	chunks map[uint64]*chunk
	next   uint64 // the chunk after the last one read: where a sequential reader goes on
	off    int64  // Read's offset
	// at counts the reads under way at each chunk: the kernel has a
	// read and its readahead of the next window in flight at once, and
	// the chunks one still needs are not dropped for the other.
	at map[uint64]int
	// top is the farthest chunk a read reached since the last jump: the
	// window ahead of it stays, even after the read that was there ended.
	top uint64
}

type chunk struct {
	done chan struct{}
	data []byte
	err  error
}

// Open opens the newest version of file p.
func (f *FS) Open(ctx context.Context, p string) (*File, error) {
	e, err := f.Stat(p)
	if err != nil {
		return nil, err
	}
	if e.Type != TypeFile {
		return nil, fmt.Errorf("%s: %w", e.Path, ErrIsDir)
	}
	return f.OpenVersion(ctx, e.Version)
}

// OpenAt opens version seqno of file p (any version in its log).
func (f *FS) OpenAt(ctx context.Context, p string, seqno uint64) (*File, error) {
	f.mu.Lock()
	v, err := f.ix.version(p, seqno)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.OpenVersion(ctx, v)
}

// OpenVersion opens version v (from Stat, ReadDir or Log): it reads and
// checks the version's chunk hash lists.
func (f *FS) OpenVersion(ctx context.Context, v *Version) (*File, error) {
	if v == nil || v.Type != TypeFile {
		return nil, fmt.Errorf("open: %w: not a file version", ErrNotExist)
	}
	n := v.chunks()
	fl := &File{fs: f, v: v, chunks: map[uint64]*chunk{}, at: map[uint64]int{}}
	var at uint64
	for _, e := range v.Extents {
		fl.starts = append(fl.starts, at)
		at += e.Count
	}
	fl.hashes = make([][32]byte, 0, n)
	for _, s := range v.Lists {
		rec, err := f.fetch(ctx, s, nil)
		if err != nil {
			return nil, fmt.Errorf("open %s version %d: %w", v.Path, v.Seqno, err)
		}
		kind, _, body, err := parseHeader(rec.Data)
		if err != nil || kind != kindList || len(body)%32 != 0 || len(body) == 0 {
			return nil, fmt.Errorf("open %s version %d: record %d: %w: not a hash list", v.Path, v.Seqno, s, ErrCorrupt)
		}
		for i := 0; i < len(body); i += 32 {
			fl.hashes = append(fl.hashes, [32]byte(body[i:i+32]))
		}
	}
	if uint64(len(fl.hashes)) != n {
		return nil, fmt.Errorf("open %s version %d: %w: %d hashes for %d chunks", v.Path, v.Seqno, ErrCorrupt, len(fl.hashes), n)
	}
	fl.ctx, fl.cancel = context.WithCancel(context.Background())
	return fl, nil
}

// Version is the version open.
func (fl *File) Version() *Version { return fl.v }

// Size is the file's size in bytes.
func (fl *File) Size() int64 { return int64(fl.v.Size) }

// Close stops the fetches ahead.
func (fl *File) Close() error {
	fl.cancel()
	return nil
}

// seqno is the record of chunk i.
func (fl *File) seqno(i uint64) uint64 {
	k := sort.Search(len(fl.starts), func(k int) bool { return fl.starts[k] > i }) - 1
	e := fl.v.Extents[k]
	return e.First + (i - fl.starts[k])
}

// chunkLen is the content length of chunk i.
func (fl *File) chunkLen(i uint64) int {
	return int(min(uint64(ChunkSize), fl.v.Size-i*ChunkSize))
}

// getLocked returns chunk i, starting its fetch if needed: with bulk
// reads, of a run of the chunks from i on (one bulk stream); else of chunk
// i alone (one READ).
func (fl *File) getLocked(i uint64) *chunk {
	if c := fl.chunks[i]; c != nil {
		return c
	}
	if fl.fs.bulkOn() {
		return fl.startRunLocked(i)
	}
	c := &chunk{done: make(chan struct{})}
	fl.chunks[i] = c
	go fl.fetchOne(i, c)
	return c
}

// fetchOne reads chunk i with one READ (any replica) into c.
func (fl *File) fetchOne(i uint64, c *chunk) {
	defer close(c.done)
	rec, err := fl.fs.fetch(fl.ctx, fl.seqno(i), &fl.hashes[i])
	if err != nil {
		c.err = fmt.Errorf("%s version %d chunk %d: %w", fl.v.Path, fl.v.Seqno, i, err)
		return
	}
	c.data, c.err = fl.body(i, rec)
}

// body checks record rec as chunk i (the hash the manifest lists, the
// kind and the length) and returns its content.
func (fl *File) body(i uint64, rec capsule.Record) ([]byte, error) {
	if rec.Hole || rec.Seqno != fl.seqno(i) || [32]byte(rec.DataHash) != fl.hashes[i] {
		return nil, fmt.Errorf("%s version %d chunk %d: %w", fl.v.Path, fl.v.Seqno, i, ErrCorrupt)
	}
	kind, _, body, err := parseHeader(rec.Data)
	if err != nil || kind != kindChunk || len(body) != fl.chunkLen(i) {
		return nil, fmt.Errorf("%s version %d chunk %d: %w", fl.v.Path, fl.v.Seqno, i, ErrCorrupt)
	}
	fl.fs.Stats.Chunks.Add(1)
	fl.fs.Stats.Bytes.Add(uint64(len(body)))
	return body, nil
}

// startRunLocked starts a bulk read of chunk i and the ones after it in
// the same extent (consecutive records), up to Options.Bulk chunks and
// the first one already held or under way.
func (fl *File) startRunLocked(i uint64) *chunk {
	n := fl.v.chunks()
	j := i
	for j+1 < n && j+1 < i+uint64(fl.fs.opts.Bulk) && fl.chunks[j+1] == nil && fl.seqno(j+1) == fl.seqno(j)+1 {
		j++
	}
	run := make([]*chunk, j-i+1)
	for k := range run {
		run[k] = &chunk{done: make(chan struct{})}
		fl.chunks[i+uint64(k)] = run[k]
	}
	go fl.fetchRun(i, run)
	return run[0]
}

// fetchRun reads the chunks of run (from chunk i on) over one bulk stream,
// each verified (the page against the writer's heartbeat, the chunk
// against the manifest) before its waiters see it. What the stream did not
// deliver — an error, a page or chunk that failed a check — is read with
// READs, from any replica.
func (fl *File) fetchRun(i uint64, run []*chunk) {
	first := fl.seqno(i)
	got := 0
	err := fl.fs.scanBulk(fl.ctx, first, first+uint64(len(run))-1, func(rec capsule.Record) error {
		if got >= len(run) {
			return fmt.Errorf("%w: more records than asked", ErrCorrupt)
		}
		body, err := fl.body(i+uint64(got), rec)
		if err != nil {
			return err
		}
		c := run[got]
		c.data = body
		close(c.done)
		got++
		fl.fs.Stats.BulkChunks.Add(1)
		return nil
	})
	if err == nil && got == len(run) {
		return
	}
	if fl.ctx.Err() == nil {
		fl.fs.bulkFailed(err)
	}
	for k := got; k < len(run); k++ {
		fl.fetchOne(i+uint64(k), run[k])
	}
}

// noChunk: a read not (yet) at any chunk.
const noChunk = ^uint64(0)

// want returns chunk i for a read that was at chunk *pos (noChunk: none
// yet) and is now at i, and schedules the chunks a reader at i needs
// next: the ReadAhead chunks after it when the read is sequential — at the
// start, where the last read stopped, or at a chunk already held or
// fetched ahead (the kernel's readahead request for the next window runs
// beside the read before it). It drops the chunks every read under way
// has left behind.
func (fl *File) want(i uint64, pos *uint64) *chunk {
	n := fl.v.chunks()
	ra := uint64(fl.fs.opts.ReadAhead)
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.moveLocked(pos, i)
	held := fl.chunks[i] != nil || (i > 0 && fl.chunks[i-1] != nil)
	c := fl.getLocked(i)
	if i == 0 || i == fl.next || i+1 == fl.next || held {
		for j := i + 1; j <= i+ra && j < n; j++ {
			fl.getLocked(j)
		}
		fl.top = max(fl.top, i)
	} else {
		fl.top = i
	}
	fl.next = i + 1
	// Bound what is held (heldChunks): beyond the budget, the chunks
	// behind every read under way and those farther ahead than the
	// window of the farthest read go.
	if len(fl.chunks) > fl.heldChunks() {
		lo := i
		for j := range fl.at {
			lo = min(lo, j)
		}
		for j, cj := range fl.chunks {
			if j+2 < lo || j > fl.top+ra {
				select {
				case <-cj.done:
					delete(fl.chunks, j)
				default:
				}
			}
		}
	}
	return c
}

// heldChunks is how many chunks an open file holds before it drops the
// ones behind its reads: three windows (the one ahead of the farthest
// read, and the kernel's read and readahead requests of up to 1 MiB, ~19
// chunks, under way behind it), 52 chunks (2.9 MB) at ReadAhead 16.
func (fl *File) heldChunks() int { return 3*fl.fs.opts.ReadAhead + 4 }

// moveLocked moves a read from chunk *pos to chunk i (noChunk: out).
func (fl *File) moveLocked(pos *uint64, i uint64) {
	if *pos != noChunk {
		if fl.at[*pos]--; fl.at[*pos] <= 0 {
			delete(fl.at, *pos)
		}
	}
	if i != noChunk {
		fl.at[i]++
	}
	*pos = i
}

// done ends a read that was at chunk *pos.
func (fl *File) done(pos *uint64) {
	fl.mu.Lock()
	fl.moveLocked(pos, noChunk)
	fl.mu.Unlock()
}

// ReadAt reads len(p) bytes at off (io.ReaderAt).
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	return fl.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext is ReadAt bounded by ctx.
func (fl *File) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset", fl.v.Path)
	}
	total := 0
	pos := noChunk
	defer fl.done(&pos)
	for len(p) > 0 {
		if off >= fl.Size() {
			return total, io.EOF
		}
		i := uint64(off) / ChunkSize
		c := fl.want(i, &pos)
		select {
		case <-c.done:
		case <-ctx.Done():
			return total, ctx.Err()
		}
		if c.err != nil {
			fl.mu.Lock()
			if fl.chunks[i] == c {
				delete(fl.chunks, i) // a later read tries again
			}
			fl.mu.Unlock()
			return total, c.err
		}
		k := copy(p, c.data[uint64(off)-i*ChunkSize:])
		p, off, total = p[k:], off+int64(k), total+k
	}
	return total, nil
}

// Read reads from the file's offset (io.Reader).
func (fl *File) Read(p []byte) (int, error) {
	fl.mu.Lock()
	off := fl.off
	fl.mu.Unlock()
	n, err := fl.ReadAt(p, off)
	fl.mu.Lock()
	fl.off += int64(n)
	fl.mu.Unlock()
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// WriteTo writes the rest of the file to w (io.WriterTo) and, when it
// wrote the whole file, checks the content hash of the manifest too.
func (fl *File) WriteTo(w io.Writer) (int64, error) {
	return fl.WriteToContext(context.Background(), w)
}

// WriteToContext is WriteTo bounded by ctx.
func (fl *File) WriteToContext(ctx context.Context, w io.Writer) (int64, error) {
	fl.mu.Lock()
	start := fl.off
	fl.mu.Unlock()
	h := sha256.New()
	var written int64
	pos := noChunk
	defer fl.done(&pos)
	for off := start; off < fl.Size(); {
		i := uint64(off) / ChunkSize
		c := fl.want(i, &pos)
		select {
		case <-c.done:
		case <-ctx.Done():
			return written, ctx.Err()
		}
		if c.err != nil {
			return written, c.err
		}
		b := c.data[uint64(off)-i*ChunkSize:]
		if start == 0 {
			h.Write(b)
		}
		k, err := w.Write(b)
		written += int64(k)
		off += int64(k)
		fl.mu.Lock()
		fl.off = off
		fl.mu.Unlock()
		if err != nil {
			return written, err
		}
	}
	if start == 0 && !bytes.Equal(h.Sum(nil), fl.v.SHA256) {
		return written, fmt.Errorf("%s version %d: %w: content hash", fl.v.Path, fl.v.Seqno, ErrCorrupt)
	}
	return written, nil
}
