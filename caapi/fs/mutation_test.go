package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/client"
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
	w := newWorld(t)
	a := w.router("router a")
	r := w.replica(a, "replica")
	cc := w.user(a, "user")
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
