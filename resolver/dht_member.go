package resolver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
)

// The membership handshake (PROTOCOL.md §6.3): the dialing side opens a
// stream on <prefix>/member/1.0.0 and writes its proof, then half-closes;
// the listening side verifies it, answers with its own proof and closes.
// Each side admits the other only after verifying the proof against the
// connection's authenticated key.

// connected runs for every new connection (libp2p calls it synchronously,
// so the work goes to an owned goroutine).
func (d *DHT) connected(_ network.Network, c network.Conn) {
	outbound := c.Stat().Direction == network.DirOutbound
	if outbound {
		d.connsOut.Add(1)
		d.metrics.conns.WithLabelValues("out").Inc()
	} else {
		d.connsIn.Add(1)
		d.metrics.conns.WithLabelValues("in").Inc()
	}
	if d.closed.Load() {
		return
	}
	p := c.RemotePeer()
	if !outbound && d.gate.isVerified(p) {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, d.cfg.HandshakeTimeout)
		defer cancel()
		if outbound {
			if err := d.sendProof(ctx, p); err != nil {
				d.refusePeer(p, proofResult(err), err)
				return
			}
		}
		if !d.gate.wait(ctx, p) && d.ctx.Err() == nil {
			d.refusePeer(p, "timeout", ctx.Err())
		}
	}()
}

func (d *DHT) refusePeer(p peer.ID, result string, err error) {
	if d.ctx.Err() != nil {
		return
	}
	d.metrics.admissions.WithLabelValues(result).Inc()
	// Peer IDs cost nothing to make: one line per result every interval
	// (gdp_resolver_peer_admissions_total counts them all).
	d.logLim.Info(d.log, result, "peer refused: no valid membership", zap.Stringer("peer_id", p), logging.Reason(result), zap.Error(err))
	// A peer that showed a bad proof is refused for DenyFor; one that was
	// silent or merely too slow (an overloaded honest node) only for a
	// sixth of it, so that it cannot keep reconnecting but is soon retried.
	var evicted bool
	if result == "refused" {
		evicted = d.gate.deny(p, 0)
	} else {
		evicted = d.gate.deny(p, d.cfg.DenyFor/6)
	}
	if evicted {
		d.metrics.deniedEvicted.Inc()
	}
	_ = d.host.Network().ClosePeer(p)
}

func (d *DHT) admitPeer(p peer.ID, a admitted) {
	d.gate.admit(p, a)
	d.metrics.admissions.WithLabelValues("admitted").Inc()
	// kad-dht offers a peer to the routing table when identify finishes; if
	// that happened before the proof arrived the filter said no, so offer
	// it again now that it is verified.
	if ok, _ := d.host.Peerstore().SupportsProtocols(p, d.prefix+"/kad/1.0.0"); len(ok) > 0 {
		_, _ = d.kad.RoutingTable().TryAddPeer(p, true, false)
	}
}

func (d *DHT) sendProof(ctx context.Context, p peer.ID) error {
	s, err := d.host.NewStream(ctx, p, d.prefix+"/member/1.0.0")
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write(d.own.Load().wire); err != nil {
		s.Reset()
		return err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return err
	}
	b, err := readAllLimited(s, maxProofSize)
	if err != nil {
		s.Reset()
		return err
	}
	return d.verifyProof(p, s.Conn(), b)
}

func (d *DHT) handleProof(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(d.cfg.HandshakeTimeout))
	p := s.Conn().RemotePeer()
	b, err := readAllLimited(s, maxProofSize)
	if err == nil {
		err = d.verifyProof(p, s.Conn(), b)
	}
	if err != nil {
		// Deny before the peer can see the reset: whoever learns of the
		// refusal (the peer, a test) finds it already recorded.
		d.refusePeer(p, proofResult(err), err)
		s.Reset()
		return
	}
	if _, err := s.Write(d.own.Load().wire); err != nil {
		s.Reset()
	}
}

// errBadProof marks a proof that was received and is wrong (as opposed
// to one that never arrived).
var errBadProof = errors.New("bad membership proof")

// proofResult is the admissions metric label for a failed handshake.
func proofResult(err error) string {
	if errors.Is(err, errBadProof) {
		return "refused"
	}
	return "timeout"
}

func (d *DHT) verifyProof(p peer.ID, c network.Conn, b []byte) error {
	proof, err := parseProof(b)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadProof, err)
	}
	pub, err := c.RemotePublicKey().Raw()
	if err != nil {
		return fmt.Errorf("%w: %w", errBadProof, err)
	}
	a, err := d.gate.check(pub, proof)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadProof, err)
	}
	d.admitPeer(p, a)
	return nil
}

// gatedHost is the host kad-dht is given. Every stream handler kad-dht
// registers (<prefix>/kad/1.0.0) is wrapped by DHT.gated, so no kad-dht
// code reads a request from a peer that has not proved membership: not a
// GET_VALUE, not a PUT_VALUE, not a FIND_NODE. (kad-dht's request hook
// runs after the request was read and cannot stop the handler: a PUT_VALUE
// was stored even when the hook reset the stream.) Outbound use of the
// host is unchanged.
type gatedHost struct {
	host.Host
	d *DHT
}

func (h gatedHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.d.gated(handler))
}

func (h gatedHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, h.d.gated(handler))
}

// gated serves a stream with next only once its peer has proved
// membership. The membership handshake runs beside the connection, so a
// member's first request may arrive before its proof: the stream waits up
// to HandshakeTimeout for it. A peer that has not proved membership by
// then has its stream reset before any byte of it is read. A stream that
// was admitted stops (is reset) at its next read once the peer's
// membership has expired or the peer was refused.
func (d *DHT) gated(next network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !d.gate.isVerified(p) {
			ctx, cancel := context.WithTimeout(d.ctx, d.cfg.HandshakeTimeout)
			ok := d.gate.wait(ctx, p)
			cancel()
			if !ok {
				d.metrics.rejectedRq.Inc()
				_ = s.Reset()
				return
			}
		}
		next(&memberStream{Stream: s, d: d, peer: p})
	}
}

// memberStream is an inbound DHT stream of an admitted peer; every read
// checks that the peer is still a member.
type memberStream struct {
	network.Stream
	d    *DHT
	peer peer.ID
}

// errNotMember is the read error of a stream whose peer is no longer a
// member.
var errNotMember = errors.New("peer is no longer an admitted member")

func (s *memberStream) Read(b []byte) (int, error) {
	if !s.d.gate.isVerified(s.peer) {
		s.d.metrics.rejectedRq.Inc()
		_ = s.Stream.Reset()
		return 0, errNotMember
	}
	return s.Stream.Read(b)
}

// memberSweepLoop drops peers whose membership expired while they were
// connected: out of the routing table and disconnected. Their requests
// already stop being served at expiry (isVerified); this also stops the
// node from routing queries through them and frees the connection.
//
// A peer expired in the last minute is removed again at every sweep while
// it is not admitted: kad-dht may add a peer it learned of while its
// membership was still valid (its liveness check, a FIND_NODE, runs
// after the routing-table filter passed) after the sweep that expired it
// removed it, and that peer would then stay (found by CI under load: two
// table entries left ten seconds after expiry). Only those peers: a
// seeded routing table (JoinSeeded) holds peers that have not proved
// their membership yet, and removing every peer not admitted emptied it
// (the simulator's 300-router seeded run never finished its publishes).
func (d *DHT) memberSweepLoop() {
	const keep = time.Minute
	recent := map[peer.ID]time.Time{}
	d.every(d.cfg.MemberSweep, func() {
		now := time.Now()
		for _, p := range d.gate.expire() {
			recent[p] = now
			d.kad.RoutingTable().RemovePeer(p)
			_ = d.host.Network().ClosePeer(p)
			d.log.Info("peer membership expired: disconnected", zap.Stringer("peer_id", p))
		}
		for p, at := range recent {
			switch {
			case now.Sub(at) > keep || d.gate.isVerified(p):
				delete(recent, p)
			case d.kad.RoutingTable().Find(p) != "":
				d.kad.RoutingTable().RemovePeer(p)
				_ = d.host.Network().ClosePeer(p)
			}
		}
		// A peer refused since it entered the table (its proof on a new
		// connection failed: e.g. its membership expired and the refusal
		// came before this sweep's expire, which then never returns it)
		// leaves the table too. A pre-warmed peer never dialled is never
		// refused, so it stays (TestSweepKeepsPrewarmedPeers). The refused
		// peers are looked up in the table, not the table's peers in the
		// refusals: there are seldom any, and listing every node's table
		// every second was 1.6 % of the CPU of a 1,000-router simulation.
		for _, p := range d.gate.deniedPeers() {
			if d.kad.RoutingTable().Find(p) != "" {
				d.kad.RoutingTable().RemovePeer(p)
			}
		}
	})
}
