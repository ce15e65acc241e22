package routertest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// Domain is a trust domain for tests: its identity and a verifier that
// trusts it.
type Domain struct {
	ID       *certs.Identity
	Verifier *certs.Verifier
}

// NewDomain mints a domain.
func NewDomain(desc string) (*Domain, error) {
	id, err := certs.NewIdentity(certs.KindDomain, desc)
	if err != nil {
		return nil, err
	}
	return &Domain{ID: id, Verifier: certs.NewVerifier(id.Meta)}, nil
}

// Router is a router's credentials.
type Router struct {
	ID     *certs.Identity
	Member *certs.Cert
	Domain *certs.Metadata
}

// NewRouter mints a router that is a member of d for a day.
func (d *Domain) NewRouter(desc string) (*Router, error) {
	id, err := certs.NewIdentity(certs.KindRouter, desc)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	m, err := certs.IssueMember(d.ID, id.Name, now.Add(-time.Minute), now.Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	return &Router{ID: id, Member: m, Domain: d.ID.Meta}, nil
}

// Capsule is a capsule's metadata with its owner's key.
type Capsule struct {
	Meta  *certs.Metadata
	Owner ed25519.PrivateKey
}

// NewCapsule mints a capsule with fresh owner and writer keys.
func NewCapsule(desc string) (*Capsule, error) {
	_, owner, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	writer, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	m, err := certs.NewCapsule(owner, writer, desc)
	if err != nil {
		return nil, fmt.Errorf("capsule: %w", err)
	}
	return &Capsule{Meta: m, Owner: owner}, nil
}

// AdCert lets server host c for the given lifetime starting now.
func (c *Capsule) AdCert(server certs.Name, lifetime time.Duration) (*certs.Cert, error) {
	now := time.Now()
	return certs.IssueAdCert(c.Owner, c.Meta.Name(), server, now.Add(-time.Minute), now.Add(lifetime))
}

// Member issues id a day's membership in d (every tunnel peer shows one).
func (d *Domain) Member(id *certs.Identity) (*certs.Cert, error) {
	now := time.Now()
	return certs.IssueMember(d.ID, id.Name, now.Add(-time.Minute), now.Add(24*time.Hour))
}
