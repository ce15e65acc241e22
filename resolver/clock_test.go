package resolver

import (
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	wallclock "github.com/gdpnet/gdpnet/internal/clock"
)

// TestRecordClockSkew: a node's record verifier without a clock of its own
// reads the process clock (internal/clock, which the fault suite skews), so
// what it believes follows that node's clock: a record whose certificates
// start now verifies on a node 2 minutes behind (within the tolerated
// certs.DefaultClockSkew), is not yet valid on one 10 minutes behind, and
// has expired on one 2 hours ahead.
func TestRecordClockSkew(t *testing.T) {
	w := newWorld(t, time.Now())
	d := w.domain("a")
	r := w.router(d, "r")
	name, chain := w.capsuleAt(r, "c", time.Hour)
	rec := w.location(r, name, chain, NextSequence())
	v := &Verifier{Certs: certs.NewVerifier(d.Meta), Domain: d.Name}
	if _, err := v.Verify(rec); err != nil {
		t.Fatalf("unskewed: %v", err)
	}
	defer wallclock.SetOffset(wallclock.SetOffset(-2 * time.Minute))
	if _, err := v.Verify(rec); err != nil {
		t.Fatalf("2 minutes behind: %v", err)
	}
	wallclock.SetOffset(-10 * time.Minute)
	if _, err := v.Verify(rec); !errors.Is(err, certs.ErrNotYetValid) {
		t.Fatalf("10 minutes behind: %v, want not yet valid", err)
	}
	wallclock.SetOffset(2 * time.Hour)
	if _, err := v.Verify(rec); err == nil {
		t.Fatal("2 hours ahead: the record of a 1-hour chain verifies")
	}
}
