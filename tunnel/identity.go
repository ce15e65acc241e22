package tunnel

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// Identity is what a node shows its peers: its Ed25519 key, the name the key
// belongs to, and the credentials that prove it (for a router: its metadata,
// its membership certificate and its domain's metadata, see
// EncodeCredentials). The credentials travel in the node's TLS certificate.
type Identity struct {
	Key         ed25519.PrivateKey
	Name        pdu.Name
	Credentials []byte
}

// PeerVerifier decides, inside the TLS handshake, whether a peer's
// credentials prove a name for the key that signed the handshake. It returns
// that name and when the proof expires (zero: never). Any error refuses the
// peer. CertVerifier builds one from a certs.Verifier.
type PeerVerifier func(key ed25519.PublicKey, credentials []byte) (pdu.Name, time.Time, error)

// oidCredentials is the X.509 extension that carries Identity.Credentials
// (a private-use arc; see docs/PROTOCOL.md §4).
var oidCredentials = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 59999, 1, 1}

// maxCredentials bounds the extension so a peer cannot make us parse a
// huge blob.
const maxCredentials = 16 << 10

// certLifetime is the validity written into the self-signed certificate. It
// is not what decides trust (the credentials' expiry is), but a certificate
// has to say something.
const certLifetime = 30 * 24 * time.Hour

// selfSignedCert makes the DER certificate a node presents.
func selfSignedCert(id *Identity, now time.Time) ([]byte, error) {
	if len(id.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("tunnel: identity has no ed25519 key")
	}
	if len(id.Credentials) > maxCredentials {
		return nil, fmt.Errorf("tunnel: credentials are %d bytes, limit %d", len(id.Credentials), maxCredentials)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.Name.String()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{{
			Id:    oidCredentials,
			Value: id.Credentials,
		}},
	}
	pub := id.Key.Public().(ed25519.PublicKey)
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, id.Key)
}

// peerFromCert extracts the Ed25519 key and the credentials from a peer's
// leaf certificate. TLS 1.3's CertificateVerify has already proven that the
// peer holds the private key for it.
func peerFromCert(raw [][]byte) (ed25519.PublicKey, []byte, error) {
	if len(raw) != 1 {
		return nil, nil, fmt.Errorf("%w: want exactly one certificate, got %d", ErrPeerRefused, len(raw))
	}
	c, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: certificate: %v", ErrPeerRefused, err)
	}
	key, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("%w: certificate key is not ed25519", ErrPeerRefused)
	}
	var creds []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(oidCredentials) {
			creds = e.Value
		}
	}
	if creds == nil {
		return nil, nil, fmt.Errorf("%w: certificate carries no credentials", ErrPeerRefused)
	}
	if len(creds) > maxCredentials {
		return nil, nil, fmt.Errorf("%w: credentials too large", ErrPeerRefused)
	}
	return key, creds, nil
}

// KeyNameVerifier is a PeerVerifier for tests and closed labs: the name of a
// peer is the SHA-256 of its raw public key and no credentials are needed
// beyond being listed in trusted (nil trusts every key). Production uses
// CertVerifier.
func KeyNameVerifier(trusted map[pdu.Name]bool) PeerVerifier {
	return func(key ed25519.PublicKey, _ []byte) (pdu.Name, time.Time, error) {
		n := KeyName(key)
		if trusted != nil && !trusted[n] {
			return pdu.Name{}, time.Time{}, fmt.Errorf("key name %s is not trusted", n)
		}
		return n, time.Time{}, nil
	}
}

// KeyName is the name KeyNameVerifier gives a key.
func KeyName(key ed25519.PublicKey) pdu.Name { return sha256.Sum256(key) }
