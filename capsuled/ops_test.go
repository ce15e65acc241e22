package capsuled_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/clock"
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
	eventually(t, slow*30*time.Second, "the replicas converge on the winner's line", converged(p.Durable, rs...))
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

// TestAdCertExpiryWarned: a capsule placed with an AdCert that has less
// than 20 % of its lifetime left is logged at WARN once and its expiry is
// exported per capsule (gdp_capsuled_adcert_expiry_timestamp_seconds).
func TestAdCertExpiryWarned(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	id, err := certs.NewIdentity(certs.KindServer, "watched server")
	if err != nil {
		t.Fatal(err)
	}
	c, ep, _ := w.attach(r1, id, 8192)
	defer ep.Close()
	core, logs := observer.New(zap.WarnLevel)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := capsuled.New(ctx, capsuled.Config{Dir: t.TempDir()}, capsuled.Deps{Identity: id, Client: c, Logger: zap.New(core), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	admin := w.user(r1, "admin")
	tc := newTestCapsule(t, "short-lived")
	// 10 s ahead, issued a minute back: 14 % of its life is left.
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{id.Name}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, tc.owner, tc.meta, 1, places); err != nil {
		t.Fatal(err)
	}
	warns := logs.FilterMessageSnippet("adcert expires soon").All()
	if len(warns) != 1 {
		t.Fatalf("%d WARNs about the expiring AdCert, want 1", len(warns))
	}
	// The one line says what to do: the owner's renew command for this capsule.
	if fix, _ := warns[0].ContextMap()["fix"].(string); !strings.Contains(fix, "gdp capsule renew "+tc.meta.Name().String()) {
		t.Fatalf("the WARN's fix %q does not give the renew command for the capsule", fix)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	for _, mf := range mfs {
		if mf.GetName() == "gdp_capsuled_adcert_expiry_timestamp_seconds" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == tc.meta.Name().String() {
					got = m.GetGauge().GetValue()
				}
			}
		}
	}
	if want := float64(places[0].AdCert.NotAfter.Unix()); got != want {
		t.Fatalf("expiry gauge %v, want %v", got, want)
	}
}

// deleteWorld is one router with one replica x holding one capsule tc
// (created by admin), and u, a raw user at the router to send DELETEs.
func deleteWorld(t *testing.T) (x *replica, admin *client.CapsuleClient, tc *testCapsule, u *rawUser) {
	w := newWorld(t)
	r1 := w.router("r1")
	x = w.newReplica(r1, "server x")
	admin = w.user(r1, "admin")
	tc = newTestCapsule(t, "deleted")
	tc.create(t, admin, 1, x)
	return x, admin, tc, w.rawUser(r1)
}

// deleteMsg is a DELETE of capsule c at server, signed by key at time at.
func deleteMsg(key ed25519.PrivateKey, c, server pdu.Name, at time.Time) *wire.Message {
	ts := uint64(at.UnixNano())
	return &wire.Message{Op: wire.OpDelete, Capsule: c[:], Time: ts, Signature: ed25519.Sign(key, wire.DeleteSigned(c, server, ts))}
}

// TestDeleteOwnerSigned: a DELETE not signed by the capsule's owner for
// this server, or signed too long ago, is refused (403) and deletes
// nothing; the owner's own is accepted once.
func TestDeleteOwnerSigned(t *testing.T) {
	x, admin, tc, u := deleteWorld(t)
	c := tc.meta.Name()
	del := func(key ed25519.PrivateKey, server pdu.Name, at time.Time) *wire.Message {
		return deleteMsg(key, c, server, at)
	}
	now := time.Now()
	for name, m := range map[string]*wire.Message{
		"writer key":   del(tc.writer.Key, x.id.Name, now),
		"other server": del(tc.owner.Key, pdu.Name{9}, now),
		"too old":      del(tc.owner.Key, x.id.Name, now.Add(-10*time.Minute)),
	} {
		if resp := u.do(x.id.Name, m); resp.Status != wire.StatusForbidden {
			t.Fatalf("%s: %v %q", name, resp.Status, resp.Error)
		}
		if len(x.srv.Store().Capsules()) != 1 {
			t.Fatalf("%s deleted the capsule", name)
		}
	}
	ok := del(tc.owner.Key, x.id.Name, now)
	if resp := u.do(x.id.Name, ok); resp.Status != wire.StatusOK {
		t.Fatalf("owner's delete: %v %q", resp.Status, resp.Error)
	}
	if len(x.srv.Store().Capsules()) != 0 {
		t.Fatal("the owner's delete left the capsule")
	}
	tc.create(t, admin, 1, x) // placed again: a replay of the same DELETE is refused
	if resp := u.do(x.id.Name, ok); resp.Status != wire.StatusForbidden || len(x.srv.Store().Capsules()) != 1 {
		t.Fatalf("replayed delete: %v %q", resp.Status, resp.Error)
	}
}

// TestDeleteClockSkew: a DELETE carries its signer's clock. The server
// takes one signed within DeleteWindow (5 minutes) of its own clock, the
// process clock (internal/clock): an owner 2 minutes behind deletes; a
// server whose clock runs 10 minutes ahead refuses a DELETE signed now
// (403, counted in gdp_capsuled_dropped_total{reason="delete_clock"}) and
// keeps the capsule.
func TestDeleteClockSkew(t *testing.T) {
	x, _, tc, u := deleteWorld(t)
	c := tc.meta.Name()
	del := func(at time.Time) *wire.Message { return deleteMsg(tc.owner.Key, c, x.id.Name, at) }
	before := x.metric("gdp_capsuled_dropped_total", "delete_clock")
	prev := clock.SetOffset(10 * time.Minute)
	resp := u.do(x.id.Name, del(time.Now()))
	clock.SetOffset(prev)
	if resp.Status != wire.StatusForbidden || !strings.Contains(resp.Error, "clock") {
		t.Fatalf("server 10 minutes ahead: %v %q, want forbidden naming the clock", resp.Status, resp.Error)
	}
	if got := x.metric("gdp_capsuled_dropped_total", "delete_clock"); got != before+1 {
		t.Fatalf("delete_clock drops %v, want %v", got, before+1)
	}
	if len(x.srv.Store().Capsules()) != 1 {
		t.Fatal("a refused delete removed the capsule")
	}
	if resp := u.do(x.id.Name, del(time.Now().Add(-2*time.Minute))); resp.Status != wire.StatusOK {
		t.Fatalf("owner 2 minutes behind: %v %q", resp.Status, resp.Error)
	}
	if len(x.srv.Store().Capsules()) != 0 {
		t.Fatal("the owner's delete left the capsule")
	}
}

// TestCreateRefusedOnFullDisk: CREATE is guarded by min_free_bytes as an
// append is: on a server whose file system has less free space than the
// reserve (here a reserve no disk has), a new capsule is refused with 503
// (disk nearly full) before anything is advertised or stored, and counted
// in gdp_capsuled_placements_refused_total{reason="disk_full"}.
func TestCreateRefusedOnFullDisk(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	x := w.newReplicaConf(r1, "full server", capsuled.Config{MinFreeBytes: 1 << 62})
	admin := w.user(r1, "admin")
	tc := newTestCapsule(t, "refused")
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []certs.Name{x.id.Name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = admin.Create(ctx, tc.owner, tc.meta, 1, places)
	if err == nil || !strings.Contains(err.Error(), "disk nearly full") {
		t.Fatalf("create on a full disk: %v, want refused (disk nearly full)", err)
	}
	if n := len(x.srv.Store().Capsules()); n != 0 {
		t.Fatalf("the refused create stored %d capsules", n)
	}
	if hops := r1.Router.FIB().Lookup(tc.meta.Name()); len(hops) != 0 {
		t.Fatalf("the refused create advertised the capsule: %+v", hops)
	}
	if got := x.metric("gdp_capsuled_placements_refused_total", "disk_full"); got < 1 {
		t.Fatalf("disk_full refusals %v, want ≥ 1", got)
	}
}

// TestAppendOnFullDiskSaysWhy: a writer whose only replica refuses every
// append because its disk is nearly full (min_free_bytes) is told so — the
// error names the replica and the 503 it answered — rather than only "no
// replica acknowledged" (Session 18: a first deployment by hand filled a
// tmpfs and the writer's error did not say why). Nothing is stored.
func TestAppendOnFullDiskSaysWhy(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	s := w.newReplica(r1, "filling server")
	cc := w.userWith(r1, "writer", client.CapsuleOptions{Timeout: 500 * time.Millisecond, Attempts: 2})
	tc := newTestCapsule(t, "filling")
	tc.create(t, cc, 1, s)
	s.stop()
	s.mod = func(c *capsuled.Config) { c.MinFreeBytes = 1 << 62 } // a reserve no disk has
	w.start(r1, s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wr, err := cc.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	if _, err := wr.Append(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second) // the writer re-sends until its deadline
	defer fcancel()
	_, err = wr.Flush(fctx)
	if !errors.Is(err, client.ErrNoReplica) || !strings.Contains(err.Error(), "disk nearly full") || !strings.Contains(err.Error(), s.id.Name.String()) {
		t.Fatalf("append on a full disk: %v, want no replica acknowledged naming the replica and its disk", err)
	}
	if h, err := s.srv.Store().Head(tc.meta.Name()); err != nil || h.Seqno != 0 {
		t.Fatalf("head after the refused append: %d, %v; want 0", h.Seqno, err)
	}
}
