package logging

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// The first event of a key is logged, later ones once per interval with the
// count of those not logged; other keys have their own budget.
func TestLimiterOncePerInterval(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	log := zap.New(core, zap.AddCaller())
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLimiter(10*time.Second, 8, clk.now)
	for i := 0; i < 1000; i++ {
		l.Info(log, "a", "refused", Reason("a"))
		l.Warn(log, "b", "refused", Reason("b"))
	}
	if n := obs.Len(); n != 2 {
		t.Fatalf("%d lines after 2000 events within one interval, want 2", n)
	}
	clk.t = clk.t.Add(10 * time.Second)
	l.Info(log, "a", "refused", Reason("a"))
	es := obs.TakeAll()
	if len(es) != 3 {
		t.Fatalf("%d lines, want 3", len(es))
	}
	if got := es[2].ContextMap()["suppressed"]; got != uint64(999) {
		t.Errorf("suppressed = %v, want 999", got)
	}
	if got := es[0].ContextMap()["suppressed"]; got != uint64(0) {
		t.Errorf("first line's suppressed = %v, want 0", got)
	}
	if !strings.HasSuffix(es[0].Caller.File, "limit_test.go") {
		t.Errorf("caller %s, want the call site", es[0].Caller.File)
	}
}

// Many keys (a member using many names) neither grow the state beyond max
// nor the lines beyond max plus one overflow line per message and interval.
func TestLimiterBoundedKeys(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLimiter(10*time.Second, 16, clk.now)
	for round := 0; round < 3; round++ {
		for i := 0; i < 10000; i++ {
			l.Info(log, fmt.Sprintf("peer%d", round*10000+i), "refused")
		}
		if len(l.keys) > 16 || len(l.overflow) > 1 {
			t.Fatalf("round %d: %d keys, %d overflow keys", round, len(l.keys), len(l.overflow))
		}
		if n := obs.Len(); n > 17 {
			t.Fatalf("round %d: %d lines for 10,000 keys in one interval, want ≤ 17", round, n)
		}
		obs.TakeAll()
		clk.t = clk.t.Add(11 * time.Second)
	}
}

// Nothing is counted or kept for a level the logger does not write.
func TestLimiterDisabledLevel(t *testing.T) {
	core, _ := observer.New(zap.WarnLevel)
	l := NewLimiter(0, 0, nil)
	l.Info(zap.New(core), "k", "refused")
	if len(l.keys) != 0 {
		t.Errorf("%d keys for a disabled level", len(l.keys))
	}
}

// Events from many goroutines (a router's faces) share one budget.
func TestLimiterConcurrent(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	l := NewLimiter(time.Hour, 8, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				l.Info(log, "k", "refused")
			}
		}()
	}
	wg.Wait()
	if n := obs.Len(); n != 1 {
		t.Fatalf("%d lines from 8,000 concurrent events, want 1", n)
	}
	if st := l.keys[limitKey{"refused", "k"}]; st == nil || st.suppressed != 7999 {
		t.Fatalf("state %+v, want 7,999 suppressed", st)
	}
}

// A nil Limiter (a component built as a bare struct in a test) logs every
// event rather than panicking.
func TestLimiterNil(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	var l *Limiter
	l.Info(zap.New(core), "k", "refused")
	l.Warn(zap.New(core), "k", "refused")
	if obs.Len() != 2 {
		t.Fatalf("%d lines, want 2", obs.Len())
	}
}

// Keys that went quiet, even with events suppressed, give way to new ones
// once an interval has passed: a member's burst of names does not hold the
// table (and push every later peer into the shared overflow line).
func TestLimiterQuietKeysSwept(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLimiter(10*time.Second, 4, clk.now)
	for i := 0; i < 4; i++ {
		l.Info(log, fmt.Sprint("burst", i), "refused")
		l.Info(log, fmt.Sprint("burst", i), "refused") // suppressed
	}
	clk.t = clk.t.Add(10 * time.Second)
	l.Info(log, "honest peer", "refused")
	if l.keys[limitKey{"refused", "honest peer"}] == nil || len(l.overflow) != 0 {
		t.Fatalf("a new key after the burst went quiet: keys %d, overflow %d; want its own key", len(l.keys), len(l.overflow))
	}
	if obs.Len() != 5 {
		t.Errorf("%d lines, want 5", obs.Len())
	}
}

// A burst limiter logs up to burst lines of a key per interval, then one
// per interval with the count of those not logged.
func TestBurstLimiter(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewBurstLimiter(10*time.Second, 3, 8, clk.now)
	for i := 0; i < 100; i++ {
		l.Info(log, "peer-a", "link up")
		clk.t = clk.t.Add(10 * time.Millisecond)
	}
	if n := obs.Len(); n != 3 {
		t.Fatalf("%d lines after 100 events within one interval, want the burst of 3", n)
	}
	clk.t = time.Unix(1010, 0)
	for i := 0; i < 5; i++ {
		l.Info(log, "peer-a", "link up")
	}
	es := obs.TakeAll()
	if len(es) != 6 {
		t.Fatalf("%d lines after the interval, want 3 more (a new window)", len(es))
	}
	if got := es[3].ContextMap()["suppressed"]; got != uint64(97) {
		t.Errorf("suppressed = %v, want 97", got)
	}
}
