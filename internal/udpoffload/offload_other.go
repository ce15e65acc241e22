//go:build !linux

package udpoffload

import "net"

// Enable reports that offload is unavailable.
func Enable(*net.UDPConn) (gso, gro bool) { return false, false }

// PutSegmentCmsg returns nil: no offload.
func PutSegmentCmsg(oob []byte, size int) []byte { return nil }

// GROSegmentSize returns 0: nothing is coalesced.
func GROSegmentSize([]byte) int { return 0 }

// Control-message sizes: none.
var (
	SegmentCmsgLen = 0
	GROCmsgLen     = 0
)
