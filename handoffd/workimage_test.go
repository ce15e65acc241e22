package handoffd

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestPrepareImage: the destination's working image holds the base's bytes
// (zeros beyond it, cut at a smaller size) whichever way it is made: a
// reflink where the file system has them, else a sparse file into which
// only the base's non-zero blocks are copied (copy_file_range, or through a
// buffer where the kernel refuses). A block the index says is zero is a
// hole: it reads as zeros even when the base file's bytes there were
// corrupted, so the image is right either way.
func TestPrepareImage(t *testing.T) {
	dir := t.TempDir()
	base, b := raggedBase(t, dir, 512, 8, 3) // one block in 8 holds data
	// Corrupt a block the index says is zero: a hole never reads it.
	bf, _ := os.OpenFile(b.Path, os.O_RDWR, 0)
	bf.WriteAt([]byte{0xee}, 3*BlockSize+5)
	bf.Close()
	defer func() { noClone, noCopyRange = false, false }()
	for _, tc := range []struct {
		name              string
		noClone, noCopyFR bool
		size              int64
	}{
		{"default", false, false, int64(len(base)) + 10*BlockSize},
		{"no-reflink", true, false, int64(len(base)) + 10*BlockSize},
		{"buffered", true, true, int64(len(base)) + 10*BlockSize},
		{"shrunk", true, false, 100*BlockSize + 17},
	} {
		noClone, noCopyRange = tc.noClone, tc.noCopyFR
		p := filepath.Join(dir, tc.name)
		f, how, err := prepareImage(b, p, tc.size)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		f.Close()
		got, _ := os.ReadFile(p)
		want := make([]byte, tc.size)
		copy(want, base)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s (%s): working image differs from the base", tc.name, how)
		}
		if tc.noClone && how != "sparse" {
			t.Fatalf("%s: made by %s, want sparse", tc.name, how)
		}
		if how == "sparse" {
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			// 64 data blocks of 4 KiB; a file system may round up a little.
			if used := st.Blocks * 512; used > 2*64*BlockSize {
				t.Fatalf("%s: %d bytes allocated for 64 non-zero blocks: not sparse", tc.name, used)
			}
		}
	}
}

// raggedBase writes a base image of nb blocks less 300 bytes (a ragged
// end) in dir, every every-th block holding text from seed, adds it to a
// base cache in dir and returns its bytes and the cached base.
func raggedBase(t *testing.T, dir string, nb, every int, seed uint64) ([]byte, *Base) {
	t.Helper()
	base := make([]byte, nb*BlockSize-300)
	rng := rngFor(seed)
	for i := 0; i < nb; i += every {
		copy(base[i*BlockSize:], textBlock(rng))
	}
	bp := filepath.Join(dir, "base.img")
	if err := os.WriteFile(bp, base, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := OpenBaseCache(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Add(bp, "t")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Get(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return base, b
}

// TestVerifyUnchangedKeepsApplied: the background verification keeps, for
// a block the stream wrote, the hash its bytes were checked against, even
// when it reads the block before the write lands; every other block gets
// the hash of what the image holds.
func TestVerifyUnchangedKeepsApplied(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 600*BlockSize)
	rng := rngFor(5)
	for i := 0; i < 600; i++ {
		copy(data[i*BlockSize:], textBlock(rng))
	}
	p := filepath.Join(dir, "img")
	os.WriteFile(p, data, 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im := &rimg{helloImage: helloImage{Name: "disk", Size: int64(len(data))}, f: f, blocks: 600,
		hashes: make([]Hash, 600), written: make([]bool, 600)}
	applied := hashBlock(bytes.Repeat([]byte{9}, BlockSize)) // what the stream wrote to block 300 (not yet on disk)
	im.mark(300, applied)
	r := &receiver{imgs: []*rimg{im}}
	if err := r.verifyUnchanged(); err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		want := hashBlock(data[i*BlockSize : (i+1)*BlockSize])
		if i == 300 {
			want = applied
		}
		if im.hashes[i] != want {
			t.Fatalf("block %d: hash %x, want %x", i, im.hashes[i][:4], want[:4])
		}
	}
	r.vstop.Store(true)
	if err := r.verifyUnchanged(); err != errVerifyStopped {
		t.Fatalf("stopped verification returned %v", err)
	}
}

// TestCommitWaitsForVerification: the commit waits for the background
// verification of the unchanged blocks, however late it finishes (here it
// starts 300 ms late, after the whole small handoff has arrived), and the
// image is exact.
func TestCommitWaitsForVerification(t *testing.T) {
	e := newPairEnv(t, 300, 10)
	verifyHook = func() { time.Sleep(300 * time.Millisecond) }
	defer func() { verifyHook = nil }()
	_, rec, err, rerr := e.run(t, SendConfig{Mode: "lz4", Logger: zap.NewNop()}, nil)
	if err != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
}

// TestDupAfterOverwrite: a duplicate is read back from the image block its
// data was written to, with no spill copy; when a later record overwrites
// that block (a pre-copy round rewriting it) its old content moves to the
// spill file first, so a duplicate of it that comes after still rebuilds.
func TestDupAfterOverwrite(t *testing.T) {
	dir := t.TempDir()
	img, err := os.Create(filepath.Join(dir, "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	img.Truncate(16 * BlockSize)
	spill, err := os.Create(filepath.Join(dir, "blocks"))
	if err != nil {
		t.Fatal(err)
	}
	defer spill.Close()
	im := &rimg{helloImage: helloImage{Name: "disk", Size: 16 * BlockSize}, f: img, blocks: 16,
		hashes: make([]Hash, 16), written: make([]bool, 16)}
	r := &receiver{imgs: []*rimg{im}, stored: map[Hash]storedLoc{}, spill: spill}
	a, b := textBlock(rngFor(1)), textBlock(rngFor(2))
	ha, hb := hashBlock(a), hashBlock(b)
	for _, rc := range []record{
		{Kind: recData, Block: 5, Hash: ha, Data: a},
		{Kind: recDup, Block: 6, Hash: ha}, // read back from block 5
		{Kind: recData, Block: 5, Hash: hb, Data: b},
		{Kind: recDup, Block: 7, Hash: ha}, // block 5 holds b now
		{Kind: recDup, Block: 8, Hash: hb},
		{Kind: recDup, Block: 5, Hash: hb}, // the same content again: nothing to move
	} {
		if err := r.apply(&rc); err != nil {
			t.Fatalf("block %d: %v", rc.Block, err)
		}
	}
	got := make([]byte, 16*BlockSize)
	img.ReadAt(got, 0)
	for blk, want := range map[int][]byte{5: b, 6: a, 7: a, 8: b} {
		if !bytes.Equal(got[blk*BlockSize:(blk+1)*BlockSize], want) {
			t.Fatalf("block %d differs", blk)
		}
	}
	if r.nspill != 1 {
		t.Fatalf("%d blocks spilled, want 1 (the overwritten one only)", r.nspill)
	}
}
