package main

import (
	"net"

	"golang.org/x/sys/unix"
)

// probeOffload asks the kernel, on a throwaway loopback UDP socket, whether
// UDP_SEGMENT (GSO) and UDP_GRO exist — the same probe the tunnel makes on
// its raw socket.
func probeOffload() (gso, gro bool, err error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false, false, err
	}
	defer c.Close()
	sc, err := c.SyscallConn()
	if err != nil {
		return false, false, err
	}
	cerr := sc.Control(func(fd uintptr) {
		_, e := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = e == nil
		gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return gso, gro, cerr
}
