package fs_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
)

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
