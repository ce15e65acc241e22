package resolver

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
)

// DHTConfig configures one DHT node. A node is in exactly one tier: a trust
// domain's DHT (Global false) or the federation's global DHT (Global true).
// The zero values of the optional fields are the documented defaults.
type DHTConfig struct {
	// Identity is the node's principal (a router or a resolver). Its
	// Ed25519 key is also the node's libp2p identity. Required.
	Identity *certs.Identity
	// Member is the node's membership certificate, issued by Domain.
	// Required: peers refuse a node that cannot show it.
	Member *certs.Cert
	Domain *certs.Metadata
	// Certs holds the trusted domains and the clock. Required. A domain
	// DHT admits and stores only its own domain's routers; the global DHT
	// admits members of every trusted domain.
	Certs *certs.Verifier
	// Global selects the global tier (border records, protocol prefix
	// /gdp/global) instead of the domain tier (location records, protocol
	// prefix /gdp/d/<domain name>).
	Global bool

	// Listen are libp2p multiaddrs. Default /ip4/127.0.0.1/udp/0/quic-v1.
	Listen []string
	// Bootstrap are peers to connect to at start, as multiaddrs ending in
	// /p2p/<peer id> (see DHT.Addrs). Empty for the first node.
	Bootstrap []string

	// Quorum is how many peers must answer a lookup before the best answer
	// is taken. Default 1 (the validator still checks every answer).
	Quorum int
	// MinPuts is how many peers a put must reach; Publish fails with
	// ErrFewPeers below min(MinPuts, peers found). Default 3.
	MinPuts int
	// PutTimeout bounds each remote put (and a publish's search for the
	// closest peers); a dial gets half of it. Default 5 s.
	PutTimeout time.Duration
	// RecordAge is kad-dht's MaxRecordAge: stored records older than this
	// are dropped whatever their validity. Default 1 h.
	RecordAge time.Duration
	// Republish is how often published records are put again. Must be
	// below RecordAge. Default RecordAge / 3.
	Republish time.Duration
	// RenewBefore: a record this close to its expiry is renewed through
	// Renew (if set) at the next republish instead of being put again.
	// Default 2 × Republish.
	RenewBefore time.Duration
	// Renew returns a fresh record (renewed certificates) for old, or an
	// error to let it expire. Optional.
	Renew func(ctx context.Context, old *Record) (*Record, error)

	// MaxRecordsPerRouter bounds, at this node, the names holding an
	// entry of any one router (the router a record points at): beyond it
	// that router's entries for new names are dropped, counted as
	// gdp_resolver_records_refused_total{reason="router_quota"}. Set it at
	// least to the names one router announces (its FIB share). Default
	// 100,000. Negative: unlimited. The node's own router is not bounded.
	MaxRecordsPerRouter int
	// MaxRecordsPerDomain bounds, at this node, the entries of all the
	// routers of one domain other than the node's own (Domain) together,
	// counted as gdp_resolver_records_refused_total{reason=
	// "domain_quota"}: a trusted domain's operator mints routers at will,
	// and each would get its own MaxRecordsPerRouter. Default 1,000,000.
	// Negative: unlimited.
	MaxRecordsPerDomain int
	// StoreSweep is how often the node deletes stored record sets older
	// than RecordAge and drops expired entries (certificates or record
	// expiry passed), so a departed router's records go away. Default
	// the smaller of 1 min and RecordAge / 4.
	StoreSweep time.Duration

	// HandshakeTimeout bounds the membership handshake on a new connection;
	// a peer that has not proved membership by then is disconnected.
	// Default 5 s.
	HandshakeTimeout time.Duration
	// BootstrapTimeout is how long NewDHT keeps trying its bootstrap peers
	// when a round admitted none of them (all are dialled at once each
	// round; rounds 1 s apart, doubling to 8 s). Default 0: one round,
	// failing at once. Peers that start together (the simulator's netns
	// mode) set it so that a slow or busy seed is waited for.
	BootstrapTimeout time.Duration
	// BootstrapKeepalive is how often the node checks each bootstrap
	// peer while it runs: a ping over the open connection (a peer that
	// restarted answers with a QUIC stateless reset, closing it at once)
	// and, when not connected, a redial (backoff 1 s doubling to 8 s), so
	// a restarted first node — a `gdp resolver` with no bootstrap peers of
	// its own — gets its routing table back within about this long.
	// Default 1 s with JoinRefresh; 0 (off) with JoinSeeded, whose
	// bootstrap lists are the routing table, not infrastructure. Negative:
	// off.
	BootstrapKeepalive time.Duration
	// Join is how the node joins at start: JoinRefresh (default) dials
	// the bootstrap peers, then runs kad-dht's routing table refresh (a
	// lookup of its own key and one per bucket: on a DHT of a hundred
	// nodes that dials most of them, each a QUIC and TLS handshake and a
	// membership proof both ways); JoinSeeded dials the bootstrap peers
	// only, and they are the table: list the node's nearest known nodes
	// in the key space and a few farther ones (the simulator lists the 8
	// nearest and one per bucket). Either way the refresh every
	// RefreshInterval runs.
	Join string
	// RefreshInterval is how often the routing table is refreshed (a
	// lookup per bucket last refreshed longer ago). Default 10 min,
	// kad-dht's own.
	RefreshInterval time.Duration
	// DenyFor is how long a peer that failed the handshake is refused.
	// Default 1 min.
	DenyFor time.Duration
	// MaxDenied bounds the peers refused at once (each for DenyFor):
	// beyond it one is forgotten early for each new one (Session 19; a
	// flood of fresh peer ids with bad memberships grew the list without
	// limit), counted in gdp_resolver_denied_evicted_total. Default 4096.
	MaxDenied int
	// MemberSweep is how often the memberships of connected peers are
	// checked: a peer whose membership expired is dropped from the routing
	// table and disconnected (it may come back with a renewed one).
	// Default 1 s.
	MemberSweep time.Duration
	// BucketSize is the Kademlia k (replication factor). Default 20.
	BucketSize int
	// Concurrency is the Kademlia α, queries in flight per lookup. Every
	// answer carrying a record costs a chain verification, so a small α
	// keeps lookups cheap on a loaded node. Default 3.
	Concurrency int

	// HostOptions are extra libp2p options appended to the node's own
	// (identity, QUIC and TCP transports, gate, dial timeout). The
	// simulator uses them to run the QUIC transport over its emulated
	// network (quicreuse.OverrideListenUDP) and to turn the resource
	// manager off; a deployment leaves them empty. An option the node
	// sets itself (a second transport, gater or identity) is an error
	// from libp2p.
	HostOptions []libp2p.Option
	// KadOptions are extra kad-dht options appended to the node's own
	// (the simulator turns kad-dht's automatic routing table refresh off:
	// it builds the tables itself). A deployment leaves them empty.
	KadOptions []kad.Option

	// Logger receives the node's logs. Default zap.NewNop().
	Logger *zap.Logger
	// Registerer, when set, gets the node's Prometheus collectors.
	Registerer prometheus.Registerer

	// trustOwnProof skips checking the node's own proof (tests build
	// intruders with it).
	trustOwnProof bool
}

// The joins (DHTConfig.Join, the resolver YAML's join).
const (
	// JoinRefresh: the bootstrap peers, then a full routing table refresh.
	JoinRefresh = "refresh"
	// JoinSeeded: the bootstrap peers only, no refresh at start.
	JoinSeeded = "seeded"
)

// DefaultRefreshInterval is kad-dht's routing table refresh period.
const DefaultRefreshInterval = 10 * time.Minute

func (c *DHTConfig) populate() error {
	if c.Identity == nil || c.Identity.Meta == nil || len(c.Identity.Key) == 0 {
		return fmt.Errorf("dht config: identity is required")
	}
	if c.Member == nil || c.Domain == nil {
		return fmt.Errorf("dht config: membership certificate and domain metadata are required")
	}
	if c.Certs == nil {
		return fmt.Errorf("dht config: trusted domains (Certs) are required")
	}
	if len(c.Listen) == 0 {
		c.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	if c.Quorum <= 0 {
		c.Quorum = 1
	}
	if c.MinPuts <= 0 {
		c.MinPuts = 3
	}
	if c.PutTimeout <= 0 {
		c.PutTimeout = 5 * time.Second
	}
	if c.RecordAge <= 0 {
		c.RecordAge = time.Hour
	}
	if c.Republish <= 0 {
		c.Republish = c.RecordAge / 3
	}
	if c.Republish >= c.RecordAge {
		return fmt.Errorf("dht config: republish interval %s must be below the record age %s", c.Republish, c.RecordAge)
	}
	if c.RenewBefore <= 0 {
		c.RenewBefore = 2 * c.Republish
	}
	if c.MaxRecordsPerRouter == 0 {
		c.MaxRecordsPerRouter = DefaultMaxRecordsPerRouter
	}
	if c.MaxRecordsPerDomain == 0 {
		c.MaxRecordsPerDomain = DefaultMaxRecordsPerDomain
	}
	if c.StoreSweep <= 0 {
		c.StoreSweep = min(time.Minute, c.RecordAge/4)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	switch c.Join {
	case "":
		c.Join = JoinRefresh
	case JoinRefresh, JoinSeeded:
	default:
		return fmt.Errorf("dht config: join %q: want %s or %s", c.Join, JoinRefresh, JoinSeeded)
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.BootstrapKeepalive == 0 && c.Join == JoinRefresh {
		c.BootstrapKeepalive = time.Second
	}
	if c.DenyFor <= 0 {
		c.DenyFor = time.Minute
	}
	if c.MemberSweep <= 0 {
		c.MemberSweep = time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 3
	}
	if c.BucketSize <= 0 {
		c.BucketSize = 20
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}
