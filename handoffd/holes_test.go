package handoffd

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// TestDataExtents: SEEK_DATA/SEEK_HOLE name every block written in a
// sparse file and leave its holes out, so the destination's verification
// reads only its working image's data (a hole reads as zeros).
func TestDataExtents(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("holes are looked for on Linux only")
	}
	const nb = 1024
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(nb*BlockSize - 100) // a ragged end
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	data := []int64{0, 1, 2, 300, 301, 700, nb - 1} // blocks written
	for _, b := range data {
		if _, err := f.WriteAt([]byte{0xab}, b*BlockSize+7); err != nil {
			t.Fatal(err)
		}
	}
	exts, ok := dataExtents(f, size)
	if !ok {
		t.Fatal("SEEK_DATA/SEEK_HOLE refused on a regular file")
	}
	for _, b := range data {
		if !touchesData(exts, b*BlockSize) {
			t.Fatalf("block %d holds data, outside the extents %v", b, exts)
		}
	}
	var n int64
	for i, e := range exts {
		if e.Length <= 0 || e.Start+e.Length > size || (i > 0 && e.Start < exts[i-1].Start+exts[i-1].Length) {
			t.Fatalf("extent %d of %v: out of order or out of the file", i, exts)
		}
		n += e.Length
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 >= size {
		t.Skipf("the file system of %s made no holes", f.Name())
	}
	// A file system may allocate in units larger than 4 KiB: allow 16.
	if n > int64(len(data))*16*BlockSize {
		t.Fatalf("extents cover %d bytes for %d written blocks: holes reported as data (%v)", n, len(data), exts)
	}

	noSeekHole = true
	defer func() { noSeekHole = false }()
	if _, ok := dataExtents(f, size); ok {
		t.Fatal("noSeekHole: still looked for holes")
	}
}

// TestTouchesData: a block is data when any extent overlaps it, even by a
// byte; only a block wholly inside a hole is taken for zeros.
func TestTouchesData(t *testing.T) {
	exts := []Extent{{Start: 4096, Length: 4096}, {Start: 5*4096 + 4095, Length: 1}, {Start: 9 * 4096, Length: 3 * 4096}}
	for _, tc := range []struct {
		blk  int64
		want bool
	}{
		{0, false}, {1, true}, {2, false}, {4, false}, {5, true}, {6, false},
		{8, false}, {9, true}, {11, true}, {12, false},
	} {
		if got := touchesData(exts, tc.blk*BlockSize); got != tc.want {
			t.Errorf("block %d: touches data %v, want %v", tc.blk, got, tc.want)
		}
	}
}
