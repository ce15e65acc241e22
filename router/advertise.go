package router

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// replayGuard remembers, per tunnel session (endpoint and face), the
// highest advertisement sequence accepted, and refuses any ADVERTISE or
// WITHDRAW that does not exceed it or whose sequence (the sender's clock)
// is outside the configured window. An entry older than the window can be
// forgotten: the window check alone then refuses a replay of it, so memory
// stays bounded.
//
// The order is per face, not per endpoint: a sequence can only be replayed
// inside the tunnel session it came through (the chain's endpoint must be
// the tunnel-proven peer, and a new session needs the endpoint's key), and
// an endpoint restarted with its clock set back (NTP stepped it, or a
// fault test skewed it) must not be locked out until its clock passes the
// last sequence of its previous run: its new session starts a new order.
type replayGuard struct {
	mu     sync.Mutex
	last   map[replayKey]uint64
	window time.Duration
}

type replayKey struct {
	endpoint pdu.Name
	face     uint64
}

func (g *replayGuard) check(endpoint pdu.Name, face uint64, seq uint64, now time.Time) error {
	ts := time.Unix(0, int64(seq))
	if seq > 1<<63-1 || ts.Before(now.Add(-g.window)) || ts.After(now.Add(g.window)) {
		return fmt.Errorf("sequence %d (%s) is outside the %s clock window around this router's %s (a replay, or clock skew)",
			seq, ts.UTC().Format(time.RFC3339), g.window, now.UTC().Format(time.RFC3339))
	}
	k := replayKey{endpoint, face}
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.last[k]; ok && seq <= last {
		return fmt.Errorf("sequence %d is not above %d, the last accepted", seq, last)
	}
	g.last[k] = seq
	return nil
}

func (g *replayGuard) sweep(now time.Time) {
	cut := uint64(now.Add(-g.window).UnixNano())
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, s := range g.last {
		if s < cut {
			delete(g.last, n)
		}
	}
}

// control answers an ADVERTISE or WITHDRAW from an endpoint face with an
// ADVERTISE_RESULT carrying the same PDU sequence number.
func (r *Router) control(in *Face, h *pdu.Header) {
	var res *advert.Result
	var err error
	var w *pubWaiter
	var wait time.Duration
	if h.Type == pdu.TypeAdvertise {
		res, w, wait, err = r.advertise(in, h.Payload)
	} else {
		res, err = r.withdraw(in, h.Payload)
	}
	if err != nil {
		r.met.adverts.WithLabelValues(advert.StatusMalformed.String()).Inc()
		r.logLim.Info(r.log, in.peer.String(), "malformed control payload", logging.Face(in.id), logging.Peer(in.peer), zap.Error(err))
		var raw [pdu.HeaderLen]byte
		if b, e := (&pdu.Header{Type: h.Type, TTL: h.TTL, Sequence: h.Sequence, Dst: h.Dst, Src: h.Src}).Append(raw[:0]); e == nil {
			r.nak(in, b, pdu.CodeMalformed)
		}
		return
	}
	if w != nil {
		// The answer waits for the location records (PROTOCOL.md §5.4);
		// the publisher or the timer sends it.
		w.arm(wait, func(res *advert.Result) { r.sendResult(in, h, res) })
		return
	}
	r.sendResult(in, h, res)
}

// sendResult sends res as the ADVERTISE_RESULT answering h on face in.
func (r *Router) sendResult(in *Face, h *pdu.Header, res *advert.Result) {
	payload, err := advert.MarshalResult(res)
	if err != nil {
		r.log.Error("encode advertise result", zap.Error(err))
		return
	}
	reply := pdu.Header{
		Type: pdu.TypeAdvertiseResult, TTL: pdu.DefaultTTL, Sequence: h.Sequence,
		Dst: in.peer, Src: r.name, Payload: payload,
	}
	b, err := reply.Marshal()
	if err != nil {
		r.log.Error("encode advertise result", zap.Error(err))
		return
	}
	r.sendOn(in, in, b)
}

// advertise verifies and installs the names of one ADVERTISE. A malformed
// envelope is an error; per-name refusals are results. When the ADVERTISE
// asks to wait for the location records, the returned waiter (with how
// long it may wait) holds the result until they are published.
func (r *Router) advertise(in *Face, payload []byte) (*advert.Result, *pubWaiter, time.Duration, error) {
	a, err := advert.ParseAdvertise(payload)
	if err != nil {
		return nil, nil, 0, err
	}
	res, w, err := r.advertiseParsed(in, a)
	if w == nil {
		return res, nil, 0, err
	}
	return res, w, min(time.Duration(a.Wait)*time.Millisecond, r.cfg.Advertise.MaxPublishWait.Std()), err
}

func (r *Router) advertiseParsed(in *Face, a *advert.Advertise) (*advert.Result, *pubWaiter, error) {
	res := &advert.Result{Seq: a.Seq, Names: make([]advert.NameResult, len(a.Names))}
	refuseAll := func(s advert.Status, detail string) (*advert.Result, *pubWaiter, error) {
		for i, n := range a.Names {
			res.Names[i] = advert.NameResult{Name: n.Name, Status: s, Detail: clip(detail)}
			r.met.adverts.WithLabelValues(s.String()).Inc()
		}
		r.logLim.Info(r.log, s.String()+" "+in.peer.String(), "advertisement refused", logging.Face(in.id), logging.Peer(in.peer),
			logging.Reason(s.String()), zap.String("detail", detail), zap.Int("names", len(a.Names)))
		return res, nil, nil
	}
	ep, err := certs.ParseMetadata(a.Endpoint)
	if err != nil {
		return refuseAll(advert.StatusMalformed, "endpoint metadata: "+err.Error())
	}
	rt, err := certs.ParseCert(a.RtCert)
	if err != nil {
		return refuseAll(advert.StatusMalformed, "rtcert: "+err.Error())
	}
	if ep.Name() != in.peer {
		// Chains are public (they ride in location records): only the
		// endpoint they name, proven by the tunnel, may present them.
		return refuseAll(advert.StatusNotEndpoint, fmt.Sprintf("chain is for endpoint %s, tunnel peer is %s", ep.Name(), in.peer))
	}
	now := r.now()
	if err := r.replay.check(in.peer, in.id, a.Seq, now); err != nil {
		return refuseAll(advert.StatusReplay, err.Error())
	}
	own := r.own.Load()
	var w *pubWaiter
	noResolver := false // a name accepted with a wait and no resolver to wait for
	waitFor := func(pdu.Name, int) advert.Publish { return advert.PublishNotAsked }
	switch {
	case a.Wait == 0:
	case r.res == nil:
		waitFor = func(pdu.Name, int) advert.Publish { noResolver = true; return advert.PublishNoResolver }
	default:
		if w = r.newPubWaiter(in, res); w == nil {
			waitFor = func(pdu.Name, int) advert.Publish { return advert.PublishPending }
		} else {
			waitFor = func(n pdu.Name, i int) advert.Publish { w.add(n, i); return advert.PublishPending }
		}
	}
	refused, first := 0, -1
	for i, n := range a.Names {
		nr := r.advertiseOne(in, own, ep, rt, n, a.Seq, func(n pdu.Name) advert.Publish { return waitFor(n, i) })
		res.Names[i] = nr
		r.met.adverts.WithLabelValues(nr.Status.String()).Inc()
		if nr.Status == advert.StatusOK {
			r.log.Debug("route installed", logging.Face(in.id), logging.Peer(in.peer), logging.Name(n.Name),
				logging.Expiry(nr.ExpiryTime()))
			continue
		}
		r.log.Debug("name refused", logging.Face(in.id), logging.Peer(in.peer), logging.Name(n.Name),
			logging.Reason(nr.Status.String()), zap.String("detail", nr.Detail))
		if refused++; first < 0 {
			first = i
		}
	}
	if refused > 0 {
		// One line per ADVERTISE, not per name, and per reason and peer
		// at most one an interval: a flood of bad chains must not become
		// a flood of log lines (gdp_router_advertisements_total counts
		// them all).
		f := res.Names[first]
		r.logLim.Info(r.log, f.Status.String()+" "+in.peer.String(), "advertisement refused", logging.Face(in.id), logging.Peer(in.peer), logging.Name(f.Name),
			logging.Reason(f.Status.String()), zap.String("detail", f.Detail),
			zap.Int("refused", refused), zap.Int("names", len(a.Names)))
	}
	if noResolver {
		// counted like a waiter's result: once per ADVERTISE with an
		// accepted name
		r.met.publishWaits.WithLabelValues(advert.PublishNoResolver.String()).Inc()
	}
	return res, w, nil
}

// advertiseOne verifies and installs one name; waitFor, called just
// before an accepted name's publish job is queued, returns its Published
// state (and registers a waiter for it when the ADVERTISE asked to wait).
func (r *Router) advertiseOne(in *Face, own *ownCreds, ep *certs.Metadata, rt *certs.Cert, n advert.AdvertName, seq uint64,
	waitFor func(pdu.Name) advert.Publish) advert.NameResult {
	nr := advert.NameResult{Name: n.Name}
	if !in.share.adverts.allow() {
		// Each name costs three signature checks: an identity may not
		// spend more than its share of the router's CPU on them, however
		// many tunnels it opens.
		nr.Status, nr.Detail = advert.StatusRateLimited, fmt.Sprintf("over %g names/s", r.cfg.Advertise.Rate)
		return nr
	}
	if !in.share.allowDomain() {
		// ... nor may the identities of another domain together, however
		// many its operator mints (each keeps a floor of its own).
		r.met.quota(quotaDomainRate)
		nr.Status, nr.Detail = advert.StatusRateLimited, fmt.Sprintf("the identities of domain %s are over %g names/s, the limit for another domain", in.share.dom.domain, r.cfg.Advertise.DomainRate)
		return nr
	}
	chain := &certs.Chain{Target: ep, Endpoint: ep, RtCert: rt, Router: own.meta, Member: own.member, Domain: own.domain}
	if n.Target != nil {
		t, err := certs.ParseMetadata(n.Target)
		if err != nil {
			nr.Status, nr.Detail = advert.StatusMalformed, clip("target metadata: "+err.Error())
			return nr
		}
		ad, err := certs.ParseCert(n.AdCert)
		if err != nil {
			nr.Status, nr.Detail = advert.StatusMalformed, clip("adcert: "+err.Error())
			return nr
		}
		chain.Target, chain.AdCert = t, ad
	}
	exp, err := r.verifier().VerifyRoute(chain, n.Name, r.name)
	if err != nil {
		nr.Status, nr.Detail = chainStatus(err), clip(err.Error())
		return nr
	}
	in.mu.RLock()
	_, held := in.names[n.Name]
	count := len(in.names)
	in.mu.RUnlock()
	if !held && count >= r.cfg.Advertise.MaxNamesPerFace {
		nr.Status, nr.Detail = advert.StatusTooMany, fmt.Sprintf("face holds %d names, the limit", count)
		return nr
	}
	if !r.publishRoom(in.peer, n.Name) {
		// Accepting a name promises its location record: with this
		// identity's share of the publish queue full, refuse now rather
		// than drop the record later.
		nr.Status, nr.Detail = advert.StatusRateLimited, fmt.Sprintf("identity has %d location records waiting to be published; retry later", r.cfg.Resolver.PublishQueuePerIdentity)
		return nr
	}
	if !held {
		// Counted across every face of the identity: opening more tunnels
		// does not buy more of the FIB, so an honest server's names still
		// fit. An identity of another domain is also counted with every
		// other identity of that domain: minting identities does not buy
		// more either.
		if q, ok := in.share.takeName(r.cfg.Advertise.MaxNamesPerIdentity, r.cfg.Advertise.MaxNamesPerDomain,
			domainNameFloor(r.cfg.Advertise.MaxNamesPerDomain, r.cfg.Face.MaxPerDomain)); !ok {
			r.met.quota(q)
			nr.Status, nr.Detail = advert.StatusIdentityQuota, fmt.Sprintf("identity holds %d names, the limit", r.cfg.Advertise.MaxNamesPerIdentity)
			if q == quotaDomainNames {
				nr.Detail = fmt.Sprintf("the identities of domain %s hold %d names, the limit for another domain", in.domain, r.cfg.Advertise.MaxNamesPerDomain)
			}
			return nr
		}
	}
	if err := r.fib.Install(n.Name, Hop{Face: in, Cost: 0, Expiry: exp, Origin: OriginLocal, Router: r.name, Seq: seq}); err != nil {
		if !held {
			in.share.giveName(1)
		}
		if errors.Is(err, ErrFIBFull) {
			nr.Status, nr.Detail = advert.StatusFIBFull, err.Error()
		} else {
			nr.Status, nr.Detail = advert.StatusInternal, err.Error()
		}
		return nr
	}
	if !in.addName(n.Name) && !held {
		in.share.giveName(1) // held already after all (a concurrent advertisement), or the face closed
	}
	r.replaceOlder(in, n.Name)
	r.resolve.forget(n.Name)
	nr.Published = waitFor(n.Name)
	r.publish(in.peer, n.Name, chain, exp)
	if testHookQueued != nil {
		testHookQueued(n.Name) // tests: the publisher may finish the job before nr is in place
	}
	nr.Status, nr.Expiry = advert.StatusOK, exp.Unix()
	return nr
}

// testHookQueued, set only by tests, runs after an accepted name's publish
// job is queued and before its result is in place.
var testHookQueued func(pdu.Name)

// supersededCost is the cost of a local hop whose endpoint advertised the
// same name again from a newer face: used only when nothing else is left.
const supersededCost = 1 << 20

// replaceOlder makes in the hop for n at once when the same endpoint holds
// n through older faces too: it re-attached (after a restart, or its
// router's) before its old tunnel timed out. The older hops are demoted to
// supersededCost, not removed: the older face stays up with its names,
// since one identity may legitimately run several processes, and takes n
// again only if the newer face goes (PROTOCOL.md §5.3).
func (r *Router) replaceOlder(in *Face, n pdu.Name) {
	for _, h := range r.fib.Lookup(n) {
		if h.Origin != OriginLocal || h.Face == in || h.Face.peer != in.peer || h.Cost >= supersededCost {
			continue
		}
		d := h
		d.Cost = supersededCost
		if r.fib.Install(n, d) == nil {
			r.met.withdrawn.WithLabelValues("replaced").Inc()
			r.log.Debug("route superseded by a newer attachment", logging.Name(n), logging.Peer(in.peer),
				logging.Face(in.id), zap.Uint64("old_face", h.Face.id))
		}
	}
}

// withdraw removes names an endpoint holds at this router.
func (r *Router) withdraw(in *Face, payload []byte) (*advert.Result, error) {
	w, err := advert.ParseWithdraw(payload)
	if err != nil {
		return nil, err
	}
	res := &advert.Result{Seq: w.Seq, Names: make([]advert.NameResult, len(w.Names))}
	if err := r.replay.check(in.peer, in.id, w.Seq, r.now()); err != nil {
		for i, n := range w.Names {
			res.Names[i] = advert.NameResult{Name: n, Status: advert.StatusReplay, Detail: clip(err.Error())}
		}
		return res, nil
	}
	for i, n := range w.Names {
		res.Names[i] = advert.NameResult{Name: n, Status: advert.StatusNotFound}
		if r.fib.Remove(n, in) {
			in.dropName(n)
			r.routeGone(in.peer, n, "withdraw")
			res.Names[i].Status = advert.StatusOK
		}
	}
	return res, nil
}

// routeGone is called when a local route for n, advertised by identity id,
// was removed: it counts it and withdraws the location record unless
// another local face still holds n.
func (r *Router) routeGone(id, n pdu.Name, cause string) {
	r.met.withdrawn.WithLabelValues(cause).Inc()
	for _, h := range r.fib.Lookup(n) {
		if h.Origin == OriginLocal {
			return
		}
	}
	r.unpublish(id, n)
}

// chainStatus maps a certs verification error to the status sent back.
func chainStatus(err error) advert.Status {
	switch {
	case errors.Is(err, certs.ErrBadSignature):
		return advert.StatusBadSignature
	case errors.Is(err, certs.ErrExpired):
		return advert.StatusExpired
	case errors.Is(err, certs.ErrNotYetValid):
		return advert.StatusNotYetValid
	case errors.Is(err, certs.ErrWrongIssuer):
		return advert.StatusWrongIssuer
	case errors.Is(err, certs.ErrWrongSubject):
		return advert.StatusWrongSubject
	case errors.Is(err, certs.ErrNameMismatch):
		return advert.StatusNameMismatch
	case errors.Is(err, certs.ErrUntrustedDomain):
		return advert.StatusUntrusted
	case errors.Is(err, certs.ErrWrongKind):
		return advert.StatusWrongKind
	case errors.Is(err, certs.ErrMalformed):
		return advert.StatusMalformed
	}
	return advert.StatusInternal
}

func clip(s string) string {
	if len(s) > advert.MaxDetail {
		return s[:advert.MaxDetail]
	}
	return s
}
