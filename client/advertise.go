package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Route is a name the client advertises: its own name (Self) or a capsule
// it hosts with the owner's AdCert.
type Route struct {
	Name   pdu.Name
	Target *certs.Metadata // capsule metadata; nil for the client's own name
	AdCert *certs.Cert     // the owner's AdCert naming this client; nil for its own name
}

// Self is the route for the client's own name.
func (c *Client) Self() Route { return Route{Name: c.id.Name} }

// CapsuleRoute is the route for a capsule hosted under the owner's AdCert.
func CapsuleRoute(meta *certs.Metadata, ad *certs.Cert) Route {
	return Route{Name: meta.Name(), Target: meta, AdCert: ad}
}

// RefusedError reports the names the router refused, with its reasons.
type RefusedError struct {
	Refused []advert.NameResult
}

func (e *RefusedError) Error() string {
	parts := make([]string, len(e.Refused))
	for i, r := range e.Refused {
		parts[i] = fmt.Sprintf("%s: %s (%s)", r.Name, r.Status, r.Detail)
	}
	return "client: advertisement refused: " + strings.Join(parts, "; ")
}

// ErrRefused is matched by errors.Is for every *RefusedError.
var ErrRefused = errors.New("client: advertisement refused")

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// rtCertFor returns an RtCert naming the client's router, issuing a new one
// when none is held or less than half its lifetime is left.
func (c *Client) rtCertFor(router pdu.Name) (*certs.Cert, error) {
	c.advMu.Lock()
	defer c.advMu.Unlock()
	now := clock.Now()
	if rc := c.rtCert; rc != nil && rc.Subject == router && now.Before(rc.NotAfter.Add(-c.opts.RtCertLifetime/2)) {
		return rc, nil
	}
	rc, err := certs.IssueRtCert(c.id, router, now.Add(-time.Minute), now.Add(c.opts.RtCertLifetime))
	if err != nil {
		return nil, err
	}
	c.rtCert = rc
	if c.opts.OnRtCert != nil {
		c.opts.OnRtCert(rc)
	}
	return rc, nil
}

// Advertise asks the router to route the given names to this client, once.
// It returns one result per name; if any name was refused the error is a
// *RefusedError (the accepted ones are installed all the same).
//
// One-shot: the router holds each route until the earliest NotAfter of its
// chain (the RtCert, an hour by default; the AdCert; the router's
// membership) and then drops it without a word, and nothing reaches the
// name from then on. A program that runs longer keeps its names with
// KeepAdvertised (or Maintain), which advertise again before they expire.
// A re-attach (AttachAny) re-advertises what Advertise installed, but does
// not renew it.
func (c *Client) Advertise(ctx context.Context, routes ...Route) ([]advert.NameResult, error) {
	return c.advertise(ctx, 0, routes)
}

// AdvertisePublished is Advertise that also waits, at most wait in all
// (rounded to milliseconds, at most advert.MaxWait), until the router has
// stored the location record of every accepted name in the resolver, so
// that other routers resolve them (PROTOCOL.md §5.4): each accepted
// result's Published says whether that happened (PublishDone), the wait
// ended first (PublishPending), or the router has no resolver
// (PublishNoResolver). Names sent after the wait is spent (more than one
// ADVERTISE's worth) are advertised without it (PublishNotAsked). The
// router caps the wait at its advertise.max_publish_wait.
func (c *Client) AdvertisePublished(ctx context.Context, wait time.Duration, routes ...Route) ([]advert.NameResult, error) {
	ms := min(max(wait.Milliseconds(), 1), advert.MaxWait)
	return c.advertise(ctx, time.Duration(ms)*time.Millisecond, routes)
}

func (c *Client) advertise(ctx context.Context, wait time.Duration, routes []Route) ([]advert.NameResult, error) {
	if len(routes) == 0 {
		return nil, nil
	}
	rc, err := c.rtCertFor(c.Router())
	if err != nil {
		return nil, fmt.Errorf("advertise: rtcert: %w", err)
	}
	var all []advert.NameResult
	deadline := time.Now().Add(wait) // the wait is for all the chunks together
	for start := 0; start < len(routes); start += advertChunk {
		wait := wait
		if wait > 0 {
			wait = max(time.Until(deadline).Truncate(time.Millisecond), 0)
		}
		chunk := routes[start:min(start+advertChunk, len(routes))]
		names := make([]advert.AdvertName, len(chunk))
		for i, r := range chunk {
			names[i] = advert.AdvertName{Name: r.Name}
			if r.Target != nil {
				names[i].Target, names[i].AdCert = r.Target.Marshal(), r.AdCert.Marshal()
			}
		}
		res, err := c.control(ctx, pdu.TypeAdvertise, wait, func(seq uint64) ([]byte, error) {
			return advert.MarshalAdvertise(&advert.Advertise{
				Seq: seq, Endpoint: c.id.Meta.Marshal(), RtCert: rc.Marshal(), Names: names,
				Wait: uint32(wait.Milliseconds()),
			})
		})
		if err != nil {
			return all, fmt.Errorf("advertise: %w", err)
		}
		all = append(all, res.Names...)
	}
	var refused []advert.NameResult
	c.mu.Lock()
	for _, r := range all {
		if r.Status == advert.StatusOK {
			c.held[r.Name] = true
			for _, rt := range routes {
				if rt.Name == r.Name {
					c.routes[r.Name] = rt
				}
			}
		} else {
			refused = append(refused, r)
		}
	}
	c.mu.Unlock()
	if len(refused) > 0 {
		return all, &RefusedError{Refused: refused}
	}
	return all, nil
}

// advertChunk keeps one ADVERTISE well inside a PDU payload: a capsule
// entry carries ~0.5 KB of metadata and certificate.
const advertChunk = 64

// Withdraw asks the router to stop routing names to this client.
func (c *Client) Withdraw(ctx context.Context, names ...pdu.Name) ([]advert.NameResult, error) {
	var all []advert.NameResult
	for start := 0; start < len(names); start += advert.MaxAdvertNames {
		chunk := names[start:min(start+advert.MaxAdvertNames, len(names))]
		res, err := c.control(ctx, pdu.TypeWithdraw, 0, func(seq uint64) ([]byte, error) {
			return advert.MarshalWithdraw(&advert.Withdraw{Seq: seq, Names: chunk})
		})
		if err != nil {
			return all, fmt.Errorf("withdraw: %w", err)
		}
		all = append(all, res.Names...)
	}
	c.mu.Lock()
	for _, n := range names {
		if n != c.id.Name {
			delete(c.held, n)
		}
		delete(c.routes, n)
	}
	c.mu.Unlock()
	return all, nil
}

// control sends an ADVERTISE or WITHDRAW built for a fresh advert sequence
// and waits for its ADVERTISE_RESULT, re-sending (with a new sequence)
// after each RequestTimeout, Attempts times in all. Every attempt stays
// answerable until the call returns: a router slow to verify a large
// ADVERTISE (a loaded machine) answers an earlier attempt after a later one
// was sent, and that answer, for the same names, is as good as any.
// Forgetting it would make each re-send queue behind the last and every
// attempt time out.
func (c *Client) control(ctx context.Context, typ pdu.Type, wait time.Duration, build func(seq uint64) ([]byte, error)) (*advert.Result, error) {
	ch := make(chan Message, c.opts.Attempts)
	sent := map[uint64]bool{}
	var last error = ErrTimeout
	for attempt := range c.opts.Attempts {
		seq := c.nextAdvSeq()
		payload, err := build(seq)
		if err != nil {
			return nil, err
		}
		// The attempt's time covers its send (Session 20): a link
		// whose send queue stays full costs the attempt, not longer.
		t := time.NewTimer(c.opts.RequestTimeout + wait)
		done, err := c.post(ctx, pdu.Header{Type: typ, TTL: 1, Dst: c.Router(), Src: c.id.Name, Payload: payload}, ch, t.C)
		if errors.Is(err, errSendBlocked) {
			t.Stop()
			last = err
			continue
		}
		if err != nil {
			t.Stop()
			return nil, err
		}
		defer done()
		sent[seq] = true
		res, err := c.controlAnswer(ctx, ch, sent, t.C)
		t.Stop()
		if errors.Is(err, ErrTimeout) || errors.Is(err, errStrayResult) {
			last = err
			continue
		}
		if err == nil && allReplay(res) && attempt < c.opts.Attempts-1 {
			// Another call of this client took a higher sequence and
			// reached the router first (concurrent calls, e.g. a capsule
			// server's CREATEs): the router's replay guard refuses this
			// lower one. Send it again at once with a fresh sequence.
			continue
		}
		return res, err
	}
	return nil, last
}

// allReplay reports whether res refuses every name as a replay: the
// sequence was not above the last the router accepted on this tunnel (or
// outside its clock window).
func allReplay(res *advert.Result) bool {
	for _, n := range res.Names {
		if n.Status != advert.StatusReplay {
			return false
		}
	}
	return len(res.Names) > 0
}

// errStrayResult: an ADVERTISE_RESULT for a sequence this call did not send.
var errStrayResult = errors.New("result for a sequence not sent")

// controlAnswer waits until deadline (RequestTimeout, plus the wait an
// ADVERTISE asked the router for, from the attempt's send) for the answer
// to any attempt of one control call (sent: the advert sequences the
// attempts carried).
func (c *Client) controlAnswer(ctx context.Context, ch chan Message, sent map[uint64]bool, deadline <-chan time.Time) (*advert.Result, error) {
	var stray error
	for {
		select {
		case m := <-ch:
			if m.Type == pdu.TypeNAK {
				return nil, &NAKError{Code: m.Code, Reporter: m.Src}
			}
			res, err := advert.ParseResult(m.Payload)
			if err != nil {
				return nil, err
			}
			if !sent[res.Seq] {
				stray = fmt.Errorf("%w: result for sequence %d", errStrayResult, res.Seq)
				continue
			}
			return res, nil
		case <-deadline:
			if stray != nil {
				return nil, stray
			}
			return nil, ErrTimeout
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.link.Done():
			return nil, ErrClosed
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// Maintain keeps routes advertised: it advertises them now and again
// before the earliest accepted expiry (at two thirds of the remaining
// lifetime), and after any failure every retry interval (default 5 s).
// routes is called each time so renewed AdCerts are picked up. It runs
// until ctx ends or the client closes; the goroutine belongs to the client.
// Failures are logged, not returned: KeepAdvertised is the same with the
// first advertisement's outcome returned.
func (c *Client) Maintain(ctx context.Context, routes func() []Route, retry time.Duration) {
	c.maintain(ctx, routes, retry, 0)
}

// KeepAdvertised advertises routes() now, as Advertise does, and returns
// that advertisement's results and error; when it succeeded, the names are
// then kept as Maintain keeps them (advertised again at two thirds of their
// remaining lifetime, every retry after a failure) until ctx ends or the
// client closes. It is what a program that runs for longer than its
// RtCert's hour wants instead of Advertise (Session 21: `gdp ping`, the
// simulator's clients and examples/sdk advertised once and lost their
// routes). On an error nothing is kept: the caller decides.
func (c *Client) KeepAdvertised(ctx context.Context, routes func() []Route, retry time.Duration) ([]advert.NameResult, error) {
	res, err := c.Advertise(ctx, routes()...)
	if err != nil {
		return res, err
	}
	c.maintain(ctx, routes, retry, renewIn(res, nil, retry))
	return res, nil
}

// maintain runs Maintain's loop, its first advertisement after first (0:
// at once).
func (c *Client) maintain(ctx context.Context, routes func() []Route, retry, first time.Duration) {
	if retry <= 0 {
		retry = 5 * time.Second
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		wait := first
		for {
			if wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-c.ctx.Done():
					return
				case <-c.link.Done():
					return
				case <-time.After(wait):
				}
			}
			res, err := c.Advertise(ctx, routes()...)
			if err != nil {
				c.log.Warn("advertisement failed", logging.Name(c.id.Name), zap.Error(err))
			}
			wait = renewIn(res, err, retry)
		}
	}()
}

// renewIn is how long after an advertisement with these results to
// advertise again: two thirds of the time left to the earliest accepted
// expiry (the router's, on this node's clock), or retry after a failure.
func renewIn(res []advert.NameResult, err error, retry time.Duration) time.Duration {
	if retry <= 0 {
		retry = 5 * time.Second
	}
	if earliest := earliestExpiry(res); !earliest.IsZero() && err == nil {
		if d := earliest.Sub(clock.Now()) * 2 / 3; d > 0 {
			return d
		}
	}
	return retry
}

func earliestExpiry(res []advert.NameResult) time.Time {
	var t time.Time
	for _, r := range res {
		if e := r.ExpiryTime(); r.Status == advert.StatusOK && (t.IsZero() || e.Before(t)) {
			t = e
		}
	}
	return t
}

// relinked is called by AttachAny's link when a new tunnel is up: the
// client's names are advertised again over it, retried until they are
// accepted, the tunnel changes again or the client closes. The channel it
// returns is closed when that re-advertisement has ended: a router drops
// PDUs from a source not advertised on the link, so what a caller sends
// to resume (a subscription's renewal) waits for it.
func (c *Client) relinked() <-chan struct{} {
	c.relinkMu.Lock()
	if c.relinkWait == nil {
		c.relinkWait = make(chan struct{})
	}
	w := c.relinkWait
	c.relinkMu.Unlock()
	select {
	case c.relinks <- struct{}{}:
	default:
	}
	return w
}

// relinkRound takes the waiters of the re-advertisement starting now.
func (c *Client) relinkRound() chan struct{} {
	c.relinkMu.Lock()
	defer c.relinkMu.Unlock()
	w := c.relinkWait
	c.relinkWait = nil
	return w
}

func (c *Client) readvertiser() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.relinks:
		}
		c.readvertise()
	}
}

// readvertise advertises the client's names again after a re-attach,
// until they are accepted or refused, and then releases relinked's
// waiters (those of a re-attach during the retries too).
func (c *Client) readvertise() {
	waiters := []chan struct{}{c.relinkRound()}
	defer func() {
		for _, w := range waiters {
			if w != nil {
				close(w)
			}
		}
	}()
	for c.ctx.Err() == nil {
		c.mu.Lock()
		routes := make([]Route, 0, len(c.routes))
		for _, r := range c.routes {
			routes = append(routes, r)
		}
		c.mu.Unlock()
		for i, r := range routes {
			if r.AdCert != nil && r.AdCert.Subject == c.id.Name && r.Target != nil && r.Target.Extra[SessionExtra] != "" {
				if s, err := c.Session(); err == nil && s.Name == r.Name {
					routes[i] = s // a fresh AdCert
				}
			}
		}
		if len(routes) == 0 {
			return
		}
		_, err := c.Advertise(c.ctx, routes...)
		if err == nil || errors.Is(err, ErrRefused) {
			if err != nil {
				c.log.Warn("re-advertisement refused in part", logging.Name(c.id.Name), zap.Error(err))
			}
			return
		}
		c.log.Info("re-advertisement failed; retrying", logging.Name(c.id.Name), zap.Error(err))
		select {
		case <-c.ctx.Done():
			return
		case <-c.relinks:
			waiters = append(waiters, c.relinkRound())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
