package certs

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

// goldenFiles are the vectors docs/PROTOCOL.md §2-3 quotes; every byte
// comes from fixed seeds (fixture_test.go), and Ed25519 signing is
// deterministic, so regenerating must give the same bytes.
func goldenFiles(t *testing.T) map[string][]byte {
	f := newFixture(t)
	return map[string][]byte{
		"domain.meta":  f.domain.Meta.Marshal(),
		"router.meta":  f.router.Meta.Marshal(),
		"server.meta":  f.server.Meta.Marshal(),
		"client.meta":  f.client.Meta.Marshal(),
		"capsule.meta": f.capsule.Marshal(),
		"adcert.cose":  f.ad.Marshal(),
		"rtcert.cose":  f.rt.Marshal(),
		"member.cose":  f.mem.Marshal(),
		"chain.cbor":   f.chain.Marshal(),
		"self.cbor":    f.self.Marshal(),
	}
}

func TestGolden(t *testing.T) {
	for name, got := range goldenFiles(t) {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./certs -run TestGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding changed\n got %x\nwant %x", name, got, want)
		}
	}
}

// TestGoldenParse: every vector parses and re-marshals to itself, and the
// chains verify at the fixture's time.
func TestGoldenParse(t *testing.T) {
	f := newFixture(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, n := range []string{"domain.meta", "router.meta", "server.meta", "client.meta", "capsule.meta"} {
		m, err := ParseMetadata(read(n))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if !bytes.Equal(m.Marshal(), read(n)) {
			t.Errorf("%s: round trip differs", n)
		}
	}
	for _, n := range []string{"adcert.cose", "rtcert.cose", "member.cose"} {
		c, err := ParseCert(read(n))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if !bytes.Equal(c.Marshal(), read(n)) {
			t.Errorf("%s: round trip differs", n)
		}
	}
	for n, target := range map[string]Name{"chain.cbor": f.capsule.Name(), "self.cbor": f.client.Name} {
		c, err := ParseChain(read(n))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if _, err := f.v.VerifyRoute(c, target, f.router.Name); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// TestProtocolDocVectors keeps docs/PROTOCOL.md honest: the hex vectors it
// quotes must be these files' bytes.
func TestProtocolDocVectors(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "PROTOCOL.md"))
	if err != nil {
		t.Skip("docs/PROTOCOL.md not found")
	}
	flat := strings.Join(strings.Fields(string(doc)), "")
	for _, n := range []string{"router.meta", "capsule.meta", "member.cose"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(flat, hex.EncodeToString(b)) {
			t.Errorf("docs/PROTOCOL.md does not quote testdata/%s as hex (%x)", n, b)
		}
	}
	f := newFixture(t)
	for what, b := range map[string][]byte{
		"member Sig_structure": sigStructure(KindMember, f.mem.appendPayload(nil)),
		"domain seed":          seedKey("domain").Seed(),
		"domain public key":    f.domain.Meta.Key,
	} {
		if !strings.Contains(flat, hex.EncodeToString(b)) {
			t.Errorf("docs/PROTOCOL.md does not quote the %s (%x)", what, b)
		}
	}
	// The signature over the quoted Sig_structure is the one in member.cose.
	if !ed25519.Verify(f.domain.Meta.Key, sigStructure(KindMember, f.mem.appendPayload(nil)), f.mem.Signature()) {
		t.Error("member.cose signature does not verify over the quoted Sig_structure")
	}
}
