package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/gdpnet/gdpnet/pdu"
)

// Lookup asks the DHT for name and returns a valid record. With Quorum 1
// it takes the first valid answer and stops the search at once (kad-dht's
// GetValue would wait for a second answer, the end of the lookup and the
// repair puts to peers holding older copies); with Quorum q > 1 it waits
// for q answers and takes the best (highest sequence). Every answer was
// verified — signature, whole chain, domain, expiry — by the validator
// when it arrived (a local copy too), so here the winner is only parsed
// (from the validator's memory) and its expiry checked against this
// moment.
func (d *DHT) Lookup(ctx context.Context, name pdu.Name) (*Record, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	// kad-dht's query goroutines outlive the search until ctx ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := dhtKey(name)
	var b []byte
	var err error
	if d.cfg.Quorum <= 1 {
		var ch <-chan []byte
		if ch, err = d.kad.SearchValue(ctx, key, kad.Quorum(1)); err == nil {
			select {
			case v, ok := <-ch:
				if ok {
					b = v
				} else if err = ctx.Err(); err == nil {
					err = routing.ErrNotFound
				}
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
	} else {
		b, err = d.kad.GetValue(ctx, key, kad.Quorum(d.cfg.Quorum))
	}
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("lookup %s: %w", name, ErrNotFound)
		}
		if b == nil {
			return nil, fmt.Errorf("lookup %s: %w", name, err)
		}
	}
	set, err := d.val.set(key, b)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	live := liveNewestFirst(d.verifier.now(), d.plausible(set))
	if len(live) == 0 {
		// Expired since the validator saw it, or only tombstones in the
		// first answer: another peer may still hold another router's
		// live entry (a set that lost a concurrent update), so ask all.
		all, err := d.LookupAll(ctx, name)
		if err != nil {
			return nil, err
		}
		return all[0], nil
	}
	return live[0], nil
}

// plausible keeps the entries of the right kind and domain that have not
// expired.
func (d *DHT) plausible(set []*Record) []*Record {
	out := make([]*Record, 0, len(set))
	for _, r := range set {
		if d.verifier.plausible(r) {
			out = append(out, r)
		}
	}
	return out
}

// LookupAll asks this node's copy and every one of the closest peers for
// name's record set, merges what they hold (newest entry per router), and
// returns the live entries, newest first. Merging the answers of all
// closest peers finds an entry that only some of them hold (a concurrent
// publish that lost at the others, not yet repaired by a republish).
func (d *DHT) LookupAll(ctx context.Context, name pdu.Name) ([]*Record, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	set, err := d.gather(ctx, name)
	live := liveNewestFirst(d.verifier.now(), set)
	if len(live) == 0 {
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("lookup %s: %w", name, err)
		}
		return nil, fmt.Errorf("lookup %s: %w", name, ErrNotFound)
	}
	return live, nil
}

// gather returns the merged entries (tombstones included) that this node
// and the closest peers hold for name. Each answer is validated like any
// value kad-dht receives. The error reports a failed peer search; the
// entries gathered until then are returned with it.
func (d *DHT) gather(ctx context.Context, name pdu.Name) ([]*Record, error) {
	g := d.gatherFrom(ctx, name, false)
	return g.set, g.err
}

// gathered is what gatherFrom found: the merged entries, the closest
// peers it asked (a publish puts to the same ones), the error of the peer
// search, and how long the search and the gets took.
type gathered struct {
	set           []*Record
	peers         []peer.ID
	err           error
	lookup, fetch time.Duration
}

// gatherFrom is gather. For a publish (leave), the gets end at half the
// time ctx has left after the peer search, at the latest: the put that
// follows needs the rest, and a get that has not answered by then is
// merged as an unreachable peer would be (its entries come back at the
// next republish's merge). Waiting for the slowest of twenty gets until
// the caller's deadline made the put fail at once, and the retry redo the
// search from the start.
func (d *DHT) gatherFrom(ctx context.Context, name pdu.Name, leave bool) gathered {
	key := dhtKey(name)
	var mu sync.Mutex
	var sets [][]*Record
	add := func(v []byte) {
		if set, err := d.val.parse(key, v); err == nil {
			mu.Lock()
			sets = append(sets, d.plausible(set))
			mu.Unlock()
		}
	}
	if own, err := d.local.Get(ctx, key); err == nil && own != nil {
		add(own.GetValue())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g gathered
	t0 := time.Now()
	g.peers, g.err = d.closestPeers(ctx, key)
	g.lookup = time.Since(t0)
	gctx := ctx
	if dl, ok := ctx.Deadline(); ok && leave {
		var gcancel context.CancelFunc
		gctx, gcancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
		defer gcancel()
	}
	var wg sync.WaitGroup
	for _, p := range g.peers {
		wg.Add(1)
		go func(p peer.ID) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(gctx, d.cfg.PutTimeout)
			defer cancel()
			if rec, _, err := d.msgr.GetValue(pctx, p, key); err == nil && rec != nil {
				add(rec.GetValue())
			}
		}(p)
	}
	wg.Wait()
	g.fetch = time.Since(t0) - g.lookup
	g.set = mergeSets(d.verifier.now(), sets...)
	if g.err != nil {
		g.err = fmt.Errorf("closest peers: %w", g.err)
	}
	return g
}
