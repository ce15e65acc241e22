package sim

import (
	"context"
	"errors"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
)

// Publishes in flight. Every router publishes its own record as soon as
// it is up: in a deployment each does so on its own machine, here a
// thousand share two cores. A publish is a kad-dht lookup (a dozen
// rounds of α queries, each to a peer met for the first time: QUIC, TLS
// and membership handshakes) and a get and a put to the 20 closest
// peers. Started all at once, 300 of them each got 1/150 of a core, none
// finished its lookup within the router's 30 s resolver timeout, and the
// retries started over: at 300 routers no publish was done for 2 min,
// then all within 90 s (every attempt before that was cut at 30 s in its
// lookup). The simulator therefore lets dhtPublishes publishes (and
// withdrawals: the same get-merge-put) run at once across the whole
// simulation, as it bounds the seed handshakes (dhtHandshakes), and the
// router's timeout runs from when a publish starts, not from when it
// was queued: each then runs about as fast as on a machine of its own.
// Options.PublishParallel overrides it.
const dhtPublishes = 16

// dhtPublishesMem is dhtPublishes on the in-memory DHT transport
// (Options.DHTTransport mem), where a router's first contacts cost a
// quarter of the CPU of QUIC ones: a publish then spends most of its time waiting for
// the emulated paths' round trips (a 1,000-router grid's are ~40 ms), and
// 16 at a time left the process at 0.9 of a core, publishing 1,000
// routers in 70 s; 64 at a time did it in 24 s (Session 11). Closer to
// a deployment, where every router publishes at once on its own machine.
const dhtPublishesMem = 64

// dhtPublishTimeout bounds one publish once started (the routers'
// resolver timeout in DHT mode, dhtRouterConfig).
const dhtPublishTimeout = 30 * time.Second

// pacedDHT is the resolver a router sees in DHT mode: its own DHT node,
// whose publishes and withdrawals wait for one of the simulation's
// publish slots. Lookups are not paced.
type pacedDHT struct {
	*resolver.DHT
	slots chan struct{}
	quit  <-chan struct{} // closed when the router stops
}

// run runs f once a slot is free, with dhtPublishTimeout from then. The
// caller's deadline (the router's resolver timeout, counted from when
// the job was taken) does not end the wait; its cancellation (the router
// stopping) and quit do.
func (p *pacedDHT) run(ctx context.Context, f func(context.Context) error) error {
	wctx, cancel := detach(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-p.quit:
			cancel()
		case <-done:
		}
	}()
	select {
	case p.slots <- struct{}{}:
	case <-wctx.Done():
		return wctx.Err()
	}
	defer func() { <-p.slots }()
	rctx, rcancel := context.WithTimeout(wctx, dhtPublishTimeout)
	defer rcancel()
	return f(rctx)
}

// Publish is the DHT's, paced.
func (p *pacedDHT) Publish(ctx context.Context, rec *resolver.Record) error {
	return p.run(ctx, func(ctx context.Context) error { return p.DHT.Publish(ctx, rec) })
}

// Withdraw is the DHT's, paced.
func (p *pacedDHT) Withdraw(ctx context.Context, name pdu.Name) error {
	return p.run(ctx, func(ctx context.Context) error { return p.DHT.Withdraw(ctx, name) })
}

// WithdrawIf is the DHT's, paced.
func (p *pacedDHT) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	return p.run(ctx, func(ctx context.Context) error { return p.DHT.WithdrawIf(ctx, name, router) })
}

// detach returns a context that ends when ctx is cancelled, but not when
// ctx's deadline passes.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return c, func() { stop(); cancel() }
}
