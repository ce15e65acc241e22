package handoffd

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// BlockSize is the unit of capture, dedup and verification: a disk block and
// a guest memory page.
const BlockSize = 4096

// Hash is a block's SHA-256.
type Hash [32]byte

var zeroHash = sha256.Sum256(make([]byte, BlockSize))

// hashBlock hashes one block; a short last block is hashed zero-padded, as
// the destination's rebuilt file holds it. An all-zero block's hash is
// known: checking that it is all zeros costs a fraction of SHA-256 (guest
// memory and sparse disks are full of them).
func hashBlock(b []byte) Hash {
	if isZero(b) {
		return zeroHash
	}
	if len(b) == BlockSize {
		return sha256.Sum256(b)
	}
	var p [BlockSize]byte
	copy(p[:], b)
	return sha256.Sum256(p[:])
}

func blocksOf(size int64) int64 { return (size + BlockSize - 1) / BlockSize }

// digestOf is the whole-image digest: SHA-256 over the size and every block
// hash in order. The sender knows it without reading unchanged blocks (their
// hashes are in the base index); the receiver recomputes it from every byte of
// the rebuilt image.
func digestOf(size int64, hashes []Hash) Hash {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(size))
	h.Write(b[:])
	for i := range hashes {
		h.Write(hashes[i][:])
	}
	var d Hash
	copy(d[:], h.Sum(nil))
	return d
}

// hashFile returns the hash of every block of f (size bytes), using all cores.
func hashFile(f io.ReaderAt, size int64) ([]Hash, error) {
	n := blocksOf(size)
	out := make([]Hash, n)
	const chunk = 256 // blocks per job
	jobs := make(chan int64)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunk*BlockSize)
			for start := range jobs {
				end := min(start+chunk, n)
				want := min(size-start*BlockSize, int64(len(buf)))
				got, err := f.ReadAt(buf[:want], start*BlockSize)
				if int64(got) != want {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("read at block %d: %w", start, err)
					}
					errMu.Unlock()
					continue
				}
				for i := start; i < end; i++ {
					o := (i - start) * BlockSize
					out[i] = hashBlock(buf[o:min(o+BlockSize, want)])
				}
			}
		}()
	}
	for s := int64(0); s < n; s += chunk {
		jobs <- s
	}
	close(jobs)
	wg.Wait()
	return out, firstErr
}

// hashPath hashes every block of the file at path.
func hashPath(path string) (int64, []Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	hs, err := hashFile(f, st.Size())
	return st.Size(), hs, err
}
