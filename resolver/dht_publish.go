package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Publish verifies rec (a node never puts what it would refuse), then puts
// it to the closest peers and counts how many stored it: kad-dht's own
// PutValue returns nil even when every remote put failed. The record is
// republished until it is withdrawn or expires.
func (d *DHT) Publish(ctx context.Context, rec *Record) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if _, err := d.verifier.Verify(rec); err != nil {
		return fmt.Errorf("publish %s: %w", rec.Name, err)
	}
	d.mu.Lock()
	if old := d.published[rec.Name]; old != nil && old.Sequence > rec.Sequence {
		d.mu.Unlock()
		return fmt.Errorf("publish %s: %w: %d < %d", rec.Name, ErrStale, rec.Sequence, old.Sequence)
	}
	if rec.Withdrawn {
		delete(d.published, rec.Name)
	} else {
		d.published[rec.Name] = rec
	}
	d.mu.Unlock()
	_, err := d.put(ctx, rec)
	return err
}

// put sends rec to the closest peers and returns how many stored it.
func (d *DHT) put(ctx context.Context, rec *Record) (int, error) {
	key := dhtKey(rec.Name)
	pr := record.MakePutRecord(key, rec.Bytes())
	// The local copy first: a node with no peers yet (the first of a
	// domain) still answers the lookups of nodes that join it later.
	if err := d.local.Put(ctx, key, pr); err != nil {
		if errors.Is(err, records.ErrOldRecord) {
			return 0, fmt.Errorf("publish %s: %w: this node holds a newer or equal record", rec.Name, ErrStale)
		}
		return 0, fmt.Errorf("publish %s: local store: %w", rec.Name, err)
	}
	peers, err := d.kad.GetClosestPeers(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("publish %s: %w: closest peers: %w", rec.Name, ErrFewPeers, err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	var lastErr atomic.Value
	for _, p := range peers {
		wg.Add(1)
		go func(p peer.ID) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, d.cfg.PutTimeout)
			defer cancel()
			if err := d.msgr.PutValue(pctx, p, pr); err != nil {
				d.metrics.puts.WithLabelValues("failed").Inc()
				lastErr.Store(err)
				d.log.Debug("put refused or failed", logging.Name(rec.Name), zap.Stringer("peer_id", p), zap.Error(err))
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
		if e, _ := lastErr.Load().(error); e != nil {
			detail = ": last error: " + e.Error()
		}
		return n, fmt.Errorf("publish %s: %w: %d of %d closest peers stored it, need %d%s",
			rec.Name, ErrFewPeers, n, len(peers), max(need, 1), detail)
	}
	return n, nil
}

// Withdraw stops republishing name and, when this node's key signed the
// record, puts a signed tombstone with a higher sequence over it.
func (d *DHT) Withdraw(ctx context.Context, name pdu.Name) error {
	_, err := d.withdraw(ctx, name)
	return err
}

// withdraw is Withdraw, returning the tombstone it put (nil if none).
func (d *DHT) withdraw(ctx context.Context, name pdu.Name) (*Record, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	d.mu.Lock()
	rec := d.published[name]
	delete(d.published, name)
	d.mu.Unlock()
	if rec == nil {
		return nil, fmt.Errorf("withdraw %s: %w", name, ErrNotPublished)
	}
	if !rec.Signer().Key.Equal(d.cfg.Identity.Meta.Key) {
		d.log.Info("withdrawn name left to expire: signed by another key", logging.Name(name))
		return nil, nil
	}
	seq := max(NextSequence(), rec.Sequence+1)
	t, err := rec.Tombstone(d.cfg.Identity.Key, seq)
	if err != nil {
		return nil, fmt.Errorf("withdraw %s: %w", name, err)
	}
	if _, err := d.put(ctx, t); err != nil {
		return t, fmt.Errorf("withdraw %s: %w", name, err)
	}
	return t, nil
}

// WithdrawIf withdraws name only if the record the DHT holds for it still
// points at router. It asks the DHT first (a whole lookup): when the current record is
// another router's (the name moved), it only stops republishing its own
// and returns ErrSuperseded. Otherwise it puts a tombstone whose sequence
// is one above the record it withdraws, not the clock's: storage nodes
// keep whichever is higher, so a record another router published in the
// meantime (a later clock reading) still beats the tombstone.
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
	mine := d.published[name]
	d.mu.Unlock()
	if mine == nil {
		return nil, fmt.Errorf("withdraw %s: %w", name, ErrNotPublished)
	}
	if got := mine.Router(); got != router {
		return nil, fmt.Errorf("withdraw %s at %s: %w (this node announces %s)", name, router, ErrSuperseded, got)
	}
	ownKey := d.cfg.Identity.Meta.Key
	seq := mine.Sequence
	cur, err := d.lookupNewest(ctx, name)
	switch {
	case err == nil && cur.Withdrawn && cur.Sequence > seq:
		// Withdrawn already (by us earlier, or by whoever held it last).
		d.forget(mine)
		return nil, nil
	case err == nil && (cur.Router() != router || !cur.Signer().Key.Equal(ownKey)):
		d.forget(mine)
		return nil, fmt.Errorf("withdraw %s at %s: %w (%s, sequence %d)", name, router, ErrSuperseded, cur.Router(), cur.Sequence)
	case err == nil:
		seq = max(seq, cur.Sequence)
	case errors.Is(err, ErrClosed), ctx.Err() != nil:
		return nil, fmt.Errorf("withdraw %s: %w", name, err)
	}
	// The record is ours, or the lookup found nothing (withdrawn, expired,
	// or not reached): the tombstone cannot beat a newer record anyway.
	d.forget(mine)
	if !mine.Signer().Key.Equal(ownKey) {
		d.log.Info("withdrawn name left to expire: signed by another key", logging.Name(name))
		return nil, nil
	}
	t, err := mine.Tombstone(d.cfg.Identity.Key, seq+1)
	if err != nil {
		return nil, fmt.Errorf("withdraw %s: %w", name, err)
	}
	if _, err := d.put(ctx, t); err != nil {
		if errors.Is(err, ErrStale) {
			return nil, fmt.Errorf("withdraw %s at %s: %w: %w", name, router, ErrSuperseded, err)
		}
		return t, fmt.Errorf("withdraw %s: %w", name, err)
	}
	return t, nil
}
