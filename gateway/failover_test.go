package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestUplinkRouterKilled: the gateway's uplink router dies silently (its
// socket goes dead, as under SIGKILL) while a writer elsewhere keeps
// appending and an application follows the capsule over a WebSocket. The
// gateway re-attaches to its second router within 3 s, and the
// subscription carries on: every seqno exactly once, in order.
func TestUplinkRouterKilled(t *testing.T) {
	w := newWorld(t)
	core := w.router("core")
	r1, r2 := w.router("edge1", core), w.router("edge2", core)
	s1, s2 := w.replica(core, "s1"), w.replica(core, "s2")
	g := w.gateway(gateway.Config{}, r1, r2)
	if st := g.up.Status(); st.Router != r1.Router.Name() {
		t.Fatalf("attached to %s, want edge1", st.Router)
	}
	var created struct{ Capsule string }
	body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":1}`, s1.Name, s2.Name)
	if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	c, _ := pdu.ParseName(created.Capsule)

	// A writer on the core router appends a record every 10 ms.
	alice, err := g.ks.Load("alice")
	if err != nil {
		t.Fatal(err)
	}
	wcc := w.user(core, "writer")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wr, err := wcc.NewWriter(ctx, c, alice.Key, client.WriterOptions{Cadence: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var written uint64
	var paused atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ctx.Err() == nil; i++ {
			for paused.Load() && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			s, err := wr.Append(ctx, []byte(fmt.Sprintf("record %d", i)))
			if err != nil {
				return
			}
			mu.Lock()
			written = s
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	conn := g.subscribe(t, created.Capsule, 1)
	defer conn.Close()
	var next uint64 = 1
	var first, killedAt time.Time
	var atKill uint64
	read := func(until uint64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for next <= until {
			_ = conn.SetReadDeadline(deadline)
			_, b, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for seqno %d (of %d): %v", next, until, err)
			}
			var m subMsg
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type == "subscribed" {
				continue
			}
			if m.Type != "record" || m.Seqno != next {
				t.Fatalf("got %s, want record %d (a gap or a duplicate)", b, next)
			}
			if want := fmt.Sprintf("record %d", next); m.Data == nil || *m.Data != want {
				t.Fatalf("record %d holds %v", next, m.Data)
			}
			if first.IsZero() && !killedAt.IsZero() && next > atKill {
				first = time.Now()
			}
			next++
		}
	}
	read(30, 10*time.Second)

	killed := time.Now()
	r1.kill()
	killedAt = killed
	mu.Lock()
	atKill = written
	mu.Unlock()
	eventually(t, 10*time.Second, "the gateway re-attached", func() bool { return g.up.Status().Reattached >= 1 })
	took := time.Since(killed)
	st := g.up.Status()
	t.Logf("re-attached to edge2 %s after the kill (the uplink was down %s)", took.Round(time.Millisecond), st.LastOutage.Round(time.Millisecond))
	if st.Router != r2.Router.Name() {
		t.Fatalf("re-attached to %s, want edge2", st.Router)
	}
	if took > 3*time.Second {
		t.Fatalf("re-attached %s after the kill, want ≤ 3 s", took)
	}
	if got := g.metric("gdp_gateway_uplink_reattachments_total", ""); got != 1 {
		t.Fatalf("reattachments metric %v", got)
	}
	// The writer pauses: no later push would reveal a gap, so the records
	// it wrote while the gateway was cut off must come by themselves, not
	// at the subscription's next renewal (10 s).
	paused.Store(true)
	time.Sleep(50 * time.Millisecond)
	if _, err := wr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	target := written
	mu.Unlock()
	read(target, 20*time.Second)
	caught := time.Since(killed)
	t.Logf("the records written during the outage (up to %d) all came %s after the kill", target, caught.Round(time.Millisecond))
	paused.Store(false)
	// And it carries on: 50 more records, once each.
	read(target+50, 20*time.Second)
	t.Logf("the first record written after the kill came %s after it", first.Sub(killed).Round(time.Millisecond))
	t.Logf("subscription resumed: records 1–%d each exactly once; %.1f s after the kill", next-1, time.Since(killed).Seconds())
	// ~1.7 s: 1.5 s for the gateway and the core router to notice the
	// silent router, then the gateway's renewal — sent once its names are
	// advertised at edge2 — passes the core router while it dials the dead
	// router for the gateway's name, and the core router asks the resolver
	// again and takes edge2 (router learn). Without that ~4.5 s (the 3 s
	// dial first); without the re-advertisement wait, or with pushes from
	// only the last replica that answered, up to 14.5 s (the renewal 10 s
	// later).
	if d := first.Sub(killed); d > 4*time.Second {
		t.Fatalf("the subscription resumed %s after the kill, want ≤ 4 s", d)
	}
	if caught > 4*time.Second {
		t.Fatalf("the records of the outage came %s after the kill, want ≤ 4 s", caught)
	}
	cancel()
	<-done
	wr.Abort()
}
