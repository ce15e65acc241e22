package store

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDiskPerRecord reports what a capsule costs on disk: b.N records
// of 256 bytes appended (heartbeat per 64, as the CLI's batches), then the
// store directory's allocated size while the store is open (WAL, memtable
// flushes, everything an operator's du sees on a running server) and after
// Close, per record, beside the raw record bytes (data + the record's
// fixed fields) as the baseline. Run with a fixed count, e.g.
//
//	go test -run - -bench DiskPerRecord -benchtime 100000x ./capsuled/store
func BenchmarkDiskPerRecord(b *testing.B) {
	for _, eng := range engines {
		b.Run(eng, func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			s := openTest(b, dir, eng)
			tc := newTestCapsule(b, 7)
			if err := s.Create(ctx, tc.name, tc.meta); err != nil {
				b.Fatal(err)
			}
			w := tc.writer()
			raw := 0
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(64, b.N-done)
				recs, hb := writeRecs(w, n, benchRecord)
				for _, r := range recs {
					raw += len(r.Data) + 8 + 8 + 32 // data, seqno, timestamp, previous hash
				}
				if err := s.Append(ctx, tc.name, recs, hb); err != nil {
					b.Fatal(err)
				}
				done += n
			}
			b.StopTimer()
			open := diskUsage(b, dir)
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			closed := diskUsage(b, dir)
			b.ReportMetric(float64(raw)/float64(b.N), "raw-B/rec")
			b.ReportMetric(float64(open)/float64(b.N), "disk-open-B/rec")
			b.ReportMetric(float64(closed)/float64(b.N), "disk-closed-B/rec")
			b.ReportMetric(float64(open)/float64(raw), "open/raw")
		})
	}
}

// diskUsage is the space allocated to the files under dir (du, not the
// apparent size: preallocated and recycled WAL space counts).
func diskUsage(b testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// A pebble store's disk use tracks what it holds: 20,000 records of 256
// bytes (6 MB raw) take well under 64 MB, WAL preallocation and recycled
// WAL files included (with 64 MiB memtables they took ~450 MB).
func TestPebbleDiskFootprint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, "pebble")
	defer s.Close()
	tc := newTestCapsule(t, 9)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	for done := 0; done < 20000; done += 64 {
		recs, hb := writeRecs(w, 64, benchRecord)
		if err := s.Append(ctx, tc.name, recs, hb); err != nil {
			t.Fatal(err)
		}
	}
	if n := diskUsage(t, dir); n > 64<<20 {
		t.Fatalf("20,000 records of %d bytes take %d MB on disk", benchRecord, n>>20)
	}
}

// Obsolete WAL files are deleted, not kept for reuse: with recycling,
// pebble keeps up to five of them (each as large as a memtable's writes)
// whatever the store holds. Small memtables here make the WAL rotate some
// thirty times; once everything is flushed only the live WAL may remain.
func TestPebbleWALNotRecycled(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{memTable: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := newTestCapsule(t, 10)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	for done := 0; done < 10000; done += 64 {
		recs, hb := writeRecs(w, 64, benchRecord)
		if err := s.Append(ctx, tc.name, recs, hb); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.eng.(*pebbleEngine).db.Flush(); err != nil {
		t.Fatal(err)
	}
	// Obsolete files are deleted in the background.
	var logs []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		logs, err = filepath.Glob(filepath.Join(dir, "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) <= 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(logs) > 1 {
		t.Fatalf("%d WAL files left after a flush (want the live one only): %v", len(logs), logs)
	}
	verifyAll(t, s, tc)
}
