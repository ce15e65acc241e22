package tunnel

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
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

// certWith makes a self-signed certificate for key carrying extensions.
func certWith(t *testing.T, pub any, key any, exts ...pkix.Extension) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestVerifyCertificateRefuses: the certificate checks client/quic.go
// relies on (§4.1 steps 1–3), each refused with ErrPeerRefused: the
// verifier's refusal, two certificates, bytes that are no certificate, a
// key that is not Ed25519, no credentials, credentials over
// maxCredentials, and the credentials taken from their own extension
// only; KeyNameVerifier refuses a key it does not list (mutants: each
// check skipped, the extension match forced true, > → >=).
func TestVerifyCertificateRefuses(t *testing.T) {
	d := newDomain(t)
	r, id := d.member(time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	v := CertVerifier(certs.NewVerifier(d.domain.Meta))
	tc, err := TLSCertificate(id)
	if err != nil {
		t.Fatal(err)
	}
	if name, _, err := VerifyCertificate(tc.Certificate, v); err != nil || name != r.Name {
		t.Fatalf("the good certificate: %v", err)
	}
	strangers := CertVerifier(certs.NewVerifier()) // trusts no domain
	pub := id.Key.Public().(ed25519.PublicKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	credsExt := pkix.Extension{Id: oidCredentials, Value: id.Credentials}
	other := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 59999, 9}, Value: []byte{0x05, 0x00}}
	tests := []struct {
		name   string
		raw    [][]byte
		verify PeerVerifier
	}{
		{"a verifier that refuses", tc.Certificate, strangers},
		{"two certificates", [][]byte{tc.Certificate[0], tc.Certificate[0]}, v},
		{"not a certificate", [][]byte{[]byte("not DER")}, v},
		// KeyNameVerifier takes any key and credentials: only
		// peerFromCert's own checks refuse these
		{"an ECDSA key", [][]byte{certWith(t, &ecKey.PublicKey, ecKey, credsExt)}, KeyNameVerifier(nil)},
		{"no credentials", [][]byte{certWith(t, pub, id.Key)}, KeyNameVerifier(nil)},
		{"credentials over maxCredentials", [][]byte{certWith(t, pub, id.Key,
			pkix.Extension{Id: oidCredentials, Value: make([]byte, maxCredentials+1)})}, KeyNameVerifier(nil)},
		{"credentials, then another extension", [][]byte{certWith(t, pub, id.Key, credsExt, other)}, nil},
		{"a key KeyNameVerifier does not list", tc.Certificate, KeyNameVerifier(map[pdu.Name]bool{{1}: true})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verify := tt.verify
			if verify == nil {
				// the credentials must be the creds extension's value,
				// not the last extension's
				verify = func(k ed25519.PublicKey, creds []byte) (pdu.Name, time.Time, error) {
					if !bytes.Equal(creds, id.Credentials) {
						return pdu.Name{}, time.Time{}, errors.New("other bytes taken as credentials")
					}
					return pdu.Name{}, time.Time{}, errors.New("refused to end the test")
				}
				if _, _, err := VerifyCertificate(tt.raw, verify); err == nil || strings.Contains(err.Error(), "other bytes") {
					t.Fatalf("got %v", err)
				}
				return
			}
			if _, _, err := VerifyCertificate(tt.raw, verify); !errors.Is(err, ErrPeerRefused) {
				t.Fatalf("got %v, want ErrPeerRefused", err)
			}
		})
	}
	// exactly maxCredentials: taken
	at := [][]byte{certWith(t, pub, id.Key, pkix.Extension{Id: oidCredentials, Value: make([]byte, maxCredentials)})}
	if _, _, err := VerifyCertificate(at, KeyNameVerifier(nil)); err != nil {
		t.Fatalf("maxCredentials bytes: %v", err)
	}
}

// TestMisbehavingControlExchange: an authenticated peer (a member whose
// TLS handshake succeeds) that opens the link's first stream as a bulk
// stream, asks for an unknown kind, asks for a raw link where the listener
// has no raw socket, or asks for one with raw port 0 gets no link: a
// refusal with its code, or the connection closed, never an ACCEPT
// (mutants: the stream-tag check, both kind checks and rawPeerAddr's check
// skipped, each operand of the latter dropped).
func TestMisbehavingControlExchange(t *testing.T) {
	withRaw := newTestNode(t, true, func(c *Config) { c.HandshakeTimeout = 3 * time.Second })
	noRaw := newTestNode(t, false, func(c *Config) { c.HandshakeTimeout = 3 * time.Second })
	atk := newTestNode(t, false, nil)
	tests := []struct {
		name  string
		srv   *testNode
		tag   byte
		hello ctrlMsg
		// refused: the code of the REFUSE the listener sends (0: none);
		// why: what the connection's close names (the close may overtake
		// the REFUSE)
		refused byte
		why     string
	}{
		{"first stream a bulk stream", withRaw, streamBulk, ctrlMsg{Type: msgHello, Arg: byte(KindQUIC)}, 0, "not the control stream"},
		{"unknown kind", withRaw, streamControl, ctrlMsg{Type: msgHello, Arg: 9}, refuseKind, "unknown kind 9"},
		{"raw asked of a listener without raw", noRaw, streamControl, ctrlMsg{Type: msgHello, Arg: byte(KindRaw), Port: 4000, MTU: 1400}, refuseNoRaw, ErrNoRaw.Error()},
		{"raw with port 0", withRaw, streamControl, ctrlMsg{Type: msgHello, Arg: byte(KindRaw), Index: 1, MTU: 1400}, 0, "no usable raw address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			qc, err := atk.ep.tr.Dial(ctx, tt.srv.ep.Addr(), atk.ep.clientTLS(tt.srv.id.Name), atk.ep.qconf)
			if err != nil {
				t.Fatal(err)
			}
			defer qc.CloseWithError(0, "")
			s, err := qc.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			h := tt.hello.encode()
			if _, err := s.Write(append([]byte{tt.tag}, h[:]...)); err != nil {
				t.Fatal(err)
			}
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, err := readCtrl(s)
			switch {
			case err == nil && m.Type == msgAccept:
				t.Fatalf("accepted: %+v", m)
			case err == nil && (tt.refused == 0 || m.Type != msgRefuse || m.Arg != tt.refused):
				t.Fatalf("got %+v; want a refusal with code %d or the connection closed (%s)", m, tt.refused, tt.why)
			case err != nil && !strings.Contains(err.Error(), tt.why):
				t.Fatalf("closed with %v; want %q", err, tt.why)
			}
			if n := tt.srv.ep.Stats().Links; n != 0 {
				t.Fatalf("%d links", n)
			}
		})
	}
}

// TestPeerWithoutDatagrams: a member whose QUIC connection does not
// support datagrams (PDUs of a QUIC link travel as datagrams) is refused
// on either side, with ErrProtocol naming datagrams, and no link is made
// (mutant: peerOf's datagram check skipped).
func TestPeerWithoutDatagrams(t *testing.T) {
	quick := func(c *Config) { c.HandshakeTimeout = 3 * time.Second }
	srv := newTestNode(t, false, quick)
	atk := newTestNode(t, false, nil)
	noDatagrams := atk.ep.qconf.Clone()
	noDatagrams.EnableDatagrams = false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The listener's side: the member dials without datagrams and says a
	// proper HELLO.
	qc, err := atk.ep.tr.Dial(ctx, srv.ep.Addr(), atk.ep.clientTLS(srv.id.Name), noDatagrams)
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	// The listener may close the connection before the stream is opened
	// or written (it checks datagram support at once): that is the
	// answer wanted, wherever it shows (seen in a full make test).
	refused := func(err error) bool { return err != nil && strings.Contains(err.Error(), "does not support datagrams") }
	s, err := qc.OpenStream()
	if err != nil && !refused(err) {
		t.Fatal(err)
	}
	if err == nil {
		h := ctrlMsg{Type: msgHello, Arg: byte(KindQUIC)}.encode()
		if _, err = s.Write(append([]byte{streamControl}, h[:]...)); err != nil && !refused(err) {
			t.Fatal(err)
		}
		if err == nil {
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			if m, err := readCtrl(s); !refused(err) {
				t.Fatalf("listener: got %+v, %v; want the connection closed for want of datagrams", m, err)
			}
		}
	}
	if n := srv.ep.Stats().Links; n != 0 {
		t.Fatalf("listener: %d links", n)
	}

	// The dialer's side: a listener with the member's credentials that
	// does not support datagrams.
	tr := &quic.Transport{Conn: loopbackUDP(t)}
	defer tr.Close()
	ln, err := tr.Listen(atk.ep.serverTLS(), noDatagrams)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	defer func() { ln.Close(); <-accepted }()
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			defer c.CloseWithError(0, "")
		}
	}()
	if _, err := srv.ep.Dial(ctx, ln.Addr(), atk.id.Name, KindQUIC); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "datagrams") {
		t.Fatalf("dialer: %v; want ErrProtocol for want of datagrams", err)
	}
	if n := srv.ep.Stats().Links; n != 0 {
		t.Fatalf("dialer: %d links", n)
	}
}
