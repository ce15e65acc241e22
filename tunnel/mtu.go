package tunnel

import "net"

// discoverMTU picks the raw frame size for a socket: configured, else what
// an emulated socket reports, else the MTU of the interface that holds the
// socket's address (at most 9000) less IP and UDP headers, else a size that crosses
// almost any Internet path (the same 1452 quic-go caps its packets at).
func discoverMTU(configured int, pc net.PacketConn) int {
	const fallback = 1452
	mtu := fallback
	if configured > 0 {
		mtu = configured
	} else if m, ok := pc.(interface{ MTU() int }); ok && m.MTU() > 0 {
		mtu = m.MTU()
	} else if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
		if ifMTU := interfaceMTU(ua.IP); ifMTU > 0 {
			over := 28 // IPv4 + UDP
			if ua.IP.To4() == nil {
				over = 48
			}
			// loopback reports 65536: cap at a jumbo frame so that send
			// buffers stay small; GSO batches frames anyway
			mtu = min(ifMTU, 9000) - over
		}
	}
	return min(max(mtu, minRawMTU), maxRawMTU)
}

func interfaceMTU(ip net.IP) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return ifc.MTU
			}
		}
	}
	return 0
}
