package tunnel

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep").

// TestDecodeCredentialsRefuses: credentials with a trailing byte, a piece
// that does not parse, or an empty domain decode as they should; a
// CertVerifier given credentials that do not decode refuses the peer and
// does not panic (mutants: the trailing-bytes check skipped, each piece's
// parse error ignored, len > 0 → >= 0 for the optional domain, the
// decoding error ignored in CertVerifier: a nil metadata dereferenced
// inside the TLS handshake).
func TestDecodeCredentialsRefuses(t *testing.T) {
	d := newDomain(t)
	r, id := d.member(time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	meta, member, _, err := DecodeCredentials(id.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	noDomain := EncodeCredentials(meta, member, nil)
	if m, _, dom, err := DecodeCredentials(noDomain); err != nil || dom != nil || m.Name() != r.Name {
		t.Fatalf("credentials without domain metadata: %v", err)
	}
	enc := func(parts ...[]byte) []byte {
		b := []byte{credentialsVersion}
		for _, p := range parts {
			b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
			b = append(b, p...)
		}
		return b
	}
	junk := []byte("not a piece")
	tests := []struct {
		name string
		b    []byte
	}{
		{"trailing byte", append(bytes.Clone(id.Credentials), 0)},
		{"metadata does not parse", enc(junk, member.Marshal(), nil)},
		{"membership does not parse", enc(meta.Marshal(), junk, nil)},
		{"domain does not parse", enc(meta.Marshal(), member.Marshal(), junk)},
		{"version 2", append([]byte{2}, id.Credentials[1:]...)},
		{"empty", nil},
	}
	v := CertVerifier(certs.NewVerifier(d.domain.Meta))
	if _, _, err := v(r.Public(), id.Credentials); err != nil {
		t.Fatalf("the good credentials: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := DecodeCredentials(tt.b); err == nil {
				t.Fatal("decoded")
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("CertVerifier panicked: %v", p)
					}
				}()
				if _, _, err := v(r.Public(), tt.b); err == nil {
					t.Fatal("CertVerifier accepted")
				}
			}()
		})
	}
}

// TestSelfSignedCertRefuses: no certificate from a private key of the wrong
// size or credentials over maxCredentials; exactly maxCredentials is fine
// (mutants: each check skipped, > → >=).
func TestSelfSignedCertRefuses(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	if _, err := TLSCertificate(&Identity{Key: key, Credentials: make([]byte, maxCredentials)}); err != nil {
		t.Fatalf("maxCredentials bytes: %v", err)
	}
	if _, err := TLSCertificate(&Identity{Key: key, Credentials: make([]byte, maxCredentials+1)}); err == nil {
		t.Fatal("maxCredentials+1 bytes: a certificate")
	}
	if _, err := TLSCertificate(&Identity{Key: key[:32], Credentials: []byte{1}}); err == nil {
		t.Fatal("a 32-byte private key: a certificate")
	}
}

// TestControlMessagesStrict: a control message with a non-zero reserved
// byte is refused; expect refuses a message of another type, and reports
// a refusal as one (mutants: the reserved-byte check dropped, each check
// of expect skipped).
func TestControlMessagesStrict(t *testing.T) {
	hello := ctrlMsg{Type: msgHello, Index: 7}.encode()
	if m, err := decodeCtrl(hello); err != nil || m.Index != 7 {
		t.Fatalf("hello: %v", err)
	}
	for _, i := range []int{2, 3} {
		b := hello
		b[i] = 1
		if _, err := decodeCtrl(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("reserved byte %d set: %v", i, err)
		}
	}
	wire := func(m ctrlMsg) *bytes.Reader { b := m.encode(); return bytes.NewReader(b[:]) }
	if _, err := expect(wire(ctrlMsg{Type: msgAccept}), msgAccept); err != nil {
		t.Fatalf("the expected type: %v", err)
	}
	if _, err := expect(wire(ctrlMsg{Type: msgReady}), msgAccept); !errors.Is(err, ErrProtocol) {
		t.Fatalf("another type: %v", err)
	}
	if _, err := expect(wire(ctrlMsg{Type: msgRefuse, Arg: refuseBusy}), msgAccept); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("a refusal: %v", err)
	}
}
