package udpoffload

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Enable switches on UDP_GRO for receiving on c and reports whether GSO
// sends are possible on it and whether GRO is now on.
func Enable(c *net.UDPConn) (gso, gro bool) {
	sc, err := c.SyscallConn()
	if err != nil {
		return false, false
	}
	_ = sc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return gso, gro
}

// SegmentCmsgLen is the control-message space of a UDP_SEGMENT option.
var SegmentCmsgLen = unix.CmsgSpace(2)

// PutSegmentCmsg writes a UDP_SEGMENT control message for segment size
// size into oob (at least SegmentCmsgLen bytes) and returns it.
func PutSegmentCmsg(oob []byte, size int) []byte {
	oob = oob[:SegmentCmsgLen]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
	return oob
}

// GROCmsgLen is room for the UDP_GRO control message on receive.
var GROCmsgLen = unix.CmsgSpace(4)

// GROSegmentSize finds the UDP_GRO segment size in received control
// messages; 0 if the datagram was not coalesced (or oob is malformed).
func GROSegmentSize(oob []byte) int {
	hl := unix.CmsgLen(0)
	for len(oob) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hl || l > len(oob) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && l >= hl+4 {
			return int(binary.NativeEndian.Uint32(oob[hl:]))
		}
		oob = oob[min(unix.CmsgSpace(l-hl), len(oob)):]
	}
	return 0
}
