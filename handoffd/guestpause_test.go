package handoffd

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// guestTicker is a guest's clock of its own progress: a loop that writes
// "T n" to its second serial port (ttyS1) about every millisecond. The
// guest's own clock stops with the VM, so it cannot see its pause; the
// host can: tickLog timestamps every line as it arrives, from the source's
// QEMU and then from the destination's, and the longest gap between two
// consecutive ticks is the pause as the guest's users see it.
const guestTicker = `( exec 3>/dev/ttyS1; j=0; while :; do j=$((j+1)); echo "T $j" >&3; usleep 1000; done ) &
`

// tickSerial is the QEMU arguments of the ticker's port: a second 16550
// on a unix socket in dir. Source and destination need the same devices
// (the device state names them), each its own socket.
func tickSerial(dir string) []string {
	return []string{"-chardev", fmt.Sprintf("socket,id=ticks,path=%s,server=on,wait=off", filepath.Join(dir, "ticks.sock")), "-serial", "chardev:ticks"}
}

// tick is one line of the guest's ticker as the host saw it.
type tick struct {
	n  int
	at time.Time
}

// tickLog reads a QEMU's ticker port and timestamps every tick.
type tickLog struct {
	mu    sync.Mutex
	ticks []tick
	conn  net.Conn
	done  chan struct{}
}

// openTicks connects to the ticker socket in dir as soon as it exists
// (polling every millisecond, up to d): a QEMU's socket drops what the
// guest writes before a client connects.
func openTicks(dir string, d time.Duration) (*tickLog, error) {
	sock := filepath.Join(dir, "ticks.sock")
	deadline := time.Now().Add(d)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			l := &tickLog{conn: c, done: make(chan struct{})}
			go l.read()
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("ticker %s: %w", sock, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *tickLog) read() {
	defer close(l.done)
	sc := bufio.NewScanner(l.conn)
	for sc.Scan() {
		now := time.Now()
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != "T" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimRight(f[1], "\r"))
		if err != nil {
			continue
		}
		l.mu.Lock()
		l.ticks = append(l.ticks, tick{n, now})
		l.mu.Unlock()
	}
}

// close stops reading.
func (l *tickLog) close() {
	l.conn.Close()
	<-l.done
}

// since returns the ticks seen at or after t0.
func (l *tickLog) since(t0 time.Time) []tick {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.ticks), func(i int) bool { return !l.ticks[i].at.Before(t0) })
	return append([]tick(nil), l.ticks[i:]...)
}

// waitTick waits up to d for a tick numbered after n; it returns the first.
func (l *tickLog) waitTick(n int, d time.Duration) (tick, error) {
	deadline := time.Now().Add(d)
	for {
		l.mu.Lock()
		for i := len(l.ticks) - 1; i >= 0 && l.ticks[i].n > n; i-- {
			if i == 0 || l.ticks[i-1].n <= n {
				t := l.ticks[i]
				l.mu.Unlock()
				return t, nil
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			return tick{}, fmt.Errorf("no tick after %d within %s", n, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// guestPause is a handoff's pause as the guest saw it.
type guestPause struct {
	// Gap: from the last tick the source's QEMU delivered to the first the
	// destination's did — the VM's pause plus at most one tick interval.
	Gap time.Duration
	// Last, First: those ticks' numbers; First == Last+1 when no tick was
	// lost between them (the guest's count continues across the handoff).
	Last, First int
	// Interval: the mean time between two ticks at the source (the
	// measure's resolution).
	Interval time.Duration
}

func (p guestPause) String() string {
	return fmt.Sprintf("guest pause %.3fs (ticks %d -> %d, tick interval %.1f ms)", p.Gap.Seconds(), p.Last, p.First, float64(p.Interval.Microseconds())/1e3)
}

// pauseOf reads the guest's pause from its ticks at the source (up to the
// stop) and the destination (from the resume): the gap between the
// source's last tick and the destination's first tick after it.
func pauseOf(src, dst *tickLog, from time.Time) (guestPause, error) {
	s := src.since(from)
	if len(s) < 2 {
		return guestPause{}, fmt.Errorf("the source delivered %d ticks", len(s))
	}
	last := s[len(s)-1]
	first, err := dst.waitTick(last.n, 60*time.Second)
	if err != nil {
		return guestPause{}, fmt.Errorf("destination: %w", err)
	}
	if first.n != last.n+1 {
		return guestPause{}, fmt.Errorf("ticks %d to %d lost between the source's last and the destination's first: the gap would be overstated", last.n+1, first.n-1)
	}
	// The mean: on a loaded host the ticks arrive in bursts.
	interval := last.at.Sub(s[0].at) / time.Duration(last.n-s[0].n)
	return guestPause{Gap: first.at.Sub(last.at), Last: last.n, First: first.n, Interval: interval}, nil
}

// checkTicker fails tb unless the guest's ticker runs: ticks arrive.
func checkTicker(tb testing.TB, l *tickLog) {
	tb.Helper()
	if _, err := l.waitTick(0, 30*time.Second); err != nil {
		tb.Fatalf("the guest's ticker: %v", err)
	}
}
