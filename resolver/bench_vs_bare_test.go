package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	kad "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
)

// bareValidator accepts any value under its namespace: kad-dht with no
// record verification at all, the floor our validator is measured against.
type bareValidator struct{}

func (bareValidator) Validate(string, []byte) error        { return nil }
func (bareValidator) Select(string, [][]byte) (int, error) { return 0, nil }

var bare struct {
	once sync.Once
	err  error
	dhts []*kad.IpfsDHT
}

// bareCluster runs a second, bare kad-dht (prefix /gdp/bare, accept-all
// validator, no filters) on the same 64 hosts as the benchmark cluster,
// and puts the same 64 values in it.
func bareCluster(b *testing.B) []*kad.IpfsDHT {
	c := benchCluster(b)
	bare.once.Do(func() {
		bare.err = errors.New("bare cluster did not start")
		for _, n := range c.nodes {
			d, err := kad.New(n.host, kad.Mode(kad.ModeServer), kad.ProtocolPrefix("/gdp/bare"),
				kad.Validator(record.NamespacedValidator{recordNamespace: bareValidator{}}), kad.DisableProviders(),
				kad.Concurrency(3)) // the same α as ours: the difference is verification and gating
			if err != nil {
				bare.err = err
				return
			}
			bare.dhts = append(bare.dhts, d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i, d := range bare.dhts {
			// The hosts are connected already; offer every peer to the new table.
			for _, p := range c.nodes {
				if p.host.ID() != d.PeerID() {
					_, _ = d.RoutingTable().TryAddPeer(p.host.ID(), true, false)
				}
			}
			if d.RoutingTable().Size() < 20 {
				bare.err = fmt.Errorf("bare node %d: %d peers", i, d.RoutingTable().Size())
				return
			}
		}
		for i, rec := range bench.recs {
			if err := bare.dhts[i].PutValue(ctx, dhtKey(rec.Name), rec.Bytes()); err != nil {
				bare.err = err
				return
			}
		}
		bare.err = nil
	})
	if bare.err != nil {
		b.Fatal(bare.err)
	}
	return bare.dhts
}

func closeBareCluster() {
	for _, d := range bare.dhts {
		_ = d.Close()
	}
}

// BenchmarkBareKadLookup is the baseline of BenchmarkDHTLookupCold: the
// same remote lookups (the same (node, name) pairs) on the same 64 hosts
// through kad-dht with no verification, no membership filters, same α (3),
// and stopping the same way: SearchValue with Quorum 1, the first value,
// then cancel (GetValue would wait for more answers and the repair puts).
func BenchmarkBareKadLookup(b *testing.B) {
	dhts := bareCluster(b)
	pairs := coldPairs(b)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pairs[i%len(pairs)]
		from, name := dhts[p.from], bench.names[p.name]
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		ch, err := from.SearchValue(ctx, dhtKey(name), kad.Quorum(1))
		var got bool
		if err == nil {
			_, got = <-ch
		}
		lat = append(lat, time.Since(start))
		cancel()
		if err != nil || !got {
			b.Fatalf("lookup %d: no value (%v)", i, err)
		}
	}
	b.StopTimer()
	reportLatency(b, lat)
}
