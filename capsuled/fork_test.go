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

	// x is offered log b: refused, with evidence.
	resp := u.do(x.id.Name, appendMsg(c, rb, hbB))
	if resp.Status != wire.StatusConflict || len(resp.Evidence) == 0 {
		t.Fatalf("forked append: %v %q, evidence %d bytes", resp.Status, resp.Error, len(resp.Evidence))
	}
	ev, err := capsule.UnmarshalEvidence(resp.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Verify(info); err != nil {
		t.Fatalf("evidence does not verify: %v", err)
	}
	if h, _ := x.srv.Store().Head(c); h.Seqno != 3 || !h.Heartbeat.Equal(hbA) {
		t.Fatalf("x's log changed: %d", h.Seqno)
	}
	in, err := admin.Info(ctx, c, x.id.Name)
	if err != nil || in.Evidence == nil {
		t.Fatalf("metadata does not report the fork: %v", err)
	}
	if _, err := admin.NewReader(ctx, c, client.ReaderOptions{Server: x.id.Name}); !errors.Is(err, capsule.ErrEquivocation) {
		t.Fatalf("new reader on a forked capsule: %v", err)
	}
}
