package seal_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/caapi/seal"
	"github.com/gdpnet/gdpnet/capsuled/capsuledtest"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestEncryptedCapsuleOverServers: two servers store an encrypted capsule
// and verify it as any other (each acknowledges every batch with a signed
// receipt, W = 2, after checking chain, proof and heartbeat over the
// ciphertext); the records they serve hold no plaintext; an authorised
// reader opens them; a reader without the key gets ErrNoKey, not bytes; a
// removed reader cannot open what is written after its removal.
func TestEncryptedCapsuleOverServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := capsuledtest.New(t)
	r1 := w.Router("r1")
	r2 := w.Router("r2", r1)
	s1, s2 := w.Server(r1, "s1"), w.Server(r2, "s2")
	cc := w.User(r1, "writer")
	tc := capsuledtest.NewCapsule(t, "sealed")
	tc.Create(t, cc, 2, s1, s2)

	alice, _ := certs.NewIdentity(certs.KindClient, "alice")
	bob, _ := certs.NewIdentity(certs.KindClient, "bob")
	eve, _ := certs.NewIdentity(certs.KindClient, "eve")
	aliceCC := w.UserAs(r2, alice)

	cw, err := cc.NewWriter(ctx, tc.Name(), tc.Writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer cw.Close(ctx)
	sl, err := seal.NewSealer(ctx, cw, tc.Writer.Key, alice.Public(), bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := sl.Append(ctx, []byte(fmt.Sprintf("secret %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	d, err := cw.Flush(ctx)
	if err != nil || !d.Met || d.Acks != 2 || len(d.Receipts) != 2 {
		t.Fatalf("flush: %v, %v: both servers must verify and store the sealed batch", d, err)
	}
	if err := sl.RemoveReader(ctx, bob.Public()); err != nil {
		t.Fatal(err)
	}
	late, err := sl.Append(ctx, []byte("secret after bob left"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := cw.Flush(ctx); err != nil || d.Acks != 2 {
		t.Fatalf("flush: %v, %v", d, err)
	}

	// What a replica serves (verified by the client): ciphertext only.
	rd, err := aliceCC.NewReader(ctx, tc.Name(), client.ReaderOptions{Server: s2.Name()})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := rd.Read(ctx, 1, 0)
	if err != nil || uint64(len(recs)) != late {
		t.Fatalf("read: %d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if bytes.Contains(r.Data, []byte("secret")) {
			t.Fatalf("entry %d holds plaintext on the replica", r.Seqno)
		}
	}
	open := func(key ed25519.PrivateKey, seq uint64) ([]byte, error) {
		return seal.NewOpener(rd, key).Open(ctx, recs[seq-1])
	}
	if pt, err := open(alice.Key, 2); err != nil || string(pt) != "secret 0" {
		t.Fatalf("alice: %q, %v", pt, err)
	}
	if pt, err := open(eve.Key, 2); !errors.Is(err, seal.ErrNoKey) || pt != nil {
		t.Fatalf("eve (no key): got %q, %v; want ErrNoKey and no bytes", pt, err)
	}
	if pt, err := open(bob.Key, 2); err != nil || string(pt) != "secret 0" {
		t.Fatalf("bob, before removal: %q, %v", pt, err)
	}
	if pt, err := open(bob.Key, late); !errors.Is(err, seal.ErrNoKey) || pt != nil {
		t.Fatalf("bob after removal: got %q, %v; want ErrNoKey", pt, err)
	}
	if pt, err := open(alice.Key, late); err != nil || string(pt) != "secret after bob left" {
		t.Fatalf("alice after bob's removal: %q, %v", pt, err)
	}
}

// TestEncryptedKV: a KV capsule whose records are sealed: an authorised
// reader's store answers time-travel reads; a store without the key fails
// to open with ErrNoKey.
func TestEncryptedKV(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := capsuledtest.New(t)
	r := w.Router("r1")
	srv := w.Server(r, "s1")
	cc := w.User(r, "writer")
	tc := capsuledtest.NewCapsule(t, "sealed kv")
	tc.Create(t, cc, 1, srv)
	alice, _ := certs.NewIdentity(certs.KindClient, "alice")
	eve, _ := certs.NewIdentity(certs.KindClient, "eve")

	kw, err := kv.OpenWriter(ctx, cc, tc.Name(), tc.Writer.Key, kv.WriterOptions{CheckpointEvery: 10,
		Appender: func(ctx context.Context, cw *client.Writer) (kv.Appender, error) {
			return seal.NewSealer(ctx, cw, tc.Writer.Key, alice.Public())
		}})
	if err != nil {
		t.Fatal(err)
	}
	var first uint64
	for i := 0; i < 40; i++ {
		s, err := kw.Put(ctx, fmt.Sprintf("k%d", i%7), []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = s
		}
	}
	if err := kw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	openAs := func(key ed25519.PrivateKey) (*kv.Store, error) {
		rd, err := cc.NewReader(ctx, tc.Name(), client.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return kv.OpenReader(ctx, rd, kv.Options{NoFollow: true, Transform: seal.NewOpener(rd, key).Transform})
	}
	st, err := openAs(alice.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Index().Base() == 0 {
		t.Fatal("the sealed KV reader did not start from a checkpoint")
	}
	if v, err := st.Get(ctx, "k4"); err != nil || string(v.Value) != "39" {
		t.Fatalf("get: %q, %v", v.Value, err)
	}
	if v, err := st.GetAt(ctx, "k0", kv.AtSeqno(first)); err != nil || string(v.Value) != "0" {
		t.Fatalf("get at %d: %q, %v", first, v.Value, err)
	}
	if _, err := openAs(eve.Key); !errors.Is(err, seal.ErrNoKey) {
		t.Fatalf("eve: %v, want ErrNoKey", err)
	}
}
