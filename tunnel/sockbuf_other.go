//go:build !linux

package tunnel

import "net"

func socketBuffers(c *net.UDPConn, size int) (rcv, snd int, err error) {
	c.SetReadBuffer(size)
	c.SetWriteBuffer(size)
	return size, size, nil
}
