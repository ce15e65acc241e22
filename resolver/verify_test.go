package resolver

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// forge signs r with key without Sign's checks (an attacker's encoder) and
// returns the bytes it would put in the DHT.
func forge(t testing.TB, r *Record, key ed25519.PrivateKey) []byte {
	t.Helper()
	msg, err := r.signedBytes()
	if err != nil {
		t.Fatal(err)
	}
	r.Signature = ed25519.Sign(key, msg)
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// poison is one record an honest node must refuse, with the reason.
type poison struct {
	name    string
	bytes   []byte
	wantErr error
}

// poisons builds, for domain d1 (router r1), the records of the issue's
// poisoning list plus a few more. good is a valid record for comparison.
func poisons(t testing.TB, w *world, d1, d2, d3 *certs.Identity, r1 *routerFx, seqGood uint64) (good *Record, list []poison) {
	t.Helper()
	name, chain := w.capsuleAt(r1, "victim", 2*time.Hour)
	good = w.location(r1, name, chain, seqGood)

	// A valid record of another name, whose chain an attacker reuses.
	otherName, otherChain := w.capsuleAt(r1, "other", 2*time.Hour)
	_ = otherName

	// An attacker router with its own key, signing the victim's chain.
	mallory := w.router(d1, "mallory")
	badSig := *good
	badSig.raw = nil
	badSigBytes := forge(t, &badSig, mallory.id.Key)

	// A chain whose certificates expired (valid for 1 s at w.base).
	expName, expChain := w.capsuleAt(r1, "victim", time.Second)
	expired := &Record{Kind: KindLocation, Name: expName, Addrs: []string{"127.0.0.1:1"}, Chain: expChain,
		Sequence: seqGood, Expiry: w.base.Add(time.Hour)}

	// The victim's name, but the chain of another name (signed by r1).
	wrongChain := &Record{Kind: KindLocation, Name: name, Addrs: []string{"127.0.0.1:1"}, Chain: otherChain,
		Sequence: seqGood + 10, Expiry: w.base.Add(time.Hour)}

	// A router of another (trusted) domain, and one of an untrusted domain.
	r2 := w.router(d2, "router d2")
	_, chain2 := w.capsuleAt(r2, "victim", 2*time.Hour)
	otherDomain := w.location(r2, name, chain2, seqGood+10)
	r3 := w.router(d3, "router d3")
	_, chain3 := w.capsuleAt(r3, "victim", 2*time.Hour)
	untrusted := w.location(r3, name, chain3, seqGood+10)

	// A border record offered to a domain DHT.
	b := w.router(d1, "border")
	border, err := NewBorder(b.id.Key, b.id.Meta, b.member, name, chain, []string{"127.0.0.1:2"}, seqGood+10, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	list = []poison{
		{"bad signature", badSigBytes, ErrBadSignature},
		{"expired chain", forge(t, expired, r1.id.Key), ErrExpired},
		{"chain for another name", forge(t, wrongChain, r1.id.Key), ErrBadChain},
		{"router of another domain", otherDomain.Bytes(), ErrNotMember},
		{"router of an untrusted domain", untrusted.Bytes(), ErrNotMember},
		{"border record in a domain DHT", border.Bytes(), ErrWrongKind},
	}
	return good, list
}

func TestVerifierRefusesPoison(t *testing.T) {
	w := newWorld(t, goldenBase)
	d1, d2, d3 := w.domain("one"), w.domain("two"), w.domain("three")
	r1 := w.router(d1, "router d1")
	v := &Verifier{Certs: trust(goldenBase.Add(time.Minute), d1, d2), Domain: d1.Name}
	good, list := poisons(t, w, d1, d2, d3, r1, 5)
	if _, err := v.Verify(good); err != nil {
		t.Fatalf("good record refused: %v", err)
	}
	val := newValidator(v, nil)
	for _, p := range list {
		t.Run(p.name, func(t *testing.T) {
			err := val.Validate(dhtKey(good.Name), p.bytes)
			if !errors.Is(err, p.wantErr) {
				t.Fatalf("err %v, want %v", err, p.wantErr)
			}
		})
	}
	t.Run("stored under another key", func(t *testing.T) {
		var other [32]byte
		other[0] = 1
		if err := val.Validate(dhtKey(other), good.Bytes()); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("err %v, want ErrWrongKey", err)
		}
	})
	t.Run("not yet valid", func(t *testing.T) {
		early := &Verifier{Certs: trust(goldenBase.Add(-time.Minute), d1), Domain: d1.Name}
		if _, err := early.Verify(good); !errors.Is(err, ErrBadChain) || !errors.Is(err, certs.ErrNotYetValid) {
			t.Fatalf("err %v, want ErrBadChain wrapping certs.ErrNotYetValid", err)
		}
	})
	t.Run("expires with its certificates", func(t *testing.T) {
		late := &Verifier{Certs: trust(goldenBase.Add(2*time.Hour), d1), Domain: d1.Name}
		if _, err := late.Verify(good); !errors.Is(err, ErrExpired) {
			t.Fatalf("err %v, want ErrExpired", err)
		}
	})
}

func TestSelectPrefersNewestValid(t *testing.T) {
	w := newWorld(t, goldenBase)
	d1, d2, d3 := w.domain("one"), w.domain("two"), w.domain("three")
	r1 := w.router(d1, "router d1")
	v := &Verifier{Certs: trust(goldenBase.Add(time.Minute), d1, d2), Domain: d1.Name}
	val := newValidator(v, nil)
	good, list := poisons(t, w, d1, d2, d3, r1, 5)
	name, chain := good.Name, good.Chain
	older := w.location(r1, name, chain, 4)
	newer := w.location(r1, name, chain, 6)
	key := dhtKey(name)

	// kad-dht validates values before selecting among them, but Select
	// still skips what it can see is wrong without verifying certificate
	// signatures: bad record signature, wrong kind, wrong domain, expired.
	vals := [][]byte{older.Bytes(), good.Bytes()}
	for _, p := range list {
		if p.name != "chain for another name" {
			vals = append(vals, p.bytes) // several carry higher sequences
		}
	}
	if i, err := val.Select(key, vals); err != nil || i != 1 {
		t.Fatalf("select = %d, %v; want 1 (highest valid sequence, poison ignored)", i, err)
	}
	if i, _ := val.Select(key, [][]byte{good.Bytes(), newer.Bytes(), older.Bytes()}); i != 1 {
		t.Fatalf("select = %d, want the newest (1)", i)
	}
	if i, _ := val.Select(key, [][]byte{good.Bytes(), good.Bytes()}); i != 0 {
		t.Fatalf("select among equals = %d, want the first", i)
	}
	if _, err := val.Select(key, [][]byte{list[0].bytes}); err == nil {
		t.Fatal("select with no valid record succeeded")
	}
}
