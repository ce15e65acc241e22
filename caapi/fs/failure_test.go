package fs_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
)

// TestReaderOpeningFails (Session 14): when the replica reads fail over to
// cannot even be opened (its reader is opened on first use, after the
// FS was), the error reaches the caller and no byte of the file is
// returned: ReadAt answers 0 bytes and the error, a whole read nothing
// (mutants: the reader's opening error ignored in FS.reader, fetchFrom).
func TestReaderOpeningFails(t *testing.T) {
	s := newSetup(t, 2, 2)
	body := content(31, 2*fs.ChunkSize+7)
	s.put(t, "f.bin", body)
	f := s.open(t, fs.Options{Server: s.rs[0].id.Name})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fl, err := f.Open(ctx, "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	// Both replicas go: the first fails its read, the second's reader
	// cannot be opened.
	s.rs[0].stop()
	s.rs[1].stop()
	buf := make([]byte, 100)
	n, err := fl.ReadAt(buf, fs.ChunkSize-50) // across two chunks
	if err == nil || n != 0 {
		t.Fatalf("ReadAt with no replica to open: %d bytes, %v; want 0 and the error", n, err)
	}
	if !strings.Contains(err.Error(), "every replica failed") || f.Stats.Failovers.Load() == 0 {
		t.Fatalf("error %v, %d failovers: want both replicas tried", err, f.Stats.Failovers.Load())
	}
	got, err := readAll(t, f, "f.bin", 0)
	if err == nil || len(got) != 0 {
		t.Fatalf("whole read with no replica to open: %d bytes, %v; want nothing and the error", len(got), err)
	}
}

// TestWriterNotDurable (Session 14): a Put whose manifest the capsule's
// W replicas do not all acknowledge is an error, not a success, and the
// version is not added to the writer's tree; once the replica is back the
// same Put succeeds (mutant: the durability check after the flush
// skipped).
func TestWriterNotDurable(t *testing.T) {
	s := newSetup(t, 2, 2)
	s.put(t, "a.txt", []byte("both replicas"))
	s.rs[1].stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t0 := time.Now()
	v, err := s.fw.Put(ctx, "b.txt", bytes.NewReader([]byte("one replica of two")), fs.PutOptions{})
	if err == nil || v != nil || !strings.Contains(err.Error(), "not durable") {
		t.Fatalf("put with W=2 and one replica down: %v, %v; want a not-durable error", v, err)
	}
	t.Logf("not durable after %v: %v", time.Since(t0), err)
	if _, err := s.fw.FS().Stat("b.txt"); err == nil {
		t.Fatal("a version not durable is in the writer's tree")
	}
	s.w.start(s.rs[1])
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	t0 = time.Now()
	if _, err := s.fw.Put(ctx2, "b.txt", bytes.NewReader([]byte("both again")), fs.PutOptions{}); err != nil {
		t.Fatalf("put once the replica is back: %v", err)
	}
	t.Logf("durable again after %v", time.Since(t0))
	// A reader sees the tree as written: the durable versions (the one
	// not durable is in the log too, on one replica, and now on both).
	f := s.open(t, fs.Options{})
	for p, want := range map[string]string{"a.txt": "both replicas", "b.txt": "both again"} {
		got, err := readAll(t, f, p, 0)
		if err != nil || string(got) != want {
			t.Fatalf("%s read back: %q, %v; want %q", p, got, err, want)
		}
	}
}
