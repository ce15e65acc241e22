package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Publish verifies rec (a node never puts what it would refuse), merges
// it into the name's record set — rec replaces its router's entry, the
// other routers' entries stay — and puts the set to the closest peers,
// counting how many stored it: kad-dht's own PutValue returns nil even
// when every remote put failed. The record is republished (merged again)
// until it is withdrawn or expires.
func (d *DHT) Publish(ctx context.Context, rec *Record) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if _, err := d.verifier.Verify(rec); err != nil {
		return fmt.Errorf("publish %s: %w", rec.Name, err)
	}
	d.mu.Lock()
	if old := d.published[keyOf(rec)]; old != nil && old.Sequence > rec.Sequence {
		d.mu.Unlock()
		return fmt.Errorf("publish %s: %w: %d < %d", rec.Name, ErrStale, rec.Sequence, old.Sequence)
	}
	if rec.Withdrawn {
		delete(d.published, keyOf(rec))
	} else {
		d.published[keyOf(rec)] = rec
	}
	d.mu.Unlock()
	_, err := d.putMerged(ctx, rec)
	return err
}

// putMerged is get-merge-put: it gathers the name's current entries (this
// node's copy and the closest peers'), puts rec in place of its router's
// entry, drops expired entries, and puts the merged set to the same
// closest peers (one peer search per publish: the second search kad-dht's
// PutValue would make finds the peers the first just asked). A peer
// refuses a set that lacks entries it holds (a concurrent publish by
// another router); then it gathers and puts once more, now with those
// entries.
func (d *DHT) putMerged(ctx context.Context, rec *Record) (int, error) {
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		g := d.gatherFrom(ctx, rec.Name, true) // unreachable peers: merge what answered
		for _, c := range g.set {
			if c.Router() == rec.Router() && newer(c, rec) {
				return 0, fmt.Errorf("publish %s: %w: the DHT holds sequence %d for router %s",
					rec.Name, ErrStale, c.Sequence, rec.Router())
			}
		}
		set := mergeSets(d.verifier.now(), g.set, []*Record{rec})
		if len(set) == 0 { // rec has expired, and so has every other entry
			return 0, fmt.Errorf("publish %s: %w (at %s)", rec.Name, errAllExpired, rec.EffectiveExpiry().UTC().Format(time.RFC3339))
		}
		tp := time.Now()
		n, err := d.putTo(ctx, rec.Name, set, g.peers, g.err)
		d.log.Debug("publish", logging.Name(rec.Name), zap.Int("attempt", attempt), zap.Duration("lookup", g.lookup),
			zap.Duration("get", g.fetch), zap.Duration("put", time.Since(tp)), zap.Duration("took", time.Since(t0)),
			zap.Int("peers", len(g.peers)), zap.Int("stored", n), zap.Error(err))
		if err == nil || ctx.Err() != nil {
			return n, err
		}
		// A concurrent publish of another router reached this node's own
		// store between the gather and the put: gather again (that entry
		// is now in the local copy) and merge it in, a few times at most.
		if errors.Is(err, errLocalNewer) && attempt < 3 {
			continue
		}
		if attempt > 0 || !errors.Is(err, ErrFewPeers) {
			return n, err
		}
	}
}

// errAllExpired is putMerged's error when the record has expired and no
// entry of the name is left to put.
var errAllExpired = fmt.Errorf("%w: the record and every other entry of its name have expired", ErrExpired)

// errLocalNewer is putTo's error when this node's own store refuses the
// set: it holds entries the set lacks or a newer one (an ErrStale).
var errLocalNewer = fmt.Errorf("%w: this node holds a newer record set", ErrStale)

// put sends the record set to the closest peers and returns how many
// stored it.
func (d *DHT) put(ctx context.Context, name pdu.Name, set []*Record) (int, error) {
	peers, err := d.closestPeers(ctx, dhtKey(name))
	return d.putTo(ctx, name, set, peers, err)
}

// putTo stores the record set locally and sends it to peers, the closest
// peers a search found (searchErr: the search failed, nothing is sent),
// and returns how many stored it.
func (d *DHT) putTo(ctx context.Context, name pdu.Name, set []*Record, peers []peer.ID, searchErr error) (int, error) {
	value, err := MarshalSet(set)
	if err != nil {
		return 0, fmt.Errorf("publish %s: %w", name, err)
	}
	key := dhtKey(name)
	pr := record.MakePutRecord(key, value)
	// The local copy first: a node with no peers yet (the first of a
	// domain) still answers the lookups of nodes that join it later.
	if err := d.local.Put(ctx, key, pr); err != nil {
		if errors.Is(err, records.ErrOldRecord) {
			return 0, fmt.Errorf("publish %s: %w", name, errLocalNewer)
		}
		return 0, fmt.Errorf("publish %s: local store: %w", name, err)
	}
	if searchErr != nil {
		return 0, fmt.Errorf("publish %s: %w: closest peers: %w", name, ErrFewPeers, searchErr)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	// A pointer, not an atomic.Value: the puts fail with errors of
	// different types (a reset stream, a deadline), and a Value panics on
	// a store of another type than the first (found by the simulator).
	var lastErr atomic.Pointer[error]
	for _, p := range peers {
		wg.Add(1)
		go func(p peer.ID) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, d.cfg.PutTimeout)
			defer cancel()
			if err := d.msgr.PutValue(pctx, p, pr); err != nil {
				d.metrics.puts.WithLabelValues("failed").Inc()
				lastErr.Store(&err)
				d.log.Debug("put refused or failed", logging.Name(name), zap.Stringer("peer_id", p), zap.Error(err))
				return
			}
			d.metrics.puts.WithLabelValues("ok").Inc()
			ok.Add(1)
		}(p)
	}
	wg.Wait()
	n := int(ok.Load())
	need := min(d.cfg.MinPuts, len(peers))
	if need == 0 || n < need {
		detail := ""
		if e := lastErr.Load(); e != nil {
			detail = ": last error: " + (*e).Error()
		}
		return n, fmt.Errorf("publish %s: %w: %d of %d closest peers stored it, need %d%s",
			name, ErrFewPeers, n, len(peers), max(need, 1), detail)
	}
	return n, nil
}

// Withdraw stops republishing name and, when this node's key signed the
// record, puts a signed tombstone with a higher sequence in place of its
// router's entry. The entries of other routers stay.
func (d *DHT) Withdraw(ctx context.Context, name pdu.Name) error {
	_, err := d.withdraw(ctx, name)
	return err
}

// withdraw is Withdraw, returning the tombstone it put (nil if none).
func (d *DHT) withdraw(ctx context.Context, name pdu.Name) (*Record, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	mine := d.publishedFor(name)
	if len(mine) == 0 {
		return nil, fmt.Errorf("withdraw %s: %w", name, ErrNotPublished)
	}
	var last *Record
	var errs []error
	for _, r := range mine {
		t, err := d.withdrawIf(ctx, name, r.Router())
		if t != nil {
			last = t
		}
		errs = append(errs, err)
	}
	return last, errors.Join(errs...)
}

// WithdrawIf withdraws router's entry for name: this node stops
// republishing it and puts a tombstone in its place (merged into the set,
// so the entries of other routers holding the name stay). It fails with
// ErrSuperseded when this node announces the name for another router.
func (d *DHT) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	_, err := d.withdrawIf(ctx, name, router)
	return err
}

// withdrawIf is WithdrawIf, returning the tombstone it put (nil if none).
func (d *DHT) withdrawIf(ctx context.Context, name, router pdu.Name) (*Record, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	d.mu.Lock()
	mine := d.published[pubKey{name, router}]
	d.mu.Unlock()
	if mine == nil {
		if others := d.publishedFor(name); len(others) > 0 {
			return nil, fmt.Errorf("withdraw %s at %s: %w (this node announces %s)", name, router, ErrSuperseded, others[0].Router())
		}
		return nil, fmt.Errorf("withdraw %s: %w", name, ErrNotPublished)
	}
	d.forget(mine)
	if !mine.Signer().Key.Equal(d.cfg.Identity.Meta.Key) {
		d.log.Info("withdrawn name left to expire: signed by another key", logging.Name(name))
		return nil, nil
	}
	if exp := mine.EffectiveExpiry(); !d.verifier.now().Before(exp) {
		// A route withdrawn because it expired (Session 21): a tombstone
		// would be as expired as the record, every store drops both and
		// no lookup believes either, so there is nothing to put.
		d.log.Debug("withdrawn record had expired: left to lapse, nothing put", logging.Name(name), logging.Expiry(exp))
		return nil, nil
	}
	t, err := mine.Tombstone(d.cfg.Identity.Key, tombstoneSequence(mine.Sequence))
	if err != nil {
		return nil, fmt.Errorf("withdraw %s: %w", name, err)
	}
	if _, err := d.putMerged(ctx, t); err != nil {
		if errors.Is(err, errAllExpired) { // it expired since the check above
			d.log.Debug("withdrawn record had expired: left to lapse, nothing put", logging.Name(name), logging.Expiry(t.EffectiveExpiry()))
			return nil, nil
		}
		return t, fmt.Errorf("withdraw %s: %w", name, err)
	}
	return t, nil
}
