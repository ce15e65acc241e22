package resolver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"testing/iotest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gdpnet/gdpnet/certs"
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

// TestCheckShapeRules: every rule of checkShape, on a good record with one
// field changed (mutants: each rule skipped, each || operand dropped,
// <= 0 → < 0 for the expiry, > → >= for MaxAddrs).
func TestCheckShapeRules(t *testing.T) {
	w := newWorld(t, goldenBase)
	d1 := w.domain("one")
	r1 := w.router(d1, "router d1")
	name, chain := w.capsuleAt(r1, "victim", 2*time.Hour)
	good := w.location(r1, name, chain, 5)
	b := w.router(d1, "border")
	border, err := NewBorder(b.id.Key, b.id.Meta, b.member, name, chain, []string{"127.0.0.1:2"}, 9, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	addrs := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "127.0.0.1:" + string(rune('1'+i))
		}
		return out
	}
	withChain := func(mut func(c *certs.Chain)) func(r *Record) {
		return func(r *Record) {
			c := *r.Chain
			mut(&c)
			r.Chain = &c
		}
	}
	tests := []struct {
		name string
		base *Record
		mut  func(r *Record)
		ok   bool
	}{
		{"location", good, func(r *Record) {}, true},
		{"border", border, func(r *Record) {}, true},
		{"MaxAddrs addresses", good, func(r *Record) { r.Addrs = addrs(MaxAddrs) }, true},
		{"MaxAddrs+1 addresses", good, func(r *Record) { r.Addrs = addrs(MaxAddrs + 1) }, false},
		{"expiry one second after the epoch", good, func(r *Record) { r.Expiry = time.Unix(1, 0) }, true},
		{"expiry at the epoch", good, func(r *Record) { r.Expiry = time.Unix(0, 0) }, false},
		{"no expiry", good, func(r *Record) { r.Expiry = time.Time{} }, false},
		{"location with a border router", good, func(r *Record) { r.Border = border.Border }, false},
		{"location with a border membership", good, func(r *Record) { r.BorderMember = border.BorderMember }, false},
		{"border without its router", border, func(r *Record) { r.Border = nil }, false},
		{"border without its membership", border, func(r *Record) { r.BorderMember = nil }, false},
		{"border router with a short key", border, func(r *Record) {
			m := *r.Border
			m.Key = m.Key[:31]
			r.Border = &m
		}, false},
		{"kind 9", good, func(r *Record) { r.Kind = 9 }, false},
		{"zero name", good, func(r *Record) { r.Name = [32]byte{} }, false},
		{"no chain", good, func(r *Record) { r.Chain = nil }, false},
		{"chain without router", good, withChain(func(c *certs.Chain) { c.Router = nil }), false},
		{"chain without domain", good, withChain(func(c *certs.Chain) { c.Domain = nil }), false},
		{"chain without target", good, withChain(func(c *certs.Chain) { c.Target = nil }), false},
		{"chain without rtcert", good, withChain(func(c *certs.Chain) { c.RtCert = nil }), false},
		{"chain without membership", good, withChain(func(c *certs.Chain) { c.Member = nil }), false},
		{"adcert without endpoint", good, withChain(func(c *certs.Chain) { c.Endpoint = nil }), false},
		{"router with a short key", good, withChain(func(c *certs.Chain) {
			m := *c.Router
			m.Key = m.Key[:31]
			c.Router = &m
		}), false},
		{"tombstone with addresses", good, func(r *Record) { r.Withdrawn = true }, false},
		{"tombstone", good, func(r *Record) { r.Withdrawn, r.Addrs = true, nil }, true},
		{"no addresses", good, func(r *Record) { r.Addrs = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := *tt.base
			tt.mut(&r)
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
				}()
				err = r.checkShape()
			}()
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want ErrMalformed or ErrTooLarge", err)
			}
		})
	}
	// EffectiveExpiry: the earlier of the record's and its chain's.
	r := *good
	r.Expiry = good.ChainExpiry().Add(time.Hour)
	if got := r.EffectiveExpiry(); !got.Equal(good.ChainExpiry()) {
		t.Errorf("chain expires first: %v", got)
	}
	r.Expiry = good.ChainExpiry().Add(-time.Hour)
	if got := r.EffectiveExpiry(); !got.Equal(r.Expiry) {
		t.Errorf("record expires first: %v", got)
	}
}

// TestGateDenyAndLimits: a denial lapses at its end; a denied peer's wait
// returns at once; readAllLimited takes exactly limit bytes, not one more
// (mutants: the lapse check skipped, the denied check skipped, the limit
// check skipped or > → >=).
func TestGateDenyAndLimits(t *testing.T) {
	now := goldenBase
	g := newGate(certs.NewVerifier(), [32]byte{1}, time.Minute, 0)
	g.now = func() time.Time { return now }
	p := peer.ID("peer")
	g.deny(p, 0)
	if !g.isDenied(p) {
		t.Fatal("not denied")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if g.wait(ctx, p) || time.Since(start) > time.Second {
		t.Fatalf("wait on a denied peer: returned after %s", time.Since(start))
	}
	now = now.Add(time.Minute)
	if g.isDenied(p) {
		t.Fatal("still denied at the end of its denial")
	}
	if b, err := readAllLimited(bytes.NewReader(make([]byte, 10)), 10); err != nil || len(b) != 10 {
		t.Fatalf("10 bytes, limit 10: %v", err)
	}
	if _, err := readAllLimited(bytes.NewReader(make([]byte, 11)), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("11 bytes, limit 10: %v", err)
	}
	errRead := errors.New("reset")
	if _, err := readAllLimited(iotest.ErrReader(errRead), 10); !errors.Is(err, errRead) {
		t.Fatalf("a failing stream: %v", err)
	}
}

// TestRecordAccessorsWithoutChain: a record without a chain (as decoded
// from garbage before checkShape) answers zero, not a panic (mutants:
// the nil checks of Router, Domain and Signer skipped or halved).
func TestRecordAccessorsWithoutChain(t *testing.T) {
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("panic: %v", p)
		}
	}()
	for _, r := range []*Record{{}, {Chain: &certs.Chain{}}} {
		if !r.Router().IsZero() || !r.Domain().IsZero() || r.Signer() != nil {
			t.Fatalf("%+v: a router, domain or signer from no chain", r)
		}
	}
}

// TestMergeSetsBound: merging more than MaxSetEntries routers' records
// drops expired records first, then tombstones, then the oldest live
// records; liveNewestFirst orders by sequence, ties kept in set order
// (mutants in mergeSets and liveNewestFirst: the expiry filter skipped,
// the tombstone and newest-first orderings skipped, comparisons moved by
// one).
func TestMergeSetsBound(t *testing.T) {
	w := newWorld(t, goldenBase)
	d := w.domain("merge")
	now := goldenBase.Add(time.Minute)
	var recs []*Record
	var name [32]byte
	for i := range MaxSetEntries + 2 {
		r := w.router(d, fmt.Sprintf("merge router %d", i))
		n, chain := w.capsuleAt(r, "merge capsule", time.Hour)
		name = n
		rec := w.location(r, n, chain, uint64(100+i))
		switch i {
		case 0: // a tombstone: evicted before any live record
			tomb, err := rec.Tombstone(r.id.Key, 1000)
			if err != nil {
				t.Fatal(err)
			}
			rec = tomb
		case 1: // expired at now
			late, err := NewLocation(r.id.Key, n, chain, rec.Addrs, 1000, now)
			if err != nil {
				t.Fatal(err)
			}
			rec = late
		}
		recs = append(recs, rec)
	}
	_ = name
	// MaxSetEntries+2 records, one expired: MaxSetEntries+1 live or
	// tombstone; the tombstone goes. mergeSets reads a map: each round
	// sees another order.
	var out []*Record
	for range 8 {
		out = mergeSets(now, recs)
		if len(out) != MaxSetEntries {
			t.Fatalf("%d records, want %d", len(out), MaxSetEntries)
		}
		for _, r := range out {
			if r.Withdrawn || r.Sequence == 1000 {
				t.Fatalf("kept the tombstone or the expired record (seq %d, withdrawn %v)", r.Sequence, r.Withdrawn)
			}
		}
	}
	// A second live record beyond the bound: the oldest (lowest sequence)
	// goes, not the newest.
	extra := w.router(d, "merge router extra")
	n, chain := w.capsuleAt(extra, "merge capsule", time.Hour)
	newest := w.location(extra, n, chain, 5000)
	// mergeSets reads a map: each round sees another order.
	held := out
	for range 8 {
		out = mergeSets(now, held, []*Record{newest})
		if len(out) != MaxSetEntries {
			t.Fatalf("%d records, want %d", len(out), MaxSetEntries)
		}
		seqs := map[uint64]bool{}
		for _, r := range out {
			seqs[r.Sequence] = true
		}
		if !seqs[5000] || seqs[102] {
			t.Fatalf("kept %v: want the newest (5000) and not the oldest live (102)", seqs)
		}
	}
	// A nil entry (a set that failed to parse an entry) is skipped.
	if got := mergeSets(now, []*Record{nil, newest}); len(got) != 1 {
		t.Fatalf("nil entry: %d records", len(got))
	}
	// liveNewestFirst: descending sequence; equal sequences keep set order.
	a, b, c := *out[0], *out[1], *out[2]
	a.Sequence, b.Sequence, c.Sequence = 1, 7, 7
	got := liveNewestFirst(now, []*Record{&a, &b, &c})
	if len(got) != 3 || got[0] != &b || got[1] != &c || got[2] != &a {
		t.Fatalf("liveNewestFirst: sequences %d %d %d", got[0].Sequence, got[1].Sequence, got[2].Sequence)
	}
}

// TestValidatorKeysAndExpiredEntries: a key outside the record namespace
// or of the wrong length is refused; a set with one expired entry and one
// valid entry is valid (the expired one ignored), as the validator's
// comment promises; Select skips a value that does not parse; a verifier
// with no trusted domains refuses, never panics (mutants: the key checks
// skipped or halved, the expired-entry exception skipped, Select's parse
// error ignored, the no-trust check skipped).
func TestValidatorKeysAndExpiredEntries(t *testing.T) {
	w := newWorld(t, goldenBase)
	d := w.domain("keys")
	now := goldenBase.Add(time.Minute)
	v := &Verifier{Certs: trust(now, d)}
	val := newValidator(v, nil)
	ra, rb := w.router(d, "keys router a"), w.router(d, "keys router b")
	name, chainA := w.capsuleAt(ra, "keys capsule", time.Hour)
	_, chainB := w.capsuleAt(rb, "keys capsule", time.Hour)
	live := w.location(rb, name, chainB, 10)
	gone, err := NewLocation(ra.id.Key, name, chainA, live.Addrs, 11, now) // expires at now
	if err != nil {
		t.Fatal(err)
	}
	set, err := MarshalSet([]*Record{live, gone})
	if err != nil {
		t.Fatal(err)
	}
	key := dhtKey(name)
	if err := val.Validate(key, set); err != nil {
		t.Fatalf("a set with one expired entry: %v", err)
	}
	bad := []byte(key)
	bad[1] ^= 1 // same length, another prefix
	for _, k := range []string{string(bad), key[:len(key)-1], key + "x"} {
		if err := val.Validate(k, set); !errors.Is(err, ErrWrongKey) {
			t.Errorf("key %q: %v", k, err)
		}
		if _, err := nameFromKey(k); !errors.Is(err, ErrWrongKey) {
			t.Errorf("nameFromKey(%q): %v", k, err)
		}
	}
	if i, err := val.Select(key, [][]byte{[]byte("junk"), live.Bytes()}); err != nil || i != 1 {
		t.Fatalf("Select past a value that does not parse: %d, %v", i, err)
	}
	var none Verifier
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("no trusted domains: panic %v", p)
			}
		}()
		if _, err := none.Verify(live); !errors.Is(err, ErrBadChain) {
			t.Fatalf("no trusted domains: %v", err)
		}
	}()
}

// TestSignRefusesOversizedRecord: Sign refuses a record whose encoding
// would exceed MaxRecordSize (a chain whose metadata carry large Extra
// attributes) and signs one of exactly MaxRecordSize bytes (mutants: the
// size check skipped, > → >=). ParseRecord refuses such a record too, so
// a router that signed one could not have it stored anywhere.
func TestSignRefusesOversizedRecord(t *testing.T) {
	w := newWorld(t, goldenBase)
	d := w.domain("one")
	r := w.router(d, "router d1")
	extra := func(prefix string, n, size int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("%s%062d", prefix, i)] = string(bytes.Repeat([]byte{'v'}, size))
		}
		return m
	}
	srvKey := testKey("server big")
	srvMeta := &certs.Metadata{Kind: certs.KindServer, Key: srvKey.Public().(ed25519.PublicKey), Created: w.base,
		Description: "server big", Extra: extra("s", certs.MaxExtra, certs.MaxExtraValue)}
	srv, err := certs.NewIdentityFor(srvMeta, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	owner, writer := testKey("owner big"), testKey("writer big")
	// sign builds the chain of a capsule whose metadata carries n
	// attributes of 128 bytes (about 200 encoded) and one of pad bytes, and
	// signs its location record.
	sign := func(n, pad int) (*Record, error) {
		t.Helper()
		ex := extra("c", n, 128)
		ex["pad"] = string(bytes.Repeat([]byte{'p'}, pad))
		capMeta := &certs.Metadata{Kind: certs.KindCapsule, Key: owner.Public().(ed25519.PublicKey),
			WriterKey: writer.Public().(ed25519.PublicKey), Created: w.base, Description: "capsule big", Extra: ex}
		na := w.base.Add(time.Hour)
		ad, err := certs.IssueAdCert(owner, capMeta.Name(), srv.Name, w.base, na)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := certs.IssueRtCert(srv, r.id.Name, w.base, na)
		if err != nil {
			t.Fatal(err)
		}
		chain := &certs.Chain{Target: capMeta, AdCert: ad, Endpoint: srv.Meta, RtCert: rt,
			Router: r.id.Meta, Member: r.member, Domain: r.domain.Meta}
		return NewLocation(r.id.Key, capMeta.Name(), chain, []string{"127.0.0.1:4433"}, 1, time.Time{})
	}
	// The most attributes that keep the record under the bound with a
	// 24-byte pad (a two-byte string header from 24 to 255 bytes: one more
	// pad byte, one more record byte); then the pad that makes the record
	// exactly MaxRecordSize.
	if _, err := sign(certs.MaxExtra-1, 255); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record of about 9 KB: %v, want ErrTooLarge", err)
	}
	var n, size int
	for n = certs.MaxExtra - 1; n >= 0; n-- {
		rec, err := sign(n, 24)
		if err == nil {
			size = len(rec.Bytes())
			break
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d attributes: %v", n, err)
		}
	}
	pad := 24 + MaxRecordSize - size
	if n < 0 || pad < 24 || pad > 255 {
		t.Fatalf("no attribute count puts the bound in reach: %d attributes, %d bytes", n, size)
	}
	rec, err := sign(n, pad)
	if err != nil {
		t.Fatalf("a record of exactly MaxRecordSize: %v", err)
	}
	if len(rec.Bytes()) != MaxRecordSize {
		t.Fatalf("the record meant to be MaxRecordSize has %d bytes", len(rec.Bytes()))
	}
	if _, err := ParseRecord(rec.Bytes()); err != nil {
		t.Fatalf("parsing a record of exactly MaxRecordSize: %v", err)
	}
	if rec, err := sign(n, pad+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record one byte over MaxRecordSize: %v (%v)", err, rec != nil)
	}
}
