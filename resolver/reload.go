package resolver

import (
	"fmt"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/logging"
)

// ownProof is the membership a DHT node shows its peers, as certificate
// and as the wire proof.
type ownProof struct {
	member *certs.Cert
	wire   []byte
}

// Reload replaces the node's membership certificate (a renewal, on
// SIGHUP): peers get the new proof from the next handshake on, and border
// records are signed with it. The certificate must pass the node's own
// gate. Trusted domains and listen addresses change on restart only.
func (d *DHT) Reload(member *certs.Cert) error {
	own := &MembershipProof{Meta: d.cfg.Identity.Meta, Member: member, Domain: d.cfg.Domain}
	if _, err := d.gate.check(d.cfg.Identity.Meta.Key, own); err != nil {
		return fmt.Errorf("dht: own membership: %w", err)
	}
	wire, err := own.marshal()
	if err != nil {
		return err
	}
	d.own.Store(&ownProof{member: member, wire: wire})
	d.log.Info("membership reloaded", logging.Expiry(member.NotAfter))
	return nil
}

// Reload gives every DHT node of s (the domain's, and the global one on a
// border) the renewed membership.
func (s *Service) Reload(member *certs.Cert) error {
	for _, d := range []*DHT{s.Local, s.Global} {
		if d == nil {
			continue
		}
		if err := d.Reload(member); err != nil {
			return err
		}
	}
	return nil
}
