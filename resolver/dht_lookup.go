package resolver

import (
	"context"
	"errors"
	"fmt"

	kad "github.com/libp2p/go-libp2p-kad-dht"
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
	rec, err := d.val.record(key, b)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	if !d.verifier.plausible(rec) {
		// Expired since the validator saw it (or, impossibly, another kind).
		return nil, fmt.Errorf("lookup %s: %w: %w", name, ErrNotFound, ErrExpired)
	}
	if rec.Withdrawn {
		return nil, fmt.Errorf("lookup %s: %w: withdrawn", name, ErrNotFound)
	}
	return rec, nil
}

// lookupNewest runs a whole DHT lookup for name and returns the best
// record any peer holds, tombstones included. Lookup may answer from this
// node's own copy; a conditional withdrawal must see what the other nodes
// hold (another router's newer record), so it waits for the end of the
// search (or ctx).
func (d *DHT) lookupNewest(ctx context.Context, name pdu.Name) (*Record, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := dhtKey(name)
	ch, err := d.kad.SearchValue(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	var b []byte
	for v := range ch { // each value sent beats the ones before it
		b = v
	}
	if b == nil {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lookup %s: %w", name, err)
		}
		return nil, fmt.Errorf("lookup %s: %w", name, ErrNotFound)
	}
	rec, err := d.val.record(key, b)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	if !d.verifier.plausible(rec) {
		return nil, fmt.Errorf("lookup %s: %w: %w", name, ErrNotFound, ErrExpired)
	}
	return rec, nil
}
