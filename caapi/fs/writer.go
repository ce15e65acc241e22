package fs

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// WriterOptions tunes a Writer.
type WriterOptions struct {
	// Writer is passed to the capsule writer. Default: Cadence -1 (batches
	// go when full or on Flush), the rest the capsule writer's defaults.
	Writer client.WriterOptions
}

// Writer puts files into a files capsule: it holds the capsule's writer
// key, and the tree as of the newest manifest (so each version names the
// one it replaces).
type Writer struct {
	fs *FS
	wr *client.Writer
	// last is the seqno of the newest manifest written (or found).
	last uint64
}

// NewWriter opens files capsule c for writing with the writer key. It
// reads the tree so far (verified, as FS does).
func NewWriter(ctx context.Context, cc *client.CapsuleClient, c pdu.Name, key ed25519.PrivateKey, opts WriterOptions) (*Writer, error) {
	wo := opts.Writer
	if wo.Cadence == 0 {
		wo.Cadence = -1
	}
	wr, err := cc.NewWriter(ctx, c, key, wo)
	if err != nil {
		return nil, fmt.Errorf("fs writer: %w", err)
	}
	f, err := Open(ctx, cc, c, Options{At: wr.Seqno(), Quorum: -1})
	if err != nil {
		wr.Abort()
		return nil, fmt.Errorf("fs writer: %w", err)
	}
	return &Writer{fs: f, wr: wr, last: f.ix.head}, nil
}

// FS is the tree as this writer wrote it (reads go to the replicas).
func (w *Writer) FS() *FS { return w.fs }

// PutOptions describe the file put.
type PutOptions struct {
	Mode  os.FileMode // permission bits; default 0644
	MTime time.Time   // default now
	// Progress, when set, is called with the bytes of content appended so
	// far.
	Progress func(done int64)
}

// Put writes the content of r as a new version of path p and waits until
// it is durable (the capsule's W replicas acknowledged every record).
func (w *Writer) Put(ctx context.Context, p string, r io.Reader, opts PutOptions) (*Version, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	if p == "" {
		return nil, fmt.Errorf("%w: cannot put the root", ErrBadPath)
	}
	if e, err := w.fs.Stat(p); err == nil && e.Type == TypeDir {
		return nil, fmt.Errorf("put %s: %w", p, ErrIsDir)
	}
	if opts.Mode == 0 {
		opts.Mode = 0o644
	}
	if opts.MTime.IsZero() {
		opts.MTime = time.Now()
	}
	m := &Manifest{Path: p, Type: TypeFile, Mode: uint32(opts.Mode.Perm()), MTime: opts.MTime.UnixNano()}
	whole := sha256.New()
	var hashes [][32]byte
	buf := make([]byte, ChunkSize)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			data := append(header(kindChunk, w.last), buf[:n]...)
			seq, err := w.wr.Append(ctx, data)
			if err != nil {
				return nil, fmt.Errorf("put %s: %w", p, err)
			}
			if k := len(m.Extents); k > 0 && m.Extents[k-1].First+m.Extents[k-1].Count == seq {
				m.Extents[k-1].Count++
			} else {
				m.Extents = append(m.Extents, Extent{First: seq, Count: 1})
			}
			hashes = append(hashes, sha256.Sum256(data))
			whole.Write(buf[:n])
			m.Size += uint64(n)
			if opts.Progress != nil {
				opts.Progress(int64(m.Size))
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("put %s: read the content: %w", p, rerr)
		}
	}
	for i := 0; i < len(hashes); i += hashesPerList {
		data := header(kindList, w.last)
		for _, h := range hashes[i:min(i+hashesPerList, len(hashes))] {
			data = append(data, h[:]...)
		}
		seq, err := w.wr.Append(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("put %s: %w", p, err)
		}
		m.Lists = append(m.Lists, seq)
	}
	m.SHA256 = whole.Sum(nil)
	return w.commit(ctx, m)
}

// Mkdir records an explicit (possibly empty) directory p.
func (w *Writer) Mkdir(ctx context.Context, p string) (*Version, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	if p == "" {
		return nil, fmt.Errorf("%w: the root exists", ErrBadPath)
	}
	if e, err := w.fs.Stat(p); err == nil && e.Type == TypeFile {
		return nil, fmt.Errorf("mkdir %s: a file is there", p)
	}
	return w.commit(ctx, &Manifest{Path: p, Type: TypeDir, MTime: time.Now().UnixNano()})
}

// Remove records that p no longer exists; its versions stay readable.
func (w *Writer) Remove(ctx context.Context, p string) (*Version, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	if v := w.fs.ix.latest[p]; v == nil || v.Type == TypeRemoved {
		return nil, fmt.Errorf("remove %s: %w", p, ErrNotExist)
	}
	return w.commit(ctx, &Manifest{Path: p, Type: TypeRemoved, MTime: time.Now().UnixNano()})
}

// commit appends manifest m, waits for durability and adds it to the tree.
func (w *Writer) commit(ctx context.Context, m *Manifest) (*Version, error) {
	if prev := w.fs.ix.latest[m.Path]; prev != nil {
		m.PrevVersion = prev.Seqno
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	data, err := encodeManifest(m, w.last)
	if err != nil {
		return nil, err
	}
	rec, err := w.wr.AppendRecord(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", m.Path, err)
	}
	seq := rec.Seqno
	d, err := w.wr.Flush(ctx)
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", m.Path, err)
	}
	// The batch ending with the manifest met W: those replicas hold the
	// log up to it (a replica stores a batch only on top of all before
	// it), whatever an earlier batch got. Not the writer's Progress: its
	// Durable stops at the first batch that missed W, so one Put during a
	// replica's outage made every later Put fail as not durable.
	if !d.Met || d.Seqno < seq {
		return nil, fmt.Errorf("put %s: %w: %s", m.Path, errNotDurable, d)
	}
	// The manifest record's own time, as a reader of the log sees it.
	v := &Version{Seqno: seq, Time: time.Unix(0, rec.Time), Manifest: m}
	w.last = seq
	w.fs.mu.Lock()
	w.fs.ix.add(v)
	w.fs.mu.Unlock()
	return v, nil
}

var errNotDurable = errors.New("fs: the manifest is not durable on W replicas")

// Close closes the capsule writer.
func (w *Writer) Close(ctx context.Context) error {
	err := w.wr.Close(ctx)
	w.fs.Close()
	return err
}
