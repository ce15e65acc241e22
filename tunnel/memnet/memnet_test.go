package memnet

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	hostA = netip.MustParseAddr("127.77.0.1")
	hostB = netip.MustParseAddr("127.77.0.2")
)

func pairOn(t *testing.T, n *Network) (*Conn, *Conn) {
	t.Helper()
	a, err := n.Listen(netip.AddrPortFrom(hostA, 0), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Listen(netip.AddrPortFrom(hostB, 0), 0)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestDeliveryAndAddresses(t *testing.T) {
	n := New(LinkConfig{})
	defer n.Close()
	a, b := pairOn(t, n)
	if _, err := a.WriteTo([]byte("hello"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	k, from, err := b.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "hello" || from.String() != a.LocalAddr().String() {
		t.Fatalf("got %q from %v, %v", buf[:k], from, err)
	}
	if _, err := n.Listen(a.addr, 0); err == nil {
		t.Fatal("listened twice on one address")
	}
}

func TestShaping(t *testing.T) {
	tests := []struct {
		name      string
		cfg       LinkConfig
		size      int
		count     int
		wantMin   int // packets delivered at least
		wantMax   int
		minTime   time.Duration // first packet not before
		totalTime time.Duration // all delivered not before (bandwidth)
	}{
		{"perfect", LinkConfig{}, 100, 200, 200, 200, 0, 0},
		{"delay", LinkConfig{Delay: 30 * time.Millisecond}, 100, 10, 10, 10, 30 * time.Millisecond, 0},
		{"loss 30%", LinkConfig{Loss: 0.3}, 100, 1000, 600, 800, 0, 0},
		{"down", LinkConfig{Down: true}, 100, 10, 0, 0, 0, 0},
		{"mtu", LinkConfig{MTU: 1000}, 1001, 10, 0, 0, 0, 0},
		// 100 × 1000 B at 8 Mbit/s ≈ 100 ms on the wire
		{"bandwidth", LinkConfig{Bandwidth: 8_000_000, QueueLimit: time.Second}, 972, 100, 100, 100, 0, 90 * time.Millisecond},
		// a burst sent in one instant: each 1000 B packet takes 1 ms at that
		// rate, so a 10 ms queue admits the packets starting at 0..10 ms; the
		// rest tail-drop
		{"queue limit", LinkConfig{Bandwidth: 8_000_000, QueueLimit: 10 * time.Millisecond}, 972, 100, 11, 11, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := New(LinkConfig{})
			defer n.Close()
			a, b := pairOn(t, n)
			n.SetPath(hostA, hostB, tc.cfg)
			// The burst leaves in one instant, however the sending loop is
			// scheduled on a loaded machine: the shaping (queue, bandwidth,
			// delay) then depends on no scheduling, only delivery does.
			start := time.Now()
			n.now = func() time.Time { return start }
			for i := 0; i < tc.count; i++ {
				a.WriteTo(make([]byte, tc.size), b.LocalAddr())
			}
			got, first, last := 0, time.Duration(0), time.Duration(0)
			buf := make([]byte, 2000)
			for {
				// Wait long for what must come (a loaded machine may run the
				// scheduler late), briefly for anything beyond it.
				wait := 150 * time.Millisecond
				if got < tc.wantMin {
					wait = 10 * time.Second
				}
				b.SetReadDeadline(time.Now().Add(wait))
				if _, _, err := b.ReadFrom(buf); err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatal(err)
					}
					break
				}
				if got == 0 {
					first = time.Since(start)
				}
				last = time.Since(start)
				got++
			}
			if got < tc.wantMin || got > tc.wantMax {
				t.Errorf("delivered %d, want %d..%d", got, tc.wantMin, tc.wantMax)
			}
			if got > 0 && first < tc.minTime {
				t.Errorf("first packet after %v, want ≥ %v", first, tc.minTime)
			}
			if last < tc.totalTime {
				t.Errorf("last packet after %v, want ≥ %v", last, tc.totalTime)
			}
		})
	}
}

func TestJitterReorders(t *testing.T) {
	n := New(LinkConfig{Delay: 5 * time.Millisecond, Jitter: 5 * time.Millisecond})
	defer n.Close()
	a, b := pairOn(t, n)
	for i := 0; i < 200; i++ {
		a.WriteTo([]byte{byte(i)}, b.LocalAddr())
	}
	buf := make([]byte, 10)
	prev, reordered := -1, 0
	for i := 0; i < 200; i++ {
		b.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := b.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
		if int(buf[0]) < prev {
			reordered++
		}
		prev = int(buf[0])
	}
	if reordered == 0 {
		t.Error("jitter never reordered packets")
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	n := New(LinkConfig{})
	a, _ := pairOn(t, n)
	done := make(chan error)
	go func() {
		_, _, err := a.ReadFrom(make([]byte, 10))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	n.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := a.WriteTo([]byte("x"), a.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func BenchmarkDelivery(b *testing.B) {
	n := New(LinkConfig{})
	defer n.Close()
	a, _ := n.Listen(netip.AddrPortFrom(hostA, 0), 4096)
	c, _ := n.Listen(netip.AddrPortFrom(hostB, 0), 4096)
	msg := make([]byte, 1200)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		a.WriteTo(msg, c.LocalAddr())
		c.ReadFrom(buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// Thousands of endpoints on one network, every packet delayed: the
// simulator's shape.
func TestManyNodes(t *testing.T) {
	const nodes = 2000
	n := New(LinkConfig{Delay: 2 * time.Millisecond, Jitter: time.Millisecond})
	defer n.Close()
	conns := make([]*Conn, nodes)
	for i := range conns {
		ip := netip.AddrFrom4([4]byte{127, 77, byte(i / 250), byte(1 + i%250)})
		c, err := n.Listen(netip.AddrPortFrom(ip, 9000), 16)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	start := time.Now()
	for i, c := range conns {
		c.WriteTo([]byte{byte(i)}, conns[(i+1)%nodes].LocalAddr())
	}
	buf := make([]byte, 10)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, from, err := c.ReadFrom(buf)
		if err != nil || k != 1 || from.String() != conns[(i+nodes-1)%nodes].LocalAddr().String() {
			t.Fatalf("node %d: %v %v", i, from, err)
		}
	}
	// The delays overlap: one after the other they would take nodes × 2 ms
	// = 4 s. (An absolute bound of 1 s failed under -race on a loaded
	// machine at 1.05 s.)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("%d delayed packets took %v: delays do not overlap", nodes, el)
	}
	if got := n.Stats().Delivered.Load(); got != nodes {
		t.Errorf("delivered %d", got)
	}
}

// BenchmarkDelayedDelivery: throughput of the delay scheduler with many
// senders, the simulator's hot path. pkts/s counts deliveries (what the
// receiver read, from the start to the last one), not enqueues; loss% is
// what never arrived.
func BenchmarkDelayedDelivery(b *testing.B) {
	n := New(LinkConfig{Delay: time.Millisecond})
	defer n.Close()
	a, _ := n.Listen(netip.AddrPortFrom(hostA, 0), 1<<16)
	c, _ := n.Listen(netip.AddrPortFrom(hostB, 0), 1<<16)
	var got, last atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			got.Add(1)
			last.Store(time.Now().UnixNano())
		}
	}()
	msg := make([]byte, 1200)
	b.ReportAllocs()
	start := time.Now()
	sent := 0
	for b.Loop() {
		a.WriteTo(msg, c.LocalAddr())
		sent++
	}
	b.StopTimer()
	// Wait for the deliveries still in the delay queue: until all arrived
	// or nothing arrived for 100 ms.
	for prev := int64(-1); got.Load() < int64(sent) && got.Load() != prev; {
		prev = got.Load()
		time.Sleep(100 * time.Millisecond)
	}
	c.Close()
	<-done
	d := got.Load()
	b.ReportMetric(100*float64(int64(sent)-d)/float64(sent), "loss%")
	el := time.Unix(0, last.Load()).Sub(start)
	if d == 0 || el <= 0 {
		b.ReportMetric(0, "pkts/s")
		b.Errorf("no packet delivered of %d sent", sent)
		return
	}
	b.ReportMetric(float64(d)/el.Seconds(), "pkts/s")
}
