package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// setup: two routers; replicas on the first, the user on the second.
type setup struct {
	w    *world
	a, b *router.Node
	rs   []*replica
	cc   *client.CapsuleClient
	name pdu.Name
	fw   *fs.Writer
}

func newSetup(t testing.TB, replicas, wq int) *setup {
	t.Helper()
	return newSetupTunnels(t, replicas, wq, false)
}

// newSetupTunnels is newSetup with the routers linked, and the endpoints
// attached, over raw GDP-in-UDP tunnels when raw is set.
func newSetupTunnels(t testing.TB, replicas, wq int, raw bool) *setup {
	t.Helper()
	w := newWorld(t)
	w.raw = raw
	a := w.router("router a")
	b := w.router("router b", a)
	for deadline := time.Now().Add(20 * time.Second); len(b.Router.Peers()) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("router b never linked to router a")
		}
	}
	s := &setup{w: w, a: a, b: b}
	for i := range replicas {
		s.rs = append(s.rs, w.replica(a, "replica "+string(rune('1'+i))))
	}
	s.cc = w.user(b, "fs user")
	name, wid := newCapsule(t, s.cc, wq, s.rs...)
	s.name = name
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fw, err := fs.NewWriter(ctx, s.cc, name, wid.Key, fs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Close(context.Background()) })
	s.fw = fw
	return s
}

func (s *setup) put(t *testing.T, p string, b []byte) *fs.Version {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := s.fw.Put(ctx, p, bytes.NewReader(b), fs.PutOptions{})
	if err != nil {
		t.Fatalf("put %s: %v", p, err)
	}
	return v
}

func (s *setup) open(t *testing.T, opts fs.Options) *fs.FS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := fs.Open(ctx, s.cc, s.name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readAll(t *testing.T, f *fs.FS, p string, version uint64) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var fl *fs.File
	var err error
	if version == 0 {
		fl, err = f.Open(ctx, p)
	} else {
		fl, err = f.OpenAt(ctx, p, version)
	}
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	var buf bytes.Buffer
	_, err = fl.WriteToContext(ctx, &buf)
	return buf.Bytes(), err
}

// TestPutGetRoundTrip: multi-chunk, small and empty files put through one
// router and read back through a fresh FS: directories list what was put,
// whole reads and reads at offsets across chunk boundaries equal the
// source.
func TestPutGetRoundTrip(t *testing.T) {
	s := newSetup(t, 2, 2)
	big := content(1, 3*fs.ChunkSize+12345)
	small := []byte("hello, files\n")
	s.put(t, "models/a.bin", big)
	s.put(t, "/models/small.txt", small)
	s.put(t, "empty", nil)
	ctx := context.Background()
	if _, err := s.fw.Mkdir(ctx, "data/empty-dir"); err != nil {
		t.Fatal(err)
	}

	f := s.open(t, fs.Options{})
	names := func(dir string) []string {
		es, err := f.ReadDir(dir)
		if err != nil {
			t.Fatalf("readdir %q: %v", dir, err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return out
	}
	if got := names(""); len(got) != 3 || got[0] != "data" || got[1] != "empty" || got[2] != "models" {
		t.Fatalf("root lists %v", got)
	}
	if got := names("models"); len(got) != 2 || got[0] != "a.bin" || got[1] != "small.txt" {
		t.Fatalf("models lists %v", got)
	}
	if got := names("data/empty-dir"); len(got) != 0 {
		t.Fatalf("empty dir lists %v", got)
	}
	if _, err := f.Stat("nope/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of an unknown path: %v", err)
	}
	for p, want := range map[string][]byte{"models/a.bin": big, "models/small.txt": small, "empty": {}} {
		got, err := readAll(t, f, p, 0)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, err %v; want %d bytes", p, len(got), err, len(want))
		}
	}
	fl, err := f.Open(ctx, "models/a.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	r := rand.New(rand.NewPCG(2, 2))
	for range 40 {
		off := r.IntN(len(big))
		n := r.IntN(3 * fs.ChunkSize / 2)
		buf := make([]byte, n)
		k, err := fl.ReadAt(buf, int64(off))
		want := big[off:min(off+n, len(big))]
		if k != len(want) || !bytes.Equal(buf[:k], want) || (k < n && err == nil) {
			t.Fatalf("ReadAt(%d, %d): %d bytes, err %v", n, off, k, err)
		}
	}
	if st := f.Stats.BadReads.Load(); st != 0 {
		t.Fatalf("%d bad reads on honest replicas", st)
	}
}

// TestOldVersionReadable: a path put twice and removed keeps every version
// readable; a tree as of an older seqno shows the older file.
func TestOldVersionReadable(t *testing.T) {
	s := newSetup(t, 1, 1)
	v1b := content(3, fs.ChunkSize+10)
	v2b := content(4, 2*fs.ChunkSize+99)
	v1 := s.put(t, "m.bin", v1b)
	v2 := s.put(t, "m.bin", v2b)
	if v2.PrevVersion != v1.Seqno {
		t.Fatalf("version 2 names %d as previous, want %d", v2.PrevVersion, v1.Seqno)
	}
	if _, err := s.fw.Remove(context.Background(), "m.bin"); err != nil {
		t.Fatal(err)
	}
	f := s.open(t, fs.Options{})
	if _, err := f.Stat("m.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("removed file: %v", err)
	}
	log, err := f.Log("m.bin")
	if err != nil || len(log) != 3 || log[0].Type != fs.TypeRemoved || log[1].Seqno != v2.Seqno || log[2].Seqno != v1.Seqno {
		t.Fatalf("log: %v %v", log, err)
	}
	for _, c := range []struct {
		v    uint64
		want []byte
	}{{v1.Seqno, v1b}, {v2.Seqno, v2b}} {
		got, err := readAll(t, f, "m.bin", c.v)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("version %d: %d bytes, %v", c.v, len(got), err)
		}
	}
	old := s.open(t, fs.Options{At: v1.Seqno})
	e, err := old.Stat("m.bin")
	if err != nil || e.Size() != int64(len(v1b)) {
		t.Fatalf("tree at %d: %+v %v", v1.Seqno, e, err)
	}
	got, err := readAll(t, old, "m.bin", 0)
	if err != nil || !bytes.Equal(got, v1b) {
		t.Fatalf("tree at %d: %d bytes %v", v1.Seqno, len(got), err)
	}
}

// TestTamperedChunk: a replica whose stored chunk was altered fails
// verification; the read goes on from the other replica and returns the
// right bytes. With the honest replica gone the read fails loudly and
// returns nothing of the tampered chunk.
func TestTamperedChunk(t *testing.T) {
	s := newSetup(t, 2, 2)
	src := content(5, 4*fs.ChunkSize+7)
	v := s.put(t, "t.bin", src)
	bad := s.rs[0]
	bad.stop()
	seq := v.Extents[0].First + 2 // chunk 2
	bad.tamper(t, s.name, seq)
	s.w.start(bad)

	f := s.open(t, fs.Options{Server: bad.id.Name, Bulk: 16})
	got, err := readAll(t, f, "t.bin", 0)
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read past a tampered replica: %d bytes, %v", len(got), err)
	}
	if f.Stats.BadReads.Load() == 0 || f.Stats.Failovers.Load() == 0 {
		t.Fatalf("bad reads %d, failovers %d: the tampered chunk was not noticed", f.Stats.BadReads.Load(), f.Stats.Failovers.Load())
	}
	// The bulk stream (from the tampered replica) delivered chunks 0 and 1,
	// refused the page of chunk 2, and the rest came with READs.
	if f.Stats.BulkChunks.Load() != 2 || f.Stats.BulkFallbacks.Load() != 1 {
		t.Fatalf("bulk chunks %d, fallbacks %d; want 2 and 1", f.Stats.BulkChunks.Load(), f.Stats.BulkFallbacks.Load())
	}

	// Only the tampered replica left.
	s.rs[1].stop()
	f = s.open(t, fs.Options{Server: bad.id.Name})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fl, err := f.Open(ctx, "t.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	buf := make([]byte, fs.ChunkSize)
	n, err := fl.ReadAtContext(ctx, buf, 2*fs.ChunkSize)
	if err == nil || n != 0 || !errors.Is(err, capsule.ErrBadDataHash) {
		t.Fatalf("tampered chunk with no honest replica: %d bytes, err %v", n, err)
	}
	t.Logf("tampered read: %v", err)
}

// TestManifestMismatch: records the capsule verifies but whose content
// is not what the writer-signed manifest lists (a chunk hash that does not
// match, a hash list of the wrong length) are refused with ErrCorrupt.
func TestManifestMismatch(t *testing.T) {
	w := newWorld(t)
	a := w.router("router a")
	r := w.replica(a, "replica")
	cc := w.user(a, "user")
	name, wid := newCapsule(t, cc, 1, r)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wr, err := cc.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(ctx)
	body := []byte("the real chunk")
	chunk := append(fs.Header(fs.KindChunk, 0), body...)
	if _, err := wr.Append(ctx, chunk); err != nil { // seqno 1
		t.Fatal(err)
	}
	wrong := sha256.Sum256([]byte("another chunk"))
	list := append(fs.Header(fs.KindList, 0), wrong[:]...)
	if _, err := wr.Append(ctx, list); err != nil { // seqno 2
		t.Fatal(err)
	}
	whole := sha256.Sum256(body)
	m := &fs.Manifest{Path: "x", Type: fs.TypeFile, Size: uint64(len(body)), Extents: []fs.Extent{{First: 1, Count: 1}},
		Lists: []uint64{2}, SHA256: whole[:]}
	mb, err := fs.EncodeManifest(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wr.Append(ctx, mb); err != nil { // seqno 3
		t.Fatal(err)
	}
	if _, err := wr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Open(ctx, cc, name, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, f, "x", 0)
	if !errors.Is(err, fs.ErrCorrupt) || len(got) != 0 {
		t.Fatalf("chunk not matching its manifest: %d bytes, err %v", len(got), err)
	}
}

// TestBulkReads: a sequential read gets every chunk over bulk read streams
// (QUIC over names to the replica, pages back to back), each verified, and
// equal to the source; from a replica that serves no bulk reads the same
// read falls back to READs once and stays with them.
func TestBulkReads(t *testing.T) {
	s := newSetup(t, 2, 2)
	src := content(9, 40*fs.ChunkSize+321)
	s.put(t, "big.bin", src)
	f := s.open(t, fs.Options{Server: s.rs[0].id.Name, Bulk: 16})
	got, err := readAll(t, f, "big.bin", 0)
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("bulk read: %d bytes, %v", len(got), err)
	}
	if b, fb := f.Stats.BulkChunks.Load(), f.Stats.BulkFallbacks.Load(); b != 41 || fb != 0 {
		t.Fatalf("bulk chunks %d, fallbacks %d; want 41 and 0", b, fb)
	}
	if st := f.Stats.BadReads.Load(); st != 0 {
		t.Fatalf("%d bad reads on honest replicas", st)
	}

	// A replica with bulk reads off.
	r := s.rs[0]
	r.stop()
	r.bulk = -1
	s.w.start(r)
	f = s.open(t, fs.Options{Server: r.id.Name, Bulk: 16})
	got, err = readAll(t, f, "big.bin", 0)
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read without bulk: %d bytes, %v", len(got), err)
	}
	// The runs started before the first refusal came back fail too; none
	// after it.
	if b, fb := f.Stats.BulkChunks.Load(), f.Stats.BulkFallbacks.Load(); b != 0 || fb < 1 || fb > 3 {
		t.Fatalf("without bulk: bulk chunks %d, fallbacks %d; want 0 and 1 to 3", b, fb)
	}
}

// TestScanBulkTampered: a bulk read stream from a replica whose stored
// record was altered delivers the entries of the pages before it and then
// fails with the verification error: the altered record never reaches the
// caller. The same range over READ PDUs fails the same way.
func TestScanBulkTampered(t *testing.T) {
	s := newSetup(t, 1, 1)
	v := s.put(t, "t.bin", content(6, 6*fs.ChunkSize))
	bad := s.rs[0]
	bad.stop()
	first := v.Extents[0].First
	bad.tamper(t, s.name, first+3)
	s.w.start(bad)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rd, err := s.cc.NewReader(ctx, s.name, client.ReaderOptions{Server: bad.id.Name})
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	err = rd.ScanBulk(ctx, first, first+5, func(e capsule.Record) error {
		seen = append(seen, e.Seqno)
		return nil
	})
	if !errors.Is(err, capsule.ErrBadDataHash) || len(seen) != 3 || seen[2] != first+2 {
		t.Fatalf("bulk read past a tampered record: saw %v, err %v", seen, err)
	}
	// An honest range on the same stream server reads whole.
	seen = seen[:0]
	if err := rd.ScanBulk(ctx, first, first+2, func(e capsule.Record) error { seen = append(seen, e.Seqno); return nil }); err != nil || len(seen) != 3 {
		t.Fatalf("honest range: %v %v", seen, err)
	}
}

// TestInterleavedReadsFetchOnce: the kernel reads a file through the
// mount with a synchronous request and an asynchronous readahead request
// for the next window in flight at once. Each chunk is fetched once: the
// request ahead is taken as part of the sequential read (its chunks come
// from the prefetch window), and neither request drops chunks the other
// still needs.
func TestInterleavedReadsFetchOnce(t *testing.T) {
	// go-fuse serves each kernel request on its own goroutine, so the
	// readahead request may reach the file first: then it is ahead of
	// where the last read stopped, and the read behind it must neither
	// look like a jump back nor drop what the one ahead fetched.
	for _, aheadFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("ahead-first=%v", aheadFirst), func(t *testing.T) { testInterleavedReads(t, aheadFirst) })
	}
}

func testInterleavedReads(t *testing.T, aheadFirst bool) {
	s := newSetup(t, 1, 1)
	const chunks = 120
	src := content(11, chunks*fs.ChunkSize-100)
	s.put(t, "big.bin", src)
	const ra = 8 // a window smaller than the requests: the budget bites
	f := s.open(t, fs.Options{ReadAhead: ra})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fl, err := f.Open(ctx, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	before := f.Stats.Chunks.Load()
	const window = 1 << 20 // the mount's request size: 18.7 chunks
	got := make([]byte, len(src))
	for off := 0; off < len(src); off += 2 * window {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		var firstDone atomic.Bool
		first := 0 // the request that reaches the file first
		if aheadFirst {
			first = 1
		}
		for k := range 2 {
			lo := min(off+k*window, len(src))
			hi := min(lo+window, len(src))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if k != first {
					// The other request comes second: it starts once the
					// first is at its first chunk (or done), not after a
					// sleep, which a loaded machine may outlast.
					for fs.ReadsUnderWay(fl) == 0 && !firstDone.Load() {
						time.Sleep(50 * time.Microsecond)
					}
				}
				if _, err := fl.ReadAtContext(ctx, got[lo:hi], int64(lo)); err != nil && !errors.Is(err, io.EOF) {
					errs[k] = err
				}
				if k == first {
					firstDone.Store(true)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// Bounded: the budget, or the span the reads cover (two
		// requests and the window ahead) when that is more.
		if n := fs.HeldChunks(fl); n > max(3*ra+4, 2*window/fs.ChunkSize+ra+4) {
			t.Fatalf("%d chunks held after the reads at %d", n, off)
		}
	}
	if !bytes.Equal(got, src) {
		t.Fatal("interleaved reads returned other bytes")
	}
	// Each chunk once, but for the one chunk each round's two requests
	// share (a 1 MiB window is 18.7 chunks): when the request ahead took it
	// first, the budget (ra, smaller than a request) may drop it before the
	// read behind gets there, which then fetches it again (seen once in a
	// full make test: 122 for 120). The mutations this test is for cost
	// a window at least (128, 138, 162 fetches).
	rounds := (len(src) + 2*window - 1) / (2 * window)
	if n := int(f.Stats.Chunks.Load() - before); n < chunks || n > chunks+rounds {
		t.Fatalf("%d chunk fetches for a file of %d chunks read once (at most %d: one shared chunk a round again)", n, chunks, chunks+rounds)
	}
}

// TestPrefetchWindow: a read at the start fetches the ReadAhead chunks
// after it; a read that lands inside that window (the kernel's readahead
// request for the next window) is sequential too and moves the window on.
func TestPrefetchWindow(t *testing.T) {
	s := newSetup(t, 1, 1)
	s.put(t, "big.bin", content(12, 40*fs.ChunkSize))
	f := s.open(t, fs.Options{ReadAhead: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fl, err := f.Open(ctx, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	before := f.Stats.Chunks.Load()
	fetched := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for f.Stats.Chunks.Load()-before < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // nothing more comes
		if n := f.Stats.Chunks.Load() - before; n != want {
			t.Fatalf("%d chunks fetched, want %d", n, want)
		}
	}
	b := make([]byte, 10)
	if _, err := fl.ReadAtContext(ctx, b, 0); err != nil {
		t.Fatal(err)
	}
	fetched(1 + 8) // chunk 0 and the 8 after it
	if _, err := fl.ReadAtContext(ctx, b, 6*fs.ChunkSize); err != nil {
		t.Fatal(err)
	}
	fetched(1 + 6 + 8) // up to chunk 6+8
}

// TestFailoverToForkedReplica (Session 13): a reader that fails over to a
// replica on another line of the log (the writer key wrote a different
// history there: a forked replica) returns nothing of that line. The file
// is the same path and size on both lines, so its hash list is at the same
// seqno on each, and the forked replica's list, checked against that
// replica's own heartbeat alone, would be accepted and its chunks would
// then match it: only the heartbeat verified on the first replica, given
// to the second's reader (FS.reader's Observe), tells the lines apart.
func TestFailoverToForkedReplica(t *testing.T) {
	w := newWorld(t)
	a := w.router("router a")
	ra, rb := w.replica(a, "replica a"), w.replica(a, "replica b")
	cc := w.user(a, "fs user")
	name, wid := newCapsule(t, cc, 1, ra, rb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	put := func(b []byte) {
		t.Helper()
		fw, err := fs.NewWriter(ctx, cc, name, wid.Key, fs.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Put(ctx, "f.bin", bytes.NewReader(b), fs.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := fw.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mine, theirs := content(21, 3*fs.ChunkSize+5), content(22, 3*fs.ChunkSize+5)
	// Line 1 on replica a alone, line 2 on replica b alone: neither ever
	// syncs from the other.
	rb.stop()
	put(mine)
	ra.stop()
	w.start(rb)
	put(theirs)
	rb.stop()
	w.start(ra)

	f, err := fs.Open(ctx, cc, name, fs.Options{Server: ra.id.Name})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := f.Stat("f.bin"); err != nil || e.Size() != int64(len(mine)) {
		t.Fatalf("stat on replica a: %+v %v", e, err)
	}
	// Replica a goes; only the forked one answers.
	ra.stop()
	w.start(rb)
	got, err := readAll(t, f, "f.bin", 0)
	if err == nil || len(got) != 0 {
		t.Fatalf("read failed over to a forked replica: %d bytes (its line's: %v), err %v", len(got), bytes.Equal(got, theirs), err)
	}
	if f.Stats.Failovers.Load() == 0 {
		t.Fatalf("no failover counted: %v", err)
	}
	t.Logf("read with only the forked replica: %v", err)
}
