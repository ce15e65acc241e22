package capsuled

import (
	"errors"
	"fmt"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

var errStop = errors.New("page full")

// page reads entries [from, to] as stored (wire form), stopping at limit
// entries or when budget bytes are used. It returns the entries and the
// last seqno included (from-1 when none). A READ's page is read for its
// requester who, counted in share (store.ReadRawFor: a sequential reader's
// records are read ahead, within its share's bounds); the zero name reads
// without read-ahead.
func (s *Server) page(who, share, c pdu.Name, from, to uint64, limit, budget int) ([][]byte, uint64, error) {
	var out [][]byte
	used := 0
	last := from - 1
	add := func(seq uint64, wire []byte, owned bool) error {
		if len(out) >= limit || (used+len(wire)+8 > budget && len(out) > 0) {
			return errStop
		}
		used += len(wire) + 8
		if !owned {
			wire = append([]byte(nil), wire...)
		}
		out = append(out, wire)
		last = seq
		return nil
	}
	var err error
	if who != (pdu.Name{}) {
		err = s.st.ReadRawFor(who, share, c, from, to, add)
	} else {
		err = s.st.ReadRaw(c, from, to, func(seq uint64, wire []byte) error { return add(seq, wire, false) })
	}
	if err != nil && !errors.Is(err, errStop) {
		return nil, 0, err
	}
	return out, last, nil
}

// handleRead answers READ: a page of entries starting at From (or at the
// first record at or after Time, or at the entry with Hash) up to To (0:
// the head), with the server's newest heartbeat and an inclusion proof of
// the page's last entry in it. When the reader names the size of the
// newest heartbeat it holds (Size) and the server is ahead, a consistency
// proof from that size to the server's heartbeat comes too, so the reader
// can check that both heartbeats describe one log.
func (s *Server) handleRead(r request) *wire.Message {
	m := r.msg
	c := m.CapsuleName()
	head, err := s.st.Head(c)
	if err != nil {
		return fail(m, err)
	}
	from := m.From
	switch {
	case m.Hash != nil:
		e, err := s.st.ReadByHash(c, capsule.Hash(m.Hash))
		if err != nil {
			return fail(m, err)
		}
		from = e.Seqno
		if m.To == 0 {
			m.To = from
		}
	case m.Time != 0:
		if from, err = s.st.ReadByTime(c, int64(m.Time)); err != nil {
			return fail(m, err)
		}
	case from == 0:
		from = 1
	}
	to := m.To
	if to == 0 || to > head.Seqno {
		to = head.Seqno
	}
	resp := m.Reply(wire.StatusOK)
	resp.Head = head.Seqno
	if head.Heartbeat != nil {
		resp.Heartbeat = head.Heartbeat.Marshal()
	}
	if m.Size > 0 && m.Size < head.Seqno {
		if cp, err := s.st.ConsistencyProof(c, m.Size, head.Seqno); err == nil {
			resp.Consistency = cp.Marshal()
		}
	}
	if from > to {
		return resp // nothing (yet) in range
	}
	limit := s.cfg.ReadLimit
	if m.Limit > 0 && m.Limit < uint64(limit) {
		limit = int(m.Limit)
	}
	// Read ahead per requester share (Session 16): a proven identity over
	// every name it reads from, every requester that proved nothing
	// together, a bulk reader by its certificate's name.
	recs, last, err := s.page(r.from, r.asker.shareOf(r.from), c, from, to, limit, wire.Budget-len(resp.Heartbeat))
	if err != nil {
		return fail(m, err)
	}
	p, err := s.st.InclusionProof(c, last, head.Seqno)
	if err != nil {
		return fail(m, err)
	}
	resp.Records, resp.Proof, resp.From, resp.To = recs, p.Marshal(), from, last
	resp.More = last < to
	return resp
}

// handleMetadata answers METADATA: the capsule's metadata and placement,
// the durable head with its heartbeat and Merkle frontier (what a writer
// resumes from), and the first equivocation evidence held, if any.
func (s *Server) handleMetadata(r request) *wire.Message {
	m := r.msg
	c := m.CapsuleName()
	head, err := s.st.Head(c)
	if err != nil {
		return fail(m, err)
	}
	resp := m.Reply(wire.StatusOK)
	if p := s.places.get(c); p != nil {
		resp.Metadata, resp.Replicas, resp.W = p.meta.Marshal(), wire.NameBytes(p.replicas), uint64(p.w)
		// The owner-signed record and this server's own AdCert and
		// metadata: what a writer trusts, rather than the lines above.
		if p.record != nil {
			resp.Placement = p.record.Marshal()
		}
		resp.AdCert, resp.Server = p.adcert.Marshal(), s.id.Meta.Marshal()
	}
	resp.Head = head.Seqno
	if head.Heartbeat != nil {
		resp.Heartbeat = head.Heartbeat.Marshal()
		resp.Hash = head.Hash[:]
		resp.Time = uint64(head.Time)
		for _, h := range head.Tree.Frontier() {
			resp.Frontier = append(resp.Frontier, append([]byte(nil), h[:]...))
		}
		if head.Seqno == 0 {
			resp.Hash = nil
		}
	}
	if evs, err := s.st.Evidence(c); err == nil && len(evs) > 0 {
		resp.Evidence = evs[0].Marshal()
	}
	return resp
}

// handleProof answers PROOF: with From > 0, the inclusion proof of entry
// From in the tree of Size entries (0: the head); with From = 0, the
// consistency proof from To entries to Size (0: the head).
func (s *Server) handleProof(r request) *wire.Message {
	m := r.msg
	c := m.CapsuleName()
	head, err := s.st.Head(c)
	if err != nil {
		return fail(m, err)
	}
	size := m.Size
	if size == 0 {
		size = head.Seqno
	}
	if size > head.Seqno {
		return fail(m, fmt.Errorf("proof for %s: %w: size %d beyond head %d", c, store.ErrOutOfRange, size, head.Seqno))
	}
	resp := m.Reply(wire.StatusOK)
	resp.Head, resp.Size = head.Seqno, size
	if hb, err := s.st.HeartbeatAt(c, size); err == nil {
		resp.Heartbeat = hb.Marshal()
	} else if head.Heartbeat != nil && size == head.Seqno {
		resp.Heartbeat = head.Heartbeat.Marshal()
	}
	if m.From > 0 {
		p, err := s.st.InclusionProof(c, m.From, size)
		if err != nil {
			return fail(m, err)
		}
		resp.From, resp.Proof = m.From, p.Marshal()
		return resp
	}
	cp, err := s.st.ConsistencyProof(c, m.To, size)
	if err != nil {
		return fail(m, err)
	}
	resp.To, resp.Consistency = m.To, cp.Marshal()
	return resp
}
