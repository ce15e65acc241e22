//go:build !linux

package tunnel

import "net"

func enableOffload(*net.UDPConn) (gso, gro bool) { return false, false }
func putSegmentCmsg(oob []byte, size int) []byte { return nil }
func groSegmentSize([]byte) int                  { return 0 }

const (
	segmentCmsgLen = 0
	groCmsgLen     = 0
)
