package handoffd

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

// TestBaseSpan: the scan reads the base only from the first to the last
// block it compares against — non-zero in the base's index and held by the
// destination as that block, or free in the file system — cut at the
// base's end.
func TestBaseSpan(t *testing.T) {
	var x, y Hash
	x[0], y[0] = 1, 2
	const nb = 8
	mk := func(base, have []Hash, free []uint64, size int64) *imgState {
		return &imgState{base: &Base{Hashes: base, BaseMeta: BaseMeta{Size: size}}, have: have, nbBase: int64(len(base)), free: free}
	}
	z := zeroHash
	for _, tc := range []struct {
		name        string
		im          *imgState
		start, n    int64
		wantLo, wHi int64
	}{
		{"all zero", mk([]Hash{z, z, z, z, z, z, z, z}, []Hash{z, z, z, z, z, z, z, z}, nil, nb*BlockSize), 0, nb, 0, 0},
		{"inner", mk([]Hash{z, x, z, x, z, z, z, z}, []Hash{z, x, z, x, z, z, z, z}, nil, nb*BlockSize), 0, nb, 1 * BlockSize, 4 * BlockSize},
		{"sent since", mk([]Hash{z, x, z, x, z, z, z, z}, []Hash{z, y, z, x, z, z, z, z}, nil, nb*BlockSize), 0, nb, 3 * BlockSize, 4 * BlockSize},
		{"free", mk([]Hash{z, x, z, x, z, x, z, z}, []Hash{z, y, z, y, z, y, z, z}, []uint64{1 << 5}, nb*BlockSize), 0, nb, 5 * BlockSize, 6 * BlockSize},
		{"chunk", mk([]Hash{x, x, z, x, z, z, x, z}, []Hash{x, x, z, x, z, z, x, z}, nil, nb*BlockSize), 2, 4, 1 * BlockSize, 2 * BlockSize},
		{"ragged end", mk([]Hash{z, z, z, z, z, z, z, x}, []Hash{z, z, z, z, z, z, z, x}, nil, nb*BlockSize-100), 4, 4, 3 * BlockSize, 4*BlockSize - 100},
		{"beyond the base", mk([]Hash{x, x}, []Hash{x, x, z, z}, nil, 2*BlockSize), 2, 2, 0, 0},
	} {
		lo, hi := tc.im.baseSpan(tc.start, tc.n)
		if lo != tc.wantLo || hi != tc.wHi {
			t.Errorf("%s: span %d..%d, want %d..%d", tc.name, lo, hi, tc.wantLo, tc.wHi)
		}
	}
}

// TestScanRaggedEndReusedBuffer: a scan worker reuses its read buffer from
// chunk to chunk; an image's ragged last block must still be sent
// zero-padded, not with the bytes a previous chunk left beyond the image's
// end (the destination checks the sent block's hash over all 4 KiB). One
// worker, every block changed, several chunk orders.
func TestScanRaggedEndReusedBuffer(t *testing.T) {
	const nb = 600 // three chunks of the scan, the last one ragged
	e := &pairEnv{dir: t.TempDir()}
	rng := rngFor(11)
	base := make([]byte, nb*BlockSize)
	cur := make([]byte, nb*BlockSize-300)
	for i := 0; i < nb; i++ {
		copy(base[i*BlockSize:], textBlock(rng))
		copy(cur[i*BlockSize:], textBlock(rng))
	}
	e.basePath, e.curPath = filepath.Join(e.dir, "base.img"), filepath.Join(e.dir, "cur.img")
	if err := os.WriteFile(e.basePath, base, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.curPath, cur, 0o644); err != nil {
		t.Fatal(err)
	}
	e.openCaches(t)
	for seed := uint64(1); seed <= 4; seed++ {
		_, rec, err, rerr := e.run(t, SendConfig{Mode: "none", Workers: 1, Seed: seed, Logger: zap.NewNop()}, nil)
		if err != nil || rerr != nil {
			t.Fatalf("seed %d: send %v, receive %v", seed, err, rerr)
		}
		sameFile(t, e.curPath, rec.Images["disk"])
		os.RemoveAll(rec.Dir)
	}
}
