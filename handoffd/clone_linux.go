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
