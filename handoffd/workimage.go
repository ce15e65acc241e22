package handoffd

import (
	"fmt"
	"io"
	"os"
)

// Tests switch the fast paths off to exercise the fallbacks.
var noClone, noCopyRange bool

// copyRangeBuffered copies n bytes at off from src to dst through a buffer.
func copyRangeBuffered(dst, src *os.File, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		got, err := src.ReadAt(buf[:k], off)
		if int64(got) != k {
			return fmt.Errorf("read at %d: %w", off, orEOF(err))
		}
		if _, err := dst.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// copyBetweenBuffered copies n bytes from src at srcOff to dst at dstOff
// through a buffer.
func copyBetweenBuffered(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) error {
	buf := make([]byte, min(max(n, 0), 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		got, err := src.ReadAt(buf[:k], srcOff)
		if int64(got) != k {
			return fmt.Errorf("read at %d: %w", srcOff, orEOF(err))
		}
		if _, err := dst.WriteAt(buf[:k], dstOff); err != nil {
			return err
		}
		srcOff, dstOff, n = srcOff+k, dstOff+k, n-k
	}
	return nil
}

// zeroRangeWritten writes n zero bytes at off.
func zeroRangeWritten(f *os.File, off, n int64) error {
	buf := make([]byte, min(max(n, 0), 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

func orEOF(err error) error {
	if err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}

// prepareImage creates the destination's working image at path: size
// bytes holding the base's content (zeros beyond the base), cheaply. A
// reflink where the file system has them (nothing is copied); otherwise a
// sparse file into which only the base's non-zero blocks (by its hash
// index) are copied, in the kernel where it can — a zero block is a hole,
// which reads as zeros. Either way every block is hashed again before the
// commit (receiver.verifyUnchanged), so a base file that differs from its
// index is still caught. It returns the open file and how it was made.
func prepareImage(b *Base, path string, size int64) (*os.File, string, error) {
	src, err := os.Open(b.Path)
	if err != nil {
		return nil, "", err
	}
	defer src.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(path)
		return nil, "", err
	}
	how := "reflink"
	if cloneFile(f, src) != nil {
		how = "sparse"
		// A failed clone leaves dst as it was: empty.
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
		end := min(b.Size, size)
		nb := blocksOf(end)
		for i := int64(0); i < nb; {
			if i >= int64(len(b.Hashes)) || b.Hashes[i] == zeroHash {
				i++
				continue
			}
			j := i
			for j < nb && j < int64(len(b.Hashes)) && b.Hashes[j] != zeroHash {
				j++
			}
			off := i * BlockSize
			if err := copyRange(f, src, off, min(j*BlockSize, end)-off); err != nil {
				return fail(fmt.Errorf("copy base blocks %d-%d: %w", i, j, err))
			}
			i = j
		}
	}
	if err := f.Truncate(size); err != nil {
		return fail(fmt.Errorf("resize: %w", err))
	}
	return f, how, nil
}
