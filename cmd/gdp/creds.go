package main

import (
	"fmt"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/resolver"
)

// credFiles names the files a node's identity and trust come from. Each
// daemon maps its own config keys (keystore, identity, member_cert, domain,
// trusted_domains) onto it, with its own defaults already applied.
type credFiles struct {
	keystore string   // keystore directory
	identity string   // alias of the node's key in the keystore
	member   string   // membership certificate file
	domain   string   // own domain metadata file
	trusted  []string // metadata files of further trusted domains
}

// nodeCreds is a node's identity and the trust it is configured with.
type nodeCreds struct {
	ks       *certs.Keystore
	id       *certs.Identity
	member   *certs.Cert
	domain   *certs.Metadata
	verifier *certs.Verifier // the own domain and the trusted ones
}

// loadCreds loads the identity from the keystore, its membership
// certificate, the domain metadata and the trusted domains. role ("router",
// "probe", …) names the identity in errors.
func loadCreds(role string, f credFiles) (*nodeCreds, error) {
	ks, err := certs.OpenKeystore(f.keystore)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	id, err := ks.Load(f.identity)
	if err != nil {
		return nil, fmt.Errorf("%s identity %q: %w", role, f.identity, err)
	}
	member, err := certs.ReadCertFile(f.member)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	domain, v, err := trustedVerifier(f.domain, f.trusted)
	if err != nil {
		return nil, err
	}
	return &nodeCreds{ks: ks, id: id, member: member, domain: domain, verifier: v}, nil
}

// nodeCredentials is what the resolver's DHT node runs with.
func (c *nodeCreds) nodeCredentials() resolver.NodeCredentials {
	return resolver.NodeCredentials{Identity: c.id, Member: c.member, Domain: c.domain, Certs: c.verifier}
}

// trustedVerifier reads the own domain and the trusted domains.
func trustedVerifier(domainPath string, others []string) (*certs.Metadata, *certs.Verifier, error) {
	domain, err := certs.ReadMetadataFile(domainPath)
	if err != nil {
		return nil, nil, fmt.Errorf("domain: %w", err)
	}
	trusted := []*certs.Metadata{domain}
	for _, p := range others {
		m, err := certs.ReadMetadataFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("trusted domain: %w", err)
		}
		trusted = append(trusted, m)
	}
	return domain, certs.NewVerifier(trusted...), nil
}
