package sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/resolver"
)

// TestPacedPublishWaitsForSlot: with one publish slot, a second publish
// waits for the first, and the router's deadline (here 50 ms, counted
// from when it took the job) does not end it while it waits: its
// deadline starts with the publish (dhtPublishTimeout). A router that
// stops ends the wait.
func TestPacedPublishWaitsForSlot(t *testing.T) {
	slots := make(chan struct{}, 1)
	quit := make(chan struct{})
	p := &pacedDHT{slots: slots, quit: quit}
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- p.run(context.Background(), func(context.Context) error { <-release; return nil })
	}()
	for len(slots) == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	var left time.Duration
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		second <- p.run(ctx, func(ctx context.Context) error {
			dl, _ := ctx.Deadline()
			left = time.Until(dl)
			return ctx.Err()
		})
	}()
	time.Sleep(200 * time.Millisecond) // well past the second's 50 ms
	select {
	case err := <-second:
		t.Fatalf("the second publish ended while the first held the slot: %v", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the second publish, run after the first: %v", err)
	}
	if left < dhtPublishTimeout/2 {
		t.Fatalf("the second publish ran with %s left, want about %s from its start", left, dhtPublishTimeout)
	}

	// A stopped router's queued publish gives up at once.
	slots <- struct{}{}
	third := make(chan error, 1)
	go func() { third <- p.run(context.Background(), func(context.Context) error { return nil }) }()
	close(quit)
	select {
	case err := <-third:
		if !errors.Is(err, context.Canceled) && !errors.Is(err, resolver.ErrClosed) {
			t.Fatalf("queued publish of a stopped router: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stopped router's queued publish still waits")
	}
}
