// Package freeport hands tests loopback ports for daemons they start as
// processes, which are told their addresses in a config file before they
// bind them.
//
// A port found by binding 127.0.0.1:0 and closing the socket is the
// kernel's pick from its ephemeral range, and stays there for the next
// pick: between the test closing it and its daemon binding it, any socket
// bound to port 0 or connection opened by a test of another package
// running meanwhile can take it, and the daemon fails to start with
// "address already in use" (Session 16). The ports handed out here are
// below that range (ip_local_port_range), where the kernel never picks
// one; each is checked free for TCP and UDP when handed out, and a process
// never hands one out twice. Processes walk the range from random starting
// points, one port after another; two test binaries running at once (go
// test ./... runs cmd/gdp's and test/e2e's side by side) whose walks meet
// do not hand out the same port: each port handed out is reserved for the
// process's life by an exclusive lock on a file named after it (in
// os.TempDir()/gdpnet-freeport, released by the kernel when the process
// ends), so a port another process handed out and its daemon has not bound
// yet, or that a test stopped its daemon on to restart it there, is passed
// over (Session 16, review9).
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const lowest = 10000 // ports below are left to well-known and registered services

var (
	mu    sync.Mutex
	next  int // the next port to try; 0 before the first call
	limit int // the first port of the kernel's ephemeral range
	// held are the reservation files of the ports handed out, open (and
	// locked) until the process ends.
	held []*os.File
)

// lockDir holds one file per port reserved by some process.
func lockDir() string { return filepath.Join(os.TempDir(), "gdpnet-freeport") }

// reserve takes port for this process's life (an exclusive flock on its
// file, which the kernel releases when the process ends, however it ends),
// or reports that another process holds it. A lock directory that cannot
// be made reserves nothing and refuses nothing: the bind checks remain.
func reserve(port int) bool {
	dir := lockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	held = append(held, f)
	return true
}

// ephemeralStart reads the first port of the kernel's ephemeral range
// (32768 when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowest+1000 {
		return 32768
	}
	return n
}

// free reports whether port is free on 127.0.0.1 for both TCP and UDP.
func free(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	return c.Close() == nil
}

// Port returns a port free on 127.0.0.1 for TCP and UDP, below the
// kernel's ephemeral range, not handed out before by this process nor held
// by another process that handed it out (reserve).
func Port(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if next == 0 {
		limit = ephemeralStart()
		next = lowest + rand.IntN(limit-lowest)
	}
	for range limit - lowest {
		p := next
		if next++; next >= limit {
			next = lowest
		}
		if free(p) && reserve(p) {
			return p
		}
	}
	t.Fatalf("freeport: no free port in [%d, %d)", lowest, limit)
	return 0
}

// Addr is Port as "127.0.0.1:port".
func Addr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", Port(t))
}
