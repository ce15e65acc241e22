package router_test

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
	"github.com/gdpnet/gdpnet/tunnel"
)

// An endpoint that attaches and drops its tunnel in a loop (50 times in
// well under the 10 s interval) costs the router at most
// tunnel.LinkLogBurst "face attached" and "face detached" lines, while
// gdp_router_face_events_total counts every one.
func TestReattachLoopLogsBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	w := newWorld(t)
	w.log = zap.New(core)
	r := w.router("r1", router.Config{}, nil)
	id, err := certs.NewIdentity(certs.KindClient, "looping endpoint")
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		mine, theirs := routertest.Pipe(id.Name, r.Name(), 16)
		if _, err := r.Attach(theirs, router.FaceEndpoint, pdu.Name{}, "mem"); err != nil {
			t.Fatal(err)
		}
		mine.Close()
		deadline := time.Now().Add(5 * time.Second)
		for metric(t, r, "gdp_router_face_events_total", "event", "detached") < float64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("attachment %d was not detached within 5 s", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, msg := range []string{"face attached", "face detached"} {
		if got := logs.FilterMessage(msg).Len(); got < 1 || got > tunnel.LinkLogBurst {
			t.Errorf("%d %q lines for %d attachments of one peer, want 1..%d", got, msg, n, tunnel.LinkLogBurst)
		}
	}
	if got := metric(t, r, "gdp_router_face_events_total", "event", "attached"); got != n {
		t.Errorf("gdp_router_face_events_total{event=attached} = %v, want %d", got, n)
	}
}
