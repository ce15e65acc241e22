package resolver

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gdpnet/gdpnet/certs"
	wallclock "github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// MembershipProof is what a node shows to be admitted to a DHT: its
// metadata (whose key is its libp2p identity), its membership certificate
// and the issuing domain's metadata.
type MembershipProof struct {
	Meta   *certs.Metadata
	Member *certs.Cert
	Domain *certs.Metadata
}

type wireProof struct {
	Meta   []byte `cbor:"1,keyasint"`
	Member []byte `cbor:"2,keyasint"`
	Domain []byte `cbor:"3,keyasint"`
}

const maxProofSize = 4096

func (p *MembershipProof) marshal() ([]byte, error) {
	if p == nil || p.Meta == nil || p.Member == nil || p.Domain == nil {
		return nil, fmt.Errorf("membership proof: %w: incomplete", ErrMalformed)
	}
	return codec.Marshal(wireProof{Meta: p.Meta.Marshal(), Member: p.Member.Marshal(), Domain: p.Domain.Marshal()})
}

func parseProof(b []byte) (*MembershipProof, error) {
	var w wireProof
	if err := codec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("membership proof: %w: %v", ErrMalformed, err)
	}
	var p MembershipProof
	var err error
	if p.Meta, err = certs.ParseMetadata(w.Meta); err != nil {
		return nil, fmt.Errorf("membership proof: metadata: %w", err)
	}
	if p.Member, err = certs.ParseCert(w.Member); err != nil {
		return nil, fmt.Errorf("membership proof: certificate: %w", err)
	}
	if p.Domain, err = certs.ParseMetadata(w.Domain); err != nil {
		return nil, fmt.Errorf("membership proof: domain: %w", err)
	}
	return &p, nil
}

// gate admits only peers that proved membership. It is the host's
// ConnectionGater (refusing peers that recently failed to prove it), the
// DHT's routing-table filter, and the check on every inbound DHT stream
// before kad-dht reads it (DHT.gated).
//
// Why a handshake rather than a check inside the TLS/Noise handshake: libp2p
// authenticates the peer's key but carries no certificates, so the
// membership proof travels on a small protocol right after the connection
// is secured. Until it arrives the peer is kept out of the routing table
// and its DHT streams wait (briefly) and are then reset unread; a peer that does
// not prove membership in time is disconnected and refused for DenyFor.
type gate struct {
	trust   atomic.Pointer[certs.Verifier] // the trusted domains; swapped by retrust
	domain  pdu.Name                       // admitted domain; zero = any trusted domain
	denyFor time.Duration
	// maxDenied bounds denied: peer ids cost nothing to make, and each
	// one that fails the handshake would otherwise be remembered for
	// denyFor, so a flood of fresh ids grew the map without limit.
	maxDenied int
	now       func() time.Time

	mu       sync.Mutex
	verified map[peer.ID]admitted
	denied   map[peer.ID]time.Time
	changed  chan struct{} // closed and replaced when verified or denied changes
	// lastSweep is when a full denied was last swept of ended refusals
	// (at most once a second: the sweep walks the whole map).
	lastSweep time.Time
}

// defaultMaxDenied is DHTConfig.MaxDenied's default.
const defaultMaxDenied = 4096

type admitted struct {
	name   pdu.Name
	domain pdu.Name
	until  time.Time
}

func newGate(v *certs.Verifier, domain pdu.Name, denyFor time.Duration, maxDenied int) *gate {
	now := wallclock.Now
	if v.Now != nil {
		now = v.Now
	}
	if maxDenied <= 0 {
		maxDenied = defaultMaxDenied
	}
	g := &gate{domain: domain, denyFor: denyFor, maxDenied: maxDenied, now: now,
		verified: map[peer.ID]admitted{}, denied: map[peer.ID]time.Time{}, changed: make(chan struct{})}
	g.trust.Store(v)
	return g
}

// errNotAdmitted is why a proof was refused (wrapped with the detail).
var errNotAdmitted = errors.New("not admitted")

// check verifies proof for the peer whose libp2p key is pub.
func (g *gate) check(pub []byte, p *MembershipProof) (admitted, error) {
	return g.checkWith(g.trust.Load(), pub, p)
}

// checkWith is check against the trusted domains of v (a reload's
// candidate, before it is swapped in).
func (g *gate) checkWith(v *certs.Verifier, pub []byte, p *MembershipProof) (admitted, error) {
	if p.Meta.Kind != certs.KindRouter && p.Meta.Kind != certs.KindResolver {
		return admitted{}, fmt.Errorf("%w: node kind %v", errNotAdmitted, p.Meta.Kind)
	}
	if !ed25519.PublicKey(pub).Equal(p.Meta.Key) {
		return admitted{}, fmt.Errorf("%w: metadata key is not the connection's key", errNotAdmitted)
	}
	dom, until, err := v.VerifyMember(p.Meta, p.Member, p.Domain)
	if err != nil {
		return admitted{}, fmt.Errorf("%w: %w", errNotAdmitted, err)
	}
	if !g.domain.IsZero() && dom != g.domain {
		return admitted{}, fmt.Errorf("%w: member of domain %s, not %s", errNotAdmitted, dom, g.domain)
	}
	return admitted{name: p.Meta.Name(), domain: dom, until: until}, nil
}

// retrust swaps in the trusted domains of v (a reload): the peers refused
// under the old trust may try again at once, and the admitted peers of a
// domain v no longer trusts are forgotten and returned, so that their
// owner disconnects them.
func (g *gate) retrust(v *certs.Verifier) []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trust.Store(v)
	var out []peer.ID
	for p, a := range g.verified {
		if v.Trusted[a.domain] == nil {
			delete(g.verified, p)
			out = append(out, p)
		}
	}
	clear(g.denied)
	close(g.changed)
	g.changed = make(chan struct{})
	return out
}

func (g *gate) admit(p peer.ID, a admitted) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.verified[p] = a
	delete(g.denied, p)
	close(g.changed)
	g.changed = make(chan struct{})
}

// deny refuses p for the gate's DenyFor, or for d when d > 0. When the
// refused peers already number maxDenied, the ended refusals are swept
// (at most once a second) and, if that frees nothing, one refused peer is
// forgotten early (an arbitrary one: Go's map order) to make room; deny
// reports that (evicted), which the owner counts. A peer forgotten early
// may dial again before its DenyFor ends and is refused again if its proof
// still fails: the bound costs handshakes, not admissions.
func (g *gate) deny(p peer.ID, d time.Duration) (evicted bool) {
	if d <= 0 {
		d = g.denyFor
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.verified, p)
	now := g.now()
	if _, ok := g.denied[p]; !ok && len(g.denied) >= g.maxDenied {
		if now.Sub(g.lastSweep) >= time.Second {
			g.lastSweep = now
			for q, until := range g.denied {
				if !now.Before(until) {
					delete(g.denied, q)
				}
			}
		}
		if len(g.denied) >= g.maxDenied {
			for q := range g.denied {
				delete(g.denied, q)
				evicted = true
				break
			}
		}
	}
	g.denied[p] = now.Add(d)
	close(g.changed)
	g.changed = make(chan struct{})
	return evicted
}

// isVerified reports whether p proved a membership that is still valid.
// An expired entry stays until expire collects it, so that its owner
// learns of it and disconnects the peer (were it deleted here, by a
// request that happened to come first, the peer would stay connected and
// in the routing table).
func (g *gate) isVerified(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.verified[p]
	return ok && g.now().Before(a.until)
}

// expire forgets the peers whose proven membership has run out and
// returns them, so that their owner can disconnect them.
func (g *gate) expire() []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var out []peer.ID
	for p, a := range g.verified {
		if !now.Before(a.until) {
			delete(g.verified, p)
			out = append(out, p)
		}
	}
	if len(out) > 0 {
		close(g.changed)
		g.changed = make(chan struct{})
	}
	return out
}

// deniedPeers returns the peers refused now (forgetting those whose
// refusal ran out, as isDenied does).
func (g *gate) deniedPeers() []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var out []peer.ID
	for p, until := range g.denied {
		if !now.Before(until) {
			delete(g.denied, p)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (g *gate) isDenied(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.denied[p]
	if ok && !g.now().Before(until) {
		delete(g.denied, p)
		return false
	}
	return ok
}

// wait blocks until p is verified (true), denied or ctx ends (false).
func (g *gate) wait(ctx context.Context, p peer.ID) bool {
	for {
		g.mu.Lock()
		_, ok := g.verified[p]
		_, denied := g.denied[p]
		ch := g.changed
		g.mu.Unlock()
		if ok {
			return g.isVerified(p)
		}
		if denied {
			return false
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.verified)
}

// ConnectionGater: refuse peers that failed to prove membership recently.

func (g *gate) InterceptPeerDial(p peer.ID) bool                 { return !g.isDenied(p) }
func (g *gate) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.isDenied(p) }
func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.isDenied(p)
}
func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func readAllLimited(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}
