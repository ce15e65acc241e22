package seal

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// TestX25519FromEd25519: for random identities, the converted private
// key's public key is the converted public key, and two parties agree on a
// shared secret from each other's Ed25519 public keys.
func TestX25519FromEd25519(t *testing.T) {
	for i := 0; i < 32; i++ {
		pa, ka, _ := ed25519.GenerateKey(nil)
		pb, kb, _ := ed25519.GenerateKey(nil)
		xa, err := X25519Private(ka)
		if err != nil {
			t.Fatal(err)
		}
		xpa, err := X25519Public(pa)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(xa.PublicKey().Bytes(), xpa.Bytes()) {
			t.Fatalf("key %d: converted public key differs from the converted private key's", i)
		}
		xb, _ := X25519Private(kb)
		xpb, _ := X25519Public(pb)
		s1, err1 := xa.ECDH(xpb)
		s2, err2 := xb.ECDH(xpa)
		if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
			t.Fatalf("key %d: no shared secret: %v %v", i, err1, err2)
		}
	}
	bad := make([]byte, 32)
	bad[0] = 1 // y = 1: the identity point
	if _, err := X25519Public(bad); !errors.Is(err, ErrBadKey) {
		t.Fatalf("identity point: %v", err)
	}
	if _, err := X25519Public(make([]byte, 31)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short key: %v", err)
	}
}
