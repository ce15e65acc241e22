package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestDiskFullRefusesWrites: while the store's file system has less free
// space than MinFreeBytes (a probe answering 1 MiB for a 4 MiB reserve),
// appends are refused with ErrDiskFull, nothing is stored, the refusal is
// counted and the store does not fail; once space is back the same batch
// is stored.
//
// Session 18: the operator is told once — one WARN naming the directory
// and the fix however many appends are refused, one INFO when space is back
// (a first deployment by hand filled a tmpfs: 596 refusals, no line).
func TestDiskFullRefusesWrites(t *testing.T) {
	ctx := context.Background()
	var free atomic.Uint64
	free.Store(1 << 30)
	core, logs := observer.New(zap.InfoLevel)
	dir := t.TempDir()
	s, err := Open(dir, Options{MinFreeBytes: 4 << 20, Logger: zap.New(core), freeBytes: func(string) (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := newTestCapsule(t, 7)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 3, 64)
	free.Store(1 << 20)
	time.Sleep(2 * probeEvery)
	if err := s.Append(ctx, tc.name, recs, hb); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append on a full disk: %v, want ErrDiskFull", err)
	}
	if h, err := s.Head(tc.name); err != nil || h.Seqno != 0 {
		t.Fatalf("head after the refused append: %d, %v", h.Seqno, err)
	}
	for i := 0; i < 5; i++ {
		time.Sleep(2 * probeEvery)
		if err := s.Append(ctx, tc.name, recs, hb); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("append %d on a full disk: %v, want ErrDiskFull", i+2, err)
		}
	}
	if st := s.Stats(); st.DiskFull != 6 {
		t.Fatalf("refusals counted %d, want 6", st.DiskFull)
	}
	warns := logs.FilterMessageSnippet("disk nearly full").AllUntimed()
	if len(warns) != 1 || warns[0].Level != zap.WarnLevel {
		t.Fatalf("disk-full lines %v, want one WARN for 6 refusals", warns)
	}
	if f := warns[0].ContextMap(); f["dir"] != dir || !strings.Contains(fmt.Sprint(f["fix"]), "free space") {
		t.Fatalf("disk-full line's fields %v: want dir %s and a fix", f, dir)
	}
	free.Store(1 << 30)
	time.Sleep(2 * probeEvery)
	if err := s.Append(ctx, tc.name, recs, hb); err != nil {
		t.Fatalf("append once space is back: %v", err)
	}
	if back := logs.FilterMessageSnippet("disk space back").Len(); back != 1 {
		t.Fatalf("space-back lines %d, want 1", back)
	}
	if h, err := s.Head(tc.name); err != nil || h.Seqno != 3 {
		t.Fatalf("head %d, %v; want 3", h.Seqno, err)
	}
}

// TestDiskFullRefusesCreate: a new capsule takes disk as an append does:
// below MinFreeBytes Create is refused with ErrDiskFull, nothing is stored
// and the refusal is counted; a capsule already held is still a no-op;
// once space is back the same Create works.
func TestDiskFullRefusesCreate(t *testing.T) {
	ctx := context.Background()
	var free atomic.Uint64
	free.Store(1 << 20)
	s, err := Open(t.TempDir(), Options{MinFreeBytes: 4 << 20, freeBytes: func(string) (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := newTestCapsule(t, 8)
	time.Sleep(2 * probeEvery)
	if err := s.Create(ctx, tc.name, tc.meta); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("create on a full disk: %v, want ErrDiskFull", err)
	}
	if !errors.Is(s.Room(), ErrDiskFull) {
		t.Fatal("Room says there is room")
	}
	if n := len(s.Capsules()); n != 0 {
		t.Fatalf("the refused create stored %d capsules", n)
	}
	if st := s.Stats(); st.DiskFull == 0 {
		t.Fatalf("refusal not counted: %+v", st)
	}
	free.Store(1 << 30)
	time.Sleep(2 * probeEvery)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatalf("create once space is back: %v", err)
	}
	free.Store(1 << 20)
	time.Sleep(2 * probeEvery)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatalf("create of a held capsule on a full disk: %v, want the no-op", err)
	}
}
