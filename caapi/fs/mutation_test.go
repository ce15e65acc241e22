package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// The tests in this file each kill mutants of the file system's checks
// that survived its other tests (docs/SECURITY.md §2.13).

// TestReadsOnlyWhatTheManifestLists: records the capsule verifies (the
// writer signed them) but that are not what a writer-signed manifest
// lists are never returned as the file's bytes, over READs or over bulk
// streams: a chunk whose hash is not the listed one (bulk streams check
// it only against the list), a record of another kind whose hash is
// listed, a chunk shorter than the size the manifest states; a version
// whose hash list is a record of another kind, not whole hashes, or more
// hashes than chunks does not open; a directory or no version does not
// open as a file. Each read fails with ErrCorrupt and returns nothing, by
// ReadAt and by WriteTo. Mutants: file.go File.body :157 (skip-if,
// drop-or-right) and :161 (skip-if, drop-or-left, drop-or-right),
// FS.OpenVersion :72 (skip-if and both operands), :89 (skip-if,
// drop-or-left), :96 skip-if, FS.Open :49 and :52 skip-if, File.fetchRun
// :200 skip-if (a chunk refused by body delivered empty), ReadAtContext
// :302 skip-if (a negative offset: a chunk index past the hash list).
func TestReadsOnlyWhatTheManifestLists(t *testing.T) {
	r, cc := oneReplica(t)
	name, wid := newCapsule(t, cc, 1, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := cc.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(ctx)
	add := func(data []byte) uint64 {
		t.Helper()
		seq, err := wr.Append(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	list := func(hashes ...[32]byte) []byte {
		b := fs.Header(fs.KindList, 0)
		for _, h := range hashes {
			b = append(b, h[:]...)
		}
		return b
	}
	body := []byte("the real chunk")
	chunkData := append(fs.Header(fs.KindChunk, 0), body...)
	chunk := add(chunkData)
	good := sha256.Sum256(chunkData)
	wrongList := list(sha256.Sum256([]byte("another chunk")))
	wrong := add(wrongList)
	goodList := add(list(good))
	listOfList := add(list(sha256.Sum256(wrongList)))
	odd := add(append(list(good), 0))
	twice := add(list(good, good))
	whole := sha256.Sum256(body)
	var last uint64 // each manifest names the one before (the index's chain)
	manifest := func(m *fs.Manifest) {
		t.Helper()
		if m.Type == fs.TypeFile {
			m.SHA256 = whole[:]
		}
		mb, err := fs.EncodeManifest(m, last)
		if err != nil {
			t.Fatal(err)
		}
		last = add(mb)
	}
	one := func(first uint64) []fs.Extent { return []fs.Extent{{First: first, Count: 1}} }
	size := uint64(len(body))
	manifest(&fs.Manifest{Path: "good", Type: fs.TypeFile, Size: size, Extents: one(chunk), Lists: []uint64{goodList}})
	badChunks := map[string]uint64{"hash not the listed one": wrong, "a list as a chunk": listOfList, "shorter than its size": goodList}
	manifest(&fs.Manifest{Path: "hash not the listed one", Type: fs.TypeFile, Size: size, Extents: one(chunk), Lists: []uint64{wrong}})
	manifest(&fs.Manifest{Path: "a list as a chunk", Type: fs.TypeFile, Size: 32, Extents: one(wrong), Lists: []uint64{listOfList}})
	manifest(&fs.Manifest{Path: "shorter than its size", Type: fs.TypeFile, Size: size + 1, Extents: one(chunk), Lists: []uint64{goodList}})
	badLists := []string{"a chunk as the hash list", "not whole hashes", "two hashes for one chunk"}
	manifest(&fs.Manifest{Path: badLists[0], Type: fs.TypeFile, Size: size, Extents: one(chunk), Lists: []uint64{chunk}})
	manifest(&fs.Manifest{Path: badLists[1], Type: fs.TypeFile, Size: size, Extents: one(chunk), Lists: []uint64{odd}})
	manifest(&fs.Manifest{Path: badLists[2], Type: fs.TypeFile, Size: size, Extents: one(chunk), Lists: []uint64{twice}})
	manifest(&fs.Manifest{Path: "d", Type: fs.TypeDir})
	if _, err := wr.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	for _, bulk := range []int{0, 16} {
		f, err := fs.Open(ctx, cc, name, fs.Options{Bulk: bulk})
		if err != nil {
			t.Fatal(err)
		}
		open := func(p string) *fs.File {
			t.Helper()
			fl, err := f.Open(ctx, p)
			if err != nil {
				t.Fatalf("bulk %d: open %q: %v", bulk, p, err)
			}
			t.Cleanup(func() { fl.Close() })
			return fl
		}
		var buf bytes.Buffer
		if _, err := open("good").WriteToContext(ctx, &buf); err != nil || !bytes.Equal(buf.Bytes(), body) {
			t.Fatalf("bulk %d: the good file: %q, %v", bulk, buf.Bytes(), err)
		}
		if got := f.Stats.BulkChunks.Load(); (bulk > 0) != (got == 1) {
			t.Fatalf("bulk %d: %d chunks over bulk streams", bulk, got)
		}
		if n, err := open("good").ReadAtContext(ctx, make([]byte, 4), -1); n != 0 || err == nil {
			t.Fatalf("bulk %d: ReadAt at offset -1: %d bytes, %v", bulk, n, err)
		}
		for p := range badChunks {
			b := make([]byte, 64)
			if n, err := open(p).ReadAtContext(ctx, b, 0); n != 0 || !errors.Is(err, fs.ErrCorrupt) {
				t.Fatalf("bulk %d: ReadAt of %q: %d bytes (%q), %v; want none, ErrCorrupt", bulk, p, n, b[:n], err)
			}
			buf.Reset()
			if n, err := open(p).WriteToContext(ctx, &buf); n != 0 || !errors.Is(err, fs.ErrCorrupt) {
				t.Fatalf("bulk %d: WriteTo of %q: %d bytes (%q), %v; want none, ErrCorrupt", bulk, p, n, buf.Bytes(), err)
			}
		}
		for _, p := range badLists {
			if fl, err := f.Open(ctx, p); !errors.Is(err, fs.ErrCorrupt) {
				t.Fatalf("bulk %d: open %q: %v (%v); want ErrCorrupt", bulk, p, fl, err)
			}
		}
		if _, err := f.Open(ctx, "d"); !errors.Is(err, fs.ErrIsDir) {
			t.Fatalf("open a directory: %v; want ErrIsDir", err)
		}
		if _, err := f.Open(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("open a path never written: %v; want ErrNotExist", err)
		}
		e, err := f.Stat("d")
		if err != nil {
			t.Fatal(err)
		}
		for what, v := range map[string]*fs.Version{"a directory's version": e.Version, "no version": nil} {
			if _, err := f.OpenVersion(ctx, v); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("OpenVersion of %s: %v; want ErrNotExist", what, err)
			}
		}
	}
}

// failAfter is a writer that takes n bytes, then fails with errDiskFull.
type failAfter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestReadersKeepTheirContracts: a file whose chunks match their listed
// hashes but whose whole content does not match the manifest's content
// hash fails WriteTo with ErrCorrupt; Read returns the file then io.EOF
// (not 0 bytes and no error, on which io.ReadAll spins); WriteTo into a
// writer that fails returns that failure, not success over a short copy
// (nor a loop on the failing writer). A capsule whose newest record is
// not a files-capsule record — 3 bytes, 10 bytes that start like one, or
// a record of another magic with a chunk's kind — does not open
// (ErrNotFS) and does not crash the reader; a capsule that does not exist
// does not open; nor does the tree as of a record the replica does not
// hold (ErrNotExist). An implicit directory's size is 0. Mutants: fs.go
// Open :105 skip-if (no reader: a crash), FS.fetchFrom :264 skip-if and
// drop-or-left (an answer without the entry indexed: a crash), index.go
// index.build :61 skip-if (the read's error reported as not a files
// capsule), Entry.Size :32 skip-if (an implicit directory's nil version
// dereferenced),
// :127 skip-if (the tree's errors ignored: the capsule opens with the
// tree so far); file.go File.WriteToContext :388 skip-if and call-true
// (the content hash not compared), :384 skip-if (the writer's error
// dropped: the copy loops), File.Read :342 boundary (io.EOF dropped at
// the end); format.go parseHeader :112 drop-or-left (a record shorter
// than the header sliced: a crash) and drop-or-right (any 13 bytes taken
// as a header).
func TestReadersKeepTheirContracts(t *testing.T) {
	r, cc := oneReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// capsule writes records to a new files capsule, by hand.
	capsule := func(records ...[]byte) (pdu.Name, []uint64) {
		t.Helper()
		name, wid := newCapsule(t, cc, 1, r)
		wr, err := cc.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer wr.Close(ctx)
		var seqs []uint64
		for _, rec := range records {
			seq, err := wr.Append(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		if _, err := wr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return name, seqs
	}
	body := []byte("the content of the file")
	chunk := append(fs.Header(fs.KindChunk, 0), body...)
	sum := sha256.Sum256(chunk)
	list := append(fs.Header(fs.KindList, 0), sum[:]...)
	whole := sha256.Sum256(body)
	manifest := func(p string, content []byte, prev uint64) []byte {
		mb, err := fs.EncodeManifest(&fs.Manifest{Path: p, Type: fs.TypeFile, Size: uint64(len(body)),
			Extents: []fs.Extent{{First: 1, Count: 1}}, Lists: []uint64{2}, SHA256: content}, prev)
		if err != nil {
			t.Fatal(err)
		}
		return mb
	}
	other := sha256.Sum256([]byte("other content"))
	name, _ := capsule(chunk, list, manifest("good", whole[:], 0), manifest("bad sum", other[:], 3))
	f, err := fs.Open(ctx, cc, name, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	open := func(p string) *fs.File {
		t.Helper()
		fl, err := f.Open(ctx, p)
		if err != nil {
			t.Fatalf("open %q: %v", p, err)
		}
		t.Cleanup(func() { fl.Close() })
		return fl
	}
	var buf bytes.Buffer
	if n, err := open("bad sum").WriteToContext(ctx, &buf); !errors.Is(err, fs.ErrCorrupt) {
		t.Fatalf("WriteTo of a file whose content is not the manifest's: %d bytes, %v; want ErrCorrupt", n, err)
	}
	fl := open("good")
	var got []byte
	for i := 0; ; i++ {
		b := make([]byte, 10)
		n, err := fl.Read(b)
		got = append(got, b[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil || i == 10 {
			t.Fatalf("Read %d: %d bytes, %v (%q so far); want the file, then io.EOF", i, n, err, got)
		}
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("Read: %q, want %q", got, body)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if n, err := open("good").WriteToContext(wctx, &failAfter{n: 4}); !errors.Is(err, errDiskFull) || n != 4 {
		t.Fatalf("WriteTo into a writer that fails after 4 bytes: %d, %v; want its error", n, err)
	}

	octx, ocancel := context.WithTimeout(ctx, 3*time.Second)
	defer ocancel()
	if _, err := fs.Open(octx, cc, pdu.Name{1, 2, 3}, fs.Options{}); err == nil {
		t.Fatal("a capsule that does not exist opened")
	}
	// The tree as of a record the replica does not hold (no entry in its
	// answer): the read's error, not a crash, not "not a files capsule".
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("open at a record the replica does not hold: panic %v", r)
			}
		}()
		if _, err := fs.Open(ctx, cc, name, fs.Options{At: 9}); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("open at a record the replica does not hold: %v; want ErrNotExist", err)
		}
	}()
	// An implicit directory has no version: its size is 0.
	dname, _ := capsule(chunk, list, manifest("d/f", whole[:], 0))
	df, err := fs.Open(ctx, cc, dname, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p, size := range map[string]int64{"d": 0, "d/f": int64(len(body))} {
		if e, err := df.Stat(p); err != nil || e.Size() != size {
			t.Fatalf("stat %s: size %d, %v; want %d", p, e.Size(), err, size)
		}
	}
	for what, rec := range map[string][]byte{
		"3 bytes":                       []byte("gfs"),
		"10 bytes like a header":        []byte("gfs1M\x00\x00\x00\x00\x00"),
		"another magic, a chunk's kind": append([]byte("nope"), fs.Header(fs.KindChunk, 0)[4:]...),
	} {
		name, _ := capsule(rec)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("a capsule whose newest record is %s: panic %v", what, r)
				}
			}()
			if _, err := fs.Open(ctx, cc, name, fs.Options{}); !errors.Is(err, fs.ErrNotFS) {
				t.Fatalf("a capsule whose newest record is %s: %v; want ErrNotFS", what, err)
			}
		}()
	}
}

// TestCleanPathBounds: a path is at most MaxPath bytes, each element at
// most 255, with no NUL and no ".." element; "/a/./b/" is "a/b". Mutants:
// format.go CleanPath :193 skip-if, both operands and boundary, :197
// skip-if, :200 skip-if and boundary.
func TestCleanPathBounds(t *testing.T) {
	el := func(n int) string { return strings.Repeat("x", n) }
	long := strings.Repeat(el(255)+"/", fs.MaxPath/256) // 16 elements of 255: 4096 bytes
	for _, tc := range []struct {
		p, want string
		ok      bool
	}{
		{"/a/./b/", "a/b", true},
		{long[:fs.MaxPath], long[:fs.MaxPath-1], true},
		{long[:fs.MaxPath] + "y", "", false},
		{"a\x00b", "", false},
		{"a/../b", "", false},
		{el(255), el(255), true},
		{"a/" + el(256), "", false},
	} {
		got, err := fs.CleanPath(tc.p)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, fs.ErrBadPath)) || got != tc.want {
			t.Errorf("CleanPath of %d bytes %.20q: %.20q, %v; want ok %v", len(tc.p), tc.p, got, err, tc.ok)
		}
	}
}

// TestManifestsChecked: a capsule whose newest manifest breaks one of the
// manifest's rules (docs/FILES.md) does not open (ErrNotFS): no path, a
// path with "..", an extent from seqno 0 or of no chunks, more chunks
// than the size needs, more hash lists than the chunks need, a content
// hash that is not 32 bytes, a directory with a size or a hash list, an
// unknown type. Mutants: format.go decodeManifest :143 skip-if,
// Manifest.check :159 skip-if and both operands, :166 skip-if and the
// first two operands, :171, :174, :177 skip-if, :181 skip-if and both
// operands.
func TestManifestsChecked(t *testing.T) {
	r, cc := oneReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := []byte("content")
	chunk := append(fs.Header(fs.KindChunk, 0), body...)
	sum := sha256.Sum256(chunk)
	whole := sha256.Sum256(body)
	file := func() *fs.Manifest {
		return &fs.Manifest{Path: "f", Type: fs.TypeFile, Size: uint64(len(body)), Extents: []fs.Extent{{First: 1, Count: 1}}, Lists: []uint64{2}, SHA256: whole[:]}
	}
	for _, tc := range []struct {
		name string
		m    func() *fs.Manifest
		ok   bool
	}{
		{"a good file", file, true},
		{"no path", func() *fs.Manifest { m := file(); m.Path = ""; return m }, false},
		{"a path with ..", func() *fs.Manifest { m := file(); m.Path = "a/../f"; return m }, false},
		{"an extent from seqno 0", func() *fs.Manifest { m := file(); m.Extents[0].First = 0; return m }, false},
		{"an extent of no chunks", func() *fs.Manifest { m := file(); m.Extents = append(m.Extents, fs.Extent{First: 1}); return m }, false},
		{"two chunks for 7 bytes", func() *fs.Manifest { m := file(); m.Extents[0].Count = 2; return m }, false},
		{"two hash lists for one chunk", func() *fs.Manifest { m := file(); m.Lists = []uint64{2, 2}; return m }, false},
		{"a 31-byte content hash", func() *fs.Manifest { m := file(); m.SHA256 = m.SHA256[:31]; return m }, false},
		{"a directory with a size", func() *fs.Manifest { return &fs.Manifest{Path: "d", Type: fs.TypeDir, Size: 1} }, false},
		{"a directory with a hash list", func() *fs.Manifest { return &fs.Manifest{Path: "d", Type: fs.TypeDir, Lists: []uint64{2}} }, false},
		{"type 7", func() *fs.Manifest { return &fs.Manifest{Path: "d", Type: 7} }, false},
	} {
		name, wid := newCapsule(t, cc, 1, r)
		wr, err := cc.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
		if err != nil {
			t.Fatal(err)
		}
		mb, err := fs.EncodeManifest(tc.m(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range [][]byte{chunk, append(fs.Header(fs.KindList, 0), sum[:]...), mb} {
			if _, err := wr.Append(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := wr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		wr.Close(ctx)
		f, err := fs.Open(ctx, cc, name, fs.Options{})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, fs.ErrNotFS)) {
			t.Errorf("%s: open %v, want ok %v", tc.name, err, tc.ok)
			continue
		}
		if tc.ok {
			if e, err := f.Stat("f"); err != nil || e.Size() != int64(len(body)) {
				t.Errorf("%s: stat %+v, %v", tc.name, e, err)
			}
		}
	}
}

// TestManifestChainChecked: the tree is the chain of manifests back from
// the newest record, each naming only records written before it: a
// capsule does not open (ErrNotFS, without hanging) when a manifest's
// prev points at itself or at a later record, when a manifest's prev
// points at a chunk, when the newest record (a chunk) points at a later
// record, or when a manifest names an extent or a hash list that is not
// before it (or hash list 0); a chunk right before its manifest is
// before it, and the newest record may be a chunk of a put under way (the
// tree is then its prev's). Mutants: index.go index.build :68 skip-if (a
// chunk last decoded as a manifest), :69 skip-if (a manifest's
// prev at a chunk followed on), :73 skip-if (a chunk's prev not older
// followed on), :88 skip-if and boundary (a manifest's prev not older: a
// loop without end), checkRefs :102 skip-if, drop-or-left and boundary,
// :107 skip-if, both operands and boundary.
func TestManifestChainChecked(t *testing.T) {
	r, cc := oneReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := []byte("content")
	chunk := append(fs.Header(fs.KindChunk, 0), body...) // seqno 1
	sum := sha256.Sum256(chunk)
	list := append(fs.Header(fs.KindList, 0), sum[:]...) // seqno 2
	whole := sha256.Sum256(body)
	manifest := func(ext fs.Extent, l uint64, prev uint64) []byte {
		mb, err := fs.EncodeManifest(&fs.Manifest{Path: "f", Type: fs.TypeFile, Size: uint64(len(body)),
			Extents: []fs.Extent{ext}, Lists: []uint64{l}, SHA256: whole[:]}, prev)
		if err != nil {
			t.Fatal(err)
		}
		return mb
	}
	good := fs.Extent{First: 1, Count: 1}
	for _, tc := range []struct {
		name string
		recs [][]byte // from seqno 1
		ok   bool
	}{
		{"a good file", [][]byte{chunk, list, manifest(good, 2, 0)}, true},
		{"a manifest whose prev is itself", [][]byte{chunk, list, manifest(good, 2, 3)}, false},
		{"a manifest whose prev is later", [][]byte{chunk, list, manifest(good, 2, 0), manifest(good, 2, 5)}, false},
		{"a manifest whose prev is a chunk", [][]byte{chunk, list, manifest(good, 2, 1)}, false},
		{"the chunk right before the manifest", [][]byte{list, chunk, manifest(fs.Extent{First: 2, Count: 1}, 1, 0)}, true},
		{"a chunk of the next put last", [][]byte{chunk, list, manifest(good, 2, 0), append(fs.Header(fs.KindChunk, 3), body...)}, true},
		{"a chunk last, its prev later", [][]byte{chunk, list, manifest(good, 2, 0), fs.Header(fs.KindChunk, 5)}, false},
		{"an extent at the manifest", [][]byte{chunk, list, manifest(fs.Extent{First: 3, Count: 1}, 2, 0)}, false},
		{"an extent past the manifest", [][]byte{chunk, list, manifest(fs.Extent{First: 4, Count: 1}, 2, 0), append(fs.Header(fs.KindChunk, 3), body...)}, false},
		{"a hash list at the manifest", [][]byte{chunk, list, manifest(good, 3, 0)}, false},
		{"hash list 0", [][]byte{chunk, list, manifest(good, 0, 0)}, false},
	} {
		name, wid := newCapsule(t, cc, 1, r)
		wr, err := cc.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range tc.recs {
			if _, err := wr.Append(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := wr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		wr.Close(ctx)
		octx, ocancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = fs.Open(octx, cc, name, fs.Options{})
		ocancel()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, fs.ErrNotFS)) {
			t.Errorf("%s: open %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestTreeAnswers: what Stat, ReadDir, Log and version lookups answer is
// the tree the writer's manifests make: after puts of a/b, a/c and x, a
// mkdir of e, and the removal of a/c, the root lists a, e and x; a lists
// b only; a/c does not exist but its log holds both versions, newest
// first (a removal, then the put); a file is no directory to list; a bad
// path, a path never written and a version that is not one of the path's
// are refused. Mutants: index.go index.stat :124, :128, :131 skip-if,
// :136 skip-if and call-true; readDir :151 skip-if, :160 skip-if, both
// operands and call-true, :164 skip-if; log :188 skip-if; version :201
// skip-if. (readDir's :148, log's :184, version's :197 and readDir's
// :164 boundary live: a later check refuses the same, and a clean path
// has no empty element.)
func TestTreeAnswers(t *testing.T) {
	r, cc := oneReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, wid := newCapsule(t, cc, 1, r)
	fw, err := fs.NewWriter(ctx, cc, name, wid.Key, fs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close(ctx)
	put := func(p string) *fs.Version {
		v, err := fw.Put(ctx, p, bytes.NewReader([]byte("content of "+p)), fs.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	put("a/b")
	c1 := put("a/c")
	put("x")
	if _, err := fw.Mkdir(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	rm, err := fw.Remove(ctx, "a/c")
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.Open(ctx, cc, name, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := func(p string) string {
		t.Helper()
		es, err := f.ReadDir(p)
		if err != nil {
			t.Fatalf("readdir %q: %v", p, err)
		}
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s:%d", e.Name, e.Type))
		}
		return strings.Join(out, " ")
	}
	if got, want := names(""), fmt.Sprintf("a:%d e:%d x:%d", fs.TypeDir, fs.TypeDir, fs.TypeFile); got != want {
		t.Errorf("the root lists %q, want %q", got, want)
	}
	if got, want := names("a"), fmt.Sprintf("b:%d", fs.TypeFile); got != want {
		t.Errorf("a lists %q, want %q", got, want)
	}
	for p, want := range map[string]uint8{"": fs.TypeDir, "a": fs.TypeDir, "/a/": fs.TypeDir, "e": fs.TypeDir, "a/b": fs.TypeFile} {
		if e, err := f.Stat(p); err != nil || e.Type != want {
			t.Errorf("stat %q: %+v, %v; want type %d", p, e, err, want)
		}
	}
	for _, p := range []string{"a/c", "nothing", "a/../x"} {
		if e, err := f.Stat(p); err == nil {
			t.Errorf("stat %q: %+v; want an error", p, e)
		}
	}
	if es, err := f.ReadDir("x"); err == nil {
		t.Errorf("readdir of the file x: %v", es)
	}
	if es, err := f.ReadDir("a/../x"); err == nil {
		t.Errorf("readdir of a bad path: %v", es)
	}
	if vs, err := f.Log("a/c"); err != nil || len(vs) != 2 || vs[0].Seqno != rm.Seqno || vs[1].Seqno != c1.Seqno || vs[0].Type != fs.TypeRemoved {
		t.Errorf("log of a/c: %d versions, %v; want the removal %d then the put %d", len(vs), err, rm.Seqno, c1.Seqno)
	}
	for _, p := range []string{"nothing", "a/../x"} {
		if vs, err := f.Log(p); err == nil {
			t.Errorf("log of %q: %d versions; want an error", p, len(vs))
		}
	}
	if fl, err := f.OpenAt(ctx, "a/c", c1.Seqno); err != nil {
		t.Errorf("a/c's put, removed since: %v", err)
	} else {
		fl.Close()
	}
	for _, seq := range []uint64{rm.Seqno - 1, 0} {
		if _, err := f.OpenAt(ctx, "a/c", seq); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a/c at %d, not one of its versions: %v; want ErrNotExist", seq, err)
		}
	}
}

// errReader returns n bytes, then fails with errDiskFull.
type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errDiskFull
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

// TestWriterRefuses: the writer refuses what would make a tree the
// reader refuses or a version that is not what was asked: a bad path,
// the root, a file over a directory, a directory over a file, removing a
// path that does not exist (or no longer does); a content read that fails
// fails the put. An empty file is a version of no chunks, a put keeps the
// modification time given, and a new version names the one it replaces.
// Mutants: writer.go Writer.Put :75 skip-if (a file over a directory),
// :81 call-true (the modification time given replaced by now), a
// version's time not its record's (time.Now after the flush), :111
// skip-if (the read error dropped: a loop), Mkdir :139 skip-if (a
// directory over a file), Remove :151 skip-if and both operands. (The
// bad-path and root checks of Put, Mkdir and Remove live: a bad path
// cleans to the root, which each refuses again.)
func TestWriterRefuses(t *testing.T) {
	r, cc := oneReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, wid := newCapsule(t, cc, 1, r)
	fw, err := fs.NewWriter(ctx, cc, name, wid.Key, fs.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close(ctx)
	put := func(p string, b []byte) (*fs.Version, error) {
		return fw.Put(ctx, p, bytes.NewReader(b), fs.PutOptions{})
	}
	mtime := time.Date(2020, 2, 2, 2, 2, 2, 2, time.UTC)
	v1, err := fw.Put(ctx, "d/f", bytes.NewReader([]byte("one")), fs.PutOptions{MTime: mtime})
	if err != nil || v1.MTime != mtime.UnixNano() {
		t.Fatalf("a put with its modification time: %+v, %v; want MTime %d", v1, err, mtime.UnixNano())
	}
	v2, err := put("d/f", []byte("two"))
	if err != nil || v2.PrevVersion != v1.Seqno {
		t.Fatalf("the second version of d/f: %+v, %v; want it to name %d", v2, err, v1.Seqno)
	}
	// A version's time is its manifest record's, the same for the writer
	// that put it as for a reader of the log (Session 19: the writer
	// answered its own clock after the flush, so the gateway's PUT answer
	// and its versions listing disagreed).
	rf, err := fs.Open(ctx, cc, name, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := rf.Log("d/f")
	rf.Close()
	if err != nil || len(vs) != 2 || !vs[0].Time.Equal(v2.Time) || !vs[1].Time.Equal(v1.Time) {
		t.Fatalf("versions read back %v, %v; want the times the puts answered, %v and %v", vs, err, v2.Time, v1.Time)
	}
	empty, err := put("empty", nil)
	if err != nil || empty.Size != 0 || len(empty.Extents) != 0 {
		t.Fatalf("an empty file: %+v, %v", empty, err)
	}
	if _, err := fw.Mkdir(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Remove(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"put a bad path":              func() error { _, err := put("a/../b", []byte("x")); return err }(),
		"put the root":                func() error { _, err := put("", []byte("x")); return err }(),
		"put over a directory":        func() error { _, err := put("d", []byte("x")); return err }(),
		"put over an explicit dir":    func() error { _, err := put("e", []byte("x")); return err }(),
		"put from a failing reader":   func() error { _, err := fw.Put(ctx, "g", &errReader{n: 10}, fs.PutOptions{}); return err }(),
		"mkdir a bad path":            func() error { _, err := fw.Mkdir(ctx, "a/../b"); return err }(),
		"mkdir the root":              func() error { _, err := fw.Mkdir(ctx, ""); return err }(),
		"mkdir over a file":           func() error { _, err := fw.Mkdir(ctx, "d/f"); return err }(),
		"remove a bad path":           func() error { _, err := fw.Remove(ctx, "a/../b"); return err }(),
		"remove a path never written": func() error { _, err := fw.Remove(ctx, "nothing"); return err }(),
		"remove a removed path":       func() error { _, err := fw.Remove(ctx, "empty"); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: no error", what)
		}
	}
	f, err := fs.Open(ctx, cc, name, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]uint8{"d": fs.TypeDir, "d/f": fs.TypeFile, "e": fs.TypeDir} {
		if e, err := f.Stat(p); err != nil || e.Type != want {
			t.Errorf("stat %s: %+v, %v; want type %d", p, e, err, want)
		}
	}
	if e, err := f.Stat("g"); err == nil {
		t.Errorf("a put whose content read failed is in the tree: %+v", e)
	}
}

// oneReplica is a router with one capsule server and one user on it: the
// setting of most tests here.
func oneReplica(t *testing.T) (*replica, *client.CapsuleClient) {
	t.Helper()
	w := newWorld(t)
	a := w.router("router a")
	return w.replica(a, "replica"), w.user(a, "user")
}
