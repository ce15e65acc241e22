package resolver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	wallclock "github.com/gdpnet/gdpnet/internal/clock"
)

// TestSequencerFloor: every sequence handed out is at most the floor on
// disk (written before use), a reopened Sequencer starts above it even
// with the clock set back an hour, a corrupt file is a clear error, and a
// floor that cannot be written is an error, not a sequence.
func TestSequencerFloor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SequenceFileName)
	q, err := OpenSequencer(path)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := func() uint64 {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var last uint64
	for range 100 {
		s, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if s <= last || s > onDisk() {
			t.Fatalf("sequence %d after %d, floor on disk %d", s, last, onDisk())
		}
		last = s
	}
	defer wallclock.SetOffset(wallclock.SetOffset(-time.Hour))
	q2, err := OpenSequencer(path)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := q2.Next(); err != nil || s <= last {
		t.Fatalf("after a restart with the clock an hour behind: %d (%v), the last was %d", s, err, last)
	}

	if err := os.WriteFile(path, []byte("12x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSequencer(path); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Fatalf("corrupt state file: %v", err)
	}
	q3, err := OpenSequencer(filepath.Join(dir, "missing", SequenceFileName))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := q3.Next(); err == nil {
		t.Fatalf("a floor that cannot be written gave sequence %d", s)
	}
}

// TestTombstoneThenRecordNoTie: a router whose sequences run ahead of its
// clock (restarted with the clock set back: its Sequencer's floor is in
// the future) publishes a record, withdraws it — the tombstone takes the
// record's sequence plus one — and publishes the name again. The new
// record's sequence must exceed the tombstone's: on a tie the record set
// keeps the tombstone (merged first), and the name would not resolve until
// the next republish although the router was told "published".
func TestTombstoneThenRecordNoTie(t *testing.T) {
	path := filepath.Join(t.TempDir(), SequenceFileName)
	ahead := uint64(wallclock.Now().Add(time.Hour).UnixNano())
	if err := os.WriteFile(path, []byte(strconv.FormatUint(ahead, 10)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := OpenSequencer(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rec, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		tomb := tombstoneSequence(rec)
		if tomb <= rec {
			t.Fatalf("tombstone %d does not supersede the record %d", tomb, rec)
		}
		again, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if again <= tomb {
			t.Fatalf("record after the tombstone: sequence %d, tombstone %d: the tombstone would win", again, tomb)
		}
	}
}
