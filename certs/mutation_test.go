package certs

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep"): a check removed or
// moved by one that no test noticed. The mutant each row kills is named.

// TestVerifyMemberRejects: every check of VerifyMember, the domain's
// signature first (mutant: the signature check skipped).
func TestVerifyMemberRejects(t *testing.T) {
	f := newFixture(t)
	stranger, err := IdentityFromKey(KindDomain, seedKey("stranger"), "", t0, [16]byte{})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := IssueMember(stranger, f.router.Name, t0, t0.Add(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	forged.Issuer = f.domain.Name // the trusted domain's name over a stranger's signature
	badKey := *f.router.Meta
	badKey.Key = badKey.Key[:31]
	tests := []struct {
		name    string
		meta    *Metadata
		member  *Cert
		wantErr error
		link    string
	}{
		{"membership signed by a stranger", f.router.Meta, forged, ErrBadSignature, LinkMember},
		{"a domain as member", f.domain.Meta, f.mem, ErrWrongKind, LinkNode},
		{"no metadata", nil, f.mem, ErrMalformed, LinkNode},
		{"metadata with a short key", &badKey, f.mem, ErrMalformed, LinkNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.v.VerifyMember(tt.meta, tt.member, nil)
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Err != tt.wantErr || ce.Link != tt.link {
				t.Fatalf("got %v, want %v at link %s", err, tt.wantErr, tt.link)
			}
		})
	}
}

// TestVerifyRouteRejectsMore: the links TestVerifyRouteRejects leaves
// out (mutants: each guard skipped).
func TestVerifyRouteRejectsMore(t *testing.T) {
	f := newFixture(t)
	short := func(m *Metadata) *Metadata {
		cp := *m
		cp.Key = cp.Key[:31]
		return &cp
	}
	emptyWindow := *f.rt
	emptyWindow.NotAfter = emptyWindow.NotBefore
	clientAd, err := IssueAdCert(seedKey("client"), f.client.Name, f.server.Name, t0, t0.Add(time.Hour*24))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		mut      func(c *Chain)
		target   Name
		wantLink string
		wantErr  error
	}{
		{"an adcert for a client (not a capsule)", func(c *Chain) { c.Target = f.client.Meta; c.AdCert = clientAd }, f.client.Name, LinkTarget, ErrWrongKind},
		{"endpoint metadata with a short key", func(c *Chain) { c.Endpoint = short(f.server.Meta) }, Name{}, LinkEndpoint, ErrMalformed},
		{"router metadata with a short key", func(c *Chain) { c.Router = short(f.router.Meta) }, Name{}, LinkRouter, ErrMalformed},
		{"rtcert with an empty window", func(c *Chain) { c.RtCert = &emptyWindow }, Name{}, LinkRtCert, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *f.chain
			tt.mut(&c)
			target := f.capsule.Name()
			if !tt.target.IsZero() {
				target = tt.target
			}
			_, err := f.v.VerifyRoute(&c, target, f.router.Name)
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Link != tt.wantLink || ce.Err != tt.wantErr {
				t.Fatalf("got %v, want %v at link %s", err, tt.wantErr, tt.wantLink)
			}
		})
	}
}

// TestTrustedDomainChecked: the verifier's own trusted metadata must be
// valid and a domain's (mutants: trusted.Validate and the kind check
// skipped).
func TestTrustedDomainChecked(t *testing.T) {
	f := newFixture(t)
	bad := *f.domain.Meta
	bad.Key = bad.Key[:31]
	v := &Verifier{Trusted: map[Name]*Metadata{f.domain.Name: &bad}, Now: f.v.Now}
	c := *f.chain
	c.Domain = nil
	_, err := v.VerifyRoute(&c, f.capsule.Name(), f.router.Name)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Link != LinkDomain || ce.Err != ErrMalformed {
		t.Fatalf("invalid trusted metadata: got %v, want malformed domain", err)
	}
	// A router's metadata trusted as a domain, and a membership it signed
	// (issue: IssueMember refuses a router).
	mem, err := issue(KindMember, f.router.Key, f.router.Name, f.server.Name, t0, t0.Add(time.Hour*24))
	if err != nil {
		t.Fatal(err)
	}
	v = NewVerifier(f.router.Meta)
	v.Now = f.v.Now
	_, _, err = v.VerifyMember(f.server.Meta, mem, nil)
	if !errors.As(err, &ce) || ce.Link != LinkDomain || ce.Err != ErrWrongKind {
		t.Fatalf("a router trusted as a domain: got %v, want wrong kind at the domain", err)
	}
}

// TestVerifyAdCert: the owner placed the capsule on that server, now
// (mutants: each guard of VerifyAdCert skipped, no test called it).
func TestVerifyAdCert(t *testing.T) {
	f := newFixture(t)
	if err := VerifyAdCert(f.ad, f.capsule, f.server.Name, f.now); err != nil {
		t.Fatal(err)
	}
	byWriter, err := IssueAdCert(seedKey("writer"), f.capsule.Name(), f.server.Name, t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ad      *Cert
		capsule *Metadata
		server  Name
		now     time.Time
		wantErr error
	}{
		{"signed by the writer, not the owner", byWriter, f.capsule, f.server.Name, f.now, ErrBadSignature},
		{"another server", f.ad, f.capsule, f.router.Name, f.now, ErrWrongSubject},
		{"expired", f.ad, f.capsule, f.server.Name, t0.Add(24 * time.Hour), ErrExpired},
		{"an rtcert", f.rt, f.capsule, f.server.Name, f.now, ErrWrongKind},
		{"no capsule", f.ad, nil, f.server.Name, f.now, ErrWrongKind},
		{"a server's metadata", f.ad, f.server.Meta, f.server.Name, f.now, ErrWrongKind},
		{"no adcert", nil, f.capsule, f.server.Name, f.now, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyAdCert(tt.ad, tt.capsule, tt.server, tt.now); !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestVerifySignatureBadLengths: a key or signature of the wrong length is
// refused, never a panic (mutant: the length check skipped; ed25519.Verify
// panics on a short key).
func TestVerifySignatureBadLengths(t *testing.T) {
	f := newFixture(t)
	if !f.mem.VerifySignature(f.domain.Meta.Key) {
		t.Fatal("good signature refused")
	}
	if f.mem.VerifySignature(f.domain.Meta.Key[:31]) {
		t.Fatal("a 31-byte key accepted")
	}
	c := *f.mem
	c.sig = c.sig[:63]
	if c.VerifySignature(f.domain.Meta.Key) {
		t.Fatal("a 63-byte signature accepted")
	}
}

// TestParseChainNamesLink: a broken piece is reported at its link, not as
// a non-canonical chain (mutants: each piece's parse error ignored), and
// an adcert without its endpoint is refused (mutant: that check skipped).
func TestParseChainNamesLink(t *testing.T) {
	f := newFixture(t)
	good := f.chain.Marshal()
	pieces := []struct {
		link string
		enc  []byte
	}{
		{LinkTarget, f.capsule.Marshal()},
		{LinkAdCert, f.ad.Marshal()},
		{LinkEndpoint, f.server.Meta.Marshal()},
		{LinkRtCert, f.rt.Marshal()},
		{LinkRouter, f.router.Meta.Marshal()},
		{LinkMember, f.mem.Marshal()},
		{LinkDomain, f.domain.Meta.Marshal()},
	}
	for _, p := range pieces {
		i := bytes.Index(good, p.enc)
		if i < 0 {
			t.Fatalf("%s not found in the chain", p.link)
		}
		b := bytes.Clone(good)
		b[i] ^= 0x01 // the piece's first byte: its map or tag head
		_, err := ParseChain(b)
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Link != p.link || ce.Err != ErrMalformed {
			t.Errorf("%s broken: got %v, want malformed at %s", p.link, err, p.link)
		}
	}
	// Keys 1, 2, 4, 5, 6, 7: an adcert and no endpoint.
	b := appendHead(nil, majorMap, 6)
	for _, kv := range []struct {
		k uint64
		v []byte
	}{{chTarget, f.capsule.Marshal()}, {chAdCert, f.ad.Marshal()}, {chRtCert, f.rt.Marshal()},
		{chRouter, f.router.Meta.Marshal()}, {chMember, f.mem.Marshal()}, {chDomain, f.domain.Meta.Marshal()}} {
		b = appendHead(b, majorUint, kv.k)
		b = appendBytes(b, kv.v)
	}
	// Refused as a malformed chain (not when the missing endpoint is
	// parsed: a *ChainError at the endpoint).
	_, err := ParseChain(b)
	var ce *ChainError
	if !errors.Is(err, ErrMalformed) || errors.As(err, &ce) {
		t.Fatalf("adcert without endpoint: got %v, want a malformed chain", err)
	}
}

// TestParseCertShortName: a payload naming a 31-byte issuer is refused, not
// a panic (mutant: the field range check skipped: Name(w.Issuer) panics).
func TestParseCertShortName(t *testing.T) {
	f := newFixture(t)
	pl := f.mem.appendPayload(nil)
	full := appendBytes(nil, f.mem.Issuer[:])
	i := bytes.Index(pl, full)
	short := append(append(bytes.Clone(pl[:i]), appendBytes(nil, f.mem.Issuer[:31])...), pl[i+len(full):]...)
	b := append([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0}, appendBytes(nil, short)...)
	b = append(b, appendBytes(nil, f.mem.sig)...)
	if _, err := ParseCert(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}

// TestValidityRange: a window starting at the epoch or ending at
// 9999-12-31T23:59:59Z is representable; one second beyond is refused,
// when issuing and when parsing (mutants: the range check skipped, < ↔ <=
// and > ↔ >= at its edges, in checkFields and ParseCert).
func TestValidityRange(t *testing.T) {
	f := newFixture(t)
	epoch, last := time.Unix(0, 0), time.Unix(maxUnix, 0)
	ok, err := IssueMember(f.domain, f.router.Name, epoch, last)
	if err != nil {
		t.Fatalf("epoch to 9999: %v", err)
	}
	if _, err := ParseCert(ok.Marshal()); err != nil {
		t.Fatalf("epoch to 9999 does not parse: %v", err)
	}
	if _, err := IssueMember(f.domain, f.router.Name, epoch.Add(-time.Second), last); !errors.Is(err, ErrMalformed) {
		t.Errorf("before the epoch: got %v", err)
	}
	if _, err := IssueMember(f.domain, f.router.Name, epoch, last.Add(time.Second)); !errors.Is(err, ErrMalformed) {
		t.Errorf("after 9999: got %v", err)
	}
	if _, err := IssueRtCert(nil, f.router.Name, t0, t0.Add(time.Hour)); err == nil {
		t.Error("rtcert with no endpoint identity issued")
	}
	if _, err := IssueMember(nil, f.router.Name, t0, t0.Add(time.Hour)); err == nil {
		t.Error("membership with no domain identity issued")
	}
}

// TestMetadataLimits: each field rule of Validate at its limit and one
// beyond (mutants: each case skipped, > ↔ >= at each limit, one operand of
// the extra attributes' check dropped).
func TestMetadataLimits(t *testing.T) {
	f := newFixture(t)
	base := func() *Metadata {
		m := *f.router.Meta
		m.Extra = nil
		return &m
	}
	extra := func(n int) map[string]string {
		e := map[string]string{}
		for i := range n {
			e[string(rune('a'+i))] = "v"
		}
		return e
	}
	tests := []struct {
		name string
		mut  func(m *Metadata)
		ok   bool
	}{
		{"created at the epoch", func(m *Metadata) { m.Created = time.Unix(0, 0) }, true},
		{"created before the epoch", func(m *Metadata) { m.Created = time.Unix(-1, 0) }, false},
		{"created at 9999-12-31T23:59:59Z", func(m *Metadata) { m.Created = time.Unix(maxUnix, 0) }, true},
		{"created after 9999", func(m *Metadata) { m.Created = time.Unix(maxUnix+1, 0) }, false},
		{"description at the limit", func(m *Metadata) { m.Description = strings.Repeat("d", MaxDescription) }, true},
		{"description over the limit", func(m *Metadata) { m.Description = strings.Repeat("d", MaxDescription+1) }, false},
		{"description not UTF-8", func(m *Metadata) { m.Description = "\xc3\x28" }, false},
		{"extra attributes at the limit", func(m *Metadata) { m.Extra = extra(MaxExtra) }, true},
		{"extra attributes over the limit", func(m *Metadata) { m.Extra = extra(MaxExtra + 1) }, false},
		{"empty extra key", func(m *Metadata) { m.Extra = map[string]string{"": "v"} }, false},
		{"extra key at the limit", func(m *Metadata) { m.Extra = map[string]string{strings.Repeat("k", MaxExtraKey): "v"} }, true},
		{"extra key over the limit", func(m *Metadata) { m.Extra = map[string]string{strings.Repeat("k", MaxExtraKey+1): "v"} }, false},
		{"extra value at the limit", func(m *Metadata) { m.Extra = map[string]string{"k": strings.Repeat("v", MaxExtraValue)} }, true},
		{"extra value over the limit", func(m *Metadata) { m.Extra = map[string]string{"k": strings.Repeat("v", MaxExtraValue+1)} }, false},
		{"extra key not UTF-8", func(m *Metadata) { m.Extra = map[string]string{"\xff": "v"} }, false},
		{"extra value not UTF-8", func(m *Metadata) { m.Extra = map[string]string{"k": "\xff"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.mut(m)
			err := m.Validate()
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	var none *Metadata
	if !none.Equal(nil) || f.router.Meta.Equal(nil) || none.Equal(f.router.Meta) {
		t.Error("Equal with nil: nil equals only nil")
	}
}

// TestIdentityKeyLength: a private key of the wrong length is refused
// (mutants: each length check skipped).
func TestIdentityKeyLength(t *testing.T) {
	key := seedKey("short")
	if _, err := IdentityFromKey(KindRouter, key[:32], "", t0, [16]byte{}); err == nil {
		t.Error("IdentityFromKey took a 32-byte private key")
	}
	id := fixedIdentity(t, KindRouter, "router")
	if _, err := NewIdentityFor(id.Meta, key[:32]); err == nil {
		t.Error("NewIdentityFor took a 32-byte private key")
	}
	if _, err := NewCapsule(key[:32], key.Public().(ed25519.PublicKey), ""); err == nil {
		t.Error("NewCapsule took a 32-byte owner key")
	}
}

// TestParseChainCanonical: a chain whose pieces are each canonical but
// whose own map is not is refused (mutant: the chain's re-encoding
// comparison skipped).
func TestParseChainCanonical(t *testing.T) {
	f := newFixture(t)
	pieces := []struct {
		k uint64
		v []byte
	}{{chTarget, f.client.Meta.Marshal()}, {chRtCert, f.selfRt.Marshal()},
		{chRouter, f.router.Meta.Marshal()}, {chMember, f.mem.Marshal()}, {chDomain, f.domain.Meta.Marshal()}}
	enc := func(longHead int) []byte {
		b := appendHead(nil, majorMap, 5)
		for i, kv := range pieces {
			b = appendHead(b, majorUint, kv.k)
			if i == longHead { // a 4-byte length where 2 bytes do
				b = append(b, 0x5a, 0, 0, byte(len(kv.v)>>8), byte(len(kv.v)))
				b = append(b, kv.v...)
				continue
			}
			b = appendBytes(b, kv.v)
		}
		return b
	}
	if _, err := ParseChain(enc(-1)); err != nil {
		t.Fatalf("canonical chain refused: %v", err)
	}
	for i := range pieces {
		if _, err := ParseChain(enc(i)); !errors.Is(err, ErrMalformed) {
			t.Errorf("piece %d with a long length head: got %v, want ErrMalformed", i, err)
		}
	}
	// Not CBOR at all: refused as a chain, not at its first piece (mutant:
	// the decoding error ignored).
	var ce *ChainError
	if _, err := ParseChain(enc(-1)[:7]); !errors.Is(err, ErrMalformed) || errors.As(err, &ce) {
		t.Errorf("truncated chain: got %v, want a malformed chain", err)
	}
	// A chain missing pieces encodes them empty, and is refused.
	if _, err := ParseChain((&Chain{Target: f.capsule, AdCert: f.ad}).Marshal()); !errors.Is(err, ErrMalformed) {
		t.Errorf("chain with missing pieces: got %v", err)
	}
}

// TestIdentityValidates: identities and metadata are made only from valid
// fields (mutants: each Validate call's error ignored).
func TestIdentityValidates(t *testing.T) {
	key := seedKey("validates")
	pub := key.Public().(ed25519.PublicKey)
	if _, err := IdentityFromKey(Kind(99), key, "", t0, [16]byte{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("IdentityFromKey, unknown kind: got %v", err)
	}
	m := &Metadata{Kind: KindRouter, Key: pub, Created: t0, Description: "\xff"}
	if _, err := NewIdentityFor(m, key); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewIdentityFor, description not UTF-8: got %v", err)
	}
	if _, err := NewMetadata(KindRouter, pub[:31], ""); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewMetadata, short key: got %v", err)
	}
	if _, err := NewCapsule(key, pub[:31], ""); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewCapsule, short writer key: got %v", err)
	}
}

// TestKeystoreRefuses: what the keystore refuses to save or load, each with
// its own check (mutants: each guard skipped, an || operand dropped, the
// alias character ranges moved by one).
func TestKeystoreRefuses(t *testing.T) {
	dir := t.TempDir()
	ks, err := OpenKeystore(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := fixedIdentity(t, KindRouter, "router")
	if err := ks.Save("r", id); err != nil {
		t.Fatal(err)
	}
	if err := ks.Save("r", id); !errors.Is(err, ErrExists) {
		t.Errorf("saved over an existing alias: %v", err)
	}
	if err := ks.Save("n", nil); err == nil {
		t.Error("saved no identity")
	}
	if err := ks.Save("m", &Identity{Key: id.Key}); err == nil {
		t.Error("saved an identity without metadata")
	}
	other := fixedIdentity(t, KindRouter, "other")
	if err := ks.Save("x", &Identity{Meta: id.Meta, Name: id.Name, Key: other.Key}); err == nil {
		t.Error("saved a key that is not the metadata's")
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	meta := Armor(PEMMetadata, id.Meta.Marshal())
	for _, tc := range []struct {
		alias string
		key   []byte // nil: a directory
		meta  []byte // nil: none
	}{
		{"dir", nil, meta},
		{"short", Armor(PEMPrivateKey, id.Key.Seed()[:31]), meta},
		{"wrongtype", Armor(PEMCert, id.Key.Seed()), meta},
		{"broken", []byte("-----BEGIN GDP PRIVATE KEY-----\nnot base64\n"), meta},
		{"nometa", Armor(PEMPrivateKey, id.Key.Seed()), nil},
		{"certmeta", Armor(PEMPrivateKey, id.Key.Seed()), Armor(PEMCert, id.Meta.Marshal())},
	} {
		if tc.key == nil {
			if err := os.Mkdir(filepath.Join(dir, tc.alias+".key"), 0o700); err != nil {
				t.Fatal(err)
			}
		} else {
			write(tc.alias+".key", tc.key)
		}
		if tc.meta != nil {
			write(tc.alias+".meta", tc.meta)
		}
		if _, err := ks.Load(tc.alias); err == nil {
			t.Errorf("%s: loaded", tc.alias)
		}
	}
	// List skips what does not name an alias or has no readable metadata.
	write(".hidden.key", Armor(PEMPrivateKey, id.Key.Seed()))
	es, err := ks.List()
	if err != nil {
		t.Fatal(err)
	}
	var aliases []string
	for _, e := range es {
		aliases = append(aliases, e.Alias)
	}
	if got := strings.Join(aliases, ","); got != "broken,dir,r,short,wrongtype" {
		t.Errorf("List: %s, want broken,dir,r,short,wrongtype", got)
	}
	if _, err := OpenKeystore(filepath.Join(dir, "r.key")); err == nil {
		t.Error("a file opened as a keystore")
	}
}

// TestValidAlias: the alias alphabet at each edge of its ranges.
func TestValidAlias(t *testing.T) {
	for _, ok := range []string{"azAZ09._-", strings.Repeat("a", 64)} {
		if err := ValidAlias(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{strings.Repeat("a", 65), "`", "{", "@", "[", "/", ":", ".a", ""} {
		if err := ValidAlias(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
