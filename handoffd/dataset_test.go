package handoffd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompareImages: the dataset's changed-block count (info.txt, the
// benchmark's modified state) names exactly the blocks that differ — across
// the 4 MiB read chunks, beyond the base's end, and not an unchanged
// ragged last block.
func TestCompareImages(t *testing.T) {
	dir := t.TempDir()
	rng := rngFor(3)
	base := make([]byte, 1500*BlockSize)
	for i := range base {
		base[i] = byte(rng.Uint32())
	}
	mod := append(append([]byte(nil), base...), make([]byte, 10*BlockSize+100)...)
	want := map[int64]bool{}
	for _, blk := range []int64{0, 1023, 1024, 1499} { // 1023|1024: a chunk boundary
		mod[blk*BlockSize+7] ^= 0xff
		want[blk] = true
	}
	clear(mod[5*BlockSize : 6*BlockSize]) // now zero
	want[5] = true
	mod[1503*BlockSize] = 1 // beyond the base
	want[1503] = true
	// The ragged last block is zeros, as beyond the base: not changed
	// (however the read buffer was used before).
	bp, mp := filepath.Join(dir, "b"), filepath.Join(dir, "m")
	os.WriteFile(bp, base, 0o644)
	os.WriteFile(mp, mod, 0o644)
	got := map[int64]bool{}
	var size int64
	if err := ChangedBlocks(bp, mp, func(blk int64, d []byte) error {
		if len(d) != BlockSize {
			t.Fatalf("block %d: %d bytes", blk, len(d))
		}
		got[blk] = true
		return nil
	}, &size); err != nil {
		t.Fatal(err)
	}
	if size != int64(len(mod)) || len(got) != len(want) {
		t.Fatalf("size %d, changed %v; want %d, %v", size, got, len(mod), want)
	}
	for b := range want {
		if !got[b] {
			t.Fatalf("block %d changed but not reported (got %v)", b, got)
		}
	}
	d, err := CompareImages(bp, mp)
	if err != nil || d.Changed != int64(len(want)) || d.ChangedZero != 1 {
		t.Fatalf("CompareImages %+v, %v; want %d changed, 1 zero", d, err, len(want))
	}
}

// TestDataGuestInitRW: the trimming dataset guest is the read-only one with
// its disk mounted read-write and a "trim" command; the read-only guest (the
// dataset's memory images were built with it) is unchanged.
func TestDataGuestInitRW(t *testing.T) {
	for _, w := range []string{"\nmount -t ext4 /dev/vda /mnt ||", "trim) sync; echo \"TRIM $(fstrim -v /mnt", "chroot /mnt /usr/bin/python3"} {
		if !strings.Contains(dataGuestInitRW, w) {
			t.Errorf("the read-write guest's init lacks %q", w)
		}
	}
	if strings.Contains(dataGuestInitRW, "ro,noload") || !strings.Contains(dataGuestInit, "-o ro,noload /dev/vda") || strings.Contains(dataGuestInit, "fstrim") {
		t.Error("the read-only guest's init changed, or the read-write one still mounts read-only")
	}
}
