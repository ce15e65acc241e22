// Package tunnel carries whole PDUs between two gdpnet nodes that have
// authenticated each other by their names (DESIGN.md §4, PROTOCOL.md §2–4).
//
// An Endpoint owns one QUIC socket and, optionally, one raw GDP-in-UDP
// socket, both injected as net.PacketConn so that the same code runs over
// real UDP, network namespaces or the emulated links of tunnel/memnet. It
// dials peers and accepts them; every peer becomes a Link:
//
//   - KindQUIC: PDUs that fit ride QUIC DATAGRAM frames, larger ones a
//     unidirectional stream each.
//   - KindRaw: PDUs ride ChaCha20-Poly1305 frames on the raw socket, keyed
//     from the QUIC connection's TLS exporter, fragmented hop by hop to the
//     path MTU and sent and received in batches (sendmmsg/recvmmsg).
//
// Both kinds authenticate inside the TLS 1.3 handshake: each node presents a
// self-signed certificate for its Ed25519 key that carries its credentials
// (metadata, membership certificate, domain metadata) in an extension, and
// the injected PeerVerifier decides whether they prove a name; a dialer also
// insists on the name it expected. A peer that fails is refused before any
// PDU moves. A link lasts until the peer's credentials expire; a node whose
// membership is renewed (SetIdentity) shows the new credentials on its live
// links (RENEW, gdp-tunnel/2: renew.go) and the peer, once they verify for
// the same name, key and domain, moves the link's expiry, so a renewal
// interrupts nothing. Each side warns once per peer when the peer's
// membership nears its end.
//
// Received PDUs go to the Config's Handler; bulk transfers (VM handoff) open
// reliable bidirectional streams on a Link with OpenStream/AcceptStream. A
// Redialer keeps a link to one peer up with exponential backoff.
//
// Subpackages: memnet emulates UDP links in memory (delay, jitter, loss,
// bandwidth, MTU, up/down) and tunneltest puts endpoints on it, for tests
// and the in-process simulator. Counters: Endpoint.Stats and
// Endpoint.Collector (Prometheus). Operations: docs/OPERATIONS.md §2.
package tunnel
