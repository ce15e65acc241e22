package tunnel

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// credentialsVersion is the first byte of encoded credentials.
const credentialsVersion = 0x01

// ErrKeyMismatch: the TLS key is not the key in the peer's metadata.
var ErrKeyMismatch = errors.New("tls key is not the metadata's key")

// EncodeCredentials packs what a node shows its peers into the certificate
// extension (docs/PROTOCOL.md §4.2):
//
//	0x01 | len u16 | metadata | len u16 | membership cert | len u16 | domain metadata
//
// domain may be nil (length 0): verifiers then use their trusted copy.
func EncodeCredentials(meta *certs.Metadata, member *certs.Cert, domain *certs.Metadata) []byte {
	parts := [3][]byte{meta.Marshal(), member.Marshal(), nil}
	if domain != nil {
		parts[2] = domain.Marshal()
	}
	b := []byte{credentialsVersion}
	for _, p := range parts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// DecodeCredentials is the strict inverse of EncodeCredentials.
func DecodeCredentials(b []byte) (meta *certs.Metadata, member *certs.Cert, domain *certs.Metadata, err error) {
	if len(b) < 1 || b[0] != credentialsVersion {
		return nil, nil, nil, errors.New("credentials: unknown version")
	}
	b = b[1:]
	var parts [3][]byte
	for i := range parts {
		if len(b) < 2 {
			return nil, nil, nil, errors.New("credentials: truncated")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, nil, nil, errors.New("credentials: truncated")
		}
		parts[i], b = b[2:2+n], b[2+n:]
	}
	if len(b) != 0 {
		return nil, nil, nil, errors.New("credentials: trailing bytes")
	}
	if meta, err = certs.ParseMetadata(parts[0]); err != nil {
		return nil, nil, nil, fmt.Errorf("credentials: metadata: %w", err)
	}
	if member, err = certs.ParseCert(parts[1]); err != nil {
		return nil, nil, nil, fmt.Errorf("credentials: membership: %w", err)
	}
	if len(parts[2]) > 0 {
		if domain, err = certs.ParseMetadata(parts[2]); err != nil {
			return nil, nil, nil, fmt.Errorf("credentials: domain: %w", err)
		}
	}
	return meta, member, domain, nil
}

// CertIdentity is the tunnel Identity of a certs identity that holds a
// membership in domain.
func CertIdentity(id *certs.Identity, member *certs.Cert, domain *certs.Metadata) *Identity {
	return &Identity{Key: id.Key, Name: id.Name, Credentials: EncodeCredentials(id.Meta, member, domain)}
}

// CertVerifier checks peers the gdpnet way: the credentials must decode,
// the TLS key must be the metadata's key (so the metadata's name is the
// peer's), and v must accept the membership (trusted domain, valid now,
// signed). The link expires with the membership.
func CertVerifier(v *certs.Verifier) PeerVerifier {
	return func(key ed25519.PublicKey, creds []byte) (pdu.Name, time.Time, error) {
		meta, member, domain, err := DecodeCredentials(creds)
		if err != nil {
			return pdu.Name{}, time.Time{}, err
		}
		if !bytes.Equal(meta.Key, key) {
			return pdu.Name{}, time.Time{}, ErrKeyMismatch
		}
		_, exp, err := v.VerifyMember(meta, member, domain)
		if err != nil {
			return pdu.Name{}, time.Time{}, fmt.Errorf("membership: %w", err)
		}
		return meta.Name(), exp, nil
	}
}
