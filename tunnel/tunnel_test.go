package tunnel

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sizesToTest steps through 1..MaxPDU and adds every boundary a PDU can
// straddle: datagram capacity, raw fragment sizes, the uint16 limit.
func sizesToTest(chunk int) []int {
	set := map[int]bool{}
	for s := 1; s <= MaxPDU; s += 997 {
		set[s] = true
	}
	for _, b := range []int{1, 2, 75, 76, 77, 1000, 1100, 1150, 1200, 1250, 1300, 1350, 1400, 1420, 1452, 65535, MaxPDU} {
		for d := -2; d <= 2; d++ {
			set[b+d] = true
		}
	}
	for k := 1; k*chunk <= MaxPDU+chunk; k++ {
		for d := -1; d <= 1; d++ {
			set[k*chunk+d] = true
		}
	}
	var out []int
	for s := range set {
		if s >= 1 && s <= MaxPDU {
			out = append(out, s)
		}
	}
	return out
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

func TestEverySize(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		// mod gets the subtest's t: a helper that skips (no IPv6) must
		// skip the subtest, not call SkipNow on the parent from here.
		mod func(testing.TB, *Config)
	}{
		{"quic", KindQUIC, nil},
		{"raw", KindRaw, nil},
		{"raw without gso/gro", KindRaw, func(_ testing.TB, c *Config) { c.DisableOffload = true }},
		{"raw over ipv6", KindRaw, func(t testing.TB, c *Config) { c.Conn, c.Raw = loopbackUDP6(t), loopbackUDP6(t) }},
	}
	for _, tc := range tests {
		kind := tc.kind
		t.Run(tc.name, func(t *testing.T) {
			mtu := 1452
			mod := func(c *Config) {
				c.RawMTU = mtu
				if tc.mod != nil {
					tc.mod(t, c)
				}
			}
			a := newTestNode(t, true, mod)
			b := newTestNode(t, true, mod)
			la, lb := pair(t, a, b, kind)
			if la.Peer() != b.id.Name || lb.Peer() != a.id.Name {
				t.Fatal("peers do not know each other's names")
			}
			sizes := sizesToTest(mtu - frameOverhead)
			// both directions, one PDU in flight at a time: datagrams are
			// unreliable by design, and this checks sizes, not queues
			for i, n := range sizes {
				p := pattern(n, i)
				if err := la.Send(p); err != nil {
					t.Fatalf("a→b size %d: %v", n, err)
				}
				b.sink.waitOrReport(t, i+1, 5*time.Second, sizes)
				if err := lb.Send(p); err != nil {
					t.Fatalf("b→a size %d: %v", n, err)
				}
				a.sink.waitOrReport(t, i+1, 5*time.Second, sizes)
			}
			for _, s := range []*sink{a.sink, b.sink} {
				got := map[string]bool{}
				for _, p := range s.got {
					got[string(p)] = true
				}
				for i, n := range sizes {
					if !got[string(pattern(n, i))] {
						t.Errorf("size %d not delivered intact", n)
					}
				}
			}
			if d := b.ep.Stats().Drops; len(d) != 0 {
				t.Errorf("drops on a clean loopback: %v", d)
			}
		})
	}
}

func TestSendRejectsBadSizes(t *testing.T) {
	a := newTestNode(t, false, nil)
	b := newTestNode(t, false, nil)
	la, _ := pair(t, a, b, KindQUIC)
	for _, n := range []int{0, MaxPDU + 1} {
		if err := la.Send(make([]byte, n)); err != ErrTooBig {
			t.Errorf("send %d bytes: err %v, want ErrTooBig", n, err)
		}
	}
	la.Close()
	<-la.Done()
	if err := la.Send([]byte("x")); err != ErrClosed {
		t.Errorf("send after close: %v", err)
	}
}

var _ = bytes.Equal
var _ = fmt.Sprint
