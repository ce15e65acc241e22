package tunneltest

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gdpnet/gdpnet/tunnel"
	"github.com/gdpnet/gdpnet/tunnel/memnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEndpointsOnEmulatedLink(t *testing.T) {
	n := memnet.New(memnet.LinkConfig{Delay: 10 * time.Millisecond, Bandwidth: 10_000_000, MTU: 1300})
	defer n.Close()
	var got atomic.Int64
	a, err := Endpoint(n, netip.MustParseAddr("127.77.9.1"), tunnel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Endpoint(n, netip.MustParseAddr("127.77.9.2"), tunnel.Config{Handler: func(tunnel.Link, []byte) { got.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	l, err := a.Dial(ctx, b.Addr(), b.Name(), tunnel.KindRaw)
	if err != nil {
		t.Fatal(err)
	}
	// handshake (1 RTT) + control exchange (1.5 RTT) on a 20 ms RTT path
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Errorf("dial took %v on a 10 ms link", el)
	}
	if err := l.Send(make([]byte, 10000)); err != nil { // 9 fragments at MTU 1300
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for got.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got.Load() != 1 {
		t.Fatal("PDU not delivered")
	}
}
