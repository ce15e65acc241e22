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
//
// It dirties little RAM: every step is a shell builtin (echo, arithmetic,
// and for the sleep `read -t` on a FIFO nobody writes — busybox's usleep
// is a forked applet, and a fork every tick dirtied RAM faster than
// 3 MB/s, so QEMU's live migration of the guest never converged at
// 25 Mbit/s). guestSleepFIFO must be made first (mkfifo).
const guestTicker = `( exec 3>/dev/ttyS1 4<>` + guestSleepFIFO + `; j=0; while :; do j=$((j+1)); echo "T $j" >&3; read -t 0.001 x <&4; done ) &
`

// guestSleepFIFO is the FIFO the guest's loops sleep on without a fork
// (read -t N on it: nothing ever arrives).
const guestSleepFIFO = "/tmp/sleep.fifo"

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
	// frag is the first line that was not a whole tick, and when it came:
	// at a destination, the rest of a tick the guest had begun to write
	// at the source when the VM stopped (its "T 12" there, "34" here).
	frag   string
	fragAt time.Time
	conn   net.Conn
	done   chan struct{}
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
		line := strings.TrimRight(sc.Text(), "\r")
		f := strings.Fields(line)
		n, err := 0, error(nil)
		if len(f) == 2 && f[0] == "T" {
			n, err = strconv.Atoi(f[1])
		}
		l.mu.Lock()
		if len(f) == 2 && f[0] == "T" && err == nil {
			l.ticks = append(l.ticks, tick{n, now})
		} else if l.fragAt.IsZero() { // even an empty one: the split fell before the newline
			l.frag, l.fragAt = line, now
		}
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
	end := first.at
	if first.n == last.n+2 {
		// Tick n+1 split across the handoff: its start went out of the
		// source's serial port before the stop, its rest out of the
		// destination's after the resume, as the destination's first
		// line. That line's arrival ends the pause.
		dst.mu.Lock()
		frag, fragAt := dst.frag, dst.fragAt
		dst.mu.Unlock()
		if !fragAt.IsZero() && !fragAt.After(first.at) && strings.HasSuffix(fmt.Sprintf("T %d", last.n+1), frag) {
			first, end = tick{last.n + 1, fragAt}, fragAt
		}
	}
	if first.n != last.n+1 {
		return guestPause{}, fmt.Errorf("ticks %d to %d lost between the source's last and the destination's first: the gap would be overstated", last.n+1, first.n-1)
	}
	// The mean: on a loaded host the ticks arrive in bursts.
	interval := last.at.Sub(s[0].at) / time.Duration(last.n-s[0].n)
	return guestPause{Gap: end.Sub(last.at), Last: last.n, First: first.n, Interval: interval}, nil
}

// checkTicker fails tb unless the guest's ticker runs: ticks arrive.
func checkTicker(tb testing.TB, l *tickLog) {
	tb.Helper()
	if _, err := l.waitTick(0, 30*time.Second); err != nil {
		tb.Fatalf("the guest's ticker: %v", err)
	}
}

// TestPauseOfSplitTick: the pause is read from the ticks whole; a tick the
// guest had begun to write at the source when it stopped and finished at
// the destination (its line split across the two serial ports) ends the
// pause where its rest arrives, and no tick is counted lost; a tick truly
// lost, or a first line at the destination that is not that tick's rest,
// still fails the measure.
func TestPauseOfSplitTick(t *testing.T) {
	feed := func(text string, last int) *tickLog {
		a, b := net.Pipe()
		l := &tickLog{conn: b, done: make(chan struct{})}
		go l.read()
		go func() { a.Write([]byte(text)) }()
		if _, err := l.waitTick(last-1, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); l.close() })
		return l
	}
	from := time.Now()
	for _, c := range []struct {
		name      string
		src, dst  string
		srcLast   int
		dstLast   int
		first     int
		fromFrag  bool
		wantError bool
	}{
		{name: "whole", src: "T 1\nT 2\nT 3\n", dst: "T 4\nT 5\n", srcLast: 3, dstLast: 5, first: 4},
		{name: "split in the number", src: "T 1\nT 2\nT 3\nT 1", dst: "4\nT 5\nT 6\n", srcLast: 3, dstLast: 6, first: 4, fromFrag: true},
		{name: "split before the newline", src: "T 1\nT 2\nT 3\nT 4", dst: "\nT 5\nT 6\n", srcLast: 3, dstLast: 6, first: 4, fromFrag: true},
		{name: "a tick lost", src: "T 1\nT 2\nT 3\n", dst: "T 5\nT 6\n", srcLast: 3, dstLast: 6, wantError: true},
		{name: "a first line not the tick's rest", src: "T 1\nT 2\nT 3\n", dst: "9\nT 5\nT 6\n", srcLast: 3, dstLast: 6, wantError: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, dst := feed(c.src, c.srcLast), feed(c.dst, c.dstLast)
			p, err := pauseOf(src, dst, from)
			if c.wantError {
				if err == nil {
					t.Fatalf("measured %v, want an error", p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Last != c.srcLast || p.First != c.first {
				t.Fatalf("ticks %d -> %d, want %d -> %d", p.Last, p.First, c.srcLast, c.first)
			}
			s := src.since(from)
			end := dst.since(from)[0].at
			if c.fromFrag {
				end = dst.fragAt
			}
			if want := end.Sub(s[len(s)-1].at); p.Gap != want {
				t.Fatalf("gap %v, want %v (to the %s)", p.Gap, want, map[bool]string{true: "fragment", false: "first whole tick"}[c.fromFrag])
			}
		})
	}
}
