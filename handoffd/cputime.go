package handoffd

import (
	"runtime"
	"time"
)

// timed runs f on one locked OS thread and returns the CPU time that thread
// spent in it and the wall time. The adapter judges a codec by its CPU time
// (what it costs, whatever else the machine runs) and the share of a core
// the compress workers get by cpu / wall. Where the thread clock is missing
// cpu is the wall time.
func timed(f func()) (cpu, wall time.Duration) {
	runtime.LockOSThread()
	c0, ok0 := threadCPU()
	t0 := time.Now()
	f()
	wall = time.Since(t0)
	c1, ok1 := threadCPU()
	runtime.UnlockOSThread()
	if ok0 && ok1 && c1 >= c0 {
		return c1 - c0, wall
	}
	return wall, wall
}
