package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/client"
)

// TestForeignRecordsSkipped (Session 20, Issues 12/16): records that are
// not files-capsule records, appended through the Go SDK with the
// capsule's writer key (a caapi/kv put and plain client.Writer appends),
// between puts and after the last one, break no read: a new files writer
// goes on after them, and a reader lists and reads every file and every
// version (also through the FUSE mount), counting the records it skipped
// at the tail in Stats.Skipped. Before, the first such record made every
// read of the tree (and every later put) fail with ErrNotFS. Mutant:
// index.tip returning start (the old reader): the second writer fails.
func TestForeignRecordsSkipped(t *testing.T) {
	w := newWorld(t)
	a := w.router("router a")
	r := w.replica(a, "replica 1")
	cc := w.user(a, "fs user")
	name, wid := newCapsule(t, cc, 1, r)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	files := func(puts map[string][]byte) map[string]uint64 {
		t.Helper()
		fw, err := fs.NewWriter(ctx, cc, name, wid.Key, fs.WriterOptions{})
		if err != nil {
			t.Fatalf("files writer: %v", err)
		}
		defer fw.Close(ctx)
		vs := map[string]uint64{}
		for _, p := range []string{"a", "dir/b", "c"} {
			if b, ok := puts[p]; ok {
				v, err := fw.Put(ctx, p, bytes.NewReader(b), fs.PutOptions{})
				if err != nil {
					t.Fatalf("put %s: %v", p, err)
				}
				vs[p] = v.Seqno
			}
		}
		return vs
	}
	plain := func(n int, what string) {
		t.Helper()
		wr, err := cc.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, err := wr.Append(ctx, []byte(fmt.Sprintf("%s %d: not a file", what, i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := wr.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}

	a1, b1 := content(1, fs.ChunkSize+100), content(2, 5000)
	v1 := files(map[string][]byte{"a": a1, "dir/b": b1})
	// In the middle: a KV put and a plain record.
	kw, err := kv.OpenWriter(ctx, cc, name, wid.Key, kv.WriterOptions{})
	if err != nil {
		t.Fatalf("kv writer on the files capsule: %v", err)
	}
	if _, err := kw.Put(ctx, "key", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := kw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	plain(1, "middle")
	a2, c1 := content(3, 3*fs.ChunkSize), content(4, 10)
	v2 := files(map[string][]byte{"a": a2, "c": c1})
	// At the tail: more than one page of the reader's look-back.
	const tail = 20
	plain(tail, "tail")

	f, err := fs.Open(ctx, cc, name, fs.Options{})
	if err != nil {
		t.Fatalf("open with foreign records: %v", err)
	}
	if got := f.Stats.Skipped.Load(); got != tail {
		t.Errorf("Skipped %d, want the %d records at the tail", got, tail)
	}
	if f.Head() != v2["c"] {
		t.Errorf("head %d, want the last manifest %d", f.Head(), v2["c"])
	}
	ents, err := f.ReadDir("")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if fmt.Sprint(names) != "[a c dir]" {
		t.Errorf("ls /: %v, want [a c dir]", names)
	}
	log, err := f.Log("a")
	if err != nil || len(log) != 2 || log[0].Seqno != v2["a"] || log[1].Seqno != v1["a"] {
		t.Fatalf("log a: %v, %v; want versions %d, %d", log, err, v2["a"], v1["a"])
	}
	for _, tc := range []struct {
		p    string
		v    uint64
		want []byte
	}{{"a", 0, a2}, {"a", v1["a"], a1}, {"a", v2["a"], a2}, {"dir/b", 0, b1}, {"c", 0, c1}} {
		got, err := readAll(t, f, tc.p, tc.v)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Fatalf("read %s version %d: %d bytes, %v; want %d bytes", tc.p, tc.v, len(got), err, len(tc.want))
		}
	}
	// The tree as of a record in the middle run (the KV put's) is the
	// first writer's.
	old, err := fs.Open(ctx, cc, name, fs.Options{At: v1["dir/b"] + 1})
	if err != nil {
		t.Fatalf("open as of the foreign record: %v", err)
	}
	if got, err := readAll(t, old, "a", 0); err != nil || !bytes.Equal(got, a1) {
		t.Fatalf("a as of the foreign record: %d bytes, %v", len(got), err)
	}
	if _, err := old.Stat("c"); err == nil {
		t.Fatal("c exists as of a record before it was put")
	}

	dir, _ := mountOrSkip(t, f)
	for p, want := range map[string][]byte{"a": a2, "dir/b": b1, "c": c1} {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("mount: read %s: %d bytes, %v", p, len(got), err)
		}
	}
}

// TestNotAFilesCapsuleSaidAtOnce (Session 20, review13): a capsule whose
// first record is not a files record (a KV or plain capsule) is not a
// files capsule: Open says so after reading its newest and its first
// record, not after paging back through its whole log looking for a
// files record. Mutant: index.tip without the record-1 check: the error
// comes after every record was read ("none of the capsule's … records").
func TestNotAFilesCapsuleSaidAtOnce(t *testing.T) {
	w := newWorld(t)
	a := w.router("router a")
	r := w.replica(a, "replica 1")
	cc := w.user(a, "fs user")
	name, wid := newCapsule(t, cc, 1, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := cc.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := wr.Append(ctx, []byte(fmt.Sprintf("record %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = fs.Open(ctx, cc, name, fs.Options{})
	if !errors.Is(err, fs.ErrNotFS) || !strings.Contains(err.Error(), "record 1 is not one") {
		t.Fatalf("open of a capsule of 100 plain records: %v; want ErrNotFS from its first record", err)
	}
}
