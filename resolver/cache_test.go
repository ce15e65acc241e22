package resolver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
)

// countingResolver counts lookups that reach it.
type countingResolver struct {
	Resolver
	lookups int
}

func (c *countingResolver) Lookup(ctx context.Context, n pdu.Name) (*Record, error) {
	c.lookups++
	return c.Resolver.Lookup(ctx, n)
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, goldenBase)
	d := w.domain("c")
	r := w.router(d, "r")
	now := goldenBase.Add(time.Minute)
	clockFn := func() time.Time { return now }
	cv := trust(now, d)
	cv.Now = clockFn
	inner := &countingResolver{Resolver: NewStatic(&Verifier{Certs: cv, Domain: d.Name})}
	reg := prometheus.NewRegistry()
	c, err := NewCache(inner, CacheConfig{Now: clockFn, NegativeTTL: time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name, chain := w.capsuleAt(r, "cached", time.Hour)

	// A miss is remembered for NegativeTTL.
	for range 3 {
		if _, err := c.Lookup(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup: %v", err)
		}
	}
	if inner.lookups != 1 {
		t.Fatalf("negative entry not used: %d inner lookups", inner.lookups)
	}
	// Publishing through the cache clears the negative entry: the next
	// lookup asks the inner resolver (the test does not invalidate).
	rec := w.location(r, name, chain, 1)
	if err := c.Publish(ctx, rec); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := c.Lookup(ctx, name)
		if err != nil || got.Sequence != 1 {
			t.Fatalf("lookup: %v %v", got, err)
		}
	}
	if inner.lookups != 2 {
		t.Fatalf("positive entry not used: %d inner lookups", inner.lookups)
	}
	// The entry dies with the record's certificates.
	now = goldenBase.Add(time.Hour + time.Second)
	if _, err := c.Lookup(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after expiry: %v", err)
	}
	if inner.lookups != 3 {
		t.Fatalf("expired entry served: %d inner lookups", inner.lookups)
	}
	for _, tc := range []struct {
		name string
		c    prometheus.Counter
		want float64
	}{{"hits", c.hit, 2}, {"negative hits", c.negHit, 2}, {"misses", c.miss, 3}} {
		var m dto.Metric
		if err := tc.c.Write(&m); err != nil || m.GetCounter().GetValue() != tc.want {
			t.Errorf("%s = %v (%v), want %v", tc.name, m.GetCounter().GetValue(), err, tc.want)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var samples uint64
	for _, f := range fams {
		if f.GetName() == "gdp_resolver_lookup_seconds" {
			samples = f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if samples != 3 {
		t.Errorf("latency histogram holds %d samples, want 3 (one per miss)", samples)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"zero value is static", Config{}, false},
		{"dht", Config{Mode: "dht", Bootstrap: []string{"/ip4/127.0.0.1/udp/1/quic-v1/p2p/x"}}, false},
		{"border", Config{Mode: "dht", Global: &GlobalConfig{BorderAddrs: []string{"127.0.0.1:1"}}}, false},
		{"unknown mode", Config{Mode: "dns"}, true},
		{"static with bootstrap", Config{Bootstrap: []string{"x"}}, true},
		{"border without addrs", Config{Mode: "dht", Global: &GlobalConfig{}}, true},
		{"border with borders", Config{Mode: "dht", Global: &GlobalConfig{BorderAddrs: []string{"127.0.0.1:1"}}, Borders: []string{"x"}}, true},
		{"republish not below age", Config{Mode: "dht", RecordAge: 60e9, Republish: 60e9}, true},
		{"negative quorum", Config{Mode: "dht", Quorum: -1}, true},
		{"negative store sweep", Config{Mode: "dht", StoreSweep: -1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

// TestCacheMaxAge: with MaxAge a record that is still valid is asked for
// again once it is that old, so a name that moved is seen to have moved.
func TestCacheMaxAge(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, goldenBase)
	d := w.domain("c")
	ra, rb := w.router(d, "ra"), w.router(d, "rb")
	now := goldenBase.Add(time.Minute)
	clockFn := func() time.Time { return now }
	cv := trust(now, d)
	cv.Now = clockFn
	static := NewStatic(&Verifier{Certs: cv, Domain: d.Name})
	inner := &countingResolver{Resolver: static}
	c, err := NewCache(inner, CacheConfig{Now: clockFn, MaxAge: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name, chainA := w.capsuleAt(ra, "moving", time.Hour)
	_, chainB := w.capsuleAt(rb, "moving", time.Hour)
	if err := static.Publish(ctx, w.location(ra, name, chainA, 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Lookup(ctx, name); err != nil || got.Router() != ra.id.Name {
		t.Fatalf("first lookup: %v %v", got, err)
	}
	// The name moves behind the cache's back (another router published).
	if err := static.Publish(ctx, w.location(rb, name, chainB, 2)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after      time.Duration
		wantRouter pdu.Name
		wantInner  int
	}{
		{29 * time.Second, ra.id.Name, 1},
		{31 * time.Second, rb.id.Name, 2},
		{45 * time.Second, rb.id.Name, 2},
	}
	for _, tc := range tests {
		now = goldenBase.Add(time.Minute + tc.after)
		got, err := c.Lookup(ctx, name)
		if err != nil || got.Router() != tc.wantRouter || inner.lookups != tc.wantInner {
			t.Fatalf("after %s: %v %v, %d inner lookups; want router %s, %d", tc.after, got, err,
				inner.lookups, tc.wantRouter, tc.wantInner)
		}
	}
}

func TestConfigWithDefaults(t *testing.T) {
	z := Config{}.WithDefaults()
	if z.Mode != "static" || len(z.Listen) != 0 || z.Quorum != 1 || z.MinPuts != 3 || z.RecordAge.Std() != time.Hour ||
		z.Republish.Std() != 20*time.Minute || z.HandshakeTimeout.Std() != 5*time.Second ||
		z.Cache.Size != 65536 || z.Cache.NegativeTTL.Std() != 2*time.Second || z.Cache.MaxAge != 0 ||
		z.MaxRecordsPerRouter != 100_000 || z.StoreSweep.Std() != time.Minute {
		t.Fatalf("zero value: %+v", z)
	}
	if err := z.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Config{Mode: "dht", RecordAge: 30 * 60e9, Global: &GlobalConfig{BorderAddrs: []string{"127.0.0.1:1"}}}.WithDefaults()
	if len(d.Listen) != 1 || d.Listen[0] != DefaultListen || d.Global.Listen[0] != DefaultGlobalListen ||
		d.Republish.Std() != 10*time.Minute || d.StoreSweep.Std() != time.Minute {
		t.Fatalf("dht: %+v %+v", d, d.Global)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigJoin: join defaults to refresh, takes seeded, and refuses
// anything else with the field named; refresh_interval defaults to 10m.
func TestConfigJoin(t *testing.T) {
	z := Config{Mode: "dht"}.WithDefaults()
	if z.Join != JoinRefresh || z.RefreshInterval.Std() != 10*time.Minute {
		t.Fatalf("defaults: join %q, refresh_interval %s", z.Join, z.RefreshInterval)
	}
	if err := (Config{Mode: "dht", Join: JoinSeeded}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{Mode: "dht", Join: "eager"}).Validate(); err == nil || !strings.Contains(err.Error(), `join "eager"`) {
		t.Fatalf("join eager: %v", err)
	}
	if err := (Config{Mode: "dht", RefreshInterval: -1}).Validate(); err == nil {
		t.Fatal("negative refresh_interval accepted")
	}
	if err := (Config{Mode: "dht", PutTimeout: -1}).Validate(); err == nil {
		t.Fatal("negative put_timeout accepted")
	}
	if z.PutTimeout.Std() != 5*time.Second {
		t.Errorf("put_timeout default %s", z.PutTimeout)
	}
	// Open hands them to the domain DHT node.
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("join config")
	r := w.router(d, "join config node")
	svc, err := Open(context.Background(), Config{Mode: "dht", Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		Join: JoinSeeded, RefreshInterval: config.Duration(7 * time.Minute), PutTimeout: config.Duration(9 * time.Second)},
		NodeCredentials{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: certs.NewVerifier(d.Meta)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if c := svc.Local.cfg; c.Join != JoinSeeded || c.RefreshInterval != 7*time.Minute || c.PutTimeout != 9*time.Second {
		t.Errorf("the DHT node got join %q, refresh_interval %s, put_timeout %s", c.Join, c.RefreshInterval, c.PutTimeout)
	}
}

// purgingResolver runs during after the inner resolver answered and before
// the answer is returned: a reload's purge while a lookup is under way.
type purgingResolver struct {
	Resolver
	during func()
}

func (p *purgingResolver) Lookup(ctx context.Context, n pdu.Name) (*Record, error) {
	rec, err := p.Resolver.Lookup(ctx, n)
	if p.during != nil {
		p.during()
	}
	return rec, err
}

func (p *purgingResolver) LookupAll(ctx context.Context, n pdu.Name) ([]*Record, error) {
	all, err := p.Resolver.LookupAll(ctx, n)
	if p.during != nil {
		p.during()
	}
	return all, err
}

// TestCachePurgeDuringLookup (Session 17, review10): an answer the inner
// resolver gave before a purge (a reload that withdrew trust purges the
// cache: Service.Reload) is not cached after it — it was verified under
// the trust the purge dropped. Before, a lookup under way at the reload
// filled the cache again with it, answered until the record expired.
func TestCachePurgeDuringLookup(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, goldenBase)
	d := w.domain("p")
	r := w.router(d, "r")
	now := goldenBase.Add(time.Minute)
	clockFn := func() time.Time { return now }
	cv := trust(now, d)
	cv.Now = clockFn
	inner := &purgingResolver{Resolver: NewStatic(&Verifier{Certs: cv, Domain: d.Name})}
	c, err := NewCache(inner, CacheConfig{Now: clockFn})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name, chain := w.capsuleAt(r, "purged", time.Hour)
	if err := inner.Publish(ctx, w.location(r, name, chain, 1)); err != nil {
		t.Fatal(err)
	}
	inner.during = c.Purge
	if _, err := c.Lookup(ctx, name); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Entries()); n != 0 {
		t.Fatalf("Lookup: %d entries cached from an answer given before the purge", n)
	}
	if _, err := c.LookupAll(ctx, name); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Entries()); n != 0 {
		t.Fatalf("LookupAll: %d entries cached from an answer given before the purge", n)
	}
	// Without a purge meanwhile, answers are cached as before.
	inner.during = nil
	if _, err := c.Lookup(ctx, name); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Entries()); n != 1 {
		t.Fatalf("%d entries cached after a plain lookup, want 1", n)
	}
}
