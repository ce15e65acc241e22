//go:build !linux

package handoffd

import (
	"errors"
	"os"
)

func cloneFile(dst, src *os.File) error { return errors.ErrUnsupported }

func copyRange(dst, src *os.File, off, n int64) error { return copyRangeBuffered(dst, src, off, n) }
