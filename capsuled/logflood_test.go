package capsuled_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// A member sending 10,000 CREATEs the placement policy refuses has every
// one counted in gdp_capsuled_placements_refused_total and costs the log
// one line per reason and requester every interval, not one per request.
// The flood takes ~3 s here, but on a loaded machine it can outlast the
// limiter's 10 s interval (38 s with a busy loop beside, 4 lines): the
// lines allowed are one per interval the flood spanned.
func TestRefusedCreateFloodLogsBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	w := newWorld(t)
	w.log = zap.New(core)
	r1 := w.router("r1")
	allowed := newTestCapsule(t, "allowed")
	s := w.newReplicaConf(r1, "guarded", capsuled.Config{Placement: capsuled.PlacementPolicy{
		Owners: []ed25519.PublicKey{allowed.owner.Public()}}})
	stranger := newTestCapsule(t, "stranger")
	places, err := client.PlaceCapsule(stranger.owner, stranger.meta, []pdu.Name{s.id.Name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := capsule.SignPlacement(stranger.owner.Key, stranger.meta, []pdu.Name{s.id.Name}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u := w.rawUser(r1)
	name := stranger.meta.Name()
	create := &wire.Message{Op: wire.OpCreate, Capsule: name[:], Metadata: stranger.meta.Marshal(),
		AdCert: places[0].AdCert.Marshal(), Placement: rec.Marshal()}
	n := 10000
	if testing.Short() {
		n = 1000
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if resp := u.do(s.id.Name, create); resp.Status != wire.StatusForbidden {
			t.Fatalf("CREATE %d: %s %s, want forbidden", i, resp.Status, resp.Error)
		}
	}
	took := time.Since(start)
	if got := s.metric("gdp_capsuled_placements_refused_total", "owner_not_allowed"); got != float64(n) {
		t.Errorf("placements refused owner_not_allowed = %v, want %d", got, n)
	}
	lines := logs.FilterMessage("placement refused").All()
	// A line opens a window of one interval: k lines need (k-1) intervals.
	most := 1 + int(took/logging.DefaultLimitInterval)
	if len(lines) == 0 || len(lines) > most {
		t.Fatalf("%d \"placement refused\" lines for %d refused CREATEs in %s, want 1..%d (one per %s)",
			len(lines), n, took.Round(time.Millisecond), most, logging.DefaultLimitInterval)
	}
	if m := lines[0].ContextMap(); m["reason"] != "owner_not_allowed" || m["src"] == nil {
		t.Errorf("line %v: want the reason and the requester", m)
	}
}
