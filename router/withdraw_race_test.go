package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// stallingResolver holds every withdrawal at the door until the test lets
// it through, so that a test can land another router's publish between a
// router deciding to withdraw a name and the withdrawal reaching the
// resolver: the window in which a name moves.
type stallingResolver struct {
	resolver.Resolver
	arrived chan pdu.Name // a withdrawal reached the resolver
	proceed chan struct{} // let it through
	done    chan error    // what the resolver answered
}

func newStallingResolver(inner resolver.Resolver) *stallingResolver {
	return &stallingResolver{Resolver: inner, arrived: make(chan pdu.Name, 1),
		proceed: make(chan struct{}), done: make(chan error, 1)}
}

func (s *stallingResolver) stall(ctx context.Context, name pdu.Name) error {
	s.arrived <- name
	select {
	case <-s.proceed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stallingResolver) Withdraw(ctx context.Context, name pdu.Name) error {
	if err := s.stall(ctx, name); err != nil {
		return err
	}
	err := s.Resolver.Withdraw(ctx, name)
	s.done <- err
	return err
}

func (s *stallingResolver) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	if err := s.stall(ctx, name); err != nil {
		return err
	}
	err := s.Resolver.WithdrawIf(ctx, name, router)
	s.done <- err
	return err
}

// TestLateWithdrawAfterMove: a server attached at router A moves to router
// B; A's withdrawal of the old attachment reaches the resolver only after
// B published the server's new location. It removes only A's record: B's
// must survive, and a
// client at A must still reach the server (through the resolver, at B).
func TestLateWithdrawAfterMove(t *testing.T) {
	w := newWorld(t)
	stall := newStallingResolver(w.res)
	ra := w.router("a", router.Config{Resolver: router.ResolverConfig{Timeout: config.Duration(20 * time.Second)}}, stall)
	rb := w.router("b", router.Config{}, nil)
	w.connect(ra, rb)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	id, _ := certs.NewIdentity(certs.KindServer, "mover")
	atA, linkA := w.attachLink(ra, id)
	advertise(t, atA)
	at := func(r *testRouter) func() bool {
		return func() bool {
			rec, err := w.res.Lookup(ctx, id.Name)
			return err == nil && rec.Router() == r.Name()
		}
	}
	eventually(t, "record at A", at(ra))

	// The server leaves A; A's withdrawal is held while the server
	// attaches at B and B publishes.
	_ = linkA.Close()
	select {
	case n := <-stall.arrived:
		if n != id.Name {
			t.Fatalf("A withdrew %s, want %s", n, id.Name)
		}
	case <-ctx.Done():
		t.Fatal("A never withdrew the name")
	}
	server := w.attach(rb, id)
	advertise(t, server)
	eventually(t, "record at B", at(rb))

	close(stall.proceed)
	var err error
	select {
	case err = <-stall.done:
	case <-ctx.Done():
		t.Fatal("A's withdrawal never finished")
	}
	if err != nil { // it removes A's record only
		t.Fatalf("A's late withdrawal: %v", err)
	}
	if all, err := w.res.LookupAll(ctx, id.Name); err != nil || len(all) != 1 {
		t.Fatalf("after A's late withdrawal: %d records, %v; want B's only", len(all), err)
	}
	rec, err := w.res.Lookup(ctx, id.Name)
	if err != nil || rec.Router() != rb.Name() {
		t.Fatalf("after A's late withdrawal: %v %v, want the record at B", rec, err)
	}

	cl := w.endpoint(ra, certs.KindClient, "client at A")
	advertise(t, cl)
	w.published(cl.Name()) // B must find the client to answer it
	deadline := time.Now().Add(5 * time.Second)
	for {
		rep, err := cl.Ping(ctx, id.Name, 32, time.Second)
		if err == nil && rep.Reached && rep.From == id.Name {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping from A: %+v %v", rep, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
