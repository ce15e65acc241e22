package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
)

// subQuota reads gdp_capsuled_subscription_quota_total{reason}.
func subQuota(t *testing.T, r *replica, reason string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gdp_capsuled_subscription_quota_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestSubscriptionQuota: one subscriber tries to take every subscription a
// server has. It gets at most its own share, the excess is refused and
// counted; with the server full (two subscribers), an honest subscriber's
// first subscription is still accepted — it takes one from the largest
// holder — and its pushes arrive.
func TestSubscriptionQuota(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	id, err := certs.NewIdentity(certs.KindServer, "replica")
	if err != nil {
		t.Fatal(err)
	}
	a := &replica{id: id, dir: t.TempDir(), mod: func(c *capsuled.Config) {
		c.MaxSubscriptions, c.MaxSubscriptionsPerSubscriber = 10, 6
	}}
	w.start(r1, a)
	t.Cleanup(a.stop)
	writer := w.user(r1, "writer")
	tc := newTestCapsule(t, "followed")
	tc.create(t, writer, 1, a)
	c := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	subscribeN := func(cc *client.CapsuleClient, n int) (ok int, subs []*client.Subscription) {
		rd, err := cc.NewReader(ctx, c, client.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			s, err := rd.Subscribe(ctx, 1)
			if err == nil {
				ok++
				subs = append(subs, s)
			}
		}
		return ok, subs
	}
	flooder := w.user(r1, "flooder")
	if ok, _ := subscribeN(flooder, 8); ok != 6 {
		t.Fatalf("one subscriber holds %d subscriptions, its share is 6", ok)
	}
	if got := subQuota(t, a, "subscriber_quota"); got != 2 {
		t.Fatalf("subscriber_quota refusals %v, want 2", got)
	}
	second := w.user(r1, "second flooder")
	if ok, _ := subscribeN(second, 4); ok != 4 {
		t.Fatalf("second subscriber got %d of 4", ok)
	}
	// The server is full (10): an honest first subscription takes one of
	// the largest holder's.
	honest := w.user(r1, "honest")
	ok, subs := subscribeN(honest, 1)
	if ok != 1 {
		t.Fatal("honest subscriber refused while one subscriber held most subscriptions")
	}
	if got := subQuota(t, a, "subscription_evicted"); got != 1 {
		t.Fatalf("evictions %v, want 1", got)
	}
	// Shared evenly enough now (5, 4, 1): the second flooder gets no more.
	if ok, _ := subscribeN(second, 1); ok != 0 {
		t.Fatal("a subscriber holding its fair part took another from a full server")
	}
	if got := subQuota(t, a, "subscriptions_full"); got != 1 {
		t.Fatalf("subscriptions_full refusals %v, want 1", got)
	}
	wr, err := writer.NewWriter(ctx, c, tc.writer.Key, client.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	if _, err := wr.Append(ctx, []byte("news")); err != nil {
		t.Fatal(err)
	}
	if _, err := wr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ev, err := subs[0].Next(ctx)
	if err != nil || len(ev.Entries) == 0 || string(ev.Entries[0].Data) != "news" {
		t.Fatalf("honest subscription: %+v, %v", ev, err)
	}
}
