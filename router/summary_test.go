package router_test

import (
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/router"
)

// Summary.Started is when the router was built, not the zero time (gdp
// router status printed "up since 0001-01-01").
func TestSummaryStarted(t *testing.T) {
	w := newWorld(t)
	before := time.Now()
	r := w.router("r1", router.Config{}, nil)
	s := r.Summary()
	if s.Started.Before(before.Add(-time.Second)) || s.Started.After(time.Now().Add(time.Second)) {
		t.Fatalf("Started = %v, want about %v", s.Started, before)
	}
}
