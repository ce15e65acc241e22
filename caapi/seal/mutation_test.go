package seal

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/big"
	"slices"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/gdpnet/gdpnet/capsule"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep"). The mutants each
// kills are named.

// TestEnvelopeFieldRules: every field rule of a data envelope and a key
// record, decoded from the canonical encoding (mutants: each rule's guard
// skipped, one operand of each || dropped, > ↔ >= at MaxReaders).
func TestEnvelopeFieldRules(t *testing.T) {
	wrapOK := func() wrap {
		return wrap{Reader: make([]byte, 32), Eph: make([]byte, 32), Wrapped: make([]byte, 32+chacha20poly1305.Overhead)}
	}
	data := func() *envelope {
		return &envelope{Kind: KindData, Epoch: 1, KeySeq: 1, Nonce: make([]byte, chacha20poly1305.NonceSizeX),
			Sealed: make([]byte, chacha20poly1305.Overhead)}
	}
	keys := func() *envelope {
		return &envelope{Kind: KindKeys, Epoch: 1, Wraps: []wrap{wrapOK()}, Sig: make([]byte, ed25519.SignatureSize)}
	}
	tests := []struct {
		name string
		e    func() *envelope
		ok   bool
	}{
		{"data", data, true},
		{"keys", keys, true},
		{"keys with MaxReaders wraps", func() *envelope {
			e := keys()
			for len(e.Wraps) < MaxReaders {
				e.Wraps = append(e.Wraps, wrapOK())
			}
			return e
		}, true},
		{"data without key seqno", func() *envelope { e := data(); e.KeySeq = 0; return e }, false},
		{"data with a short nonce", func() *envelope { e := data(); e.Nonce = e.Nonce[1:]; return e }, false},
		{"data shorter than a tag", func() *envelope { e := data(); e.Sealed = e.Sealed[1:]; return e }, false},
		{"data with wraps", func() *envelope { e := data(); e.Wraps = []wrap{wrapOK()}; return e }, false},
		{"data with a signature", func() *envelope { e := data(); e.Sig = make([]byte, 64); return e }, false},
		{"data of epoch 0", func() *envelope { e := data(); e.Epoch = 0; return e }, false},
		{"keys with a key seqno", func() *envelope { e := keys(); e.KeySeq = 1; return e }, false},
		{"keys with a nonce", func() *envelope { e := keys(); e.Nonce = make([]byte, 24); return e }, false},
		{"keys with sealed bytes", func() *envelope { e := keys(); e.Sealed = make([]byte, 16); return e }, false},
		{"keys with a short signature", func() *envelope { e := keys(); e.Sig = e.Sig[1:]; return e }, false},
		{"keys without wraps", func() *envelope { e := keys(); e.Wraps = nil; return e }, false},
		{"keys of epoch 0", func() *envelope { e := keys(); e.Epoch = 0; return e }, false},
		{"a wrap with a short reader", func() *envelope { e := keys(); e.Wraps[0].Reader = e.Wraps[0].Reader[1:]; return e }, false},
		{"a wrap with a short ephemeral key", func() *envelope { e := keys(); e.Wraps[0].Eph = e.Wraps[0].Eph[1:]; return e }, false},
		{"a wrap with a short wrapped key", func() *envelope { e := keys(); e.Wraps[0].Wrapped = e.Wraps[0].Wrapped[1:]; return e }, false},
		{"kind 3", func() *envelope { e := data(); e.Kind = 3; return e }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := codec.Marshal(tt.e())
			if err != nil {
				t.Fatal(err)
			}
			_, err = decodeEnvelope(b)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// MaxReaders+1 wraps: refused by check, not only by the decoder's
	// array limit.
	e := keys()
	for len(e.Wraps) <= MaxReaders {
		e.Wraps = append(e.Wraps, wrapOK())
	}
	if err := e.check(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("MaxReaders+1 wraps: got %v", err)
	}
	if _, err := decodeEnvelope([]byte{0xa1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: got %v", err)
	}
}

// lyingReader answers reads of one seqno with what answer returns: a
// replica (or a bug) handing back another entry than the one asked for.
type lyingReader struct {
	*memCapsule
	seq    uint64
	answer func() []capsule.Record
}

func (l *lyingReader) Read(ctx context.Context, from, to uint64) ([]capsule.Record, error) {
	if from == l.seq && to == l.seq {
		return l.answer(), nil
	}
	return l.memCapsule.Read(ctx, from, to)
}

// TestKeyRecordLookupChecked: the key record a payload names must be the
// entry asked for, a key record, signed by the writer and of the
// payload's epoch; each is checked by Open (epochKey) and ReadKeyRecord
// (mutants: each guard skipped, one operand of the entry check dropped).
func TestKeyRecordLookupChecked(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	alice, aliceKey := newReader(t)
	s := newSealer(t, m, wkey, alice)
	n, err := s.Append(ctx, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Rotate(ctx); err != nil { // epoch 2, key record at n+1
		t.Fatal(err)
	}
	n2, err := s.Append(ctx, []byte("secret 2"))
	if err != nil {
		t.Fatal(err)
	}
	keyRec, dataRec := m.entries[0], m.entries[n-1]
	_, mallory, _ := ed25519.GenerateKey(nil)
	forged, err := newKeyRecord(m.info.Name, mallory, 1, make([]byte, 32), []ed25519.PublicKey{alice})
	if err != nil {
		t.Fatal(err)
	}
	forgedRec := keyRec
	forgedRec.Data = forged
	renumbered := m.entries[n] // epoch 2's key record, genuine, at n+1
	cases := []struct {
		name   string
		answer []capsule.Record
		want   error
	}{
		{"two entries", []capsule.Record{keyRec, keyRec}, ErrMalformed},
		{"another entry (epoch 2's key record)", []capsule.Record{renumbered}, ErrMalformed},
		{"a hole", []capsule.Record{{Seqno: 1, Hole: true}}, ErrMalformed},
		{"a data record", []capsule.Record{{Seqno: 1, Data: dataRec.Data}}, ErrMalformed},
		{"a key record signed by a stranger", []capsule.Record{forgedRec}, ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lr := &lyingReader{memCapsule: m, seq: 1, answer: func() []capsule.Record { return c.answer }}
			if pt, err := NewOpener(lr, aliceKey).Open(ctx, dataRec); !errors.Is(err, c.want) || pt != nil {
				t.Errorf("Open: got %q, %v; want %v", pt, err, c.want)
			}
			if _, err := ReadKeyRecord(ctx, lr, 1); !errors.Is(err, c.want) {
				t.Errorf("ReadKeyRecord: got %v, want %v", err, c.want)
			}
		})
	}
	if ki, err := ReadKeyRecord(ctx, m, 1); err != nil || ki.Epoch != 1 || ki.KeySeq != 1 || len(ki.Readers) != 2 {
		t.Fatalf("ReadKeyRecord of the genuine record: %+v, %v", ki, err)
	}
	// A payload naming the key record of another epoch.
	env, err := decodeEnvelope(m.entries[n2-1].Data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewOpener(m, aliceKey).epochKey(ctx, env.Epoch, 1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("epoch 2 payload naming epoch 1's key record: %v", err)
	}
	// A payload naming a key record at or after itself (written by the
	// writer: a bug or a compromised writer's client, not a forgery).
	for _, keySeq := range []uint64{n2 + 1, n2 + 5} {
		m2, wkey2 := newMemCapsule(t)
		s2, err := NewSealer(ctx, m2, wkey2, alice)
		if err != nil {
			t.Fatal(err)
		}
		nonce := make([]byte, chacha20poly1305.NonceSizeX)
		seq := m2.Seqno() + 1
		ks := keySeq - n2 + seq - 1 // seq itself, or beyond it
		r, _ := m2.AppendRecord(ctx, sealData(m2.info.Name, s2.aead, 1, ks, nonce, []byte("x")))
		if _, err := NewOpener(m2, aliceKey).Open(ctx, r); !errors.Is(err, ErrMalformed) {
			t.Errorf("key record %d named by entry %d: got %v", ks, r.Seqno, err)
		}
	}
}

// TestEpochAndCurrent: Epoch of a key record is its own seqno; holes are
// skipped by Current and refused by Epoch; a newest record that is no
// envelope is refused (mutants: each guard skipped).
func TestEpochAndCurrent(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	alice, _ := newReader(t)
	s := newSealer(t, m, wkey, alice)
	if _, err := s.Append(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if ep, ks, isKeys, err := Epoch(m.entries[0]); err != nil || ep != 1 || ks != 1 || !isKeys {
		t.Fatalf("Epoch of the key record: %d %d %v %v", ep, ks, isKeys, err)
	}
	if _, _, _, err := Epoch(capsule.Record{Seqno: 3, Hole: true}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Epoch of a hole: %v", err)
	}
	m.w.Append([]byte("a hole, as far as the reader knows"))
	m.entries = append(m.entries, capsule.Record{Seqno: 3, Hole: true})
	if ki, err := Current(ctx, m, 3); err != nil || ki.Epoch != 1 || ki.KeySeq != 1 {
		t.Fatalf("Current past a hole: %+v, %v", ki, err)
	}
	r, _ := m.AppendRecord(ctx, []byte("not an envelope"))
	if _, err := Current(ctx, m, r.Seqno); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Current with a newest record that is no envelope: %v", err)
	}
	if _, err := ResumeSealer(ctx, m, m, wkey); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ResumeSealer with a newest record that is no envelope: %v", err)
	}
}

// TestResumeRefusesForgedKeyRecord: a writer resuming from a log whose key
// record is not its own signature does not take it up (it would seal for
// readers someone else chose) (mutant: the epochKey error ignored).
func TestResumeRefusesForgedKeyRecord(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	alice, _ := newReader(t)
	s := newSealer(t, m, wkey, alice)
	if _, err := s.Append(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	_, mallory, _ := ed25519.GenerateKey(nil)
	forged, err := newKeyRecord(m.info.Name, mallory, 1, make([]byte, 32), []ed25519.PublicKey{alice})
	if err != nil {
		t.Fatal(err)
	}
	m.entries[0].Data = forged
	if _, err := ResumeSealer(ctx, m, m, wkey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("resumed over a forged key record: %v", err)
	}
	// The newest entry a hole: skipped, the key record before it found.
	m2, wkey2 := newMemCapsule(t)
	if _, err := NewSealer(ctx, m2, wkey2, alice); err != nil {
		t.Fatal(err)
	}
	m2.entries = append(m2.entries, capsule.Record{Seqno: 2, Hole: true})
	m2.w.Append([]byte("a hole, as far as the reader knows"))
	r, err := ResumeSealer(ctx, m2, m2, wkey2)
	if err != nil {
		t.Fatalf("resume past a hole: %v", err)
	}
	if e, k := r.Epoch(); e != 1 || k != 1 {
		t.Fatalf("resumed at epoch %d (key record %d), want 1 (1)", e, k)
	}
}

// failingAppender refuses every append.
type failingAppender struct{ *memCapsule }

func (f failingAppender) AppendRecord(context.Context, []byte) (capsule.Record, error) {
	return capsule.Record{}, errors.New("disk full")
}

// TestReaderChangesChecked: the writer cannot remove itself; a reader key
// that is no curve point is refused; at most MaxReaders readers (the
// writer counted); an append that fails fails the change and keeps the
// epoch (mutants: each guard skipped, > ↔ >= at MaxReaders, and the
// error of AddReader, RemoveReader and Rotate dropped).
func TestReaderChangesChecked(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	s := newSealer(t, m, wkey)
	if err := s.RemoveReader(ctx, wkey.Public().(ed25519.PublicKey)); !errors.Is(err, ErrReaders) {
		t.Fatalf("the writer removed itself: %v", err)
	}
	if err := s.AddReader(ctx, notOnCurve(t)); !errors.Is(err, ErrReaders) {
		t.Fatalf("a reader key off the curve: %v", err)
	}
	var readers []ed25519.PublicKey
	for len(readers) < MaxReaders-1 {
		pub, _ := newReader(t)
		readers = append(readers, pub)
	}
	if err := s.addAll(ctx, readers); err != nil {
		t.Fatalf("MaxReaders readers (the writer counted): %v", err)
	}
	pub, _ := newReader(t)
	if err := s.AddReader(ctx, pub); !errors.Is(err, ErrReaders) {
		t.Fatalf("MaxReaders+1 readers: %v", err)
	}
	epoch, _ := s.Epoch()
	s.app = failingAppender{m}
	for name, change := range map[string]func() error{
		"AddReader":    func() error { return s.AddReader(ctx, readers[0]) },
		"RemoveReader": func() error { return s.RemoveReader(ctx, readers[0]) },
		"Rotate":       func() error { return s.Rotate(ctx) },
	} {
		if err := change(); err == nil {
			t.Errorf("%s with a failing append: no error", name)
		}
	}
	if e, _ := s.Epoch(); e != epoch {
		t.Fatalf("epoch %d after failed changes, want %d", e, epoch)
	}
}

// addAll adds readers in one epoch.
func (s *Sealer) addAll(ctx context.Context, readers []ed25519.PublicKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotateLocked(ctx, append(slices.Clone(s.readers), readers...))
}

// notOnCurve returns a 32-byte string that is no Edwards25519 point: the
// first y whose x² is not a square, by Euler's criterion (a reference
// independent of X25519Public's Jacobi symbol).
func notOnCurve(t *testing.T) ed25519.PublicKey {
	t.Helper()
	exp := new(big.Int).Rsh(new(big.Int).Sub(fieldP, big.NewInt(1)), 1)
	for y := int64(2); y < 1000; y++ {
		yy := big.NewInt(y * y)
		num := new(big.Int).Sub(yy, big.NewInt(1))
		den := new(big.Int).Add(new(big.Int).Mul(curveD, yy), big.NewInt(1))
		x2 := new(big.Int).Mul(num, new(big.Int).ModInverse(den.Mod(den, fieldP), fieldP))
		x2.Mod(x2, fieldP)
		if x2.Sign() != 0 && new(big.Int).Exp(x2, exp, fieldP).Cmp(big.NewInt(1)) != 0 {
			b := make([]byte, 32)
			big.NewInt(y).FillBytes(b)
			slices.Reverse(b)
			return b
		}
	}
	t.Fatal("no y below 1000 off the curve")
	return nil
}

// TestX25519Rejects: encodings that are no point are refused (mutants: the
// y < p check skipped or >= → >, the on-curve check skipped, the private
// key length check skipped).
func TestX25519Rejects(t *testing.T) {
	if _, err := X25519Public(notOnCurve(t)); !errors.Is(err, ErrBadKey) {
		t.Errorf("off the curve: %v", err)
	}
	p := make([]byte, 32)
	fieldP.FillBytes(p)
	slices.Reverse(p) // y = p, little-endian; its top bit (x's sign) is clear
	if _, err := X25519Public(p); !errors.Is(err, ErrBadKey) {
		t.Errorf("y = p: %v", err)
	}
	if _, err := X25519Private(make([]byte, 32)); err == nil {
		t.Error("a 32-byte private key converted")
	}
}

// readErrReader fails every read.
type readErrReader struct{ *memCapsule }

var errRead = errors.New("replica unreachable")

func (readErrReader) Read(context.Context, uint64, uint64) ([]capsule.Record, error) {
	return nil, errRead
}

// TestReadFailuresSurface: a failed read, or an entry that is no envelope,
// is reported as such, never taken as "no key record" or a fresh start
// (mutants: each read's and decode's error ignored; ResumeSealer and
// NewSealer with a failed append).
func TestReadFailuresSurface(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	alice, aliceKey := newReader(t)
	s := newSealer(t, m, wkey, alice)
	n, err := s.Append(ctx, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	bad := readErrReader{m}
	if _, err := NewOpener(bad, aliceKey).Open(ctx, m.entries[n-1]); !errors.Is(err, errRead) {
		t.Errorf("Open, read failing: %v", err)
	}
	if _, err := ReadKeyRecord(ctx, bad, 1); !errors.Is(err, errRead) {
		t.Errorf("ReadKeyRecord, read failing: %v", err)
	}
	if _, err := Current(ctx, bad, n); !errors.Is(err, errRead) {
		t.Errorf("Current, read failing: %v", err)
	}
	if _, err := ResumeSealer(ctx, m, bad, wkey, alice); !errors.Is(err, errRead) {
		t.Errorf("ResumeSealer, read failing: %v", err)
	}
	garbage := &lyingReader{memCapsule: m, seq: 1, answer: func() []capsule.Record {
		return []capsule.Record{{Seqno: 1, Data: []byte("not an envelope")}}
	}}
	if _, err := NewOpener(garbage, aliceKey).Open(ctx, m.entries[n-1]); !errors.Is(err, ErrMalformed) {
		t.Errorf("Open, key record no envelope: %v", err)
	}
	if _, err := ReadKeyRecord(ctx, garbage, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("ReadKeyRecord, key record no envelope: %v", err)
	}
	if _, err := NewOpener(m, aliceKey).Open(ctx, capsule.Record{Seqno: 9, Data: []byte("not an envelope")}); !errors.Is(err, ErrMalformed) {
		t.Errorf("Open, record no envelope: %v", err)
	}
	empty, wkey2 := newMemCapsule(t)
	if _, err := NewSealer(ctx, failingAppender{empty}, wkey2, alice); err == nil {
		t.Error("NewSealer with a failing append: no error")
	}
	if _, err := ResumeSealer(ctx, failingAppender{empty}, empty, wkey2, alice); err == nil {
		t.Error("ResumeSealer of an empty log with a failing append: no error")
	}
}

// TestBadWrapRefused: a key record the writer signed whose wrap for this
// reader does not open, or names a low-order ephemeral key, gives an
// error of its own, not "not a reader" (mutants: unwrap's Open and ECDH
// errors ignored).
func TestBadWrapRefused(t *testing.T) {
	ctx := context.Background()
	m, wkey := newMemCapsule(t)
	alice, aliceKey := newReader(t)
	s := newSealer(t, m, wkey, alice)
	n, err := s.Append(ctx, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func(w *wrap)
		want error
	}{
		{"wrapped key altered", func(w *wrap) { w.Wrapped[0] ^= 1 }, ErrDecrypt},
		{"low-order ephemeral key", func(w *wrap) { clear(w.Eph) }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := decodeEnvelope(m.entries[0].Data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range env.Wraps {
				if bytesEqual(env.Wraps[i].Reader, alice) {
					tc.mut(&env.Wraps[i])
				}
			}
			in, err := keysSigInput(m.info.Name, env)
			if err != nil {
				t.Fatal(err)
			}
			env.Sig = ed25519.Sign(wkey, in)
			b, err := codec.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			lr := &lyingReader{memCapsule: m, seq: 1, answer: func() []capsule.Record {
				return []capsule.Record{{Seqno: 1, Data: b}}
			}}
			if pt, err := NewOpener(lr, aliceKey).Open(ctx, m.entries[n-1]); !errors.Is(err, tc.want) || pt != nil {
				t.Fatalf("got %q, %v; want %v", pt, err, tc.want)
			}
		})
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// newSealer is NewSealer for a test: the writer wkey on m, the readers
// given (the test fails if it cannot start).
func newSealer(t *testing.T, m *memCapsule, wkey ed25519.PrivateKey, readers ...ed25519.PublicKey) *Sealer {
	t.Helper()
	s, err := NewSealer(context.Background(), m, wkey, readers...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
