package capsuled

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestPlacementsPowerLoss: every placement put acknowledged survives a
// power cut. The placements live on a strict in-memory file system that
// keeps only what was fsynced; the test cuts the power (syncs ignored from
// then on) while placements are being written, drops everything not
// synced, reopens and finds every acknowledged placement, whole. A
// placement whose renewal (replacement) was acknowledged before the cut is
// found in its new form.
func TestPlacementsPowerLoss(t *testing.T) {
	fs := vfs.NewStrictMem()
	const dir = "/srv/gdp/placements"
	self, err := certs.NewIdentity(certs.KindServer, "power loss server")
	if err != nil {
		t.Fatal(err)
	}
	owner, err := certs.NewIdentity(certs.KindClient, "owner")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	place := func(i int, w int) *placement {
		meta, err := certs.NewCapsule(owner.Key, owner.Public(), "capsule "+string(rune('a'+i%26)))
		if err != nil {
			t.Fatal(err)
		}
		ad, err := certs.IssueAdCert(owner.Key, meta.Name(), self.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		other := pdu.Name{byte(i), 1}
		return &placement{name: meta.Name(), meta: meta, adcert: ad, replicas: []pdu.Name{self.Name, other}, w: w}
	}
	ps, err := openPlacementsOn(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	var cutting atomic.Bool
	var puts atomic.Int64       // puts acknowledged
	acked := map[pdu.Name]int{} // name → W of the last acknowledged put
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; !cutting.Load(); i++ {
			p := place(i, 1)
			if err := ps.put(p); err != nil {
				t.Error(err)
				return
			}
			if cutting.Load() {
				return
			}
			acked[p.name] = 1
			puts.Add(1)
			p.w = 2 // a renewal replaces the file
			if err := ps.put(p); err != nil {
				t.Error(err)
				return
			}
			if cutting.Load() {
				return
			}
			acked[p.name] = 2
			puts.Add(1)
		}
	}()
	// Cut once placements are being acknowledged (a fixed 200 ms could
	// pass before a starved writer stored one), then a little later.
	for deadline := time.Now().Add(30 * time.Second); puts.Load() < 20 && !t.Failed(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			cutting.Store(true)
			<-done
			t.Fatalf("%d placements acknowledged in 30 s (too slow to test)", puts.Load())
		}
	}
	time.Sleep(50 * time.Millisecond)
	cutting.Store(true)
	fs.SetIgnoreSyncs(true)
	<-done
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	if t.Failed() {
		return
	}
	if len(acked) == 0 {
		t.Fatal("no placement acknowledged before the cut")
	}
	re, err := openPlacementsOn(fs, dir)
	if err != nil {
		t.Fatalf("reopen after the power cut: %v", err)
	}
	for n, w := range acked {
		p := re.get(n)
		if p == nil {
			t.Fatalf("acknowledged placement %s lost in the power cut (%d acknowledged)", n, len(acked))
		}
		// The renewal (w=2) may be on disk unacknowledged (its fsync
		// ran, the cut came before the ack was counted), never the
		// reverse: an acknowledged renewal is not rolled back.
		if p.w < w {
			t.Fatalf("placement %s has w=%d after the power cut; the acknowledged renewal set %d", n, p.w, w)
		}
	}
	t.Logf("%d acknowledged placements survived the power cut; %d on disk", len(acked), len(re.all()))
}
