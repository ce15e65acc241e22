package store

import (
	"context"
	"testing"
)

// TestStoreMemory: Store.Memory reports what pebble holds outside the Go
// heap (gdp_capsuled_store_*_bytes, Session 21: the life soak's capsule
// servers grew in RSS while their Go heap stayed flat). The records
// written show in the unflushed WAL bytes and the memtables holding them,
// a flush hands them to a table, and a closed store or bbolt reports
// zeros.
func TestStoreMemory(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), "pebble")
	tc := newTestCapsule(t, 21)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	before := s.Memory()
	w := tc.writer()
	const n, size = 2048, 512 // 1 MiB of record data
	for done := 0; done < n; done += 64 {
		recs, hb := writeRecs(w, 64, size)
		mustAppend(t, s, tc.name, recs, hb)
	}
	m := s.Memory()
	t.Logf("memory before %+v, after %d records of %d bytes %+v", before, n, size, m)
	if m.Unflushed-before.Unflushed < n*size {
		t.Errorf("unflushed WAL bytes grew by %d after %d bytes of records, want at least that", m.Unflushed-before.Unflushed, n*size)
	}
	if m.MemTables < m.Unflushed {
		t.Errorf("memtables %d bytes, less than the %d unflushed bytes they hold", m.MemTables, m.Unflushed)
	}
	if err := s.eng.(*pebbleEngine).db.Flush(); err != nil {
		t.Fatal(err)
	}
	if f := s.Memory(); f.Unflushed > m.Unflushed/4 {
		t.Errorf("unflushed %d bytes after a flush, want what was written since only (had %d)", f.Unflushed, m.Unflushed)
	}
	verifyAll(t, s, tc)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c := s.Memory(); c != (Memory{}) {
		t.Errorf("a closed store reports %+v", c)
	}

	b := openTest(t, t.TempDir(), "bbolt")
	defer b.Close()
	if m := b.Memory(); m != (Memory{}) {
		t.Errorf("bbolt reports %+v, want zeros", m)
	}
}
