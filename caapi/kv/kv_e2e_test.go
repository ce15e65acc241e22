package kv_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"go.uber.org/goleak"

	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/capsuled/capsuledtest"
	"github.com/gdpnet/gdpnet/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestKVOverServers: a writer and two readers over a real capsule server:
// one reader follows the capsule by subscription, one opens later and
// starts from the newest checkpoint; both answer time-travel reads.
func TestKVOverServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := capsuledtest.New(t)
	r := w.Router("r1")
	srv := w.Server(r, "s1")
	cc := w.User(r, "kv user")
	tc := capsuledtest.NewCapsule(t, "kv e2e")
	tc.Create(t, cc, 1, srv)

	follower, err := kv.Open(ctx, cc, tc.Name(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()

	kw, err := kv.OpenWriter(ctx, cc, tc.Name(), tc.Writer.Key, kv.WriterOptions{CheckpointEvery: 25})
	if err != nil {
		t.Fatal(err)
	}
	var mid uint64
	var midTime time.Time
	for i := 0; i < 200; i++ {
		s, err := kw.Put(ctx, fmt.Sprintf("user/%02d", i%40), []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 99 {
			if _, err := kw.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			mid = s
			time.Sleep(5 * time.Millisecond)
			midTime = time.Now()
			time.Sleep(5 * time.Millisecond)
		}
	}
	last, err := kw.Delete(ctx, "user/00")
	if err != nil || last == 0 {
		t.Fatalf("delete: %d, %v", last, err)
	}
	if d, err := kw.Flush(ctx); err != nil || !d.Met {
		t.Fatalf("flush: %v, %v", d, err)
	}
	if err := kw.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if err := follower.Sync(ctx, last); err != nil {
		t.Fatal(err)
	}
	late, err := kv.Open(ctx, cc, tc.Name(), kv.Options{NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if late.Index().Base() == 0 {
		t.Fatal("a late reader replayed the whole log: no checkpoint used")
	}
	for name, st := range map[string]*kv.Store{"follower": follower, "late": late} {
		if _, err := st.Get(ctx, "user/00"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("%s: deleted key: %v", name, err)
		}
		v, err := st.Get(ctx, "user/39")
		if err != nil || string(v.Value) != "199" {
			t.Fatalf("%s: get: %q, %v", name, v.Value, err)
		}
		v, err = st.GetAt(ctx, "user/00", kv.AtSeqno(mid))
		if err != nil || string(v.Value) != "80" {
			t.Fatalf("%s: get at seqno %d: %q, %v", name, mid, v.Value, err)
		}
		v, err = st.GetAt(ctx, "user/19", kv.AtTime(midTime))
		if err != nil || string(v.Value) != "99" {
			t.Fatalf("%s: get at %v: %q, %v", name, midTime, v.Value, err)
		}
		l, err := st.ListAt(ctx, "user/1", kv.Latest)
		if err != nil || len(l) != 10 {
			t.Fatalf("%s: list: %d, %v", name, len(l), err)
		}
		h, err := st.History(ctx, "user/00")
		if err != nil || len(h) != 6 || !h[5].Deleted {
			t.Fatalf("%s: history: %d versions, %v", name, len(h), err)
		}
	}
}

// TestTamperedReplicaRefused flips a byte of what the server stores — a
// record, a Merkle node (proofs), the heartbeat — and restarts it: a new
// reader fails to open (never indexes unverified bytes); restored, it
// opens again.
func TestTamperedReplicaRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w := capsuledtest.New(t)
	r := w.Router("r1")
	srv := w.Server(r, "s1")
	cc := w.User(r, "kv user")
	tc := capsuledtest.NewCapsule(t, "kv tamper")
	tc.Create(t, cc, 1, srv)
	kw, err := kv.OpenWriter(ctx, cc, tc.Name(), tc.Writer.Key, kv.WriterOptions{CheckpointEvery: -1,
		Writer: client.WriterOptions{Cadence: -1}})
	if err != nil {
		t.Fatal(err)
	}
	// 8 puts, a checkpoint (entry 9), 11 puts: 20 entries.
	for i := 0; i < 19; i++ {
		if i == 8 {
			if err := kw.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := kw.Put(ctx, fmt.Sprintf("k%d", i), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := kw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	name := tc.Name()
	key := func(table byte, tail uint64) []byte {
		k := append([]byte{table}, name[:]...)
		return binary.BigEndian.AppendUint64(k, tail)
	}
	// Store key layout: capsuled/store/keys.go.
	cases := []struct {
		what string
		key  func(db *pebble.DB) []byte
		at   func(v []byte) int // which byte to flip
		full bool               // read the whole log (else: from the checkpoint)
	}{
		{"record 7's data", func(*pebble.DB) []byte { return key('r', 7) }, func(v []byte) int { return len(v) - 1 }, true},
		{"record 20's time", func(*pebble.DB) []byte { return key('r', 20) }, func(v []byte) int { return 40 }, true},
		// Node (level 3, index 0), the root of leaves 0..7, is on the
		// proof path of entry 9 (the checkpoint) in a tree of 20 and not
		// on the tree's frontier (which the server checks when it
		// loads): stored at in-order position (0 << 4) + (1 << 3) - 1 = 7.
		{"a Merkle node on the checkpoint's proof path", func(*pebble.DB) []byte { return key('n', 7) }, func(v []byte) int { return 3 }, false},
		{"the heartbeat", func(*pebble.DB) []byte { return key('H', 20) }, func(v []byte) int { return len(v) - 5 }, false},
	}
	dir := filepath.Join(srv.Dir, "store")
	for _, c := range cases {
		srv.Stop()
		db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
		if err != nil {
			t.Fatal(err)
		}
		k := c.key(db)
		orig, closer, err := db.Get(k)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		orig = append([]byte(nil), orig...)
		_ = closer.Close()
		bad := append([]byte(nil), orig...)
		bad[c.at(bad)] ^= 0x01
		if err := db.Set(k, bad, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		srv.Start()
		st, err := kv.Open(ctx, cc, name, kv.Options{NoFollow: true, FullHistory: c.full})
		if err == nil {
			_ = st.Close()
			t.Fatalf("%s tampered: reader opened", c.what)
		}
		t.Logf("%s tampered: %v", c.what, err)

		srv.Stop()
		db, err = pebble.Open(dir, &pebble.Options{Logger: quiet{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set(k, orig, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		_ = db.Close()
		srv.Start()
		st, err = kv.Open(ctx, cc, name, kv.Options{NoFollow: true, FullHistory: c.full})
		if err != nil {
			t.Fatalf("%s restored: %v", c.what, err)
		}
		if v, err := st.Get(ctx, "k6"); err != nil || string(v.Value) != "value" {
			t.Fatalf("%s restored: get: %q, %v", c.what, v.Value, err)
		}
		_ = st.Close()
	}
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
