package router_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// A reload (new credentials) ends a configured peer's redial backoff: the
// next dial comes at once, not after the grown wait.
func TestReloadResetsPeerBackoff(t *testing.T) {
	w := newWorld(t)
	rc, err := w.dom.NewRouter("r1")
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	var at [16]atomic.Int64
	dial := func(context.Context, pdu.Name, string, bool) (router.Link, error) {
		n := dials.Add(1)
		if int(n) < len(at) {
			at[n].Store(time.Now().UnixNano())
		}
		return nil, errors.New("refused")
	}
	peer := pdu.Name{1}
	r, err := router.New(router.Config{Listen: "127.0.0.1:9", Peers: []router.PeerConfig{{Name: peer, Addr: "127.0.0.1:1"}}},
		router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier,
			Resolver: w.res, Logger: zaptest.NewLogger(t), Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	// Failures 1-4 come after waits of 0.5, 1 and 2 s; the wait after the
	// fourth is 4 s (±25 %).
	deadline := time.Now().Add(30 * time.Second)
	for dials.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d dials", dials.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	reloadAt := time.Now()
	if err := r.Reload(rc.ID, rc.Member, rc.Domain, w.dom.Verifier, nil); err != nil {
		t.Fatal(err)
	}
	for dials.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d dials", dials.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waited := time.Duration(at[5].Load() - reloadAt.UnixNano())
	if waited > 2500*time.Millisecond {
		t.Fatalf("the dial after the reload came %v later; want it at once (the backoff was 3-5 s)", waited)
	}
}
