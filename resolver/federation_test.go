package resolver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// federation is two trust domains of domainNodes DHT nodes each; the first
// `borders` nodes of each domain also join the global DHT.
type federation struct {
	w        *world
	clk      *clock
	cv       *certs.Verifier
	doms     [2]*certs.Identity
	local    [2]*cluster
	global   *cluster
	res      [2][]*Federated
	names    [2][]pdu.Name
	owners   [2][]int // index of the node that published names[d][i]
	shortNam pdu.Name // a name whose certificates expire after one hour
}

const (
	domainNodes = 10
	borderNodes = 2
)

func startFederation(t *testing.T) *federation {
	t.Helper()
	f := &federation{clk: &clock{}}
	f.w = newWorld(t, time.Now().Add(-time.Minute))
	f.doms = [2]*certs.Identity{f.w.domain("A"), f.w.domain("B")}
	f.cv = certs.NewVerifier(f.doms[0].Meta, f.doms[1].Meta)
	f.cv.Now = f.clk.Now
	for d := range 2 {
		f.local[d] = startDHTs(t, f.w, f.doms[d], f.cv, false, fmt.Sprintf("dom%d", d), domainNodes, domainNodes-1, nil)
	}
	// The global tier: the border nodes of both domains, same identities
	// as on their domain tier.
	f.global = &cluster{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var boot []string
	for d := range 2 {
		for i := range borderNodes {
			r := f.local[d].routers[i]
			g, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: r.domain.Meta, Certs: f.cv,
				Global: true, Bootstrap: boot, HandshakeTimeout: 10 * time.Second, BootstrapTimeout: 60 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			f.global.nodes = append(f.global.nodes, g)
			f.global.routers = append(f.global.routers, r)
			if boot == nil {
				boot = g.Addrs()
			}
		}
	}
	t.Cleanup(f.global.close)
	for _, g := range f.global.nodes {
		if err := g.WaitPeers(ctx, 2*borderNodes-1); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 2 {
		var borders []string
		for i := range borderNodes {
			borders = append(borders, f.local[d].nodes[i].Addrs()...)
		}
		for i, n := range f.local[d].nodes {
			cfg := FederatedConfig{Local: n}
			if i < borderNodes {
				cfg.Global = f.global.nodes[d*borderNodes+i]
				cfg.BorderAddrs = []string{fmt.Sprintf("127.0.0.1:%d", 5000+10*d+i)}
			} else {
				cfg.Borders = borders
			}
			fr, err := NewFederated(cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.res[d] = append(f.res[d], fr)
		}
	}
	return f
}

// publishAll has every node of both domains publish one capsule name,
// each publish with a deadline of its own (one 30 s deadline for all 20
// ran out under -race on a loaded machine).
func (f *federation) publishAll(t *testing.T) {
	for d := range 2 {
		for i, r := range f.local[d].routers {
			name, chain := f.w.capsuleAt(r, fmt.Sprintf("dom%d cap%d", d, i), 24*time.Hour)
			rec := f.w.location(r, name, chain, NextSequence(), fmt.Sprintf("127.0.0.1:%d", 6000+100*d+i))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := f.res[d][i].Publish(ctx, rec)
			cancel()
			if err != nil {
				t.Fatalf("domain %d node %d publish: %v", d, i, err)
			}
			f.names[d] = append(f.names[d], name)
			f.owners[d] = append(f.owners[d], i)
		}
	}
}

// lookupEverywhere looks name up from every live node of domain d with
// resolver res and checks each answer with check.
func (f *federation) lookupEverywhere(t *testing.T, d int, name pdu.Name, skip []int, check func(*Record, error) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, domainNodes)
	for i, fr := range f.res[d] {
		if slices.Contains(skip, i) {
			continue
		}
		wg.Add(1)
		go func(i int, fr *Federated) {
			defer wg.Done()
			rec, err := fr.Lookup(ctx, name)
			if cerr := check(rec, err); cerr != nil {
				errs <- fmt.Errorf("domain %d node %d: lookup %s: %w", d, i, name, cerr)
			}
		}(i, fr)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFederatedDHT(t *testing.T) {
	f := startFederation(t)
	f.publishAll(t)

	t.Run("every name is found from every node of its domain", func(t *testing.T) {
		for d := range 2 {
			for k, name := range f.names[d] {
				owner := f.local[d].routers[f.owners[d][k]].id.Name
				f.lookupEverywhere(t, d, name, nil, func(r *Record, err error) error {
					switch {
					case err != nil:
						return err
					case r.Kind != KindLocation || r.Router() != owner:
						return fmt.Errorf("got %s record at router %s, want location at %s", r.Kind, r.Router(), owner)
					}
					return nil
				})
			}
		}
	})

	t.Run("cross-domain lookups go through the global tier", func(t *testing.T) {
		ctx := context.Background()
		for d := range 2 {
			other := 1 - d
			borderNames := map[pdu.Name]bool{}
			for i := range borderNodes {
				borderNames[f.local[other].routers[i].id.Name] = true
			}
			for _, name := range f.names[other] {
				// The domain tier does not hold it ...
				if _, err := f.local[d].nodes[domainNodes-1].Lookup(ctx, name); !errors.Is(err, ErrNotFound) {
					t.Fatalf("domain %d DHT answered for a name of domain %d: %v", d, other, err)
				}
				// ... the federated lookup finds the border record.
				f.lookupEverywhere(t, d, name, nil, func(r *Record, err error) error {
					switch {
					case err != nil:
						return err
					case r.Kind != KindBorder:
						return fmt.Errorf("got a %s record, want border", r.Kind)
					case r.Domain() != f.doms[other].Name || !borderNames[r.Border.Name()]:
						return fmt.Errorf("got domain %s via %s, want domain %d via one of its borders", r.Domain(), r.Border.Name(), other)
					}
					return nil
				})
			}
		}
	})

	t.Run("poisoned records are refused by every honest node", func(t *testing.T) {
		f.poisonEveryNode(t)
	})

	t.Run("a node without a membership cannot join", func(t *testing.T) {
		f.intruders(t)
	})

	t.Run("withdraw removes a name from both tiers", func(t *testing.T) {
		ctx := context.Background()
		d, i := 0, domainNodes-1 // a non-border node: its tombstone goes through a border
		name := f.names[d][i]
		if err := f.res[d][i].Withdraw(ctx, name); err != nil {
			t.Fatal(err)
		}
		notFound := func(_ *Record, err error) error {
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("got %v, want ErrNotFound", err)
			}
			return nil
		}
		f.lookupEverywhere(t, d, name, nil, notFound)
		f.lookupEverywhere(t, 1-d, name, nil, notFound)
	})

	t.Run("a late conditional withdraw leaves a moved name on both tiers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		d, p, q := 0, borderNodes+3, borderNodes+4 // non-border nodes: exports go through a border
		rp, rq := f.local[d].routers[p], f.local[d].routers[q]
		name, chainP := f.w.capsuleAt(rp, "fed mover", 24*time.Hour)
		_, chainQ := f.w.capsuleAt(rq, "fed mover", 24*time.Hour)
		if err := f.res[d][p].Publish(ctx, f.w.location(rp, name, chainP, NextSequence())); err != nil {
			t.Fatal(err)
		}
		if err := f.res[d][q].Publish(ctx, f.w.location(rq, name, chainQ, NextSequence())); err != nil {
			t.Fatal(err)
		}
		// Only the old router's entry goes: the new router's stays.
		if err := f.res[d][p].WithdrawIf(ctx, name, rp.id.Name); err != nil {
			t.Fatalf("late withdraw at the old router: %v", err)
		}
		atQ := func(r *Record, err error) error {
			if err != nil || r.Router() != rq.id.Name {
				return fmt.Errorf("got %v %v, want the record at the new router", r, err)
			}
			return nil
		}
		f.lookupEverywhere(t, d, name, nil, atQ)
		f.lookupEverywhere(t, 1-d, name, nil, atQ) // border records keep the chain's router
		if err := f.res[d][q].WithdrawIf(ctx, name, rq.id.Name); err != nil {
			t.Fatal(err)
		}
		notFound := func(_ *Record, err error) error {
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("got %v, want ErrNotFound", err)
			}
			return nil
		}
		f.lookupEverywhere(t, d, name, nil, notFound)
		f.lookupEverywhere(t, 1-d, name, nil, notFound)
	})

	t.Run("records survive nodes leaving", func(t *testing.T) {
		// Three non-border nodes of domain 0 leave, among them publishers:
		// their names must still resolve from the nodes that remain.
		gone := []int{2, 3, 4}
		for _, i := range gone {
			if err := f.local[0].nodes[i].Close(); err != nil {
				t.Fatal(err)
			}
		}
		for k, name := range f.names[0][:domainNodes-1] {
			_ = k
			f.lookupEverywhere(t, 0, name, gone, func(r *Record, err error) error { return err })
		}
	})

	t.Run("records expire when their certificates do", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r := f.local[1].routers[borderNodes]
		short, chain := f.w.capsuleAt(r, "short lived", 2*time.Hour)
		rec := f.w.location(r, short, chain, NextSequence())
		if err := f.res[1][borderNodes].Publish(ctx, rec); err != nil {
			t.Fatal(err)
		}
		f.lookupEverywhere(t, 1, short, nil, func(_ *Record, err error) error { return err })
		f.clk.Advance(2 * time.Hour) // memberships last 24 h, this chain 2 h
		f.lookupEverywhere(t, 1, short, nil, func(_ *Record, err error) error {
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("got %v after the certificates expired, want ErrNotFound", err)
			}
			return nil
		})
		f.lookupEverywhere(t, 1, f.names[1][0], nil, func(_ *Record, err error) error { return err })
	})
}

// poisonEveryNode sends each poisoned record straight to every node of
// domain 0 (as a malicious peer's PUT_VALUE would arrive) and checks that
// each refused it and still answers with the good record.
func (f *federation) poisonEveryNode(t *testing.T) {
	w := newWorld(t, f.w.base)
	// Domain 0's victim record, published the honest way.
	r1 := f.local[0].routers[borderNodes+1]
	d3 := w.domain("untrusted")
	good, list := poisons(t, f.w, f.doms[0], f.doms[1], d3, r1, NextSequence())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.res[0][borderNodes+1].Publish(ctx, good); err != nil {
		t.Fatal(err)
	}
	older := f.w.location(r1, good.Name, good.Chain, good.Sequence-1)
	list = append(list, poison{"older sequence", older.Bytes(), nil})
	sender := f.local[0].nodes[0]
	key := dhtKey(good.Name)
	for _, p := range list {
		t.Run(p.name, func(t *testing.T) {
			for i, n := range f.local[0].nodes[1:] {
				err := sender.msgr.PutValue(ctx, n.PeerID(), record.MakePutRecord(key, p.bytes))
				if err == nil {
					t.Errorf("node %d stored the poisoned record", i+1)
				}
			}
			f.lookupEverywhere(t, 0, good.Name, nil, func(r *Record, err error) error {
				if err != nil {
					return err
				}
				if r.Sequence != good.Sequence || r.Router() != r1.id.Name {
					return fmt.Errorf("answer changed: seq %d router %s", r.Sequence, r.Router())
				}
				return nil
			})
		})
	}
}

// intruders try to join domain 0's DHT without a valid membership.
func (f *federation) intruders(t *testing.T) {
	untrusted := f.w.domain("intruders")
	tests := []struct {
		name   string
		member func(r *routerFx) *routerFx
	}{
		{"member of an untrusted domain", func(*routerFx) *routerFx { return f.w.router(untrusted, "intruder untrusted") }},
		{"member of the other domain", func(*routerFx) *routerFx { return f.w.router(f.doms[1], "intruder other") }},
		{"membership expired", func(*routerFx) *routerFx {
			r := f.w.router(f.doms[0], "intruder expired")
			m, err := certs.IssueMember(f.doms[0], r.id.Name, f.w.base, f.w.base.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			r.member = m
			return r
		}},
	}
	target := f.local[0].nodes[0]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.member(nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The intruder speaks domain 0's protocols (prefix) but holds r's
			// membership.
			_, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: f.doms[0].Meta, Certs: f.cv,
				Bootstrap: target.Addrs(), HandshakeTimeout: 2 * time.Second, trustOwnProof: true})
			if err == nil {
				t.Fatal("intruder joined")
			}
			pid, _ := peer.IDFromPublicKey(mustPub(t, r))
			for i, n := range f.local[0].nodes {
				if n.closed.Load() {
					continue
				}
				if n.kad.RoutingTable().Find(pid) != "" {
					t.Errorf("node %d has the intruder in its routing table", i)
				}
			}
			if !target.gate.isDenied(pid) {
				t.Error("target does not deny the intruder")
			}
		})
	}
}
