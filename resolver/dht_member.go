package resolver

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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
	if d.closed.Load() {
		return
	}
	p := c.RemotePeer()
	outbound := c.Stat().Direction == network.DirOutbound
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
	d.log.Info("peer refused: no valid membership", zap.Stringer("peer_id", p), logging.Reason(result), zap.Error(err))
	// A peer that showed a bad proof is refused for DenyFor; one that was
	// silent or merely too slow (an overloaded honest node) only for a
	// sixth of it, so that it cannot keep reconnecting but is soon retried.
	if result == "refused" {
		d.gate.deny(p, 0)
	} else {
		d.gate.deny(p, d.cfg.DenyFor/6)
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
	if _, err := s.Write(d.proof); err != nil {
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
	if _, err := s.Write(d.proof); err != nil {
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

// onRequest runs before kad-dht handles any inbound request: a peer that
// has not (yet) proved membership gets HandshakeTimeout to do so, then its
// stream is reset, so non-members can neither read nor map the DHT. (A put
// from such a peer would anyway meet the validator.)
func (d *DHT) onRequest(ctx context.Context, s network.Stream, _ *pb.Message) {
	p := s.Conn().RemotePeer()
	if d.gate.isVerified(p) {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	if !d.gate.wait(wctx, p) {
		d.metrics.rejectedRq.Inc()
		_ = s.Reset()
	}
}

// memberSweepLoop drops peers whose membership expired while they were
// connected: out of the routing table and disconnected. Their requests
// already stop being served at expiry (isVerified); this also stops the
// node from routing queries through them and frees the connection.
func (d *DHT) memberSweepLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.MemberSweep)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			for _, p := range d.gate.expire() {
				d.kad.RoutingTable().RemovePeer(p)
				_ = d.host.Network().ClosePeer(p)
				d.log.Info("peer membership expired: disconnected", zap.Stringer("peer_id", p))
			}
		}
	}
}
