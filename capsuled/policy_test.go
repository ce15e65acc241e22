package capsuled_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestPlacementPolicy: a server that allows two owners, two capsules per
// owner and three replicas per capsule refuses (403, counted by reason)
// another owner's CREATE, an allowed owner's third capsule and a capsule
// with four replicas, and keeps serving the capsules it took (a renewal
// does not count again).
func TestPlacementPolicy(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a, b := newTestCapsule(t, "allowed a"), newTestCapsule(t, "allowed b")
	s := w.newReplicaConf(r1, "guarded", capsuled.Config{Placement: capsuled.PlacementPolicy{
		Owners: []ed25519.PublicKey{a.owner.Public(), b.owner.Public()}, MaxPerOwner: 2, MaxReplicas: 3}})
	other := w.newReplica(r1, "other")
	cc := w.user(r1, "placer")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	create := func(tc *testCapsule, servers ...pdu.Name) error {
		places, err := client.PlaceCapsule(tc.owner, tc.meta, servers, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return cc.Create(ctx, tc.owner, tc.meta, 0, places)
	}
	forbidden := func(err error) bool {
		var se *wire.StatusError
		return errors.As(err, &se) && se.Status == wire.StatusForbidden
	}
	if err := create(a, s.id.Name); err != nil {
		t.Fatalf("allowed owner: %v", err)
	}
	// The same owner's second capsule, and the first again (a renewal).
	a2 := &testCapsule{owner: a.owner, writer: a.writer}
	var err error
	if a2.meta, err = certs.NewCapsule(a.owner.Key, a.writer.Public(), "allowed a, second"); err != nil {
		t.Fatal(err)
	}
	if err := create(a2, s.id.Name); err != nil {
		t.Fatalf("second capsule: %v", err)
	}
	if err := create(a, s.id.Name); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	a3 := &testCapsule{owner: a.owner, writer: a.writer}
	if a3.meta, err = certs.NewCapsule(a.owner.Key, a.writer.Public(), "allowed a, third"); err != nil {
		t.Fatal(err)
	}
	if err := create(a3, s.id.Name); !forbidden(err) {
		t.Fatalf("third capsule of one owner: %v", err)
	}
	if err := create(newTestCapsule(t, "stranger"), s.id.Name); !forbidden(err) {
		t.Fatalf("owner not allowed: %v", err)
	}
	// Four replicas: refused here (the other server takes it, so the
	// refusal is this server's).
	fake := []pdu.Name{{1}, {2}}
	places, _ := client.PlaceCapsule(b.owner, b.meta, append([]pdu.Name{other.id.Name, s.id.Name}, fake...), time.Hour)
	rec, _ := capsule.SignPlacement(b.owner.Key, b.meta, []pdu.Name{other.id.Name, s.id.Name, fake[0], fake[1]}, 2, time.Now())
	u := w.rawUser(r1)
	bn := b.meta.Name()
	resp := u.do(s.id.Name, &wire.Message{Op: wire.OpCreate, Capsule: bn[:], Metadata: b.meta.Marshal(),
		AdCert: places[1].AdCert.Marshal(), Placement: rec.Marshal()})
	if resp.Status != wire.StatusForbidden {
		t.Fatalf("four replicas: %s %s", resp.Status, resp.Error)
	}
	got := map[string]float64{}
	for _, r := range []string{"owner_not_allowed", "owner_quota", "too_many_replicas", "server_full"} {
		got[r] = s.metric("gdp_capsuled_placements_refused_total", r)
	}
	if got["owner_not_allowed"] != 1 || got["owner_quota"] != 1 || got["too_many_replicas"] != 1 || got["server_full"] != 0 {
		t.Fatalf("refusals counted: %v", got)
	}
	if held := s.srv.Store().Capsules(); len(held) != 2 {
		t.Fatalf("server holds %d capsules, want 2", len(held))
	}
	// What it took it serves.
	wr, err := cc.NewWriter(ctx, a.meta.Name(), a.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	if _, err := wr.Append(ctx, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if d, err := wr.Flush(ctx); err != nil || !d.Met {
		t.Fatalf("append to a placed capsule: %v %v", d, err)
	}
}

// TestOlderPlacementRecordRefused: a CREATE whose placement record is
// older than the one the server holds (a replayed CREATE) is refused
// (409) and leaves the placement as it was; one without a record, or with
// a record the owner did not sign, is refused too (403).
func TestOlderPlacementRecordRefused(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	s := w.newReplica(r1, "s")
	cc := w.user(r1, "owner")
	tc := newTestCapsule(t, "moved")
	tc.create(t, cc, 1, s)
	c := tc.meta.Name()
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{s.id.Name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u := w.rawUser(r1)
	create := func(rec *capsule.Placement) *wire.Message {
		m := &wire.Message{Op: wire.OpCreate, Capsule: c[:], Metadata: tc.meta.Marshal(), AdCert: places[0].AdCert.Marshal()}
		if rec != nil {
			m.Placement = rec.Marshal()
		}
		return u.do(s.id.Name, m)
	}
	old, err := capsule.SignPlacement(tc.owner.Key, tc.meta, []pdu.Name{s.id.Name, {9}}, 2, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if resp := create(old); resp.Status != wire.StatusConflict {
		t.Fatalf("older record: %s %s", resp.Status, resp.Error)
	}
	if resp := create(nil); resp.Status != wire.StatusForbidden {
		t.Fatalf("no record: %s %s", resp.Status, resp.Error)
	}
	forged, _ := capsule.SignPlacement(tc.writer.Key, &certs.Metadata{Kind: certs.KindCapsule, Key: tc.writer.Public(), WriterKey: tc.writer.Public()},
		[]pdu.Name{s.id.Name}, 1, time.Now().Add(time.Hour))
	forged.Capsule = c
	if resp := create(forged); resp.Status != wire.StatusForbidden {
		t.Fatalf("record not signed by the owner: %s %s", resp.Status, resp.Error)
	}
	resp := u.do(s.id.Name, &wire.Message{Op: wire.OpMetadata, Capsule: c[:]})
	rec, err := capsule.UnmarshalPlacement(resp.Placement)
	if err != nil || len(rec.Replicas) != 1 || rec.W != 1 {
		t.Fatalf("placement after the refusals: %+v %v", rec, err)
	}
}
