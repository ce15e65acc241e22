// Package memnet emulates a UDP network in memory: net.PacketConn endpoints
// joined by directed paths with delay, jitter, loss, bandwidth, a queue
// limit, an MTU and an up/down switch. The kernel here has no netem, so this
// is how tests and the simulator get lossy, slow links; because a Conn is a
// net.PacketConn, the real QUIC (quic.Transport{Conn: c}) and raw tunnel
// code run over it unchanged.
//
// One Network can hold thousands of endpoints: a packet costs one copy, a
// map lookup and, on a path with delay, one heap operation in a single
// scheduler goroutine. Addresses are *net.UDPAddr values chosen by the
// caller; no packet ever reaches the kernel.
package memnet
