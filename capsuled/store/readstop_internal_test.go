package store

import (
	"math/rand/v2"
	"testing"
)

// TestReadStopsAtTo: a read of entries [from, to] stops at to. Going on to
// look for the next key would load the sstable block holding the entry
// after to — a whole record from disk for every one-record READ a file
// reader sends (caapi/fs reads a file one chunk record per READ).
func TestReadStopsAtTo(t *testing.T) {
	s := openTest(t, t.TempDir(), "pebble")
	defer s.Close()
	tc := newTestCapsule(t, 7)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	const size = 40 << 10
	w := tc.writer()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 6 {
		b := make([]byte, size) // incompressible, as chunks of a model are
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		w.Append(b)
	}
	recs, hb := w.Flush()
	mustAppend(t, s, tc.name, recs, hb)
	pe := s.eng.(*pebbleEngine)
	if err := pe.db.Flush(); err != nil { // the entries into sstables
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{3, 3}, {2, 4}} {
		before := pe.scanBlockBytes.Load()
		n := 0
		if err := s.ReadRaw(tc.name, r[0], r[1], func(uint64, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		want := int(r[1] - r[0] + 1)
		if n != want {
			t.Fatalf("read %v: %d entries", r, n)
		}
		// want entries' blocks and the index, not one more entry's.
		if got := pe.scanBlockBytes.Load() - before; got == 0 || got >= uint64((want+1)*size) {
			t.Fatalf("read %v loaded %d block bytes: more than its %d entries of %d bytes", r, got, want, size)
		}
	}
}
