//go:build !linux

package tunnel

import "net"

// setDontFragment: only Linux sets DF on the raw socket here.
func setDontFragment(*net.UDPConn) {}
