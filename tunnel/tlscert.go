package tunnel

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// TLSCertificate is the certificate a node shows in TLS handshakes other
// than its tunnels' (QUIC connections over names, docs/PROTOCOL.md §9): the
// same self-signed Ed25519 certificate with the credentials extension as
// §4.1, for id.
func TLSCertificate(id *Identity) (*tls.Certificate, error) {
	der, err := selfSignedCert(id, time.Now())
	if err != nil {
		return nil, fmt.Errorf("tunnel: certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Key}, nil
}

// VerifyCertificate checks a TLS peer's certificate list as a tunnel does
// (§4.1 steps 1–3): exactly one Ed25519 certificate carrying credentials
// that verify accepts for the key that signed the handshake. It returns the
// name they prove and when the proof expires. Errors wrap ErrPeerRefused.
func VerifyCertificate(raw [][]byte, verify PeerVerifier) (pdu.Name, time.Time, error) {
	key, creds, err := peerFromCert(raw)
	if err != nil {
		return pdu.Name{}, time.Time{}, err
	}
	name, exp, err := verify(key, creds)
	if err != nil {
		return pdu.Name{}, time.Time{}, fmt.Errorf("%w: %w", ErrPeerRefused, err)
	}
	return name, exp, nil
}
