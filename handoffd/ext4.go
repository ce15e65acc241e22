package handoffd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Free-block elision (Image.FS = "ext4"). A file system's unallocated
// blocks hold whatever was last written there — on the dataset, the .deb
// files apt downloaded and deleted, compressed and so incompressible: 43 of
// the ~105 MB the modified blocks compress to (docs/HANDOFF.md §8). No
// program in the guest can read them back through the file system, so a
// sender told the image is a quiescent ext4 file system leaves them out: the
// destination keeps its base's bytes there, every allocated block is carried
// and verified as before, and the whole-image digest covers exactly what the
// destination rebuilds. It is what TRIM does for a guest that discards its
// freed blocks (QEMU's discard=unmap then leaves holes in the overlay).
//
// Only a cleanly unmounted file system is read: a mounted or crashed one
// (needs_recovery, or not marked valid) may have allocations recorded only
// in its journal or in the guest's memory, so it is refused. Every doubt
// counts as "in use": a group whose bitmap is not initialised
// (BLOCK_UNINIT), blocks beyond the file system's end, a 4 KiB image block
// of which any file-system block is in use.

const (
	ext4Magic          = 0xEF53
	ext4IncompatRecov  = 0x4
	ext4IncompatMetaBG = 0x10
	ext4Incompat64Bit  = 0x80
	ext4RoCompatBigAll = 0x200
	ext4BgBlockUninit  = 0x2
	ext4StateValid     = 0x1
	ext4StateErrors    = 0x2
)

// ext4Free returns, for every 4 KiB block of an image of size bytes holding
// an ext4 file system from offset 0, whether the file system leaves it
// unallocated (a bit set: free), and how many such blocks there are.
func ext4Free(r io.ReaderAt, size int64) ([]uint64, int64, error) {
	var sb [1024]byte
	if _, err := r.ReadAt(sb[:], 1024); err != nil {
		return nil, 0, fmt.Errorf("ext4: read superblock: %w", err)
	}
	le16 := func(b []byte, o int) uint64 { return uint64(binary.LittleEndian.Uint16(b[o:])) }
	le32 := func(b []byte, o int) uint64 { return uint64(binary.LittleEndian.Uint32(b[o:])) }
	if le16(sb[:], 0x38) != ext4Magic {
		return nil, 0, errors.New("ext4: no ext2/3/4 superblock at offset 1024")
	}
	state, incompat, roCompat := le16(sb[:], 0x3A), le32(sb[:], 0x60), le32(sb[:], 0x64)
	switch {
	case incompat&ext4IncompatRecov != 0:
		return nil, 0, errors.New("ext4: the file system needs journal recovery (mounted, or not cleanly unmounted): its bitmaps may not show every allocated block")
	case state&ext4StateValid == 0 || state&ext4StateErrors != 0:
		return nil, 0, errors.New("ext4: the file system is not marked clean (run e2fsck)")
	case incompat&ext4IncompatMetaBG != 0:
		return nil, 0, errors.New("ext4: meta_bg file systems are not supported")
	case roCompat&ext4RoCompatBigAll != 0:
		return nil, 0, errors.New("ext4: bigalloc file systems are not supported")
	}
	logBS := le32(sb[:], 0x18)
	if logBS > 6 {
		return nil, 0, fmt.Errorf("ext4: block size 2^(10+%d)", logBS)
	}
	bs := int64(1024) << logBS
	blocks := le32(sb[:], 0x04)
	descSize := uint64(32)
	if incompat&ext4Incompat64Bit != 0 {
		blocks |= le32(sb[:], 0x150) << 32
		if d := le16(sb[:], 0xFE); d >= 64 {
			descSize = d
		}
	}
	first, perGroup := le32(sb[:], 0x14), le32(sb[:], 0x20)
	if perGroup == 0 || perGroup > uint64(bs)*8 || first >= blocks || descSize > 1024 {
		return nil, 0, fmt.Errorf("ext4: inconsistent superblock (%d blocks, %d per group, first %d, descriptor %d bytes)", blocks, perGroup, first, descSize)
	}
	if int64(blocks) > size/bs+1 {
		return nil, 0, fmt.Errorf("ext4: %d blocks of %d bytes do not fit the %d-byte image", blocks, bs, size)
	}
	groups := (blocks - first + perGroup - 1) / perGroup
	gdt := make([]byte, groups*descSize)
	if _, err := r.ReadAt(gdt, int64(first+1)*bs); err != nil {
		return nil, 0, fmt.Errorf("ext4: read group descriptors: %w", err)
	}
	// fsFree: one bit per file-system block, set when free.
	fsFree := make([]uint64, (blocks+63)/64)
	bm := make([]byte, bs)
	for g := uint64(0); g < groups; g++ {
		d := gdt[g*descSize:]
		if le16(d, 0x12)&ext4BgBlockUninit != 0 {
			continue // not initialised: counted as in use
		}
		at := le32(d, 0)
		if descSize >= 64 {
			at |= le32(d, 0x20) << 32
		}
		if at == 0 || at >= blocks {
			return nil, 0, fmt.Errorf("ext4: group %d: block bitmap at block %d", g, at)
		}
		if _, err := r.ReadAt(bm, int64(at)*bs); err != nil {
			return nil, 0, fmt.Errorf("ext4: group %d: read block bitmap: %w", g, err)
		}
		start := first + g*perGroup
		n := min(perGroup, blocks-start)
		for i := uint64(0); i < n; i++ {
			if bm[i/8]&(1<<(i%8)) == 0 {
				b := start + i
				fsFree[b/64] |= 1 << (b % 64)
			}
		}
	}
	isFree := func(b uint64) bool { return b < blocks && fsFree[b/64]&(1<<(b%64)) != 0 }
	// An image block is free when every file-system block it overlaps is.
	nb := blocksOf(size)
	out := make([]uint64, (nb+63)/64)
	var count int64
	for i := int64(0); i < nb; i++ {
		lo, hi := i*BlockSize, min((i+1)*BlockSize, size) // bytes [lo, hi)
		free := true
		for b := lo / bs; b*bs < hi; b++ {
			if !isFree(uint64(b)) {
				free = false
				break
			}
		}
		if free {
			out[i/64] |= 1 << (i % 64)
			count++
		}
	}
	return out, count, nil
}

func bitSet(bits []uint64, i int64) bool {
	return bits != nil && i >= 0 && i/64 < int64(len(bits)) && bits[i/64]&(1<<(i%64)) != 0
}
