//go:build unix

package router_test

import "syscall"

// cpuNow is the CPU time (user and system, ns) this process has used: the
// benchmarks report CPU per PDU beside the rate, which on a shared machine
// depends far less on what else runs than the rate does.
func cpuNow() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
