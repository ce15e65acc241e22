package resolver

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStatic(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, goldenBase)
	d1, d2, d3 := w.domain("one"), w.domain("two"), w.domain("three")
	r1 := w.router(d1, "router d1")
	now := goldenBase.Add(time.Minute)
	cv := trust(now, d1, d2)
	cv.Now = func() time.Time { return now }
	s := NewStatic(&Verifier{Certs: cv, Domain: d1.Name})
	defer s.Close()

	good, list := poisons(t, w, d1, d2, d3, r1, 5)
	if _, err := s.Lookup(ctx, good.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup before publish: %v, want ErrNotFound", err)
	}
	if err := s.Publish(ctx, good); err != nil {
		t.Fatal(err)
	}
	got, err := s.Lookup(ctx, good.Name)
	if err != nil || got.Sequence != 5 || got.Router() != r1.id.Name {
		t.Fatalf("lookup: %v %v", got, err)
	}

	for _, p := range list {
		t.Run("refuses "+p.name, func(t *testing.T) {
			rec, err := ParseRecord(p.bytes)
			if err == nil {
				err = s.Publish(ctx, rec)
			}
			if !errors.Is(err, p.wantErr) {
				t.Fatalf("err %v, want %v", err, p.wantErr)
			}
			if got, _ := s.Lookup(ctx, good.Name); got.Sequence != 5 {
				t.Fatalf("poison replaced the record: seq %d", got.Sequence)
			}
		})
	}

	older := w.location(r1, good.Name, good.Chain, 4)
	if err := s.Publish(ctx, older); !errors.Is(err, ErrStale) {
		t.Fatalf("older sequence: %v, want ErrStale", err)
	}
	newer := w.location(r1, good.Name, good.Chain, 6)
	if err := s.Publish(ctx, newer); err != nil {
		t.Fatal(err)
	}

	// The record dies with its certificates (valid 2 h from the base).
	now = goldenBase.Add(2*time.Hour + time.Second)
	if _, err := s.Lookup(ctx, good.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after cert expiry: %v, want ErrNotFound", err)
	}
	now = goldenBase.Add(time.Minute)

	if err := s.Publish(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if err := s.Withdraw(ctx, good.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, good.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after withdraw: %v", err)
	}
	if err := s.Withdraw(ctx, good.Name); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("second withdraw: %v", err)
	}
	tomb, err := newer.Tombstone(r1.id.Key, 9)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, tomb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, good.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after tombstone: %v", err)
	}
	s.Close()
	if _, err := s.Lookup(ctx, good.Name); !errors.Is(err, ErrClosed) {
		t.Fatalf("lookup after close: %v", err)
	}
}
