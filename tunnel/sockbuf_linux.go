package tunnel

import (
	"net"
	"syscall"
)

// socketBuffers asks for size-byte receive and send buffers on c and
// returns what the kernel granted (Linux reports twice the usable size).
func socketBuffers(c *net.UDPConn, size int) (rcv, snd int, err error) {
	c.SetReadBuffer(size)
	c.SetWriteBuffer(size)
	sc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var gerr error
	err = sc.Control(func(fd uintptr) {
		rcv, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		if gerr == nil {
			snd, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		}
	})
	if err == nil {
		err = gerr
	}
	return rcv / 2, snd / 2, err
}
