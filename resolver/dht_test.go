package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// cluster is one tier's DHT nodes on loopback.
type cluster struct {
	nodes   []*DHT
	routers []*routerFx
}

// startDHTs starts n nodes of domain d's DHT (or the global DHT), each
// bootstrapping from the first, and waits until every routing table has
// want peers.
func startDHTs(t testing.TB, w *world, d *certs.Identity, cv *certs.Verifier, global bool, label string, n, want int, mod func(*DHTConfig)) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := &cluster{nodes: make([]*DHT, n), routers: make([]*routerFx, n)}
	start := func(i int, boot []string) error {
		r := w.router(d, fmt.Sprintf("%s node %d", label, i))
		cfg := DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv, Global: global,
			Bootstrap: boot, HandshakeTimeout: 10 * time.Second, MinPuts: 3,
			// As a daemon would be configured: a bootstrap round that timed
			// out on a starved machine (-race at load 34) is tried again.
			BootstrapTimeout: 60 * time.Second}
		if mod != nil {
			mod(&cfg)
		}
		node, err := NewDHT(ctx, cfg)
		if err != nil {
			return err
		}
		c.nodes[i], c.routers[i] = node, r
		return nil
	}
	if err := start(0, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close() })
	// Start the rest in waves of 8, each node bootstrapping from up to three
	// nodes already running (a real deployment lists a few seeds).
	for lo := 1; lo < n; lo += 8 {
		hi := min(n, lo+8)
		var boot []string
		for _, k := range []int{0, lo / 2, lo - 1} {
			boot = append(boot, c.nodes[k].Addrs()...)
		}
		var wg sync.WaitGroup
		errs := make(chan error, hi-lo)
		for i := lo; i < hi; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := start(i, boot); err != nil {
					errs <- fmt.Errorf("node %d: %w", i, err)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	for _, node := range c.nodes {
		if err := node.WaitPeers(ctx, want); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n != nil {
			wg.Add(1)
			go func(n *DHT) { defer wg.Done(); n.Close() }(n)
		}
	}
	wg.Wait()
}

func TestDHTSmall(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("small")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "small", 5, 4, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name, chain := w.capsuleAt(c.routers[1], "smoke", time.Hour)
	rec := w.location(c.routers[1], name, chain, NextSequence())
	start := time.Now()
	if err := c.nodes[1].Publish(ctx, rec); err != nil {
		t.Fatal(err)
	}
	t.Logf("publish took %s", time.Since(start))
	for i, n := range c.nodes {
		start := time.Now()
		got, err := n.Lookup(ctx, name)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if got.Sequence != rec.Sequence {
			t.Fatalf("node %d: seq %d", i, got.Sequence)
		}
		t.Logf("node %d lookup %s", i, time.Since(start))
	}
	if err := c.nodes[1].Withdraw(ctx, name); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		if _, err := n.Lookup(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("node %d after withdraw: %v", i, err)
		}
	}
}
