package capsuled

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Bulk reads (docs/PROTOCOL.md §8.8): a reader opens a QUIC connection
// over names to the server's own name with ALPN wire.BulkALPN; each
// bidirectional stream carries one READ request (a length-prefixed
// capsule message) and the server answers with READ answers — exactly
// what handleRead gives for the rest of the range, page after page, each
// with its heartbeat and inclusion proof — until the range is done. The
// reader verifies every page as it verifies a READ answer; the stream only
// takes the round trip per page away.

// bulkState is the server's bulk listener and its per-peer stream counts.
type bulkState struct {
	perPeer peerCount

	streams prometheus.Gauge
	refused prometheus.Counter
	pages   prometheus.Counter
}

func (s *Server) startBulk(reg prometheus.Registerer) error {
	if s.cfg.BulkStreamsPerPeer < 0 {
		return nil
	}
	b := &bulkState{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "bulk_streams", Help: "Bulk read streams being served."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "bulk_refused_total", Help: "Bulk read streams refused because their reader had bulk_streams_per_peer open."}),
		pages: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "bulk_pages_total", Help: "READ answers sent on bulk read streams."}),
	}
	if err := errors.Join(reg.Register(b.streams), reg.Register(b.refused), reg.Register(b.pages)); err != nil {
		return fmt.Errorf("capsuled bulk metrics: %w", err)
	}
	ln, err := client.ListenName(s.cli, s.name, &client.QUICConfig{ALPN: wire.BulkALPN})
	if err != nil {
		// No QUIC credentials (a client made without them): readers use
		// READ PDUs only.
		s.log.Info("bulk reads off", zap.Error(err))
		return nil
	}
	s.bulk = b
	s.goRun(func(ctx context.Context) {
		go func() { <-ctx.Done(); _ = ln.Close() }()
		for {
			nc, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			s.goRun(func(ctx context.Context) { s.serveBulkConn(ctx, nc) })
		}
	})
	return nil
}

func (s *Server) serveBulkConn(ctx context.Context, nc *client.NameConn) {
	defer func() { _ = nc.CloseWithError(0, "") }()
	peer := nc.Peer()
	for {
		st, err := nc.AcceptStream(ctx)
		if err != nil {
			return
		}
		go s.serveBulkStream(ctx, peer, st)
	}
}

// admit takes one of peer's bulk streams; false: it has its share open.
func (b *bulkState) admit(peer pdu.Name, limit int) bool {
	if !b.perPeer.admit(peer, limit) {
		b.refused.Inc()
		return false
	}
	b.streams.Inc()
	return true
}

func (b *bulkState) release(peer pdu.Name) {
	b.perPeer.release(peer)
	b.streams.Dec()
}

// serveBulkStream answers one bulk READ.
func (s *Server) serveBulkStream(ctx context.Context, peer pdu.Name, st io.ReadWriteCloser) {
	defer st.Close()
	m, err := wire.ReadFrame(st)
	if err != nil {
		s.met.dropped.WithLabelValues("malformed").Inc()
		s.log.Debug("bulk read: bad request", logging.Peer(peer), zap.Error(err))
		return
	}
	if m.Op != wire.OpRead || m.IsResponse() || m.Hash != nil || m.Time != 0 {
		resp := m.Reply(wire.StatusBadRequest)
		resp.Error = "a bulk stream carries one READ of a range (from, to)"
		_ = wire.WriteFrame(st, resp)
		return
	}
	if !s.bulk.admit(peer, s.cfg.BulkStreamsPerPeer) {
		resp := m.Reply(wire.StatusUnavailable)
		resp.Error = fmt.Sprintf("bulk_streams_per_peer: %d bulk streams open", s.cfg.BulkStreamsPerPeer)
		_ = wire.WriteFrame(st, resp)
		return
	}
	defer s.bulk.release(peer)
	if m.From == 0 {
		m.From = 1
	}
	for ctx.Err() == nil {
		resp := s.handleRead(request{from: peer, msg: m})
		s.met.requests.WithLabelValues("BULK_READ", resp.Status.String()).Inc()
		if err := wire.WriteFrame(st, resp); err != nil {
			return
		}
		s.bulk.pages.Inc()
		if resp.Status != wire.StatusOK || !resp.More || len(resp.Records) == 0 {
			return
		}
		// The next page: the reader holds this heartbeat now, so no
		// consistency proof unless the head moves on.
		m.From = resp.To + 1
		if resp.Head > m.Size && len(resp.Heartbeat) > 0 {
			m.Size = resp.Head
		}
	}
}
