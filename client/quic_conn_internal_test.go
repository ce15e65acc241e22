package client

import (
	"net"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// readFrom reads one packet from n and checks its length.
func readFrom(t *testing.T, n *nameConn, buf []byte, want int) net.Addr {
	k, from, err := n.ReadFrom(buf)
	if err != nil || k != want {
		t.Fatalf("ReadFrom: %d bytes, %v; want %d", k, err, want)
	}
	return from
}

// TestNameConnFromAddr: every packet read carries its own source's
// address, also when packets from two names interleave (the address of
// the last source is reused, never returned for another name), and it
// prints as the name does.
func TestNameConnFromAddr(t *testing.T) {
	n := newNameConn(nil, pdu.Name{1}, 16)
	buf := make([]byte, 64)
	for _, src := range []pdu.Name{{2}, {2}, {3}, {2}, {3}, {3}} {
		n.deliver(src, []byte("packet"))
		from := readFrom(t, n, buf, 6)
		a, ok := from.(NameAddr)
		if !ok || a.Name != src {
			t.Fatalf("packet from %v read as from %v", src, from)
		}
		if from.String() != src.String() || from.Network() != "gdp" {
			t.Fatalf("address %q/%q, want %q/gdp", from.String(), from.Network(), src.String())
		}
	}
	if got := (NameAddr{Name: pdu.Name{4}}).String(); got != (pdu.Name{4}).String() {
		t.Fatalf("a NameAddr made by a user prints %q", got)
	}
}

// TestNameConnReadAllocs: reading a QUIC packet over names, and the
// address comparison quic-go makes on every packet it receives (the two
// addresses' Strings), allocate nothing (they were 5 allocations a
// packet: the address, and two for each printed form).
func TestNameConnReadAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instruments allocations")
	}
	n := newNameConn(nil, pdu.Name{1}, 16)
	src := pdu.Name{2}
	remote := readAfter(t, n, src) // the connection's remote address: its first packet's
	payload := make([]byte, 1200)
	buf := make([]byte, 1500)
	read := func() {
		n.deliver(src, payload)
		from := readFrom(t, n, buf, len(payload))
		if from.String() != remote.String() {
			t.Fatalf("from %v, want %v", from, remote)
		}
	}
	for range 10 {
		read()
	}
	if avg := testing.AllocsPerRun(1000, read); avg > 0 {
		t.Fatalf("%.2f allocations per packet read", avg)
	}
}

func readAfter(t *testing.T, n *nameConn, src pdu.Name) net.Addr {
	n.deliver(src, []byte{0x40})
	return readFrom(t, n, make([]byte, 8), 1)
}
