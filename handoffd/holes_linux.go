//go:build linux

package handoffd

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Tests switch hole detection off to exercise the read of every block.
var noSeekHole bool

// dataExtents returns the byte ranges of f's first size bytes that may hold
// data, by SEEK_DATA/SEEK_HOLE: everything outside them is a hole, which
// reads as zeros. ok is false when the file system cannot tell (every byte
// is then to be read); a file system without holes reports one extent.
func dataExtents(f *os.File, size int64) (exts []Extent, ok bool) {
	if noSeekHole {
		return nil, false
	}
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && start >= size) {
			break // nothing but a hole from off to the end
		}
		if err != nil {
			return nil, false
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil || end <= start {
			return nil, false
		}
		end = min(end, size)
		exts = append(exts, Extent{Start: start, Length: end - start})
		off = end
	}
	return exts, true
}
