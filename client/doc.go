// Package client is the Go SDK every gdpnet endpoint shares — capsule
// servers, clients, gateways and handoff agents. This part covers
// attachment: given an authenticated tunnel to a router, a Client
// advertises names with their certificate chains (issuing its own RtCert
// for that router), keeps them advertised before they expire, withdraws
// them, sends and receives PDUs, answers pings for the names it holds, and
// runs ping and traceroute probes.
//
// Capsule readers and writers and the CAAPIs are built on top of Client
// (Send, Receive and the per-sequence reply matching) by other files.
//
// # Send lane (Session 20)
//
// A request's timeout covers its send: a ping, probe or traceroute
// (RequestTimeout or the timeout given), an ADVERTISE or WITHDRAW attempt,
// each attempt of a capsule request (CapsuleOptions.Timeout) and the
// caller's context. A Link's Send may block — quic-go's SendDatagram waits
// while the connection's 32-datagram queue is full, on a congested or dead
// path, until the link's idle timeout — so a request hands its PDU to the
// client's send lane, whose one goroutine sends queued PDUs in order, and
// waits for that send only until its deadline: then it fails with an
// ErrTimeout ("the request could not be sent …"; a capsule request's
// ErrNoAnswer wraps it). A PDU still queued when its request gave up is
// never sent (Client.SendsAbandoned); one already inside Send is left
// there. While the lane holds anything, every other send of the client
// (Send, SendFrom, QUIC over names, echo answers) queues behind it, so the
// client never reorders its PDUs (echo answers, sent from the receive
// path, do not wait: past 64 PDUs in the lane they are dropped, counted
// in Client.EchoesDropped, and past 32 answers queued each requester
// identity holds a share, 64/(k+1), beyond which its answers are dropped,
// counted in EchoesDroppedShare too); when it is empty they call the link's
// Send directly, as before, and the lane's goroutine exits. A capsule
// Writer's appends are bounded by the context given to Append or Flush
// when it has a deadline or can be cancelled (a send cut short leaves the
// batch queued to be sent again). The hand-off costs a request about 1 µs
// on an idle 2-core machine, ~3 µs under load
// (BenchmarkPingInstantLink, BenchmarkPingTunnel). Subscriptions' renewals
// are sent as before, without a deadline.
package client
