package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestSubscriptionSendsHaveDeadlines (Session 21): a subscription's
// renewals, its first SUBSCRIBE and its UNSUBSCRIBE wait for a link whose
// send queue stays full (quic-go's SendDatagram blocking on a congested
// or dead path) at most the client's Timeout each. Before, they sent with
// no deadline: Next ignored its ctx and Close hung until the link's idle
// timeout. Here the link's Send blocks until the test ends.
func TestSubscriptionSendsHaveDeadlines(t *testing.T) {
	tw := newTrustWorld(t)
	h1 := tw.servers[0].Name
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the world's cleanups
	var stuck atomic.Bool
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		switch m.Op {
		case wire.OpSubscribe, wire.OpUnsubscribe:
			if stuck.Load() {
				<-release // the link's Send blocks
				return nil
			}
			if m.Op == wire.OpSubscribe {
				ok := m.Reply(wire.StatusOK)
				ok.From, ok.Head = m.From, 0
				return []answer{{from: h1, msg: ok}}
			}
			return nil
		}
		return tw.honest(h, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rd, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	stuck.Store(true)
	bounded := func(what string, f func() error, want error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			if !errors.Is(err, want) {
				t.Fatalf("%s: %v, want %v", what, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still waiting for the blocked link after 10 s", what)
		}
	}
	// A renewal now (Renew), while Next waits for 1 s: Next returns at
	// its ctx's end, not when the link frees.
	sub.Renew()
	bounded("Next with a renewal on a blocked link", func() error {
		nctx, ncancel := context.WithTimeout(ctx, time.Second)
		defer ncancel()
		_, err := sub.Next(nctx)
		return err
	}, context.DeadlineExceeded)
	bounded("Close (UNSUBSCRIBE) on a blocked link", sub.Close, ErrTimeout)
	// A first SUBSCRIBE: its attempts' sends give up, it fails.
	bounded("Subscribe on a blocked link", func() error {
		_, err := rd.Subscribe(context.Background(), 1)
		return err
	}, ErrNoAnswer)
}
