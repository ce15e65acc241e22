package resolver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// Static is an in-memory Resolver for a single site and for tests. It
// verifies every record it is given (a nil Verifier trusts the records'
// signatures only, and is meant for tests of code above the resolver).
type Static struct {
	v *Verifier

	mu      sync.Mutex
	records map[pdu.Name]staticEntry
	closed  bool
}

type staticEntry struct {
	rec    *Record
	expiry time.Time
}

var _ Resolver = (*Static)(nil)

// NewStatic returns an empty static resolver that checks records with v.
func NewStatic(v *Verifier) *Static {
	return &Static{v: v, records: make(map[pdu.Name]staticEntry)}
}

func (s *Static) now() time.Time {
	if s.v != nil {
		return s.v.now()
	}
	return time.Now()
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

// Publish verifies rec and stores it unless a record with a higher
// sequence is held. A tombstone removes the name.
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
	if old, ok := s.records[rec.Name]; ok && s.now().Before(old.expiry) && old.rec.Sequence > rec.Sequence {
		return fmt.Errorf("publish %s: %w: %d < %d", rec.Name, ErrStale, rec.Sequence, old.rec.Sequence)
	}
	s.records[rec.Name] = staticEntry{rec: rec, expiry: exp}
	return nil
}

// Lookup returns the record held for name if it is still valid.
func (s *Static) Lookup(ctx context.Context, name pdu.Name) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	e, ok := s.records[name]
	if !ok {
		return nil, fmt.Errorf("lookup %s: %w", name, ErrNotFound)
	}
	if !s.now().Before(e.expiry) {
		delete(s.records, name)
		return nil, fmt.Errorf("lookup %s: %w: record expired", name, ErrNotFound)
	}
	if e.rec.Withdrawn {
		return nil, fmt.Errorf("lookup %s: %w: withdrawn", name, ErrNotFound)
	}
	return e.rec, nil
}

// Withdraw forgets name.
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

// WithdrawIf forgets name only if the record held for it points at
// router. The check and the removal happen under one lock, so a record
// that another router published for the name in between is never removed.
func (s *Static) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	e, ok := s.records[name]
	if !ok {
		return fmt.Errorf("withdraw %s: %w", name, ErrNotPublished)
	}
	if got := e.rec.Router(); got != router {
		return fmt.Errorf("withdraw %s at %s: %w (%s)", name, router, ErrSuperseded, got)
	}
	delete(s.records, name)
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
