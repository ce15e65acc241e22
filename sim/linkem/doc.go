// Package linkem is the simulator's link emulator. This kernel has no netem,
// so delay, jitter, loss, bandwidth and MTU are emulated in Go, one packet
// at a time.
//
// Two layers:
//
//   - Shaper is one direction of one link: given a packet's size and the
//     time it is offered, it says when the packet reaches the far end or why
//     it is dropped (down, too big, queue full, lost). Bandwidth is a
//     serialisation model (a packet occupies the wire for size·8/rate after
//     the one before it, and waits at most QueueLimit for the wire), delay and
//     jitter are added after, and loss is Bernoulli or Gilbert–Elliott. It
//     knows nothing about sockets, so the same Shaper drives the in-process
//     Network below and the relay between veth pairs in netns mode.
//   - Network is an underlay of named nodes joined by links: each node owns an
//     address, sockets on it are net.PacketConns (so real QUIC and the raw
//     tunnel run over them unchanged), and a packet travels hop by hop along
//     the shortest up path, through each link's Shaper in turn. Sixteen
//     schedulers (a goroutine and a heap each, by destination node) carry
//     the packets in flight, each waiting once for its delivery and once
//     more per shaped or tapped hop; every link counts
//     packets, bytes and drops per direction, and may be tapped (pcap).
//
// Nothing here reaches the kernel: addresses are the caller's choice.
package linkem
