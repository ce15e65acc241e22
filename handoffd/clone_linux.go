//go:build linux

package handoffd

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile makes dst share src's extents (FICLONE: btrfs, XFS with
// reflink, bcachefs); an error where the file system cannot.
func cloneFile(dst, src *os.File) error {
	if noClone {
		return errors.ErrUnsupported
	}
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
}

// copyRange copies n bytes at off from src to dst at the same offset, in
// the kernel (copy_file_range: no copy through user space, a reflink where
// the file system shares extents); where the kernel refuses, through a
// buffer.
func copyRange(dst, src *os.File, off, n int64) error {
	for n > 0 && !noCopyRange {
		roff, woff := off, off
		k, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(min(n, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				break // fall back for the rest
			}
			return err
		}
		if k == 0 {
			break // src shorter than expected: the buffered copy reports it
		}
		off, n = off+int64(k), n-int64(k)
	}
	return copyRangeBuffered(dst, src, off, n)
}

// copyBetween copies n bytes from src at srcOff to dst at dstOff, in the
// kernel where it can (copy_file_range), else through a buffer.
func copyBetween(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) error {
	for n > 0 && !noCopyRange {
		roff, woff := srcOff, dstOff
		k, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(min(n, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				break
			}
			return err
		}
		if k == 0 {
			break
		}
		srcOff, dstOff, n = srcOff+int64(k), dstOff+int64(k), n-int64(k)
	}
	return copyBetweenBuffered(dst, dstOff, src, srcOff, n)
}

// zeroRange makes n bytes at off of f zeros: a hole where the file system
// can punch one, else written zeros.
func zeroRange(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err == nil {
		return nil
	}
	return zeroRangeWritten(f, off, n)
}
