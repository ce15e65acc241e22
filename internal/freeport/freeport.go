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
// points, one port after another, so two test binaries running at once
// meet only if one's walk reaches the other's.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const lowest = 10000 // ports below are left to well-known and registered services

var (
	mu    sync.Mutex
	next  int // the next port to try; 0 before the first call
	limit int // the first port of the kernel's ephemeral range
)

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
// kernel's ephemeral range, not handed out before by this process.
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
		if free(p) {
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
