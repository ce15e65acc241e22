//go:build unix

package certs

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time. Benchmarks divide work by
// it as well as by wall time, because on a shared machine the wall clock
// also counts time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
