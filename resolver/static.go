package resolver

import (
	"context"
	"fmt"
	"sync"
	"time"

	wallclock "github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// Static is an in-memory Resolver for a single site and for tests. It
// verifies every record it is given (a nil Verifier trusts the records'
// signatures only, and is meant for tests of code above the resolver).
type Static struct {
	v *Verifier

	mu      sync.Mutex
	records map[pdu.Name]map[pdu.Name]staticEntry // name -> router -> record
	closed  bool
}

type staticEntry struct {
	rec    *Record
	expiry time.Time
}

var _ Resolver = (*Static)(nil)

// NewStatic returns an empty static resolver that checks records with v.
func NewStatic(v *Verifier) *Static {
	return &Static{v: v, records: make(map[pdu.Name]map[pdu.Name]staticEntry)}
}

func (s *Static) now() time.Time {
	if s.v != nil {
		return s.v.now()
	}
	return wallclock.Now()
}

func (s *Static) verify(r *Record) (time.Time, error) {
	if s.v != nil {
		return s.v.Verify(r)
	}
	if err := r.checkShape(); err != nil {
		return time.Time{}, fmt.Errorf("verify record for %s: %w", r.Name, err)
	}
	if err := r.checkSignature(); err != nil {
		return time.Time{}, fmt.Errorf("verify record for %s: %w", r.Name, err)
	}
	exp := r.EffectiveExpiry()
	if !s.now().Before(exp) {
		return time.Time{}, fmt.Errorf("verify record for %s: %w", r.Name, ErrExpired)
	}
	return exp, nil
}

// Publish verifies rec and stores it as rec.Router()'s record for the
// name unless that router's record held has a higher sequence. A tombstone
// removes that router's record; the other routers' stay.
func (s *Static) Publish(ctx context.Context, rec *Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	exp, err := s.verify(rec)
	if err != nil {
		return fmt.Errorf("publish %s: %w", rec.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	set := s.records[rec.Name]
	if old, ok := set[rec.Router()]; ok && s.now().Before(old.expiry) && old.rec.Sequence > rec.Sequence {
		return fmt.Errorf("publish %s: %w: %d < %d", rec.Name, ErrStale, rec.Sequence, old.rec.Sequence)
	}
	if set == nil {
		set = make(map[pdu.Name]staticEntry)
		s.records[rec.Name] = set
	}
	set[rec.Router()] = staticEntry{rec: rec, expiry: exp}
	return nil
}

// live returns name's valid records, newest first, sweeping expired ones.
// The caller holds s.mu.
func (s *Static) live(name pdu.Name) []*Record {
	set := s.records[name]
	now := s.now()
	var out []*Record
	for router, e := range set {
		if !now.Before(e.expiry) {
			delete(set, router)
			continue
		}
		if !e.rec.Withdrawn {
			out = append(out, e.rec)
		}
	}
	if len(set) == 0 {
		delete(s.records, name)
	}
	sortByRouter(out)
	return liveNewestFirst(now, out)
}

// Lookup returns the newest valid record held for name.
func (s *Static) Lookup(ctx context.Context, name pdu.Name) (*Record, error) {
	all, err := s.LookupAll(ctx, name)
	if err != nil {
		return nil, err
	}
	return all[0], nil
}

// LookupAll returns every valid record held for name, newest first.
func (s *Static) LookupAll(ctx context.Context, name pdu.Name) ([]*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	all := s.live(name)
	if len(all) == 0 {
		return nil, fmt.Errorf("lookup %s: %w", name, ErrNotFound)
	}
	return all, nil
}

// Withdraw forgets name at every router.
func (s *Static) Withdraw(ctx context.Context, name pdu.Name) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.records[name]; !ok {
		return fmt.Errorf("withdraw %s: %w", name, ErrNotPublished)
	}
	delete(s.records, name)
	return nil
}

// WithdrawIf forgets router's record for name and no other: a record
// another router published for the name (a replica, or the router the
// name moved to) is never removed.
func (s *Static) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	set := s.records[name]
	if _, ok := set[router]; !ok {
		return fmt.Errorf("withdraw %s at %s: %w", name, router, ErrNotPublished)
	}
	delete(set, router)
	if len(set) == 0 {
		delete(s.records, name)
	}
	return nil
}

// Len is the number of names held (valid or not yet swept).
func (s *Static) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// Close makes further calls fail with ErrClosed.
func (s *Static) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
