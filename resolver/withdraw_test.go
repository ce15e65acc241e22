package resolver

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestWithdrawIfAfterMove reproduces the race routers hit: a name's
// endpoint moves from router A to router B (B publishes a newer record),
// then A's withdrawal of the old attachment arrives late. An unconditional
// Withdraw deletes every router's record; WithdrawIf removes only the
// withdrawing router's, so B's stays (and A's stays when B withdraws: a
// name held at two routers is two replicas to the resolver).
func TestWithdrawIfAfterMove(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, goldenBase)
	d := w.domain("one")
	ra, rb := w.router(d, "router a"), w.router(d, "router b")
	now := goldenBase.Add(time.Minute)
	cv := trust(now, d)
	cv.Now = func() time.Time { return now }
	nameA, chainA := w.capsuleAt(ra, "mover", time.Hour)
	nameB, chainB := w.capsuleAt(rb, "mover", time.Hour)
	if nameA != nameB {
		t.Fatal("fixture: the capsule's name depends on its router")
	}
	atA := w.location(ra, nameA, chainA, 10)
	atB := w.location(rb, nameB, chainB, 20)

	kinds := []struct {
		name string
		open func(t *testing.T) Resolver
	}{
		{"static", func(*testing.T) Resolver { return NewStatic(&Verifier{Certs: cv}) }},
		{"cache over static", func(t *testing.T) Resolver {
			c, err := NewCache(NewStatic(&Verifier{Certs: cv}), CacheConfig{Now: cv.Now})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	tests := []struct {
		name     string
		withdraw func(r Resolver) error
		wantErr  error
		want     *Record // the record found afterwards (nil: none)
	}{
		{"unconditional withdraw deletes every router's record",
			func(r Resolver) error { return r.Withdraw(ctx, nameA) }, nil, nil},
		{"late withdraw by the old router",
			func(r Resolver) error { return r.WithdrawIf(ctx, nameA, ra.id.Name) }, nil, atB},
		{"withdraw by the newer router leaves the older one's",
			func(r Resolver) error { return r.WithdrawIf(ctx, nameA, rb.id.Name) }, nil, atA},
	}
	for _, k := range kinds {
		for _, tc := range tests {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				r := k.open(t)
				defer r.Close()
				for _, rec := range []*Record{atA, atB} { // attach at A, move to B
					if err := r.Publish(ctx, rec); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := r.Lookup(ctx, nameA); err != nil { // warm a cache
					t.Fatal(err)
				}
				if err := tc.withdraw(r); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("withdraw: %v, want %v", err, tc.wantErr)
				}
				got, err := r.Lookup(ctx, nameA)
				switch {
				case tc.want != nil && (err != nil || got.Router() != tc.want.Router() || got.Sequence != tc.want.Sequence):
					t.Fatalf("lookup after the withdraw: %v %v, want %s's record", got, err, tc.want.Router())
				case tc.want == nil && !errors.Is(err, ErrNotFound):
					t.Fatalf("lookup after withdraw: %v %v, want ErrNotFound", got, err)
				}
			})
		}
	}

	t.Run("nothing held", func(t *testing.T) {
		s := NewStatic(&Verifier{Certs: cv})
		defer s.Close()
		if err := s.WithdrawIf(ctx, nameA, ra.id.Name); !errors.Is(err, ErrNotPublished) {
			t.Fatalf("err %v, want ErrNotPublished", err)
		}
		s.Close()
		if err := s.WithdrawIf(ctx, nameA, ra.id.Name); !errors.Is(err, ErrClosed) {
			t.Fatalf("after close: %v, want ErrClosed", err)
		}
	})
}

// TestDHTWithdrawIfAfterMove is the same race on the DHT: router A's node
// published the name, router B's node published it newer; A's late
// conditional withdrawal replaces only A's entry of the record set with a
// tombstone and stops republishing it: B's entry stays.
func TestDHTWithdrawIfAfterMove(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("movers")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "movers", 4, 3, func(c *DHTConfig) { c.MinPuts = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.nodes[1], c.nodes[2]
	ra, rb := c.routers[1], c.routers[2]
	name, chainA := w.capsuleAt(ra, "mover", time.Hour)
	_, chainB := w.capsuleAt(rb, "mover", time.Hour)
	if err := a.Publish(ctx, w.location(ra, name, chainA, NextSequence())); err != nil {
		t.Fatal(err)
	}
	atB := w.location(rb, name, chainB, NextSequence())
	if err := b.Publish(ctx, atB); err != nil {
		t.Fatal(err)
	}

	if err := a.WithdrawIf(ctx, name, rb.id.Name); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("withdraw at A of B's entry: %v, want ErrSuperseded", err)
	}
	if err := a.WithdrawIf(ctx, name, ra.id.Name); err != nil {
		t.Fatalf("late withdraw at A: %v", err)
	}
	for _, r := range a.Published() {
		if r.Name == name {
			t.Fatal("A still republishes the name it withdrew")
		}
	}
	for i, n := range c.nodes {
		got, err := n.Lookup(ctx, name)
		if err != nil || got.Router() != rb.id.Name || got.Sequence != atB.Sequence {
			t.Fatalf("node %d after A's late withdraw: %v %v, want B's record", i, got, err)
		}
		all, err := n.LookupAll(ctx, name)
		if err != nil || len(all) != 1 || all[0].Router() != rb.id.Name {
			t.Fatalf("node %d LookupAll after A's late withdraw: %d records, %v; want B's only", i, len(all), err)
		}
	}

	// B, which holds the name, withdraws it: a tombstone everywhere.
	if err := b.WithdrawIf(ctx, name, rb.id.Name); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		if _, err := n.Lookup(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("node %d after B's withdraw: %v, want ErrNotFound", i, err)
		}
	}
}

// TestDHTWithdrawExpired: a router withdraws the record of a route that
// expired (its chain's NotAfter passed: the route's own expiry is why it is
// withdrawn). Nothing is left to put, since every store drops an expired
// entry and no lookup believes one; the withdrawal succeeds, stops the
// republishing and changes nothing else. Session 21: it failed with
// "malformed record: 0 entries" (the merged set, the expired tombstone
// dropped, was empty), which the router logged and retried.
func TestDHTWithdrawExpired(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("lapsers")
	cv := certs.NewVerifier(d.Meta)
	var skew atomic.Int64
	cv.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	c := startDHTs(t, w, d, cv, false, "lapsers", 4, 3, func(c *DHTConfig) { c.MinPuts = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, ra := c.nodes[1], c.routers[1]
	name, chain := w.capsuleAt(ra, "lapser", time.Hour)
	if err := a.Publish(ctx, w.location(ra, name, chain, NextSequence())); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(2 * time.Hour)) // the chain's hour is over
	if err := a.WithdrawIf(ctx, name, ra.id.Name); err != nil {
		t.Fatalf("withdraw of an expired record: %v, want nil (nothing to put)", err)
	}
	for _, r := range a.Published() {
		if r.Name == name {
			t.Fatal("A still republishes the expired name it withdrew")
		}
	}
	if err := a.WithdrawIf(ctx, name, ra.id.Name); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("second withdraw: %v, want ErrNotPublished", err)
	}
	for i, n := range c.nodes {
		if _, err := n.Lookup(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("node %d after the withdraw: %v, want ErrNotFound", i, err)
		}
	}
}
