package seal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// memCapsule is a capsule in memory: an Appender (the real capsule.Writer
// builds the records) and a RecordReader over what was written.
type memCapsule struct {
	info    capsule.Info
	w       *capsule.Writer
	entries []capsule.Record
}

func newMemCapsule(t *testing.T) (*memCapsule, ed25519.PrivateKey) {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(nil)
	_, owner, _ := ed25519.GenerateKey(nil)
	meta, err := certs.NewCapsule(owner, pub, "seal test")
	if err != nil {
		t.Fatal(err)
	}
	info, err := capsule.InfoOf(meta)
	if err != nil {
		t.Fatal(err)
	}
	return &memCapsule{info: info, w: capsule.NewWriter(info.Name, key)}, key
}

func (m *memCapsule) Name() pdu.Name     { return m.info.Name }
func (m *memCapsule) Seqno() uint64      { return m.w.Seqno() }
func (m *memCapsule) Info() capsule.Info { return m.info }
func (m *memCapsule) AppendRecord(_ context.Context, data []byte) (capsule.Record, error) {
	r := m.w.Append(append([]byte(nil), data...))
	m.entries = append(m.entries, r)
	return r, nil
}
func (m *memCapsule) Read(_ context.Context, from, to uint64) ([]capsule.Record, error) {
	if from < 1 || to > uint64(len(m.entries)) || from > to {
		return nil, fmt.Errorf("read [%d, %d] of %d", from, to, len(m.entries))
	}
	return append([]capsule.Record(nil), m.entries[from-1:to]...), nil
}

func newReader(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, key
}

// TestReadersAndRotation: an authorised reader opens every payload; a
// stranger gets ErrNoKey, never bytes; a removed reader opens what was
// written before its removal and gets ErrNoKey after it; an added reader
// reads from its addition on.
func TestReadersAndRotation(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	alice, aliceKey := newReader(t)
	bob, bobKey := newReader(t)
	carol, carolKey := newReader(t)
	_, eveKey := newReader(t)

	s, err := NewSealer(ctx, m, wkey, alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Append(ctx, []byte("before the rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveReader(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if err := s.AddReader(ctx, carol); err != nil {
		t.Fatal(err)
	}
	after, err := s.Append(ctx, []byte("after the rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Epoch(); e != 3 {
		t.Fatalf("epoch %d after two reader changes, want 3", e)
	}
	rec := func(n uint64) capsule.Record { return m.entries[n-1] }
	for _, r := range m.entries {
		if bytes.Contains(r.Data, []byte("rotation")) {
			t.Fatalf("entry %d holds plaintext", r.Seqno)
		}
	}
	cases := []struct {
		who     string
		key     ed25519.PrivateKey
		seq     uint64
		wantErr error
	}{
		{"alice before", aliceKey, before, nil},
		{"alice after", aliceKey, after, nil},
		{"bob before", bobKey, before, nil},
		{"bob after (removed)", bobKey, after, ErrNoKey},
		{"carol before (not yet added)", carolKey, before, ErrNoKey},
		{"carol after", carolKey, after, nil},
		{"eve before", eveKey, before, ErrNoKey},
		{"eve after", eveKey, after, ErrNoKey},
		{"the writer", wkey, after, nil},
	}
	for _, c := range cases {
		pt, err := NewOpener(m, c.key).Open(ctx, rec(c.seq))
		switch {
		case c.wantErr == nil && (err != nil || !bytes.Contains(pt, []byte("rotation"))):
			t.Errorf("%s: %q, %v", c.who, pt, err)
		case c.wantErr != nil && (!errors.Is(err, c.wantErr) || pt != nil):
			t.Errorf("%s: got %q, %v; want %v and no bytes", c.who, pt, err, c.wantErr)
		}
	}
	if _, err := NewOpener(m, aliceKey).Open(ctx, rec(1)); !errors.Is(err, ErrNotData) {
		t.Fatalf("key record: %v", err)
	}

	// A restarted writer recovers the epoch and its key from the log.
	r, err := ResumeSealer(ctx, m, m, wkey)
	if err != nil {
		t.Fatal(err)
	}
	if e, k := r.Epoch(); e != 3 || k != s.keySeq {
		t.Fatalf("resumed at epoch %d (key record %d), want 3 (%d)", e, k, s.keySeq)
	}
	n, err := r.Append(ctx, []byte("resumed"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := NewOpener(m, carolKey).Open(ctx, rec(n)); err != nil || string(pt) != "resumed" {
		t.Fatalf("after resume: %q, %v", pt, err)
	}
}

// TestForgedKeyRecordRefused: a key record the capsule's writer did not
// sign (another key, or a wrap swapped in) is refused, and so are a
// tampered payload and a payload moved to another epoch.
func TestForgedKeyRecordRefused(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	alice, aliceKey := newReader(t)
	s, err := NewSealer(ctx, m, wkey, alice)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Append(ctx, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if over := len(m.entries[n-1].Data) - len("secret"); over > Overhead {
		t.Fatalf("sealing added %d bytes, Overhead says at most %d", over, Overhead)
	}
	_, mallory, _ := ed25519.GenerateKey(nil)
	forged, err := newKeyRecord(m.info.Name, mallory, 1, make([]byte, 32), []ed25519.PublicKey{alice})
	if err != nil {
		t.Fatal(err)
	}
	orig := m.entries[0].Data
	m.entries[0].Data = forged
	if _, err := NewOpener(m, aliceKey).Open(ctx, m.entries[n-1]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged key record: %v", err)
	}
	m.entries[0].Data = orig

	bad := m.entries[n-1]
	bad.Data = bytes.Clone(bad.Data)
	bad.Data[len(bad.Data)-1] ^= 1
	if _, err := NewOpener(m, aliceKey).Open(ctx, bad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered payload: %v", err)
	}
	// The capsule name and epoch are bound as associated data: the same
	// ciphertext and content key, named as another epoch or opened for
	// another capsule, do not open.
	ck := s.ck
	env, err := decodeEnvelope(m.entries[n-1].Data)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := openData(m.info.Name, ck, env); err != nil || string(pt) != "secret" {
		t.Fatalf("the genuine payload: %q, %v", pt, err)
	}
	env.Epoch = 2
	if _, err := openData(m.info.Name, ck, env); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("payload renamed to epoch 2: %v", err)
	}
	env.Epoch = 1
	if _, err := openData(pdu.Name{1}, ck, env); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("payload opened for another capsule: %v", err)
	}
}

// TestSealDataEncoding: the hand-written envelope encoder gives the
// library's canonical encoding of the same envelope, which decodes and
// opens.
func TestSealDataEncoding(t *testing.T) {
	ck := make([]byte, 32)
	ck[0] = 7
	aead, err := chacha20poly1305.NewX(ck)
	if err != nil {
		t.Fatal(err)
	}
	c := pdu.Name{3}
	for _, v := range []struct{ epoch, keySeq uint64 }{{1, 1}, {23, 24}, {1 << 20, 1 << 40}} {
		for _, n := range []int{0, 1, 23, 24, 255, 256, 70000} {
			pt := bytes.Repeat([]byte{0xab}, n)
			nonce := bytes.Repeat([]byte{byte(n)}, chacha20poly1305.NonceSizeX)
			got := sealData(c, aead, v.epoch, v.keySeq, nonce, pt)
			want, err := codec.Marshal(&envelope{Kind: KindData, Epoch: v.epoch, KeySeq: v.keySeq, Nonce: nonce,
				Sealed: aead.Seal(nil, nonce, pt, dataAD(c, v.epoch))})
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("epoch %d, %d bytes: hand encoding differs from the library's (%v)", v.epoch, n, err)
			}
			env, err := decodeEnvelope(got)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := openData(c, ck, env); err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("open: %v", err)
			}
		}
	}
}
