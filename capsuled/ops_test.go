package capsuled_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestNAKIsTheAnswer: a request to a name nobody holds (a mistyped capsule
// name) fails with the router's NO_ROUTE NAK on the first attempt, not
// with "no answer" after every attempt timed out.
func TestNAKIsTheAnswer(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	x := w.newReplica(r1, "server x")
	admin := w.user(r1, "admin")
	tc := newTestCapsule(t, "nak")
	tc.create(t, admin, 1, x)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	typo := tc.meta.Name()
	typo[0] ^= 1
	_, err := admin.Info(ctx, typo, typo)
	var nak *client.NAKError
	if !errors.As(err, &nak) || nak.Code != pdu.CodeNoRoute {
		t.Fatalf("info of a name nobody holds: %v, want a NO_ROUTE NAK", err)
	}
	if errors.Is(err, client.ErrNoAnswer) {
		t.Fatalf("a NAK reported as no answer: %v", err)
	}
	// The writer and reader report it as well.
	if _, err := admin.NewWriter(ctx, typo, tc.writer.Key, client.WriterOptions{}); !errors.As(err, &nak) {
		t.Fatalf("writer for a name nobody holds: %v", err)
	}
	if _, err := admin.NewReader(ctx, typo, client.ReaderOptions{}); !errors.As(err, &nak) {
		t.Fatalf("reader for a name nobody holds: %v", err)
	}
	// The right name still works.
	if _, err := admin.Info(ctx, tc.meta.Name(), tc.meta.Name()); err != nil {
		t.Fatal(err)
	}
}

// TestTwoWritersOneKey: two writers with one writer key append at once to
// a capsule on three replicas (W=2). Each replica keeps the first batch
// that extends its log and refuses the other writer's with "another writer
// is active" (412), storing nothing; the writer that got W replicas goes
// on, the other stops with client.ErrWriterConflict. The replica that took
// the losing writer's batch adopts the majority's line by anti-entropy, so
// every record the winner got acknowledged reads back verified from every
// replica, and the records before the race stay readable.
func TestTwoWritersOneKey(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	rs := []*replica{w.newReplica(r1, "server x"), w.newReplica(r1, "server y"), w.newReplica(r1, "server z")}
	admin := w.user(r1, "admin")
	tc := newTestCapsule(t, "two writers")
	tc.create(t, admin, 2, rs...)
	c := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const before = 20
	first, err := admin.NewWriter(ctx, c, tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if _, err := first.Append(ctx, []byte(fmt.Sprintf("before %d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := first.Flush(ctx); err != nil || !d.Met {
		t.Fatalf("first writer: %v %v", d, err)
	}
	_ = first.Close(ctx)

	// Both open before either writes: both continue from seqno 20.
	users := []*client.CapsuleClient{w.user(r1, "writer a"), w.user(r1, "writer b")}
	wrs := make([]*client.Writer, 2)
	for i, u := range users {
		if wrs[i], err = u.NewWriter(ctx, c, tc.writer.Key, client.WriterOptions{Cadence: -1, MaxBatchRecords: 25}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, wr := range wrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if _, err := wr.Append(ctx, []byte(fmt.Sprintf("writer %c record %d", 'a'+i, j))); err != nil {
					errs[i] = err
					return
				}
			}
			_, errs[i] = wr.Flush(ctx)
		}()
	}
	wg.Wait()
	win := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if win >= 0 {
				t.Fatalf("both writers succeeded")
			}
			win = i
		case !errors.Is(err, client.ErrWriterConflict) || !strings.Contains(err.Error(), "another writer is active"):
			t.Fatalf("writer %c: %v, want another writer is active", 'a'+i, err)
		}
	}
	if win < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	// The winner writes on; everything it got acknowledged must survive.
	winner := wrs[win]
	for j := range 30 {
		if _, err := winner.Append(ctx, []byte(fmt.Sprintf("winner after %d", j))); err != nil {
			t.Fatal(err)
		}
	}
	d, err := winner.Flush(ctx)
	if err != nil || !d.Met {
		t.Fatalf("winner after the race: %v %v", d, err)
	}
	p := winner.Progress()
	if p.Durable != before+230 {
		t.Fatalf("winner's durable progress %+v", p)
	}
	eventually(t, 30*time.Second, "the replicas converge on the winner's line", converged(p.Durable, rs...))
	for _, r := range rs {
		rd, err := admin.NewReader(ctx, c, client.ReaderOptions{Server: r.id.Name})
		if err != nil {
			t.Fatal(err)
		}
		if rd.Fork() != nil {
			t.Fatalf("%s reports a fork", r.id.Meta.Description)
		}
		recs, err := rd.Read(ctx, 1, p.Durable)
		if err != nil || uint64(len(recs)) != p.Durable {
			t.Fatalf("read from %s: %d records, %v", r.id.Meta.Description, len(recs), err)
		}
		for _, e := range recs {
			var want string
			switch {
			case e.Seqno <= before:
				want = fmt.Sprintf("before %d", e.Seqno)
			case e.Seqno <= before+200:
				want = fmt.Sprintf("writer %c record %d", 'a'+win, e.Seqno-before-1)
			default:
				want = fmt.Sprintf("winner after %d", e.Seqno-before-201)
			}
			if string(e.Data) != want {
				t.Fatalf("%s seqno %d: %q, want %q", r.id.Meta.Description, e.Seqno, e.Data, want)
			}
		}
		if evs, _ := r.srv.Store().Evidence(c); len(evs) != 0 {
			t.Fatalf("%s stored evidence of a fork", r.id.Meta.Description)
		}
	}
}
