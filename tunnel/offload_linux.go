package tunnel

import (
	"net"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload (internal/udpoffload): the raw tunnel sends
// frames for one destination in UDP_SEGMENT super-buffers and receives
// coalesced ones with UDP_GRO; ReadBatch/WriteBatch (recvmmsg/sendmmsg)
// then batch these super-buffers.

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
