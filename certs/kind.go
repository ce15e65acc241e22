package certs

import (
	"fmt"

	"github.com/gdpnet/gdpnet/pdu"
)

// Name is a principal's 256-bit name: SHA-256 of its canonical metadata.
type Name = pdu.Name

// Kind is the kind of principal a Metadata describes.
type Kind uint8

// Principal kinds. The numbers are on the wire (metadata key 1).
const (
	KindCapsule  Kind = 1 // a DataCapsule: Key is the owner key, WriterKey signs records
	KindRouter   Kind = 2
	KindServer   Kind = 3 // a capsule server
	KindClient   Kind = 4 // a user, application or gateway
	KindAgent    Kind = 5 // a VM handoff agent
	KindDomain   Kind = 6 // a trust domain: signs membership certs
	KindResolver Kind = 7
)

var kindNames = [...]string{
	KindCapsule:  "capsule",
	KindRouter:   "router",
	KindServer:   "server",
	KindClient:   "client",
	KindAgent:    "agent",
	KindDomain:   "domain",
	KindResolver: "resolver",
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindCapsule && k <= KindResolver }

func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind parses the String form ("router", "server", ...).
func ParseKind(s string) (Kind, error) {
	for k := KindCapsule; k <= KindResolver; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown kind %q: want capsule, router, server, client, agent, domain or resolver", s)
}

// canEndpoint: kinds that may attach to a router and sign an RtCert. A
// capsule has no node of its own and a domain only signs memberships.
func (k Kind) canEndpoint() bool { return k.Valid() && k != KindCapsule && k != KindDomain }

// CertKind is the kind of a certificate.
type CertKind uint8

// Certificate kinds. The numbers are on the wire (cert payload key 1).
const (
	KindAdCert CertKind = 1 // capsule owner -> server
	KindRtCert CertKind = 2 // endpoint -> router
	KindMember CertKind = 3 // trust domain -> member node
)

// Valid reports whether k is a known certificate kind.
func (k CertKind) Valid() bool { return k >= KindAdCert && k <= KindMember }

func (k CertKind) String() string {
	switch k {
	case KindAdCert:
		return "adcert"
	case KindRtCert:
		return "rtcert"
	case KindMember:
		return "member"
	}
	return fmt.Sprintf("certkind(%d)", uint8(k))
}

// ParseCertKind parses "adcert", "rtcert" or "member".
func ParseCertKind(s string) (CertKind, error) {
	for k := KindAdCert; k <= KindMember; k++ {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown certificate kind %q: want adcert, rtcert or member", s)
}
