package capsuled

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestPlacementPutKeepsTheNewerRecord: handleCreate refuses a CREATE
// whose placement record is older than the one held, then waits for the
// location record before it stores the placement; two CREATEs of one
// capsule wait at once (the owner's renewal, and a replay of the CREATE
// held, whose record is not older than the held one). Whichever finishes
// last, the newer record stays, in memory and on disk: put checks again
// when it writes.
func TestPlacementPutKeepsTheNewerRecord(t *testing.T) {
	fs := vfs.NewMem()
	const dir = "/placements"
	self, err := certs.NewIdentity(certs.KindServer, "race server")
	if err != nil {
		t.Fatal(err)
	}
	owner, err := certs.NewIdentity(certs.KindClient, "race owner")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := certs.NewCapsule(owner.Key, owner.Public(), "raced capsule")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	place := func(issued time.Time, replicas ...pdu.Name) *placement {
		t.Helper()
		ad, err := certs.IssueAdCert(owner.Key, meta.Name(), self.Name, now.Add(-time.Minute), issued.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := capsule.SignPlacement(owner.Key, meta, replicas, 1, issued)
		if err != nil {
			t.Fatal(err)
		}
		return &placement{name: meta.Name(), meta: meta, adcert: ad, replicas: rec.Replicas, w: rec.W, record: rec}
	}
	ps, err := openPlacementsOn(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	held := place(now.Add(-time.Hour), self.Name)
	if err := ps.put(held); err != nil {
		t.Fatal(err)
	}
	// Both passed handleCreate's check against held: the renewal lands
	// first, the replay of held's CREATE after it.
	renewal := place(now, self.Name, pdu.Name{9})
	if err := ps.put(renewal); err != nil {
		t.Fatalf("the renewal: %v", err)
	}
	replay := place(now.Add(-time.Hour), self.Name)
	if err := ps.put(replay); !errors.Is(err, capsule.ErrStale) {
		t.Fatalf("the replay stored after the renewal: %v, want ErrStale", err)
	}
	check := func(ps *placements, where string) {
		t.Helper()
		p := ps.get(meta.Name())
		if p == nil || p.record == nil || !p.record.Issued.Equal(renewal.record.Issued) || len(p.replicas) != 2 {
			t.Fatalf("%s: the placement held is %+v, want the renewal's (2 replicas, issued %s)", where, p, renewal.record.Issued)
		}
	}
	check(ps, "in memory")
	re, err := openPlacementsOn(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	check(re, "on disk")
	// The same record again (a re-sent renewal) is still stored.
	if err := ps.put(renewal); err != nil {
		t.Fatalf("the renewal again: %v", err)
	}
}

// TestPlacementRemoveSurvivesPowerLoss: a removed placement (a DELETE)
// stays removed through a power cut: the file is removed on the
// placements' own file system and the directory synced.
func TestPlacementRemoveSurvivesPowerLoss(t *testing.T) {
	fs := vfs.NewStrictMem()
	const dir = "/srv/gdp/placements"
	self, err := certs.NewIdentity(certs.KindServer, "remove server")
	if err != nil {
		t.Fatal(err)
	}
	owner, err := certs.NewIdentity(certs.KindClient, "remove owner")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := certs.NewCapsule(owner.Key, owner.Public(), "removed capsule")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ad, err := certs.IssueAdCert(owner.Key, meta.Name(), self.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := openPlacementsOn(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.put(&placement{name: meta.Name(), meta: meta, adcert: ad, replicas: []pdu.Name{self.Name}, w: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ps.remove(meta.Name()); err != nil {
		t.Fatal(err)
	}
	if ps.get(meta.Name()) != nil {
		t.Fatal("the removed placement is still held")
	}
	fs.SetIgnoreSyncs(true)
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	re, err := openPlacementsOn(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if re.get(meta.Name()) != nil {
		t.Fatal("the removed placement came back after a power cut")
	}
	if err := ps.remove(meta.Name()); err != nil {
		t.Fatalf("removing it again: %v", err)
	}
}
