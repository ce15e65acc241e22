package capsuled

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestStorageUsedSums (Session 14): the share max_bytes_per_requester is
// checked against the bytes of every capsule one requester placed, summed
// from the store; the sum is reused for storageResum, with the creator's
// own APPENDs (storageAdded) counted in as they are stored, and what else
// the store took (anti-entropy) shows at the next sum; a placement with no
// known creator (stored before Session 13) is never over. Mutants: the
// cached sum not used, storageAdded not adding (each checked by hand).
func TestStorageUsedSums(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	alice, bob := pdu.Name{0xa1}, pdu.Name{0xb0}
	ps := &placements{m: map[pdu.Name]*placement{}, byShare: index{}, byGroup: index{}}
	type held struct {
		p *placement
		w *capsule.Writer
	}
	place := func(creator pdu.Name, desc string) held {
		t.Helper()
		c := newPlacementCapsule(t, desc)
		meta := c.meta
		if err := st.Create(ctx, meta.Name(), meta.Marshal()); err != nil {
			t.Fatal(err)
		}
		p := &placement{name: meta.Name(), meta: meta, creator: creator, who: who{share: creator}}
		ps.m[p.name] = p
		ps.index(p, nil)
		return held{p, capsule.NewWriter(meta.Name(), c.writer.Key)}
	}
	write := func(h held, n int) {
		t.Helper()
		h.w.Append(bytes.Repeat([]byte{'x'}, n))
		recs, hb := h.w.Flush()
		if err := st.Append(ctx, h.p.name, recs, hb); err != nil {
			t.Fatal(err)
		}
	}
	a1, a2, b1, legacy := place(alice, "a1"), place(alice, "a2"), place(bob, "b1"), place(pdu.Name{}, "legacy")
	write(a1, 1000)
	write(a2, 1000)
	write(b1, 5000)
	write(legacy, 5000)
	bytesOf := func(hs ...held) uint64 {
		var n uint64
		for _, h := range hs {
			b, err := st.Bytes(h.p.name)
			if err != nil {
				t.Fatal(err)
			}
			n += b
		}
		return n
	}
	both := bytesOf(a1, a2)
	if both < 2000 || both > 3000 {
		t.Fatalf("alice's two capsules hold %d bytes", both)
	}
	s := &Server{st: st, places: ps}
	s.pol.Store(&policy{placement: PlacementPolicy{MaxBytesPerRequester: int64(both) + 500}})
	// storageUsed's share "" is not over (Session 14: or the share used up).
	if n, over := s.storageUsed(a1.p); n != both || over != "" {
		t.Fatalf("alice: %d bytes, over %v; want both her capsules' %d, not over", n, over, both)
	}
	if n, over := s.storageUsed(b1.p); n != bytesOf(b1) || over != shareRequester {
		t.Fatalf("bob: %d bytes, over %v; want %d, over", n, over, bytesOf(b1))
	}
	if n, over := s.storageUsed(legacy.p); n != 0 || over != "" {
		t.Fatalf("a placement without a creator: %d bytes, over %v; want never over", n, over)
	}
	at := &Server{st: st, places: ps} // a share of exactly what alice holds: used up
	at.pol.Store(&policy{placement: PlacementPolicy{MaxBytesPerRequester: int64(both)}})
	if n, over := at.storageUsed(a1.p); n != both || over != shareRequester {
		t.Fatalf("share %d, alice holding %d: over %v; want over", both, n, over)
	}
	// Within storageResum: what the store took meanwhile (a pull) is not
	// summed again; the creator's own APPENDs are added.
	write(a2, 1000)
	if n, _ := s.storageUsed(a2.p); n != both {
		t.Fatalf("within %s of the sum: %d bytes, want the sum %d reused", storageResum, n, both)
	}
	s.storageAdded(a1.p, 600)
	if n, over := s.storageUsed(a2.p); n != both+600 || over != shareRequester {
		t.Fatalf("after an APPEND of 600 bytes: %d bytes, over %v; want %d, over", n, over, both+600)
	}
	// Summed again once storageResum is past.
	s.storage.mu.Lock()
	s.storage.m[alice].at = time.Now().Add(-storageResum)
	s.storage.mu.Unlock()
	if n, _ := s.storageUsed(a1.p); n != bytesOf(a1, a2) {
		t.Fatalf("after %s: %d bytes, want the store's %d", storageResum, n, bytesOf(a1, a2))
	}
}
