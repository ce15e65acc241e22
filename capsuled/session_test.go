package capsuled_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
)

// TestOneIdentityTwoProcesses: one client identity attached twice — a
// writer appending and, attached after it, a follower with a subscription
// (`gdp capsule append` beside `gdp capsule tail -f`). Each attachment
// advertises its own session name and sends from it, so each gets its own
// answers: every append is acknowledged to the writer at once (none goes
// to the newer attachment), and every record reaches the follower's
// subscription. The reverse holds too: the older attachment reads.
func TestOneIdentityTwoProcesses(t *testing.T) {
	w := newWorld(t)
	r := w.router("r")
	a := w.newReplica(r, "replica a")
	id, _ := certs.NewIdentity(certs.KindClient, "one user")
	attach := func() *client.CapsuleClient {
		c, ep, _ := w.attach(r, id, 8192)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.Session()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Advertise(ctx, c.Self(), s); err != nil {
			t.Fatal(err)
		}
		if c.ReplyName() != s.Name || s.Name == id.Name {
			t.Fatalf("reply name %s, session %s", c.ReplyName(), s.Name)
		}
		cc := client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: time.Second})
		t.Cleanup(func() { _ = cc.Close(); _ = c.Close(); _ = ep.Close() })
		return cc
	}
	appender := attach()
	tc := newTestCapsule(t, "two processes")
	tc.create(t, appender, 1, a)
	c := tc.meta.Name()
	follower := attach() // newer: the one an identity-name answer would reach

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := appender.NewWriter(ctx, c, tc.writer.Key, client.WriterOptions{Cadence: -1, Attempts: 1, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	rd, err := follower.NewReader(ctx, c, client.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const n = 20
	for i := 1; i <= n; i++ {
		if _, err := wr.Append(ctx, fmt.Appendf(nil, "record %d", i)); err != nil {
			t.Fatal(err)
		}
		if d, err := wr.Flush(ctx); err != nil || d.Acks != 1 {
			t.Fatalf("append %d: %v %v (its answer went elsewhere)", i, d, err)
		}
	}
	for next := uint64(1); next <= n; {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("subscription at %d: %v", next, err)
		}
		for _, e := range ev.Entries {
			if e.Seqno != next || string(e.Data) != fmt.Sprintf("record %d", next) {
				t.Fatalf("pushed %d %q, want %d", e.Seqno, e.Data, next)
			}
			next++
		}
	}
	// The older attachment reads too, while the newer one follows.
	rd2, err := appender.NewReader(ctx, c, client.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := rd2.Read(ctx, 1, n)
	if err != nil || len(recs) != n {
		t.Fatalf("read by the older attachment: %d records, %v", len(recs), err)
	}
}
