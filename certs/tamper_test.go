package certs

import (
	"testing"
)

// TestTamperChain flips every bit of every byte of an encoded chain (and of
// a self-advertisement chain): each flip must be refused, either by the
// strict parser or by verification. Nothing in a chain is unauthenticated.
func TestTamperChain(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		chain  *Chain
		target Name
	}{
		{"capsule", f.chain, f.capsule.Name()},
		{"self", f.self, f.client.Name},
	} {
		good := tc.chain.Marshal()
		if _, err := f.v.VerifyRoute(tc.chain, tc.target, f.router.Name); err != nil {
			t.Fatal(err)
		}
		parseErrs, verifyErrs := 0, 0
		for i := range good {
			for bit := 0; bit < 8; bit++ {
				b := append([]byte(nil), good...)
				b[i] ^= 1 << bit
				c, err := ParseChain(b)
				if err != nil {
					parseErrs++
					continue
				}
				if _, err := f.v.VerifyRoute(c, tc.target, f.router.Name); err == nil {
					t.Fatalf("%s: flipping bit %d of byte %d (of %d) was accepted", tc.name, bit, i, len(good))
				}
				verifyErrs++
			}
		}
		t.Logf("%s chain, %d bytes: %d flips refused by the parser, %d by verification", tc.name, len(good), parseErrs, verifyErrs)
	}
}

// TestTamperCert: every single-bit change of a certificate either fails to
// parse or fails its signature check.
func TestTamperCert(t *testing.T) {
	f := newFixture(t)
	keys := map[CertKind][]byte{KindAdCert: f.capsule.Key, KindRtCert: f.server.Meta.Key, KindMember: f.domain.Meta.Key}
	for _, c := range []*Cert{f.ad, f.rt, f.mem} {
		good := c.Marshal()
		for i := range good {
			for bit := 0; bit < 8; bit++ {
				b := append([]byte(nil), good...)
				b[i] ^= 1 << bit
				p, err := ParseCert(b)
				if err != nil {
					continue
				}
				if p.checkSignature(keys[c.Kind]) && p.Kind == c.Kind {
					t.Fatalf("%s: flipping bit %d of byte %d was accepted", c.Kind, bit, i)
				}
			}
		}
	}
}

// TestTamperMetadata: every single-bit change of metadata either fails to
// parse or yields another name.
func TestTamperMetadata(t *testing.T) {
	f := newFixture(t)
	for _, m := range []*Metadata{f.capsule, f.router.Meta} {
		good := m.Marshal()
		name := m.Name()
		for i := range good {
			for bit := 0; bit < 8; bit++ {
				b := append([]byte(nil), good...)
				b[i] ^= 1 << bit
				p, err := ParseMetadata(b)
				if err == nil && p.Name() == name {
					t.Fatalf("%s: flipping bit %d of byte %d kept the name", m.Kind, bit, i)
				}
			}
		}
	}
}
