//go:build !linux

package handoffd

import (
	"errors"
	"os"
)

func cloneFile(dst, src *os.File) error { return errors.ErrUnsupported }

func copyRange(dst, src *os.File, off, n int64) error { return copyRangeBuffered(dst, src, off, n) }

func copyBetween(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) error {
	return copyBetweenBuffered(dst, dstOff, src, srcOff, n)
}

func zeroRange(f *os.File, off, n int64) error { return zeroRangeWritten(f, off, n) }
