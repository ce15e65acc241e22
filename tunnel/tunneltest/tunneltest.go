// Package tunneltest builds tunnel endpoints on emulated networks for tests
// and the in-process simulator: each node gets a QUIC and a raw socket on a
// tunnel/memnet network, so the real tunnel code runs over links with
// delay, loss, bandwidth and MTU.
package tunneltest

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"

	"github.com/gdpnet/gdpnet/tunnel"
	"github.com/gdpnet/gdpnet/tunnel/memnet"
)

// Ports every emulated node uses (each node has its own address).
const (
	QUICPort = 4433
	RawPort  = 4434
)

// NewIdentity makes a throwaway identity whose name is its key's name
// (tunnel.KeyName); pair it with tunnel.KeyNameVerifier. Use certs-based
// identities (tunnel.CertIdentity) when a test is about certificates.
func NewIdentity() (*tunnel.Identity, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	return &tunnel.Identity{Key: priv, Name: tunnel.KeyName(pub), Credentials: []byte("tunneltest")}, nil
}

// Endpoint starts an endpoint for the node at ip on n: cfg's Conn and Raw
// are replaced by memnet sockets at QUICPort and RawPort. A nil Identity is
// filled with NewIdentity, a nil Verify with KeyNameVerifier(nil).
func Endpoint(n *memnet.Network, ip netip.Addr, cfg tunnel.Config) (*tunnel.Endpoint, error) {
	if cfg.Identity == nil {
		id, err := NewIdentity()
		if err != nil {
			return nil, err
		}
		cfg.Identity = id
	}
	if cfg.Verify == nil {
		cfg.Verify = tunnel.KeyNameVerifier(nil)
	}
	q, err := n.Listen(netip.AddrPortFrom(ip, QUICPort), 0)
	if err != nil {
		return nil, fmt.Errorf("tunneltest: %w", err)
	}
	r, err := n.Listen(netip.AddrPortFrom(ip, RawPort), 0)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("tunneltest: %w", err)
	}
	cfg.Conn, cfg.Raw = q, r
	ep, err := tunnel.NewEndpoint(cfg)
	if err != nil {
		q.Close()
		r.Close()
		return nil, err
	}
	return ep, nil
}
