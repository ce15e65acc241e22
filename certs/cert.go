package certs

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Cert is a signed statement "Issuer says Subject ... until NotAfter":
//
//	AdCert: Issuer = capsule C (signed with C's owner key), Subject = server S
//	RtCert: Issuer = endpoint S (signed with S's key),      Subject = router R
//	Member: Issuer = domain D (signed with D's key),        Subject = member X
//
// It is valid for NotBefore <= now < NotAfter (both at second precision).
type Cert struct {
	Kind                CertKind
	Issuer              Name
	Subject             Name
	NotBefore, NotAfter time.Time

	sig []byte // Ed25519 signature over the COSE Sig_structure
}

// Wire keys of the certificate payload map (docs/PROTOCOL.md §3).
const (
	ckKind      = 1
	ckIssuer    = 2
	ckSubject   = 3
	ckNotBefore = 4
	ckNotAfter  = 5
)

type certWire struct {
	Kind      uint64 `cbor:"1,keyasint"`
	Issuer    []byte `cbor:"2,keyasint"`
	Subject   []byte `cbor:"3,keyasint"`
	NotBefore uint64 `cbor:"4,keyasint"`
	NotAfter  uint64 `cbor:"5,keyasint"`
}

// sign1Wire is a COSE_Sign1 array (the tag is handled by hand).
type sign1Wire struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

// IssueAdCert lets server host and advertise capsule, signed with the
// capsule's owner key, valid for nb <= t < na.
func IssueAdCert(owner ed25519.PrivateKey, capsule Name, server Name, nb, na time.Time) (*Cert, error) {
	return issue(KindAdCert, owner, capsule, server, nb, na)
}

// IssueRtCert says that endpoint (and every name it holds AdCerts for) is
// reachable through router, valid for nb <= t < na.
func IssueRtCert(endpoint *Identity, router Name, nb, na time.Time) (*Cert, error) {
	if endpoint == nil {
		return nil, fmt.Errorf("issue rtcert: no endpoint identity")
	}
	if !endpoint.Meta.Kind.canEndpoint() {
		return nil, fmt.Errorf("issue rtcert: a %s cannot be an endpoint", endpoint.Meta.Kind)
	}
	return issue(KindRtCert, endpoint.Key, endpoint.Name, router, nb, na)
}

// IssueMember says that member belongs to domain, valid for nb <= t < na.
func IssueMember(domain *Identity, member Name, nb, na time.Time) (*Cert, error) {
	if domain == nil {
		return nil, fmt.Errorf("issue member: no domain identity")
	}
	if domain.Meta.Kind != KindDomain {
		return nil, fmt.Errorf("issue member: issuer is a %s, not a domain", domain.Meta.Kind)
	}
	return issue(KindMember, domain.Key, domain.Name, member, nb, na)
}

func issue(kind CertKind, key ed25519.PrivateKey, issuer, subject Name, nb, na time.Time) (*Cert, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("issue %s: private key has %d bytes, want %d", kind, len(key), ed25519.PrivateKeySize)
	}
	c := &Cert{Kind: kind, Issuer: issuer, Subject: subject,
		NotBefore: nb.UTC().Truncate(time.Second), NotAfter: na.UTC().Truncate(time.Second)}
	if err := c.checkFields(); err != nil {
		return nil, fmt.Errorf("issue %s: %w", kind, err)
	}
	c.sig = ed25519.Sign(key, sigStructure(kind, c.appendPayload(nil)))
	return c, nil
}

func (c *Cert) checkFields() error {
	switch {
	case !c.Kind.Valid():
		return fmt.Errorf("%w: unknown certificate kind %d", ErrMalformed, c.Kind)
	case c.NotBefore.Unix() < 0 || c.NotAfter.Unix() > maxUnix:
		return fmt.Errorf("%w: validity window out of range", ErrMalformed)
	case !c.NotBefore.Before(c.NotAfter):
		return fmt.Errorf("%w: not before %s is not before not after %s", ErrMalformed,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// Signature returns the 64-byte Ed25519 signature (do not modify).
func (c *Cert) Signature() []byte { return c.sig }

// ValidAt reports whether t is inside the validity window:
// NotBefore <= t < NotAfter.
func (c *Cert) ValidAt(t time.Time) bool { return !t.Before(c.NotBefore) && t.Before(c.NotAfter) }

// appendPayload appends the deterministic CBOR payload map.
func (c *Cert) appendPayload(b []byte) []byte {
	b = appendHead(b, majorMap, 5)
	b = appendHead(b, majorUint, ckKind)
	b = appendHead(b, majorUint, uint64(c.Kind))
	b = appendHead(b, majorUint, ckIssuer)
	b = appendBytes(b, c.Issuer[:])
	b = appendHead(b, majorUint, ckSubject)
	b = appendBytes(b, c.Subject[:])
	b = appendHead(b, majorUint, ckNotBefore)
	b = appendHead(b, majorUint, uint64(c.NotBefore.Unix()))
	b = appendHead(b, majorUint, ckNotAfter)
	b = appendHead(b, majorUint, uint64(c.NotAfter.Unix()))
	return b
}

// Marshal returns the certificate as a tagged COSE_Sign1:
// 18([h'a10127', {}, payload, signature]).
func (c *Cert) Marshal() []byte {
	b := make([]byte, 0, 176)
	b = append(b, tagSign1)
	b = appendHead(b, majorArray, 4)
	b = appendBytes(b, protectedEdDSA)
	b = appendHead(b, majorMap, 0)
	var pl [96]byte
	b = appendBytes(b, c.appendPayload(pl[:0]))
	b = appendBytes(b, c.sig)
	return b
}

// ParseCert decodes a certificate. It checks structure only (not the
// signature, which needs the issuer's key: see Verifier) and refuses any
// non-canonical encoding.
func ParseCert(b []byte) (*Cert, error) {
	if len(b) == 0 || b[0] != tagSign1 {
		return nil, malformed("cert", "not a tagged COSE_Sign1 (want tag 18)")
	}
	var s sign1Wire
	if err := decMode.Unmarshal(b[1:], &s); err != nil {
		return nil, malformed("cert", "%v", err)
	}
	if !bytes.Equal(s.Protected, protectedEdDSA) {
		return nil, malformed("cert", "protected header %x, want %x (alg EdDSA)", s.Protected, protectedEdDSA)
	}
	if len(s.Signature) != ed25519.SignatureSize {
		return nil, malformed("cert", "signature has %d bytes, want %d", len(s.Signature), ed25519.SignatureSize)
	}
	var w certWire
	if err := decMode.Unmarshal(s.Payload, &w); err != nil {
		return nil, malformed("cert payload", "%v", err)
	}
	if w.Kind > 0xff || len(w.Issuer) != len(Name{}) || len(w.Subject) != len(Name{}) ||
		w.NotBefore > maxUnix || w.NotAfter > maxUnix {
		return nil, malformed("cert payload", "field out of range")
	}
	c := &Cert{Kind: CertKind(w.Kind), Issuer: Name(w.Issuer), Subject: Name(w.Subject),
		NotBefore: time.Unix(int64(w.NotBefore), 0).UTC(), NotAfter: time.Unix(int64(w.NotAfter), 0).UTC(),
		sig: bytes.Clone(s.Signature)}
	if err := c.checkFields(); err != nil {
		return nil, fmt.Errorf("parse cert: %w", err)
	}
	if !bytes.Equal(c.Marshal(), b) {
		return nil, malformed("cert", "not the canonical encoding")
	}
	return c, nil
}

// VerifySignature reports whether c is signed by pub (the issuer's key).
// It checks nothing else: kind, names and validity are the caller's.
func (c *Cert) VerifySignature(pub ed25519.PublicKey) bool { return c.checkSignature(pub) }

// checkSignature verifies c's signature with the issuer's public key.
func (c *Cert) checkSignature(pub ed25519.PublicKey) bool {
	if len(pub) != ed25519.PublicKeySize || len(c.sig) != ed25519.SignatureSize {
		return false
	}
	var pl [96]byte
	return ed25519.Verify(pub, sigStructure(c.Kind, c.appendPayload(pl[:0])), c.sig)
}
