package linkem

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// line builds n nodes joined in a line with cfg on every link.
func line(t testing.TB, n int, cfg Config) (*Network, []*Node) {
	t.Helper()
	net := NewNetwork(1)
	t.Cleanup(func() { net.Close() })
	var nodes []*Node
	for i := range n {
		nd, err := net.AddNode(fmt.Sprintf("n%d", i), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i + 1)}))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
		if i > 0 {
			if _, err := net.AddLink(nodes[i-1].Name, nd.Name, cfg, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	return net, nodes
}

func listen(t testing.TB, n *Network, nd *Node, port uint16) *Conn {
	t.Helper()
	c, err := n.Listen(netip.AddrPortFrom(nd.Addr, port), 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo answers every datagram on c until it closes.
func echo(c *Conn) {
	go func() {
		b := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(b)
			if err != nil {
				return
			}
			c.WriteTo(b[:n], from)
		}
	}()
}

// TestRTTFourHops: a 4-hop path with 10 ms per link has an 80 ms round
// trip: none below it, and the median within 10 %. A starved machine adds
// its own delay to every round trip (the emulator's goroutine and the
// test's wake late), so the 10 % check is made on paired samples, as
// sim's TestFidelityRTT does: an identical path with 1 ms links in the
// same network is pinged at the same instants, and the median of the
// per-ping differences must be the configured 72 ms ± 8 ms.
func TestRTTFourHops(t *testing.T) {
	n, nodes := line(t, 5, Config{Delay: 10 * time.Millisecond})
	var fast []*Node
	for i := range 5 {
		nd, err := n.AddNode(fmt.Sprintf("m%d", i), netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}))
		if err != nil {
			t.Fatal(err)
		}
		fast = append(fast, nd)
		if i > 0 {
			one := Config{Delay: time.Millisecond}
			if _, err := n.AddLink(fast[i-1].Name, nd.Name, one, one); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv, fsrv := listen(t, n, nodes[4], 7), listen(t, n, fast[4], 7)
	echo(srv)
	echo(fsrv)
	cl, fcl := listen(t, n, nodes[0], 0), listen(t, n, fast[0], 0)
	if p := n.Path(nodes[0], nodes[4]); len(p) != 4 {
		t.Fatalf("path has %d hops, want 4", len(p))
	}
	ping := func(c *Conn, start time.Time, out *time.Duration, done chan<- error) {
		b := make([]byte, 64)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := c.ReadFrom(b); err != nil {
			done <- err
			return
		}
		*out = time.Since(start)
		done <- nil
	}
	var rtts, diffs []time.Duration
	for i := range 20 {
		var slow, quick time.Duration
		done := make(chan error, 2)
		start := time.Now()
		if _, err := cl.WriteTo([]byte{byte(i)}, srv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if _, err := fcl.WriteTo([]byte{byte(i)}, fsrv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		go ping(cl, start, &slow, done)
		go ping(fcl, start, &quick, done)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		rtts = append(rtts, slow)
		diffs = append(diffs, slow-quick)
	}
	slices.Sort(rtts)
	slices.Sort(diffs)
	want, diff := 80*time.Millisecond, 72*time.Millisecond
	med, dmed := rtts[len(rtts)/2], diffs[len(diffs)/2]
	t.Logf("RTT min %v median %v max %v (configured %v); paired difference median %v (configured %v)",
		rtts[0], med, rtts[len(rtts)-1], want, dmed, diff)
	if rtts[0] < want {
		t.Fatalf("RTT %v is below the configured %v", rtts[0], want)
	}
	if d := dmed - diff; d > want/10 || d < -want/10 {
		t.Fatalf("9 ms more per link adds %v to the round trip, not %v ± 10%% of %v", dmed, diff, want)
	}
}

// TestThroughput: a sender offering ~50 % more than a 10 Mbit/s link
// carries gets the link's rate through, within 10 %. The rate is read
// from the emulator's own clock: a fast second link after the slow one
// has a tap that sees each packet at the time the slow link delivered it
// (its scheduled arrival, the time a pcap would show), so neither a
// sender nor a receiver starved by a loaded machine shifts the figure.
// The receiver must still read every packet the network delivered.
func TestThroughput(t *testing.T) {
	const rate = 10_000_000
	n := NewNetwork(1)
	t.Cleanup(func() { n.Close() })
	var nodes []*Node
	for i := range 3 {
		nd, err := n.AddNode(fmt.Sprintf("n%d", i), netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	slow := Config{Bandwidth: rate, Delay: 5 * time.Millisecond, QueueLimit: 200 * time.Millisecond}
	if _, err := n.AddLink("n0", "n1", slow, slow); err != nil {
		t.Fatal(err)
	}
	fast, err := n.AddLink("n1", "n2", Config{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var arrivals []time.Time
	var sizes []int
	fast.Dirs[0].Tap(func(_ *Dir, at time.Time, _, _ netip.AddrPort, payload []byte, v Verdict) {
		mu.Lock()
		arrivals = append(arrivals, at)
		sizes = append(sizes, len(payload))
		mu.Unlock()
	})
	rx := listen(t, n, nodes[2], 9)
	tx := listen(t, n, nodes[0], 0)
	const size = 1200
	got := make(chan int, 1)
	stop := make(chan struct{})
	go func() {
		b := make([]byte, 2048)
		k := 0
		for {
			rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, _, err := rx.ReadFrom(b); err != nil {
				select {
				case <-stop:
					got <- k
					return
				default:
					continue
				}
			}
			k++
		}
	}()
	payload := make([]byte, size)
	// Offer 1.5× the link's rate by the clock, not by ticks: a sender that
	// wakes late sends what it owes, so the link's 200 ms queue stays full.
	perSec := float64(rate) * 1.5 / 8 / (size + 28)
	start := time.Now()
	end := start.Add(1500 * time.Millisecond)
	sent := 0
	for tick := time.NewTicker(10 * time.Millisecond); time.Now().Before(end); <-tick.C {
		for owed := int(time.Since(start).Seconds() * perSec); sent < owed; sent++ {
			tx.WriteTo(payload, rx.LocalAddr())
		}
	}
	time.Sleep(400 * time.Millisecond) // the queue drains
	close(stop)
	recv := <-got
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) < 100 {
		t.Fatalf("only %d packets crossed the link", len(arrivals))
	}
	// From the 10th packet to the last: the queue is full throughout.
	var bytes float64
	for _, k := range sizes[10:] {
		bytes += float64(k + 28)
	}
	span := arrivals[len(arrivals)-1].Sub(arrivals[9]).Seconds()
	bps := bytes * 8 / span
	c := n.Links()[0].Dirs[0].Counts()
	t.Logf("%.2f Mbit/s over %.2fs by the emulator's clock (link %g Mbit/s); sent %d, received %d; link counts %v",
		bps/1e6, span, rate/1e6, sent, recv, c.Packets)
	if math.Abs(bps-rate)/rate > 0.10 {
		t.Fatalf("throughput %.2f Mbit/s is not within 10%% of %g Mbit/s", bps/1e6, rate/1e6)
	}
	if c.Packets["queue_full"] == 0 {
		t.Fatalf("the sender never filled the queue: the test did not saturate the link")
	}
	if recv != len(arrivals) {
		t.Fatalf("the receiver read %d packets of the %d the link carried", recv, len(arrivals))
	}
}

// blast sends count datagrams over a one-link network shaped by cfg and
// returns which arrived (by sequence number).
func blast(t *testing.T, cfg Config, count int, seed uint64) []bool {
	t.Helper()
	n := NewNetwork(seed)
	t.Cleanup(func() { n.Close() })
	a, _ := n.AddNode("a", netip.MustParseAddr("10.0.0.1"))
	b, _ := n.AddNode("b", netip.MustParseAddr("10.0.0.2"))
	if _, err := n.AddLink("a", "b", cfg, cfg); err != nil {
		t.Fatal(err)
	}
	rx := listen(t, n, b, 9)
	tx := listen(t, n, a, 0)
	got := make([]bool, count)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			rx.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			k, _, err := rx.ReadFrom(buf)
			if err != nil {
				return
			}
			if k >= 4 {
				got[int(buf[0])<<24|int(buf[1])<<16|int(buf[2])<<8|int(buf[3])] = true
			}
		}
	}()
	for i := range count {
		tx.WriteTo([]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}, net.UDPAddrFromAddrPort(rx.addr))
		if i%256 == 255 {
			time.Sleep(time.Millisecond) // let the receiver drain its queue
		}
	}
	<-done
	return got
}

// TestBernoulliLoss: with loss p over N packets the observed loss lies
// within the binomial 99.99 % interval p ± 3.9·sqrt(p(1-p)/N), for
// several seeds.
func TestBernoulliLoss(t *testing.T) {
	const N, p = 5000, 0.1
	bound := 3.9 * math.Sqrt(p*(1-p)/N)
	for seed := uint64(1); seed <= 3; seed++ {
		got := blast(t, Config{Loss: p}, N, seed)
		lost := 0
		for _, ok := range got {
			if !ok {
				lost++
			}
		}
		obs := float64(lost) / N
		t.Logf("seed %d: lost %d of %d = %.4f (configured %.2f, bound ±%.4f)", seed, lost, N, obs, p, bound)
		if math.Abs(obs-p) > bound {
			t.Fatalf("observed loss %.4f outside %.2f ± %.4f", obs, p, bound)
		}
	}
}

// TestGilbertElliottLoss: the stationary loss rate and the mean length of
// loss bursts match the chain's (bursts of mean 1/R packets), where
// Bernoulli loss of the same rate would give bursts of ~1.2.
func TestGilbertElliottLoss(t *testing.T) {
	ge := &GilbertElliott{P: 0.05, R: 0.25, LossGood: 0, LossBad: 1}
	const N = 20000
	got := blast(t, Config{GE: ge}, N, 7)
	lost, bursts := 0, 0
	for i, ok := range got {
		if !ok {
			lost++
			if i == 0 || got[i-1] {
				bursts++
			}
		}
	}
	rate := float64(lost) / N
	want := ge.Rate()
	// Loss is correlated: the variance of the mean is inflated by
	// (1+λ)/(1-λ), λ = 1-P-R.
	lambda := 1 - ge.P - ge.R
	bound := 3.9 * math.Sqrt(want*(1-want)/N*(1+lambda)/(1-lambda))
	meanBurst := float64(lost) / float64(bursts)
	t.Logf("lost %d of %d = %.4f (stationary %.4f ± %.4f), %d bursts of mean %.2f (want %.2f)", lost, N, rate, want, bound, bursts, meanBurst, 1/ge.R)
	if math.Abs(rate-want) > bound {
		t.Fatalf("loss rate %.4f outside %.4f ± %.4f", rate, want, bound)
	}
	if math.Abs(meanBurst-1/ge.R)/(1/ge.R) > 0.15 {
		t.Fatalf("mean burst %.2f, want %.2f ± 15%%", meanBurst, 1/ge.R)
	}
}

// TestMTUAndDown: a packet over the MTU and packets on a down link are
// dropped and counted; on a ring, traffic takes the other way round.
func TestMTUAndDown(t *testing.T) {
	n, nodes := line(t, 4, Config{MTU: 1000, Delay: time.Millisecond})
	ring, err := n.AddLink(nodes[3].Name, nodes[0].Name, Config{Delay: 2 * time.Millisecond}, Config{Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if p := n.Path(nodes[0], nodes[3]); len(p) != 1 || p[0].Link != ring {
		t.Fatalf("shortest path to n3 should be the direct 2 ms link, got %d hops", len(p))
	}
	rx := listen(t, n, nodes[2], 9)
	tx := listen(t, n, nodes[0], 0)
	tx.WriteTo(make([]byte, 1001), rx.LocalAddr())
	first := n.Links()[0].Dirs[0]
	if c := first.Counts(); c.Packets["too_big"] != 1 {
		t.Fatalf("too-big not counted: %v", c.Packets)
	}
	n.SetLinkDown(n.Links()[1], true) // n1-n2: the way round goes n0-n3-n2
	if p := n.Path(nodes[0], nodes[2]); len(p) != 2 || p[0].Link != ring {
		t.Fatalf("with n1-n2 down the path should go round via n3")
	}
	tx.WriteTo([]byte("x"), rx.LocalAddr())
	rx.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, 16)
	if _, _, err := rx.ReadFrom(b); err != nil {
		t.Fatalf("rerouted packet not delivered: %v", err)
	}
	n.SetLinkDown(ring, true)
	if p := n.Path(nodes[0], nodes[2]); p != nil {
		t.Fatalf("partitioned, yet a path of %d hops", len(p))
	}
	tx.WriteTo([]byte("x"), rx.LocalAddr())
	if n.Stats().NoRoute.Load() != 1 {
		t.Fatalf("no-route drop not counted")
	}
}

// TestLongPathOneWait: a packet over 30 hops of 1 ms links (no bandwidth
// limit, no tap) waits in the scheduler once, for its delivery, and
// arrives no earlier than the 30 ms the path takes; a packet over a path
// with one shaped (bandwidth-limited) link waits once more, for that
// link. Before, every hop was a scheduler event: 30 per packet, which at
// 1,000 simulated routers made the scheduler's goroutine the bottleneck.
func TestLongPathOneWait(t *testing.T) {
	n, nodes := line(t, 31, Config{Delay: time.Millisecond})
	dst := listen(t, n, nodes[30], 7)
	src := listen(t, n, nodes[0], 0)
	const packets = 50
	start := time.Now()
	for i := range packets {
		if _, err := src.WriteTo([]byte{byte(i)}, dst.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, 64)
	dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range packets {
		if _, _, err := dst.ReadFrom(b); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if i == 0 {
			if took := time.Since(start); took < 30*time.Millisecond {
				t.Fatalf("first packet over 30 ms of links arrived after %v", took)
			}
		}
	}
	if got := n.Stats().Scheduled.Load(); got != packets {
		t.Fatalf("%d scheduler waits for %d packets over 30 unshaped hops, want one each", got, packets)
	}

	// One link in the middle limited to 100 Mbit/s: that hop is taken
	// at its time (the wire is a queue), so one more wait per packet.
	mid := n.Links()[15]
	for _, d := range mid.Dirs {
		d.Set(Config{Delay: time.Millisecond, Bandwidth: 100_000_000})
	}
	before := n.Stats().Scheduled.Load()
	for i := range packets {
		if _, err := src.WriteTo([]byte{byte(i)}, dst.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range packets {
		if _, _, err := dst.ReadFrom(b); err != nil {
			t.Fatalf("shaped path, packet %d: %v", i, err)
		}
	}
	if got := n.Stats().Scheduled.Load() - before; got != 2*packets {
		t.Fatalf("%d scheduler waits for %d packets over a path with one shaped link, want two each", got, packets)
	}
}

// BenchmarkLongPath: a datagram over 20 unshaped, untapped hops with no
// delay (each hop walked in one pass, as over the simulator's grid:
// ~20 hops a DHT packet at 1,000 routers), sent and received.
func BenchmarkLongPath(b *testing.B) {
	n, nodes := line(b, 21, Config{})
	dst := listen(b, n, nodes[20], 7)
	src := listen(b, n, nodes[0], 0)
	msg, buf := make([]byte, 1200), make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := src.WriteTo(msg, dst.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		if _, _, err := dst.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSchedulersShardedByDestination: delayed packets to different nodes
// wait in different schedulers (one lock and one goroutine each), and
// packets to one node in one, so that their order holds.
func TestSchedulersShardedByDestination(t *testing.T) {
	n, nodes := line(t, 3, Config{Delay: 200 * time.Millisecond})
	src := listen(t, n, nodes[1], 0)
	a, b := listen(t, n, nodes[0], 7), listen(t, n, nodes[2], 7)
	for range 3 {
		src.WriteTo([]byte{1}, a.LocalAddr())
		src.WriteTo([]byte{2}, b.LocalAddr())
	}
	busy := 0
	for _, sc := range n.scheds {
		if l := sc.Len(); l > 0 {
			busy++
			if l != 3 {
				t.Fatalf("a scheduler holds %d packets, want the 3 to one destination", l)
			}
		}
	}
	if busy != 2 {
		t.Fatalf("packets to 2 destinations wait in %d schedulers, want 2", busy)
	}
}
