package router_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// TestRecordSequenceSurvivesClockSetBack: a router publishes its own
// location record, stops, and starts again (same identity, same
// state_dir) with its clock 3 minutes behind (internal/clock's offset, as
// GDP_FAULT_CLOCK_OFFSET sets it) and a new address. Its new record
// supersedes the old one at once: the sequence floor in state_dir keeps
// its sequences above the previous run's. Without it the new record's
// sequence (the clock) was lower, the resolver refused it as stale and the
// name pointed at the dead address until the old record expired.
func TestRecordSequenceSurvivesClockSetBack(t *testing.T) {
	w := newWorld(t)
	rc, err := w.dom.NewRouter("r")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	start := func(listen string) *router.Router {
		t.Helper()
		r, err := router.New(router.Config{Listen: listen, StateDir: dir}, router.Deps{
			Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier,
			Resolver: w.res, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	record := func(addr string) *resolver.Record {
		t.Helper()
		var rec *resolver.Record
		deadline := time.Now().Add(10 * time.Second)
		for {
			rec, err = w.res.Lookup(context.Background(), rc.ID.Name)
			if err == nil && slices.Equal(rec.Addrs, []string{addr}) {
				return rec
			}
			if time.Now().After(deadline) {
				if rec != nil {
					t.Fatalf("the router's record does not point at %s: addrs %v, sequence %d", addr, rec.Addrs, rec.Sequence)
				}
				t.Fatalf("the router's record does not point at %s: %v", addr, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	r1 := start("127.0.0.1:9")
	first := record("127.0.0.1:9")
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, resolver.SequenceFileName+"-"+rc.ID.Name.String())); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sequence state file: %v %v", fi, err)
	}

	defer clock.SetOffset(clock.SetOffset(-3 * time.Minute))
	r2 := start("127.0.0.1:10")
	defer r2.Close()
	second := record("127.0.0.1:10")
	if second.Sequence <= first.Sequence {
		t.Fatalf("sequence went back: %d after %d", second.Sequence, first.Sequence)
	}
}
