package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
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

// Summary.PublishPending counts the location records accepted and not
// yet published (retried here while the resolver fails), and is 0 once
// they are: the netns simulator waits on it before looking names up.
func TestSummaryPublishPending(t *testing.T) {
	w := newWorld(t)
	tr := &trackingResolver{Static: w.res}
	tr.failPubs.Store(2)
	r := w.router("r", router.Config{}, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := w.endpoint(r, certs.KindClient, "c")
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		t.Fatal(err)
	}
	if got := r.Summary().PublishPending; got < 1 {
		t.Fatalf("publish_pending %d right after the advertisement while the resolver fails, want >= 1", got)
	}
	for r.Summary().PublishPending != 0 {
		if ctx.Err() != nil {
			t.Fatalf("publish_pending still %d; %d names stored", r.Summary().PublishPending, tr.stored())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !published(w.res, c.Name()) {
		t.Fatal("publish_pending 0 but the name is not published")
	}
}
