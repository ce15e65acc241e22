package resolver

import (
	"context"
	"errors"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	wallclock "github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// CacheConfig sizes a Cache. The zero value works.
type CacheConfig struct {
	// Size is the number of positive entries kept. Default 65,536.
	Size int
	// NegativeSize is the number of negative entries kept. Default 16,384.
	NegativeSize int
	// NegativeTTL is how long "not found" is remembered. Default 2 s.
	NegativeTTL time.Duration
	// MaxAge is the longest a record is answered from the cache; the
	// record's own expiry ends it earlier. A name can move to another
	// router long before its record expires, and a router's view of it is
	// at most this stale (plus its own route cache). Default 0: until the
	// record expires.
	MaxAge time.Duration
	// Now is the clock (the verifier's, so that expiry agrees). Default wallclock.Now.
	Now func() time.Time
	// Registerer, when set, gets the hit-rate and latency collectors.
	Registerer prometheus.Registerer
}

// Cache is a Resolver that remembers answers of another: a record until it
// expires (the earlier of its own expiry and its certificates'), a miss for
// NegativeTTL. Publish and Withdraw go through and update the cache.
type Cache struct {
	inner   Resolver
	now     func() time.Time
	negTTL  time.Duration
	maxAge  time.Duration
	pos     *lru.Cache[pdu.Name, cacheEntry]
	neg     *lru.Cache[pdu.Name, time.Time]
	metrics *cacheMetrics
	// Children resolved once, so a warm hit costs one atomic add.
	hit, negHit, miss prometheus.Counter
	missLatency       prometheus.Observer
	// gen counts purges (under fillMu, which a fill from the inner
	// resolver holds too): an answer the inner resolver verified under the
	// trust before a purge is not cached after it.
	fillMu sync.Mutex
	gen    uint64
}

type cacheEntry struct {
	rec    *Record
	expiry time.Time
}

var _ Resolver = (*Cache)(nil)

// NewCache wraps inner.
func NewCache(inner Resolver, cfg CacheConfig) (*Cache, error) {
	if cfg.Size <= 0 {
		cfg.Size = 1 << 16
	}
	if cfg.NegativeSize <= 0 {
		cfg.NegativeSize = 1 << 14
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = wallclock.Now
	}
	pos, err := lru.New[pdu.Name, cacheEntry](cfg.Size)
	if err != nil {
		return nil, err
	}
	neg, err := lru.New[pdu.Name, time.Time](cfg.NegativeSize)
	if err != nil {
		return nil, err
	}
	m, err := newCacheMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Cache{inner: inner, now: cfg.Now, negTTL: cfg.NegativeTTL, maxAge: cfg.MaxAge, pos: pos, neg: neg, metrics: m,
		hit: m.lookups.WithLabelValues("hit"), negHit: m.lookups.WithLabelValues("negative_hit"),
		miss: m.lookups.WithLabelValues("miss"), missLatency: m.latency.WithLabelValues("miss")}, nil
}

// Lookup answers from the cache when it can, else asks the inner resolver.
func (c *Cache) Lookup(ctx context.Context, name pdu.Name) (*Record, error) {
	now := c.now()
	if e, ok := c.pos.Get(name); ok {
		if now.Before(e.expiry) {
			c.hit.Inc()
			return e.rec, nil
		}
		c.pos.Remove(name)
	}
	if until, ok := c.neg.Get(name); ok {
		if now.Before(until) {
			c.negHit.Inc()
			return nil, ErrNotFound
		}
		c.neg.Remove(name)
	}
	start := time.Now()
	gen := c.generation()
	rec, err := c.inner.Lookup(ctx, name)
	c.miss.Inc()
	c.missLatency.Observe(time.Since(start).Seconds())
	c.fill(gen, func() {
		switch {
		case err == nil:
			c.pos.Add(name, c.entry(rec))
		case errors.Is(err, ErrNotFound):
			c.neg.Add(name, c.now().Add(c.negTTL))
		}
	})
	return rec, err
}

// generation is the purges so far: a fill started now is kept only if
// there is no other by then (fill).
func (c *Cache) generation() uint64 {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	return c.gen
}

// fill runs f, which caches an answer of the inner resolver asked at
// generation gen, unless a purge came since (Session 17, review10): the
// answer may have been verified under the trust the purge dropped — a
// reload withdrawing a domain purges while a lookup of one of its names
// is under way.
func (c *Cache) fill(gen uint64, f func()) {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	if c.gen == gen {
		f()
	}
}

// LookupAll asks the inner resolver for every location of name (not
// cached: a router asks it on a FIB miss, whose route it caches itself).
// The newest record refreshes the cache entry Lookup answers from.
func (c *Cache) LookupAll(ctx context.Context, name pdu.Name) ([]*Record, error) {
	gen := c.generation()
	all, err := c.inner.LookupAll(ctx, name)
	c.fill(gen, func() {
		switch {
		case err == nil:
			c.neg.Remove(name)
			c.pos.Add(name, c.entry(all[0]))
		case errors.Is(err, ErrNotFound):
			c.pos.Remove(name)
			c.neg.Add(name, c.now().Add(c.negTTL))
		}
	})
	return all, err
}

// LookupUncached bypasses the cache (and does not fill it).
func (c *Cache) LookupUncached(ctx context.Context, name pdu.Name) (*Record, error) {
	return c.inner.Lookup(ctx, name)
}

// Publish publishes through the inner resolver and forgets what the
// cache held for rec's name.
func (c *Cache) Publish(ctx context.Context, rec *Record) error {
	if err := c.inner.Publish(ctx, rec); err != nil {
		return err
	}
	// rec is one router's record; the name's newest may be another
	// router's, so the next Lookup asks the inner resolver.
	c.neg.Remove(rec.Name)
	c.pos.Remove(rec.Name)
	return nil
}

// entry is rec's cache entry: kept until it expires, or MaxAge.
func (c *Cache) entry(rec *Record) cacheEntry {
	exp := rec.EffectiveExpiry()
	if c.maxAge > 0 {
		if until := c.now().Add(c.maxAge); until.Before(exp) {
			exp = until
		}
	}
	return cacheEntry{rec: rec, expiry: exp}
}

// Withdraw withdraws through the inner resolver and forgets name.
func (c *Cache) Withdraw(ctx context.Context, name pdu.Name) error {
	c.pos.Remove(name)
	return c.inner.Withdraw(ctx, name)
}

// WithdrawIf withdraws conditionally through the inner resolver. The
// cached entry goes in every case: if the name moved, it was stale.
func (c *Cache) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	c.pos.Remove(name)
	return c.inner.WithdrawIf(ctx, name, router)
}

// Invalidate forgets what the cache holds for name.
func (c *Cache) Invalidate(name pdu.Name) {
	c.pos.Remove(name)
	c.neg.Remove(name)
}

// Purge forgets everything the cache holds (a reload changed the trust
// the entries were believed under).
func (c *Cache) Purge() {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	c.gen++
	c.pos.Purge()
	c.neg.Purge()
}

// Entries lists the positive entries (for the admin API).
func (c *Cache) Entries() []*Record {
	now := c.now()
	var out []*Record
	for _, e := range c.pos.Values() {
		if now.Before(e.expiry) {
			out = append(out, e.rec)
		}
	}
	return out
}

// Inner is the wrapped resolver.
func (c *Cache) Inner() Resolver { return c.inner }

// Close closes the inner resolver.
func (c *Cache) Close() error { return c.inner.Close() }
