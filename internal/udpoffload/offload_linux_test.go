package udpoffload

import (
	"encoding/binary"
	"net"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func groCmsg(size uint32) []byte {
	oob := make([]byte, GROCmsgLen)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], size)
	return oob
}

// TestGROSegmentSize: the segment size is found after another control
// message, and malformed control data (truncated, a length past the
// buffer, a header too short) yields 0 rather than a panic or a wrong size.
func TestGROSegmentSize(t *testing.T) {
	if got := GROSegmentSize(groCmsg(1300)); got != 1300 {
		t.Fatalf("GRO size %d, want 1300", got)
	}
	other := PutSegmentCmsg(make([]byte, SegmentCmsgLen), 999) // a UDP_SEGMENT message first
	if got := GROSegmentSize(append(append([]byte{}, other...), groCmsg(200)...)); got != 200 {
		t.Fatalf("GRO size after another message %d, want 200", got)
	}
	if got := GROSegmentSize(other); got != 0 {
		t.Fatalf("a UDP_SEGMENT message read as GRO size %d", got)
	}
	full := groCmsg(1300)
	for n := 0; n < unix.CmsgLen(4); n++ {
		if got := GROSegmentSize(full[:n]); got != 0 {
			t.Fatalf("truncated to %d bytes: size %d", n, got)
		}
	}
	bad := groCmsg(1300)
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).SetLen(len(bad) + 100)
	if got := GROSegmentSize(bad); got != 0 {
		t.Fatalf("length past the buffer: size %d", got)
	}
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).SetLen(2)
	if got := GROSegmentSize(bad); got != 0 {
		t.Fatalf("header too short: size %d", got)
	}
}

// TestEnableOnLoopback: a loopback UDP socket on this kernel has both.
func TestEnableOnLoopback(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gso, gro := Enable(c)
	if !gso || !gro {
		t.Skipf("offload unavailable here (gso %v, gro %v)", gso, gro)
	}
}
