package capsuled

import (
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestCapsuleStatusLag: the newest head is the highest of this replica's
// and the heard peers'; each heard peer's lag is counted from it; a peer
// never heard counts for nothing.
func TestCapsuleStatusLag(t *testing.T) {
	now := time.Now()
	c := CapsuleStatus{Head: 5, Peers: []PeerStatus{
		{Name: pdu.Name{1}, Head: 9, Seen: now},
		{Name: pdu.Name{2}, Head: 7, Seen: now},
		{Name: pdu.Name{3}},
		{Name: pdu.Name{4}, Head: 3, Seen: now},
	}}
	c.settle()
	if c.Newest != 9 || c.Lag() != 4 {
		t.Errorf("newest %d lag %d, want 9 and 4", c.Newest, c.Lag())
	}
	for i, want := range []uint64{0, 2, 0, 6} {
		if c.Peers[i].Lag != want {
			t.Errorf("peer %d lag %d, want %d", i, c.Peers[i].Lag, want)
		}
	}
	c = CapsuleStatus{Head: 8, Peers: []PeerStatus{{Name: pdu.Name{1}, Head: 5, Seen: now}}}
	c.settle()
	if c.Newest != 8 || c.Lag() != 0 || c.Peers[0].Lag != 3 {
		t.Errorf("replica ahead: %+v", c)
	}
}

// TestReplStatePrune: entries of capsules no longer placed are dropped;
// a failure is remembered until the next success.
func TestReplStatePrune(t *testing.T) {
	var r replState
	c1, c2, p := pdu.Name{1}, pdu.Name{2}, pdu.Name{9}
	r.saw(c1, p, 4, time.Now(), true)
	r.saw(c2, p, 5, time.Now(), true)
	r.failed(c1, p, errNAK)
	if e, _ := r.get(c1, p); e.head != 4 || e.err == "" {
		t.Errorf("after a failure: %+v", e)
	}
	r.failed(c1, p, nil)
	if e, _ := r.get(c1, p); e.head != 4 || e.err != "" {
		t.Errorf("after a pull that succeeded: %+v", e)
	}
	r.failed(c1, p, errNAK)
	r.saw(c1, p, 6, time.Now(), true)
	if e, _ := r.get(c1, p); e.head != 6 || e.err != "" {
		t.Errorf("after an answer: %+v", e)
	}
	r.prune(map[pdu.Name]bool{c1: true})
	if _, ok := r.get(c2, p); ok {
		t.Error("a removed capsule's entry kept")
	}
	if _, ok := r.get(c1, p); !ok {
		t.Error("a placed capsule's entry dropped")
	}
}
