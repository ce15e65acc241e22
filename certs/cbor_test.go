package certs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// refEnc is fxamacker's core deterministic encoder (RFC 8949 §4.2.1): the
// hand-written appenders must agree with it byte for byte.
var refEnc = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

func TestAppendHeadMatchesReference(t *testing.T) {
	for _, n := range []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		want, err := refEnc.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendHead(nil, majorUint, n); !bytes.Equal(got, want) {
			t.Errorf("uint %d: got %x want %x", n, got, want)
		}
	}
	for _, n := range []int{0, 23, 24, 255, 256, 70000} {
		v := bytes.Repeat([]byte{7}, n)
		want, _ := refEnc.Marshal(v)
		if got := appendBytes(nil, v); !bytes.Equal(got, want) {
			t.Errorf("bytes len %d differ", n)
		}
		s := string(v)
		want, _ = refEnc.Marshal(s)
		if got := appendText(nil, s); !bytes.Equal(got, want) {
			t.Errorf("text len %d differ", n)
		}
	}
}

func TestMetadataMatchesReference(t *testing.T) {
	f := newFixture(t)
	for _, m := range []*Metadata{f.capsule, f.router.Meta, f.domain.Meta,
		{Kind: KindClient, Key: f.client.Meta.Key, Description: "x", Extra: map[string]string{
			"b": "1", "a": "2", "aa": "3", "z": "", "long key name here": "v"}}} {
		w := metaWire{Kind: uint64(m.Kind), Key: m.Key, Writer: m.WriterKey,
			Created: uint64(m.Created.Unix()), Nonce: m.Nonce[:], Desc: m.Description, Extra: m.Extra}
		want, err := refEnc.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Marshal(); !bytes.Equal(got, want) {
			t.Errorf("%s metadata:\n got %x\nwant %x", m.Kind, got, want)
		}
	}
}

func TestCertMatchesReference(t *testing.T) {
	f := newFixture(t)
	for _, c := range []*Cert{f.ad, f.rt, f.mem} {
		pl, err := refEnc.Marshal(certWire{Kind: uint64(c.Kind), Issuer: c.Issuer[:], Subject: c.Subject[:],
			NotBefore: uint64(c.NotBefore.Unix()), NotAfter: uint64(c.NotAfter.Unix())})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.appendPayload(nil); !bytes.Equal(got, pl) {
			t.Errorf("%s payload:\n got %x\nwant %x", c.Kind, got, pl)
		}
		whole, err := refEnc.Marshal(cbor.Tag{Number: 18, Content: []any{protectedEdDSA, map[int]int{}, pl, c.sig}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Marshal(); !bytes.Equal(got, whole) {
			t.Errorf("%s COSE_Sign1:\n got %x\nwant %x", c.Kind, got, whole)
		}
		ss, err := refEnc.Marshal([]any{"Signature1", protectedEdDSA, certAAD[c.Kind], pl})
		if err != nil {
			t.Fatal(err)
		}
		if got := sigStructure(c.Kind, pl); !bytes.Equal(got, ss) {
			t.Errorf("%s Sig_structure:\n got %x\nwant %x", c.Kind, got, ss)
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestParseMetadataStrict: every way of writing the same metadata other
// than the canonical one is refused.
func TestParseMetadataStrict(t *testing.T) {
	f := newFixture(t)
	good := f.router.Meta.Marshal()
	key := hex.EncodeToString(f.router.Meta.Key)
	nonce := hex.EncodeToString(f.router.Meta.Nonce[:])
	// Canonical: a5 01 02 02 5820<key> 04 1a<created> 05 50<nonce> 06 6b"test router"
	created := "1a6955b900"
	desc := "6b" + hex.EncodeToString([]byte("test router"))
	canon := "a5" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "06" + desc
	if hex.EncodeToString(good) != canon {
		t.Fatalf("fixture changed: %x", good)
	}
	tests := []struct{ name, hex string }{
		{"non-shortest kind", "a5" + "011802" + "025820" + key + "04" + created + "0550" + nonce + "06" + desc},
		{"non-shortest time", "a5" + "0102" + "025820" + key + "041b000000006955b900" + "0550" + nonce + "06" + desc},
		{"non-shortest length", "a5" + "0102" + "02582000"[:0] + "02" + "5900" + "20" + key + "04" + created + "0550" + nonce + "06" + desc},
		{"keys out of order", "a5" + "025820" + key + "0102" + "04" + created + "0550" + nonce + "06" + desc},
		{"duplicate key", "a6" + "0102" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "06" + desc},
		{"unknown key", "a6" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "06" + desc + "0800"},
		{"indefinite map", "bf" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "06" + desc + "ff"},
		{"indefinite text", "a5" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "06" + "7f" + desc + "ff"},
		{"trailing byte", canon + "00"},
		{"tagged", "c0" + canon},
		{"missing description", "a4" + "0102" + "025820" + key + "04" + created + "0550" + nonce},
		{"writer key on a router", "a6" + "0102" + "025820" + key + "035820" + key + "04" + created + "0550" + nonce + "06" + desc},
		{"short key", "a5" + "0102" + "02581f" + key[2:] + "04" + created + "0550" + nonce + "06" + desc},
		{"short nonce", "a5" + "0102" + "025820" + key + "04" + created + "054f" + nonce[2:] + "06" + desc},
		{"unknown kind", "a5" + "0109" + "025820" + key + "04" + created + "0550" + nonce + "06" + desc},
		{"negative time", "a5" + "0102" + "025820" + key + "04" + "20" + "0550" + nonce + "06" + desc},
		{"text key", "a5" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "6164" + desc},
		{"invalid utf-8", "a5" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "06" + "62c328"},
		{"empty extra map", "a6" + "0102" + "025820" + key + "04" + created + "0550" + nonce + "06" + desc + "07a0"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseMetadata(mustHex(tt.hex)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	capsule := f.capsule.Marshal()
	// A capsule without its writer key: drop key 3 and fix the map size.
	i := bytes.Index(capsule, append([]byte{0x03, 0x58, 0x20}, f.capsule.WriterKey...))
	noWriter := append([]byte{0xa6}, capsule[1:i]...)
	noWriter = append(noWriter, capsule[i+35:]...)
	if _, err := ParseMetadata(noWriter); !errors.Is(err, ErrMalformed) {
		t.Errorf("capsule without writer key: got %v", err)
	}
}

func TestParseCertStrict(t *testing.T) {
	f := newFixture(t)
	good := f.mem.Marshal()
	pl := f.mem.appendPayload(nil)
	sig := f.mem.sig
	enc := func(prefix []byte, parts ...[]byte) []byte {
		b := append([]byte{}, prefix...)
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"untagged", good[1:]},
		{"wrong tag", enc([]byte{0xd1}, good[1:])},
		{"other protected header", enc([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0}, appendBytes(nil, pl), appendBytes(nil, sig))},
		{"unprotected header used", enc([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa1, 0x04, 0x40}, appendBytes(nil, pl), appendBytes(nil, sig))},
		{"short signature", enc([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0}, appendBytes(nil, pl), appendBytes(nil, sig[:63]))},
		{"detached payload", enc([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0xf6}, appendBytes(nil, sig))},
		{"five elements", enc([]byte{0xd2, 0x85, 0x43, 0xa1, 0x01, 0x27, 0xa0}, appendBytes(nil, pl), appendBytes(nil, sig), []byte{0x00})},
		{"non-shortest payload length", enc([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0x59, 0x00, byte(len(pl))}, pl, appendBytes(nil, sig))},
		{"trailing byte", enc(good, []byte{0})},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseCert(tt.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// Payload-level: window empty, unknown kind.
	for _, mut := range []func(c *Cert){
		func(c *Cert) { c.NotAfter = c.NotBefore },
		func(c *Cert) { c.Kind = 9 },
	} {
		c := *f.mem
		mut(&c)
		if _, err := ParseCert(c.Marshal()); !errors.Is(err, ErrMalformed) {
			t.Errorf("got %v, want ErrMalformed", err)
		}
	}
}

func TestIssueRejects(t *testing.T) {
	f := newFixture(t)
	if _, err := IssueMember(f.domain, f.router.Name, t0, t0); err == nil {
		t.Error("empty window accepted")
	}
	if _, err := IssueMember(f.router, f.server.Name, t0, t0.Add(1e9)); err == nil {
		t.Error("a router issued a membership")
	}
	if _, err := IssueRtCert(f.domain, f.router.Name, t0, t0.Add(1e9*3600)); err == nil {
		t.Error("a domain issued an rtcert")
	}
	if _, err := IssueAdCert(f.owner[:10], f.capsule.Name(), f.server.Name, t0, t0.Add(1e9*3600)); err == nil {
		t.Error("short key accepted")
	}
}

func TestRoundTrips(t *testing.T) {
	f := newFixture(t)
	for _, m := range []*Metadata{f.capsule, f.router.Meta, f.server.Meta, f.client.Meta, f.domain.Meta} {
		p, err := ParseMetadata(m.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !p.Equal(m) || p.Name() != m.Name() || p.Kind != m.Kind || !p.Created.Equal(m.Created) ||
			p.Description != m.Description || p.Nonce != m.Nonce {
			t.Errorf("%s metadata round trip differs", m.Kind)
		}
	}
	for _, c := range []*Cert{f.ad, f.rt, f.mem} {
		p, err := ParseCert(c.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != c.Kind || p.Issuer != c.Issuer || p.Subject != c.Subject ||
			!p.NotBefore.Equal(c.NotBefore) || !p.NotAfter.Equal(c.NotAfter) || !bytes.Equal(p.sig, c.sig) {
			t.Errorf("%s round trip differs", c.Kind)
		}
	}
	for _, c := range []*Chain{f.chain, f.self} {
		p, err := ParseChain(c.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Marshal(), c.Marshal()) || !p.Endpoint.Equal(c.Endpoint) {
			t.Error("chain round trip differs")
		}
	}
}

func TestKindStrings(t *testing.T) {
	for k := KindCapsule; k <= KindResolver; k++ {
		p, err := ParseKind(k.String())
		if err != nil || p != k {
			t.Errorf("kind %d: %v", k, err)
		}
	}
	for k := KindAdCert; k <= KindMember; k++ {
		p, err := ParseCertKind(k.String())
		if err != nil || p != k {
			t.Errorf("cert kind %d: %v", k, err)
		}
	}
	if _, err := ParseKind("bogus"); err == nil {
		t.Error("bogus kind parsed")
	}
}
