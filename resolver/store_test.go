package resolver

import (
	"context"
	"fmt"
	"testing"
	"time"

	dsq "github.com/ipfs/go-datastore/query"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/certs"
)

// TestStoreBoundPerRouter (issue 9 item 6): one member router floods the
// domain DHT with self-minted names. Every other node keeps at most
// MaxRecordsPerRouter of that router's names, counts what it dropped
// (records_refused_total{reason="router_quota"}), and still stores an
// honest router's names, including a name both routers hold.
func TestStoreBoundPerRouter(t *testing.T) {
	const bound = 4
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("quota")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "quota", 3, 2, func(cfg *DHTConfig) { cfg.MaxRecordsPerRouter = bound })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	flooder, honest := c.nodes[0], c.nodes[1]
	// A name both hold, published before the flood: the flooder's entry
	// in it is counted.
	shared, sch := w.capsuleAt(c.routers[1], "quota shared", time.Hour)
	if err := honest.Publish(ctx, w.location(c.routers[1], shared, sch, NextSequence())); err != nil {
		t.Fatal(err)
	}
	sch0 := *sch
	sch0.Router, sch0.Member = c.routers[0].id.Meta, c.routers[0].member
	sch0.RtCert = rtCertFor(t, w, "quota shared", c.routers[0])
	if err := flooder.Publish(ctx, w.location(c.routers[0], shared, &sch0, NextSequence())); err != nil {
		t.Fatal(err)
	}
	stored := 0
	for i := range 3 * bound {
		name, ch := w.capsuleAt(c.routers[0], fmt.Sprintf("quota junk %d", i), time.Hour)
		if err := flooder.Publish(ctx, w.location(c.routers[0], name, ch, NextSequence())); err == nil {
			stored++
		}
	}
	if stored >= 3*bound {
		t.Errorf("all %d junk publishes succeeded; the other nodes should refuse beyond %d", stored, bound)
	}
	junkRouter := c.routers[0].id.Name
	for i, n := range c.nodes[1:] {
		if got := n.store.held(junkRouter); got > bound {
			t.Errorf("node %d holds %d names of the flooding router, bound %d", i+1, got, bound)
		}
		if got := counterValue(n.metrics.refused.WithLabelValues("router_quota")); got < float64(2*bound-1) {
			t.Errorf("node %d: records_refused_total = %v, want ≥ %d (router_quota)", i+1, got, 2*bound-1)
		}
	}
	if got := flooder.store.held(junkRouter); got < 3*bound+1 {
		t.Errorf("the flooder's own node holds %d of its names, want all %d (own router unbounded)", got, 3*bound+1)
	}
	// The flooder, over its bound, adds its entry to a name the honest
	// router holds: the other nodes store the set without that entry.
	both, bch := w.capsuleAt(c.routers[1], "quota both", time.Hour)
	if err := honest.Publish(ctx, w.location(c.routers[1], both, bch, NextSequence())); err != nil {
		t.Fatal(err)
	}
	bch0 := *bch
	bch0.Router, bch0.Member = c.routers[0].id.Meta, c.routers[0].member
	bch0.RtCert = rtCertFor(t, w, "quota both", c.routers[0])
	_ = flooder.Publish(ctx, w.location(c.routers[0], both, &bch0, NextSequence()))
	for i, n := range c.nodes[1:] {
		var routers []string
		for _, r := range storedSet(t, n, dhtKey(both)) {
			routers = append(routers, r.Router().String())
		}
		if len(routers) != 1 || routers[0] != c.routers[1].id.Name.String() {
			t.Errorf("node %d holds entries of %v for the honest name, want only the honest router's", i+1, routers)
		}
	}
	// Honest traffic: a new name of the honest router is stored everywhere
	// and found from every node; the shared name still shows both routers.
	name, ch := w.capsuleAt(c.routers[1], "quota honest", time.Hour)
	if err := honest.Publish(ctx, w.location(c.routers[1], name, ch, NextSequence())); err != nil {
		t.Fatalf("honest publish during the flood: %v", err)
	}
	for i, n := range c.nodes {
		if _, err := n.Lookup(ctx, name); err != nil {
			t.Errorf("node %d: honest name: %v", i, err)
		}
		if all, err := n.LookupAll(ctx, shared); err != nil || len(all) != 2 {
			t.Errorf("node %d: shared name: %d locations (%v), want 2", i, len(all), err)
		}
	}
}

// rtCertFor issues the RtCert of capsule label's server for router r.
func rtCertFor(t *testing.T, w *world, label string, r *routerFx) *certs.Cert {
	t.Helper()
	srv := testIdentity(t, certs.KindServer, "server "+label, w.base)
	rt, err := certs.IssueRtCert(srv, r.id.Name, w.base, w.base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// TestStoreSweep (issue 9 item 6): the records of a router that left the
// DHT are deleted by every other node within record_age (kad-dht alone
// kept them until read, its own sweep runs daily), and an entry whose
// certificates expired is dropped at once by the next sweep, while the
// names of routers that stay are kept.
func TestStoreSweep(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("sweep")
	clk := &clock{}
	cv := certs.NewVerifier(d.Meta)
	cv.Now = clk.Now
	c := startDHTs(t, w, d, cv, false, "sweep", 3, 2, func(cfg *DHTConfig) {
		cfg.RecordAge, cfg.Republish, cfg.StoreSweep = 4*time.Second, 500*time.Millisecond, 100*time.Millisecond
		cfg.PutTimeout = 2 * time.Second
		cfg.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leaver, stayer := c.nodes[0], c.nodes[1]
	var junk []string
	for i := range 3 {
		name, ch := w.capsuleAt(c.routers[0], fmt.Sprintf("sweep junk %d", i), 20*time.Hour)
		if err := leaver.Publish(ctx, w.location(c.routers[0], name, ch, NextSequence())); err != nil {
			t.Fatal(err)
		}
		junk = append(junk, dhtKey(name))
	}
	kept, kch := w.capsuleAt(c.routers[1], "sweep kept", 20*time.Hour)
	if err := stayer.Publish(ctx, w.location(c.routers[1], kept, kch, NextSequence())); err != nil {
		t.Fatal(err)
	}
	short, sch := w.capsuleAt(c.routers[1], "sweep short", 2*time.Hour)
	if err := stayer.Publish(ctx, w.location(c.routers[1], short, sch, NextSequence())); err != nil {
		t.Fatal(err)
	}
	has := func(n *DHT, key string) bool { return storedKeys(t, n)[key] }
	for i, n := range c.nodes[1:] {
		for _, k := range junk {
			if !has(n, k) {
				t.Fatalf("node %d does not hold a junk name before the router left", i+1)
			}
		}
	}
	if err := leaver.Close(); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	clk.Advance(3 * time.Hour) // the short chain has expired, memberships and the kept chain have not
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		remaining := 0
		for _, n := range c.nodes[1:] {
			for _, k := range append(junk, dhtKey(short)) {
				if has(n, k) {
					remaining++
				}
			}
		}
		if remaining == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after the router left, %d stored names of it (or expired) remain", time.Since(left).Round(time.Millisecond), remaining)
		}
	}
	t.Logf("the departed router's names were gone %s after it left (record_age 4s)", time.Since(left).Round(time.Millisecond))
	for i, n := range c.nodes[1:] {
		if !has(n, dhtKey(kept)) {
			t.Errorf("node %d lost the staying router's name", i+1)
		}
		if got := counterValue(n.metrics.swept.WithLabelValues("age")); got < 3 {
			t.Errorf("node %d: dht_swept_total{reason=age} = %v, want ≥ 3", i+1, got)
		}
		if got := counterValue(n.metrics.swept.WithLabelValues("expired")); got < 1 {
			t.Errorf("node %d: dht_swept_total{reason=expired} = %v, want ≥ 1", i+1, got)
		}
	}
	if _, err := c.nodes[2].Lookup(ctx, kept); err != nil {
		t.Errorf("lookup of the kept name: %v", err)
	}
}

// storedKeys lists the record keys in n's datastore, read below kad-dht
// (its Get would discard old records itself and hide a missing sweep).
func storedKeys(t *testing.T, n *DHT) map[string]bool {
	t.Helper()
	res, err := n.store.Batching.Query(context.Background(), dsq.Query{Prefix: "/" + recordNamespace})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if rec, _ := n.store.decode(e.Value); rec != nil {
			out[string(rec.GetKey())] = true
		}
	}
	return out
}

// storedSet is the record set n's datastore holds under key (nil: none).
func storedSet(t *testing.T, n *DHT, key string) []*Record {
	t.Helper()
	res, err := n.store.Batching.Query(context.Background(), dsq.Query{Prefix: "/" + recordNamespace})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if rec, set := n.store.decode(e.Value); rec != nil && string(rec.GetKey()) == key {
			return set
		}
	}
	return nil
}
