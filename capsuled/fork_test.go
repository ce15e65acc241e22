package capsuled_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
)

// TestForkedWriterDetected: a writer key signs two different logs. The
// server that holds one refuses the other as equivocation, with evidence
// anyone can check, stores the evidence and reports it in METADATA, and a
// reader refuses the capsule. A reader that reads the two logs from two
// servers detects the fork from the heartbeats alone.
func TestForkedWriterDetected(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	x, y := w.newReplica(r1, "server x"), w.newReplica(r1, "server y")
	admin := w.user(r1, "admin")
	tc := newTestCapsule(t, "forked")
	tc.create(t, admin, 1, x) // x and y do not replicate to each other
	tc.create(t, admin, 1, y)
	c := tc.meta.Name()
	info := capsule.Info{Name: c, Writer: tc.writer.Public()}
	u := w.rawUser(r1)

	a := capsule.NewWriter(c, tc.writer.Key)
	b := capsule.NewWriter(c, tc.writer.Key)
	for i := range 3 {
		a.Append([]byte{'a', byte(i)})
		b.Append([]byte{'b', byte(i)})
	}
	b.Append([]byte("b3")) // b's log is longer: a reader needs a consistency proof
	ra, hbA := a.Flush()
	rb, hbB := b.Flush()
	if resp := u.do(x.id.Name, appendMsg(c, ra, hbA)); resp.Status != wire.StatusOK {
		t.Fatalf("log a on x: %v %s", resp.Status, resp.Error)
	}
	if resp := u.do(y.id.Name, appendMsg(c, rb, hbB)); resp.Status != wire.StatusOK {
		t.Fatalf("log b on y: %v %s", resp.Status, resp.Error)
	}

	// A reader that has seen x's heartbeat reads y: the fork shows.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := admin.NewReader(ctx, c, client.ReaderOptions{Server: x.id.Name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Read(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	rd.SetServer(y.id.Name)
	if _, err := rd.Read(ctx, 1, 4); !errors.Is(err, capsule.ErrEquivocation) {
		t.Fatalf("reading the other branch: %v, want equivocation", err)
	}
	// The same heartbeat size with another root is caught without a proof.
	same := capsule.NewWriter(c, tc.writer.Key)
	for i := range 3 {
		same.Append([]byte{'c', byte(i)})
	}
	_, hbC := same.Flush()
	if err := rd.Observe(hbC); !errors.Is(err, capsule.ErrEquivocation) {
		t.Fatalf("observing a conflicting heartbeat: %v", err)
	}

	// x is offered log b as a writer's APPEND: it does not extend x's
	// log, so it is refused as another writer's (412), and nothing is
	// stored, not even evidence (this used to be stored as a fork, and
	// then nothing could be read).
	resp := u.do(x.id.Name, appendMsg(c, rb, hbB))
	if resp.Status != wire.StatusWriterConflict || len(resp.Evidence) != 0 || resp.Head != 3 {
		t.Fatalf("forked append: %v %q, head %d, evidence %d bytes", resp.Status, resp.Error, resp.Head, len(resp.Evidence))
	}
	if h, _ := x.srv.Store().Head(c); h.Seqno != 3 || !h.Heartbeat.Equal(hbA) {
		t.Fatalf("x's log changed: %d", h.Seqno)
	}
	if evs, _ := x.srv.Store().Evidence(c); len(evs) != 0 {
		t.Fatalf("a refused append stored evidence")
	}
	// Replicas that exchange the two logs (anti-entropy) do find the fork:
	// place the capsule on x and y together (a renewal) and wait for it.
	tc.create(t, admin, 1, x, y)
	eventually(t, slow*20*time.Second, "the fork found by anti-entropy", func() bool {
		evs, _ := x.srv.Store().Evidence(c)
		return len(evs) > 0
	})
	evs, _ := x.srv.Store().Evidence(c)
	if err := evs[0].Verify(info); err != nil {
		t.Fatalf("evidence does not verify: %v", err)
	}
	in, err := admin.Info(ctx, c, x.id.Name)
	if err != nil || in.Evidence == nil {
		t.Fatalf("metadata does not report the fork: %v", err)
	}
	// A reader opens the forked capsule and learns the fork point; the logs
	// differ from seqno 1, so nothing is readable.
	rd2, err := admin.NewReader(ctx, c, client.ReaderOptions{Server: x.id.Name})
	if err != nil {
		t.Fatal(err)
	}
	if ev := rd2.Fork(); ev == nil || ev.Size != 1 {
		t.Fatalf("reader's fork: %+v", ev)
	}
	if _, err := rd2.Read(ctx, 1, 3); !errors.Is(err, capsule.ErrEquivocation) {
		t.Fatalf("reading a forked capsule at its fork point: %v", err)
	}
}
