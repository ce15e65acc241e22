package router

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
)

// Hub and spoke (OPERATIONS §3.1): a router with an upstream sends that
// upstream every location record it publishes for its local names, and a
// signed tombstone when it withdraws one, as ADVERTISE PDUs on the
// router-to-router tunnel (PROTOCOL.md §5.9). The upstream verifies each
// record like any other (the chain, the holder's signature; the holder
// must be the router on the other end of the tunnel) and stores it in its
// own resolver, so a name attached at one spoke is found at the hub — with
// the default static resolver too — and reached over the spoke's tunnel.

// upstreamRecords remembers the newest record pushed upstream for each
// local name, to send them all again when the upstream tunnel comes back
// (the upstream may have restarted) and to build the tombstone.
type upstreamRecords struct {
	mu   sync.Mutex
	recs map[pdu.Name]*resolver.Record
}

// maxDownstreamInFlight bounds the downstream records being verified and
// stored at once; more are dropped (counted) and arrive again with the
// next renewal or reconnection.
const maxDownstreamInFlight = 16

// maxDownstreamPerPeer is one downstream router's share of them: a member
// router announcing records faster than the resolver stores them (each
// valid, its own self-minted names) holds at most this many slots, and
// other downstream routers' records still find one.
const maxDownstreamPerPeer = 4

// maxDownstreamBacklog is how many of one downstream router's records wait
// while it holds all its slots, stored in turn by its slot holders: an
// honest burst (a capsule server's names attaching at once, or every name
// again when the tunnel comes back) is stored whole, at its share's pace,
// rather than all but 4 of it dropped until the next renewal. Beyond it
// they are dropped, counted as peer_busy.
const maxDownstreamBacklog = 256

// downJob is a downstream record and the face it came on.
type downJob struct {
	in  *Face
	rec *resolver.Record
}

// peerSlots counts the slots each peer holds, and the records waiting for
// them.
type peerSlots struct {
	mu      sync.Mutex
	n       map[pdu.Name]int
	backlog map[pdu.Name][]downJob
}

// admit takes one of peer's limit slots for j (start: the caller stores j,
// then asks next for more), or queues j behind the peer's slot holders
// (queued), or neither: the peer holds all its slots and its backlog is
// full.
func (p *peerSlots) admit(peer pdu.Name, limit int, j downJob) (start, queued bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n, p.backlog = map[pdu.Name]int{}, map[pdu.Name][]downJob{}
	}
	if p.n[peer] < limit {
		p.n[peer]++
		return true, false
	}
	if len(p.backlog[peer]) >= maxDownstreamBacklog {
		return false, false
	}
	p.backlog[peer] = append(p.backlog[peer], j)
	return false, true
}

// next hands a slot holder of peer the peer's oldest waiting record, or,
// none waiting, releases its slot (ok false). A record is queued only
// while the peer holds all its slots, and a holder leaves only with the
// backlog empty: none is left behind.
func (p *peerSlots) next(peer pdu.Name) (downJob, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.backlog[peer]; len(q) > 0 {
		j := q[0]
		q[0] = downJob{}
		if len(q) == 1 {
			delete(p.backlog, peer)
		} else {
			p.backlog[peer] = q[1:]
		}
		return j, true
	}
	if p.n[peer]--; p.n[peer] <= 0 {
		delete(p.n, peer)
	}
	return downJob{}, false
}

// pushUpstream sends rec to the upstream when one is configured and up,
// remembering it (or, for a tombstone, forgetting the name).
func (r *Router) pushUpstream(rec *resolver.Record) {
	if r.upstream.IsZero() {
		return
	}
	r.upRecs.mu.Lock()
	if rec.Withdrawn {
		delete(r.upRecs.recs, rec.Name)
	} else {
		r.upRecs.recs[rec.Name] = rec
	}
	r.upRecs.mu.Unlock()
	if f := r.upstreamFace(); f != nil {
		r.sendRecord(f, rec)
	}
}

// withdrawUpstream sends the upstream a tombstone for name's record.
func (r *Router) withdrawUpstream(name pdu.Name) {
	if r.upstream.IsZero() {
		return
	}
	r.upRecs.mu.Lock()
	rec := r.upRecs.recs[name]
	r.upRecs.mu.Unlock()
	if rec == nil {
		return
	}
	seq, err := r.seq.Next()
	if err == nil {
		seq = max(seq, rec.Sequence+1)
	}
	var t *resolver.Record
	if err == nil {
		t, err = rec.Tombstone(r.own.Load().id.Key, seq)
	}
	if err != nil {
		r.log.Warn("upstream tombstone", logging.Name(name), zap.Error(err))
		return
	}
	r.pushUpstream(t)
}

// pushAllUpstream sends every remembered record over f, the upstream's new
// tunnel.
func (r *Router) pushAllUpstream(f *Face) {
	r.upRecs.mu.Lock()
	recs := make([]*resolver.Record, 0, len(r.upRecs.recs))
	for _, rec := range r.upRecs.recs {
		recs = append(recs, rec)
	}
	r.upRecs.mu.Unlock()
	for _, rec := range recs {
		r.sendRecord(f, rec)
	}
	if len(recs) > 0 {
		r.log.Info("local names announced to the upstream", logging.Peer(f.peer), zap.Int("names", len(recs)))
	}
}

func (r *Router) sendRecord(f *Face, rec *resolver.Record) {
	b, err := rec.Marshal()
	if err != nil {
		return
	}
	p, err := (&pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Dst: f.peer, Src: r.name, Payload: b}).Marshal()
	if err != nil {
		r.log.Warn("upstream record too large", logging.Name(rec.Name), zap.Error(err))
		return
	}
	if err := f.send(nil, p); err != nil {
		r.drop(nil, dropQueueFull)
	}
}

// downstreamRecord takes a location record a downstream router sent on
// its tunnel (an ADVERTISE on a router face): verified, it goes into this
// router's resolver, where lookups find it.
func (r *Router) downstreamRecord(in *Face, h *pdu.Header) {
	if r.res == nil {
		r.met.downstream.WithLabelValues("no_resolver").Inc()
		return
	}
	if in.share == nil || !in.share.adverts.allow() {
		r.met.downstream.WithLabelValues("rate_limited").Inc()
		return
	}
	rec, err := resolver.ParseRecord(h.Payload)
	if err != nil {
		r.met.downstream.WithLabelValues("malformed").Inc()
		r.logLim.Info(r.log, in.peer.String(), "malformed downstream record", logging.Face(in.id), logging.Peer(in.peer), zap.Error(err))
		return
	}
	if rec.Kind != resolver.KindLocation || rec.Router() != in.peer {
		// Only the holder itself announces its names, over its own tunnel.
		r.met.downstream.WithLabelValues("not_holder").Inc()
		r.logLim.Info(r.log, "not_holder "+in.peer.String(), "downstream record refused", logging.Face(in.id), logging.Peer(in.peer), logging.Name(rec.Name),
			logging.Reason("not_holder"), zap.String("detail", fmt.Sprintf("record of router %s", rec.Router())))
		return
	}
	select {
	case r.downSem <- struct{}{}:
	default:
		r.met.downstream.WithLabelValues("busy").Inc()
		return
	}
	start, queued := r.down.admit(in.peer, maxDownstreamPerPeer, downJob{in, rec})
	if !start {
		<-r.downSem
		if !queued {
			r.met.downstream.WithLabelValues("peer_busy").Inc()
		}
		return
	}
	// This slot holder stores rec, then the records of the same peer that
	// queued meanwhile, holding its one of downSem throughout.
	drain := func(j downJob, store bool) {
		for ok := true; ok; j, ok = r.down.next(in.peer) {
			if store && r.ctx.Err() == nil {
				r.storeDownstream(j.in, j.rec)
			}
		}
		<-r.downSem
	}
	if !r.tryGo(func() { drain(downJob{in, rec}, true) }) {
		drain(downJob{in, rec}, false) // closed: nothing published
	}
}

// storeDownstream puts a downstream router's record, verified, in this
// router's resolver.
func (r *Router) storeDownstream(in *Face, rec *resolver.Record) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Resolver.Timeout.Std())
	defer cancel()
	if err := r.res.Publish(ctx, rec); err != nil {
		r.met.downstream.WithLabelValues("refused").Inc()
		fields := []zap.Field{logging.Face(in.id), logging.Peer(in.peer), logging.Name(rec.Name), logging.Reason("refused"), zap.Error(err)}
		if errors.Is(err, resolver.ErrNotMember) {
			// A spoke of another domain (Session 18: found deploying two
			// domains by hand): a domain's DHT holds only its own routers'
			// records, so the spoke's names are unreachable through here.
			fields = append(fields, zap.String("fix", "this router's resolver takes location records of its own domain's routers only (a node of the domain's DHT): a router of another domain cannot announce its names through it as its upstream; federate the two domains (OPERATIONS §4.2: borders and the global DHT), or give that site a router of this domain"))
		}
		r.logLim.Info(r.log, "refused "+in.peer.String(), "downstream record refused", fields...)
		return
	}
	r.met.downstream.WithLabelValues("stored").Inc()
	if rec.Withdrawn {
		// Forget a hop learnt from the old record.
		r.forgetLearned(rec.Name, in)
	} else {
		r.resolve.forget(rec.Name)
		if inv, ok := r.res.(invalidator); ok {
			inv.Invalidate(rec.Name)
		}
	}
}
