package tunnel

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload: one sendmsg carries many equal-sized frames for
// one destination (UDP_SEGMENT, "GSO"), and one recvmsg returns many frames
// coalesced by the kernel (UDP_GRO). On loopback and on real NICs this is
// what makes a datagram tunnel cheaper per packet than one syscall per
// datagram; ReadBatch/WriteBatch (recvmmsg/sendmmsg) then batch these
// super-buffers.

// enableOffload switches on UDP_GRO for receiving and reports whether GSO
// sends are possible on c.
func enableOffload(c *net.UDPConn) (gso, gro bool) {
	sc, err := c.SyscallConn()
	if err != nil {
		return false, false
	}
	sc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return gso, gro
}

// setDontFragment makes the kernel send raw frames with DF set and never
// fragment them at the IP layer: the tunnel fragments hop by hop itself, and
// a frame over the path MTU should fail loudly (EMSGSIZE, counted and
// logged) rather than travel as IP fragments that any loss destroys.
func setDontFragment(c *net.UDPConn) {
	sc, err := c.SyscallConn()
	if err != nil {
		return
	}
	sc.Control(func(fd uintptr) {
		// one of the two fails on a single-stack socket; both matter on a
		// dual-stack one
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
	})
}

// segmentCmsgLen is the control-message space of a UDP_SEGMENT option.
var segmentCmsgLen = unix.CmsgSpace(2)

// putSegmentCmsg writes a UDP_SEGMENT control message for segment size
// size into oob (segmentCmsgLen bytes) and returns it.
func putSegmentCmsg(oob []byte, size int) []byte {
	oob = oob[:segmentCmsgLen]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
	return oob
}

// groCmsgLen is room for the UDP_GRO control message on receive.
var groCmsgLen = unix.CmsgSpace(4)

// groSegmentSize finds the UDP_GRO segment size in received control
// messages; 0 if the datagram was not coalesced.
func groSegmentSize(oob []byte) int {
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
