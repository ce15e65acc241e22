// Package udpoffload is UDP segmentation offload on Linux: one sendmsg
// carries many equal-sized datagrams for one destination (UDP_SEGMENT,
// "GSO"), and one recvmsg returns many datagrams the kernel coalesced
// (UDP_GRO). The raw tunnel uses it to send and receive frames, and the
// router's benchmarks use it for the bare GSO/GRO relay they are measured
// against. Elsewhere every function reports that offload is unavailable.
package udpoffload
