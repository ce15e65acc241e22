package resolver

import (
	"errors"
	"testing"
	"time"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep").

// TestVerifyOnItsOwn: Verify (not only ParseRecord and the validator)
// checks the shape and the signature, and a record's own expiry (mutants:
// each error ignored, the expiry check skipped).
func TestVerifyOnItsOwn(t *testing.T) {
	w := newWorld(t, goldenBase)
	d1 := w.domain("one")
	r1 := w.router(d1, "router d1")
	v := &Verifier{Certs: trust(goldenBase.Add(time.Minute), d1), Domain: d1.Name}
	name, chain := w.capsuleAt(r1, "victim", 2*time.Hour)
	good := w.location(r1, name, chain, 5)
	if _, err := v.Verify(good); err != nil {
		t.Fatal(err)
	}
	sig := *good
	sig.Signature = append([]byte(nil), good.Signature...)
	sig.Signature[0] ^= 1
	if _, err := v.Verify(&sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered signature: %v", err)
	}
	shape := *good
	shape.Addrs = []string{"127.0.0.1:0"} // port 0, checked before the signature
	if _, err := v.Verify(&shape); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad shape: %v", err)
	}
	// Signed properly, its own expiry a second after the verifier's now,
	// then a second before it: the chain is valid for two hours.
	for _, tc := range []struct {
		at   time.Duration
		want error
	}{{time.Minute + time.Second, nil}, {time.Minute - time.Second, ErrExpired}} {
		r, err := NewLocation(r1.id.Key, name, chain, good.Addrs, 6, goldenBase.Add(tc.at))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(r); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Fatalf("record expiring at base+%s: %v, want %v", tc.at, err, tc.want)
		}
	}
	r2 := w.router(w.domain("two"), "router d2")
	_, chain2 := w.capsuleAt(r2, "victim", 2*time.Hour)
	if v.plausible(w.location(r2, name, chain2, 7)) {
		t.Fatal("plausible: a record of a router of another domain")
	}
	if !v.plausible(good) {
		t.Fatal("plausible: the good record")
	}
}

// TestVerifyBorderRecords: a border record's border router must be a
// member of a trusted domain, the name's domain (mutants: the border
// checks skipped, the membership error ignored, the domain comparison
// skipped).
func TestVerifyBorderRecords(t *testing.T) {
	w := newWorld(t, goldenBase)
	d1, d2, d3 := w.domain("one"), w.domain("two"), w.domain("three")
	r1 := w.router(d1, "router d1")
	v := &Verifier{Certs: trust(goldenBase.Add(time.Minute), d1, d2), Kind: KindBorder}
	name, chain := w.capsuleAt(r1, "victim", 2*time.Hour)
	for _, tc := range []struct {
		name   string
		border *routerFx
		want   error
	}{
		{"border router of the name's domain", w.router(d1, "border"), nil},
		{"border router of another trusted domain", w.router(d2, "border d2"), ErrNotMember},
		{"border router of an untrusted domain", w.router(d3, "border d3"), ErrNotMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.border
			rec, err := NewBorder(b.id.Key, b.id.Meta, b.member, name, chain, []string{"127.0.0.1:2"}, 9, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(rec); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestParseProofRefuses: a membership proof with any piece that does not
// parse is refused (mutants: each parse error ignored: a nil piece went on
// to the gate).
func TestParseProofRefuses(t *testing.T) {
	w := newWorld(t, goldenBase)
	d1 := w.domain("one")
	r1 := w.router(d1, "router d1")
	good := &MembershipProof{Meta: r1.id.Meta, Member: r1.member, Domain: d1.Meta}
	b, err := good.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseProof(b); err != nil {
		t.Fatal(err)
	}
	junk := []byte("junk")
	for name, wp := range map[string]wireProof{
		"metadata":    {Meta: junk, Member: r1.member.Marshal(), Domain: d1.Meta.Marshal()},
		"certificate": {Meta: r1.id.Meta.Marshal(), Member: junk, Domain: d1.Meta.Marshal()},
		"domain":      {Meta: r1.id.Meta.Marshal(), Member: r1.member.Marshal(), Domain: junk},
	} {
		b, err := codec.Marshal(wp)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := parseProof(b); err == nil {
			t.Errorf("%s does not parse, proof accepted: %+v", name, p)
		}
	}
	if _, err := parseProof([]byte{0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("not CBOR: %v", err)
	}
	for _, p := range []*MembershipProof{nil, {Meta: r1.id.Meta, Member: r1.member}} {
		if _, err := p.marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("incomplete proof marshalled: %v", err)
		}
	}
}
