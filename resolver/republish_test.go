package resolver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestRepublish: kad-dht drops records older than RecordAge whatever their
// validity, so a published record survives only by being put again; one
// close to its certificates' expiry is renewed through Renew instead.
func TestRepublish(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("republish")
	clk := &clock{}
	cv := certs.NewVerifier(d.Meta)
	cv.Now = clk.Now
	short := func(cfg *DHTConfig) {
		cfg.RecordAge = 1500 * time.Millisecond
		cfg.Republish = 300 * time.Millisecond
		cfg.MinPuts = 1
	}
	c := startDHTs(t, w, d, cv, false, "republish", 3, 2, short)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rp := w.router(d, "republisher")
	renewed := make(chan *Record, 4)
	cfg := DHTConfig{Identity: rp.id, Member: rp.member, Domain: d.Meta, Certs: cv, Bootstrap: c.nodes[0].Addrs(),
		RenewBefore: 30 * time.Minute,
		Renew: func(ctx context.Context, old *Record) (*Record, error) {
			// A router renews its certificates here; the fixture's are
			// deterministic, so the same capsule gets a longer chain.
			_, chain := w.capsuleAt(rp, "kept", 3*time.Hour)
			fresh, err := NewLocation(rp.id.Key, old.Name, chain, old.Addrs, NextSequence(), time.Time{})
			if err == nil {
				select { // never block the republish loop (and Close)
				case renewed <- fresh:
				default:
				}
			}
			return fresh, err
		}}
	short(&cfg)
	p, err := NewDHT(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.WaitPeers(ctx, 3); err != nil {
		t.Fatal(err)
	}

	kept, chain := w.capsuleAt(rp, "kept", 2*time.Hour)
	rec := w.location(rp, kept, chain, NextSequence())
	if err := p.Publish(ctx, rec); err != nil {
		t.Fatal(err)
	}
	droppedName, droppedChain := w.capsuleAt(rp, "dropped", 2*time.Hour)
	dropped := w.location(rp, droppedName, droppedChain, NextSequence())
	if err := p.Publish(ctx, dropped); err != nil {
		t.Fatal(err)
	}
	p.forget(dropped) // stop republishing it, as if the router had crashed

	time.Sleep(2500 * time.Millisecond) // > RecordAge
	for i, n := range c.nodes {
		if got, err := n.Lookup(ctx, kept); err != nil || got.Sequence != rec.Sequence {
			t.Fatalf("node %d: republished record: %v %v", i, got, err)
		}
		if _, err := n.Lookup(ctx, droppedName); !errors.Is(err, ErrNotFound) {
			t.Fatalf("node %d: record not republished for longer than RecordAge: %v, want ErrNotFound", i, err)
		}
	}

	// Near the certificates' expiry the next round renews instead.
	clk.Advance(time.Hour + 45*time.Minute)
	var fresh *Record
	select {
	case fresh = <-renewed:
	case <-ctx.Done():
		t.Fatal("Renew was not called")
	}
	// Renew hands the fresh record back before its put starts, and with
	// MinPuts 1 a put may return having reached one node: the others get
	// it from later rounds. Wait for every node to serve it (generously:
	// -race on a loaded machine is slow), no fixed sleep.
	for i, n := range c.nodes {
		var got *Record
		var err error
		deadline := time.Now().Add(20 * time.Second)
		for {
			lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
			got, err = n.Lookup(lctx, kept)
			lcancel()
			if err == nil && got.Sequence >= fresh.Sequence && got.EffectiveExpiry().After(rec.EffectiveExpiry()) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				if err != nil {
					t.Fatalf("node %d: %v", i, err)
				}
				t.Fatalf("node %d: got seq %d expiring %s, want the renewed record", i, got.Sequence, got.EffectiveExpiry())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
