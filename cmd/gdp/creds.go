package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/resolver"
)

// credFiles names the files a node's identity and trust come from. Each
// daemon maps its own config keys (keystore, identity, member_cert, domain,
// trusted_domains) onto it, with its own defaults already applied.
type credFiles struct {
	keystore string        // keystore directory
	identity string        // alias of the node's key in the keystore
	member   string        // membership certificate file
	domain   string        // own domain metadata file
	trusted  []string      // metadata files of further trusted domains
	skew     time.Duration // the config's clock_skew: 0 keeps certs.DefaultClockSkew, negative none
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
//
// It creates nothing: a keystore directory that does not exist is an error
// (certs.OpenKeystore would make it), and both that and a missing alias
// say which command creates the identity.
func loadCreds(role string, f credFiles) (*nodeCreds, error) {
	create := fmt.Sprintf("create it with: gdp cert --keystore %s keygen --kind %s --alias %s", f.keystore, roleKeyKind(role), f.identity)
	st, err := os.Stat(f.keystore)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s identity %q: keystore %s does not exist (set --keystore, the config's keystore or $GDP_KEYSTORE); %s", role, f.identity, f.keystore, create)
		}
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("keystore %s: not a directory", f.keystore)
	}
	ks, err := certs.OpenKeystore(f.keystore)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	id, err := ks.Load(f.identity)
	if errors.Is(err, certs.ErrNotFound) {
		return nil, fmt.Errorf("%s identity %q: %w; %s", role, f.identity, err, create)
	}
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
	withSkew(v, f.skew)
	// The membership must be this identity's, signed by its domain: a file
	// mixed up with another node's failed later as "tls: bad certificate"
	// at the router, naming neither file (Session 18). An expired one is
	// taken: the daemon says so (certwatch) and reloads the renewed file.
	if _, _, err := v.VerifyMember(id.Meta, member, domain); err != nil && !errors.Is(err, certs.ErrExpired) && !errors.Is(err, certs.ErrNotYetValid) {
		return nil, fmt.Errorf("membership %s does not make %s identity %q (%s) a member of domain %s: %w; the domain operator issues it: gdp cert issue member --domain DOMAIN --member %s.meta --out FILE",
			f.member, role, f.identity, id.Name, domain.Name(), err, f.identity)
	}
	return &nodeCreds{ks: ks, id: id, member: member, domain: domain, verifier: v}, nil
}

// nodeCredentials is what the resolver's DHT node runs with.
func (c *nodeCreds) nodeCredentials() resolver.NodeCredentials {
	return resolver.NodeCredentials{Identity: c.id, Member: c.member, Domain: c.domain, Certs: c.verifier}
}

// withSkew sets v's certificate NotBefore tolerance from a config's
// clock_skew: 0 keeps certs.DefaultClockSkew, negative none. NotAfter is
// never stretched (certs.Verifier).
func withSkew(v *certs.Verifier, skew time.Duration) {
	if skew != 0 {
		v.Skew = max(skew, 0)
	}
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

// roleKeyKind is the key kind (gdp cert keygen --kind) of a role's identity.
func roleKeyKind(role string) string {
	switch role {
	case "router", "resolver":
		return role
	case "capsuled", "server":
		return "server"
	}
	return "client"
}
