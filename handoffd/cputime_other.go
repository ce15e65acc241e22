//go:build !linux

package handoffd

import "time"

// threadCPU: no per-thread CPU clock here; callers use wall time.
func threadCPU() (time.Duration, bool) { return 0, false }
