package freeport

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPortBelowEphemeralAndFresh: every port handed out is below the
// kernel's ephemeral range, bindable for TCP and UDP, and never handed out
// twice, even once released.
func TestPortBelowEphemeralAndFresh(t *testing.T) {
	seen := map[int]bool{}
	start := ephemeralStart()
	for range 200 {
		p := Port(t)
		if p < lowest || p >= start {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, start)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
		c.Close()
	}
}

// TestPortSkipsBound: a port someone holds (TCP or UDP) is passed over.
func TestPortSkipsBound(t *testing.T) {
	p := Port(t)
	mu.Lock()
	held := next // the one Port tries next
	mu.Unlock()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(held))
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", held, err)
	}
	defer c.Close()
	if q := Port(t); q == held || q == p {
		t.Fatalf("handed out %d, held over UDP (or handed out before)", q)
	}
}

// TestPortReservedAcrossProcesses (review9): a port another test process
// handed out is not handed out here while that process lives, though
// nothing has bound it yet (its daemon still starting, or stopped to be
// restarted on it); once that process ends, the port can be reserved
// again. The other process is this test binary run again.
func TestPortReservedAcrossProcesses(t *testing.T) {
	if os.Getenv("GDPNET_FREEPORT_CHILD") == "1" {
		fmt.Println(Port(t))
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
		return
	}
	Port(t) // the walk's start set
	cmd := exec.Command(os.Args[0], "-test.run=^TestPortReservedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "GDPNET_FREEPORT_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("the child process handed out no port: %v", err)
	}
	theirs, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("the child process wrote %q", line)
	}
	mu.Lock()
	next = theirs // our walk reaches the child's port next
	mu.Unlock()
	if mine := Port(t); mine == theirs {
		t.Fatalf("port %d handed out here while the child process holds it (free to bind: nothing bound it yet)", mine)
	}
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child process: %v", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child process did not end")
	}
	mu.Lock()
	ok := reserve(theirs)
	mu.Unlock()
	if !ok {
		t.Fatalf("port %d still reserved after the process holding it ended", theirs)
	}
}
