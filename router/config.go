package router

import (
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Config is the router's configuration (deploy/router.yaml). Every field's
// zero value means the default stated in its comment, so the zero Config is
// a working single router. Config holds no runtime state; New copies it.
type Config struct {
	// Listen is the UDP address of the QUIC tunnel socket.
	// Default "[::]:8009".
	Listen string `yaml:"listen"`
	// RawListen is the UDP address of the raw GDP-in-UDP socket (the fast
	// path between routers). Default: none (raw links disabled); set e.g.
	// "[::]:8010".
	RawListen string `yaml:"raw_listen"`
	// Addrs are the underlay addresses ("ip:port") other routers may dial,
	// published in location records. Default: Listen when it names a
	// specific IP; a router behind NAT lists its public address here or
	// relies on its upstream. gdp router resolves a host:port here to
	// ip:port once at start (Session 20); New takes them as given.
	Addrs []string `yaml:"addrs"`

	// StateDir holds what the router keeps across restarts: the floor of
	// its location records' sequence numbers (file "sequence-NAME", NAME
	// the router's name, written atomically before a sequence above it is
	// used), so that a router restarted with its clock set back publishes
	// records that supersede its previous run's instead of ones the
	// resolver refuses as stale until the old ones expire. Created (0700)
	// if missing. Default for `gdp router`: the directory "router" beside
	// the keystore (/var/lib/gdp/router with the default keystore); a
	// program that embeds a Router with this field empty keeps the floor
	// in memory only.
	StateDir string `yaml:"state_dir"`

	// Keystore is the directory holding the router's key (certs.Keystore).
	// Default "/var/lib/gdp/keys".
	Keystore string `yaml:"keystore"`
	// Identity is the keystore alias of the router's key. Default "router".
	Identity string `yaml:"identity"`
	// MemberCert is the file holding the router's membership certificate
	// in its domain. Default "/etc/gdp/router.member".
	MemberCert string `yaml:"member_cert"`
	// Domain is the file holding the router's domain metadata. Default
	// "/etc/gdp/domain.meta".
	Domain string `yaml:"domain"`
	// TrustedDomains are files of domain metadata whose members' routes and
	// routers are believed. Default: only Domain.
	TrustedDomains []string `yaml:"trusted_domains"`
	// ClockSkew is how far ahead of this router's clock a certificate's
	// NotBefore may lie and still be taken (the issuer's clock runs ahead,
	// or this one behind); NotAfter is never stretched. Default 5m
	// (certs.DefaultClockSkew, as advertise.clock_window); a YAML duration
	// cannot be negative (narrow it, e.g. 1s, rather than switch it off).
	ClockSkew config.Duration `yaml:"clock_skew"`
	// AllowDomains restricts which trusted domains traffic may cross
	// (printable names): a peer router or an endpoint whose membership is
	// in a trusted domain not listed gets no face (its tunnel is closed,
	// counted in gdp_router_faces_refused_total{reason="forbidden_domain"}),
	// and lookups into it are refused. The router's own domain is always
	// allowed. A reload that narrows the list closes the faces it no longer
	// allows. Default: every trusted domain.
	AllowDomains []pdu.Name `yaml:"allow_domains"`

	// Peers are routers to keep a tunnel to at all times (redialled with
	// backoff). Default none.
	Peers []PeerConfig `yaml:"peers"`
	// Upstream is the name of a peer (from Peers) that takes every name
	// this router cannot reach directly: the router of an edge site behind
	// NAT. Default none.
	Upstream *pdu.Name `yaml:"upstream"`
	// DialOnDemand lets the router open tunnels to routers it learns from
	// the resolver. Default true.
	DialOnDemand *bool `yaml:"dial_on_demand"`

	// MaxPDU is the largest PDU accepted; larger ones get NAK TOO_BIG.
	// Default 65,787 (pdu.MaxPDU).
	MaxPDU int `yaml:"max_pdu"`
	// FIBSize bounds the number of names in the FIB. Default 1,000,000.
	FIBSize int `yaml:"fib_size"`

	// Tunnel says how soon a dead tunnel (peer router or endpoint) is
	// noticed.
	Tunnel TunnelConfig `yaml:"tunnel"`

	Face      FaceConfig      `yaml:"face"`
	Dedup     DedupConfig     `yaml:"dedup"`
	Resolver  ResolverConfig  `yaml:"resolver"`
	Advertise AdvertiseConfig `yaml:"advertise"`

	// Admin is the address of the admin HTTP API and /metrics. Default
	// "127.0.0.1:8019". "off" disables it.
	Admin string `yaml:"admin"`
	// DrainTimeout bounds the graceful drain on SIGTERM. Default 5s.
	DrainTimeout config.Duration `yaml:"drain_timeout"`
	// Tick is the housekeeping period (Deps.Tick): the duplicate window's
	// and route expiry's clocks advance this often. Default 50ms; at
	// least 1ms. Coarser costs less idle CPU (every tick wakes the
	// process) and checks expiry to the tick: the simulator's netns mode
	// runs its router processes at 500ms above 64 routers.
	Tick config.Duration `yaml:"tick"`
	// Log selects level and format. Default info, json.
	Log logging.Config `yaml:"log"`
}

// PeerConfig is a statically configured peer router.
type PeerConfig struct {
	// Name is the peer router's name. Required.
	Name pdu.Name `yaml:"name"`
	// Addr is its tunnel address "ip:port". Required.
	Addr string `yaml:"addr"`
	// Raw asks for a raw GDP-in-UDP link (both need raw_listen). Default
	// false: QUIC.
	Raw bool `yaml:"raw"`
}

// TunnelConfig is the liveness of tunnels: an idle tunnel sends a QUIC
// PING every KeepAlive and is closed after IdleTimeout without a packet
// from the peer, and its routes go with it. A peer that restarts is
// noticed sooner than that: its new process answers with a QUIC stateless
// reset. The capsule server and the CLI take the same block.
type TunnelConfig struct {
	// KeepAlive is how often an idle tunnel is probed. Default 1s.
	KeepAlive config.Duration `yaml:"keepalive"`
	// IdleTimeout is how long a silent peer is believed alive; at least
	// twice KeepAlive. Default 5s.
	IdleTimeout config.Duration `yaml:"idle_timeout"`
	// RetryAboveHandshakes: while at least this many incoming QUIC
	// handshakes are in flight, a new client that has not proved its
	// source address is sent a Retry first (RFC 9000 §8.1.2), so spoofed
	// first flights cannot make the listener an amplifier (its handshake
	// answer is ~3× a first flight; a Retry is a tenth). Honest clients
	// pay one round trip more. Counted in gdp_tunnel_retries_total.
	// Default 16 (tunnel.DefaultRetryAboveHandshakes); negative: always.
	RetryAboveHandshakes int `yaml:"retry_above_handshakes"`
	// CountDatagramDrops counts the QUIC datagrams quic-go discards
	// because a tunnel's receive queue (128) was full — the node read it
	// slower than PDUs came — in gdp_tunnel_drops_total{reason=
	// "datagram_queue"} (Session 16). Default false: it builds a qlog
	// event for every QUIC packet, about half the datagram PDUs a QUIC
	// tunnel carries per CPU second; turn it on to explain loss under
	// load (restart).
	CountDatagramDrops bool `yaml:"count_datagram_drops"`
}

// WithDefaults fills the zero fields.
func (t TunnelConfig) WithDefaults() TunnelConfig {
	if t.KeepAlive <= 0 {
		t.KeepAlive = config.Duration(tunnel.DefaultKeepAlive)
	}
	if t.IdleTimeout <= 0 {
		t.IdleTimeout = config.Duration(tunnel.DefaultIdleTimeout)
	}
	if t.RetryAboveHandshakes == 0 {
		t.RetryAboveHandshakes = tunnel.DefaultRetryAboveHandshakes
	}
	return t
}

// Validate refuses an idle timeout a keepalive cannot hold open.
func (t TunnelConfig) Validate() error {
	t = t.WithDefaults()
	if t.IdleTimeout < 2*t.KeepAlive {
		return fmt.Errorf("tunnel.idle_timeout %s must be at least twice tunnel.keepalive %s", t.IdleTimeout.Std(), t.KeepAlive.Std())
	}
	return nil
}

// FaceConfig bounds what one face may cost the router.
type FaceConfig struct {
	// RatePPS is the most PDUs per second accepted from one face; more are
	// dropped (rate_limited) and NAKed. Default 200,000. Negative:
	// unlimited.
	RatePPS float64 `yaml:"rate_pps"`
	// Burst is how many PDUs above the rate a face may send at once.
	// Default 20,000.
	Burst int `yaml:"burst"`
	// NAKRate is the most NAKs per second sent to one face. Default 200.
	NAKRate float64 `yaml:"nak_rate"`
	// NAKBurst default 50.
	NAKBurst int `yaml:"nak_burst"`
	// Queue bounds the PDUs waiting to be sent on one face; more are
	// dropped (queue_full). Default 4,096. Past half of Queue or
	// QueueBytes, the queue is split between the identities whose PDUs
	// wait in it (quota reason "queue_share", docs/OPERATIONS.md §3.5).
	Queue int `yaml:"queue"`
	// QueueBytes bounds the bytes of the PDUs waiting to be sent on one
	// face, so a peer that never reads cannot make the router hold Queue
	// full-size PDUs (~256 MiB); more are dropped queue_full
	// (gdp_router_quota_refusals_total{reason="queue_bytes"}). Default
	// 8 MiB. Negative: only Queue bounds it.
	QueueBytes int `yaml:"queue_bytes"`
	// MaxPDUStreams bounds the QUIC streams (one PDU too large for a
	// datagram each, up to 64 KiB) a peer may have open on one tunnel at
	// once; one that does not end within 10 s is reset
	// (gdp_tunnel_drops_total{reason="stream_timeout"}). Default 16. The
	// router takes no bulk streams: a peer gets no credit to open one.
	MaxPDUStreams int `yaml:"max_pdu_streams"`
	// ReceiveWindow bounds the bytes a peer may have sent on one tunnel's
	// streams that the router has not read yet (QUIC flow control).
	// Default 2 MiB.
	ReceiveWindow int `yaml:"receive_window"`
	// MaxPerIdentity bounds the faces (tunnels) one identity — the peer
	// name its certificate proves — may have attached at once; a further
	// tunnel is closed at once (gdp_router_quota_refusals_total
	// {reason="tunnels_per_identity"}). Default 8. Negative: unlimited.
	MaxPerIdentity int `yaml:"max_per_identity"`
	// MaxPerDomain bounds the faces the identities of one other domain
	// (one the policy allows, not this router's own) may have attached at
	// once, all together: that domain's operator can mint identities at
	// will, each with fresh per-identity shares, and this bounds them all
	// (a share lives only while its identity has a face). A further
	// tunnel is closed at once (gdp_router_quota_refusals_total
	// {reason="tunnels_per_domain"}). Default 1,024. Negative: unlimited.
	MaxPerDomain int `yaml:"max_per_domain"`
}

// DedupConfig tunes duplicate suppression.
type DedupConfig struct {
	// Disabled turns duplicate suppression off (TTL alone then bounds
	// loops). Default false.
	Disabled bool `yaml:"disabled"`
	// Slots is the size of the table (memory: 8 bytes a slot; from 2 MiB
	// on Linux a mapping on transparent huge pages, resident as traffic
	// touches it). Default 1,048,576.
	Slots int `yaml:"slots"`
	// Window is how long a PDU is remembered. Default 2s.
	Window config.Duration `yaml:"window"`
}

// ResolverConfig is the resolver the router embeds (resolver.Open) and
// what happens on a FIB miss.
type ResolverConfig struct {
	// Config is the embedded resolver, the same keys as the resolver:
	// block of deploy/resolver.yaml (mode, listen, bootstrap, global,
	// borders, quorum, min_puts, record_age, republish, handshake_timeout,
	// cache). Mode static (the default) is an in-memory resolver inside
	// this router: enough for a single router, or routers joined only by
	// peers and upstreams. Mode dht makes the router a node of its
	// domain's DHT, federated when global or borders is set. Defaults as
	// in resolver.Config, except: listen in mode dht
	// ["/ip4/0.0.0.0/udp/8011/quic-v1"] (other routers must reach it), and
	// cache.max_age 30s (a name may move before its record expires).
	resolver.Config `yaml:",inline"`
	// Workers is how many lookups run at once. Default 8.
	Workers int `yaml:"workers"`
	// Timeout bounds one lookup (and an on-demand dial). Default 3s.
	Timeout config.Duration `yaml:"timeout"`
	// MaxWaiting bounds the PDUs parked while lookups run. Default 4,096.
	MaxWaiting int `yaml:"max_waiting"`
	// MaxWaitingPerName bounds the PDUs parked for one name. Default 64.
	MaxWaitingPerName int `yaml:"max_waiting_per_name"`
	// MaxWaitingPerIdentity bounds the PDUs one identity (all its faces)
	// may have parked while lookups run; more are dropped queue_full
	// (gdp_router_quota_refusals_total{reason="resolve_queue"}). Lookups
	// are taken from each identity in turn, so one identity's flood to
	// random names does not starve another's first contact. Default 1,024.
	// Negative: unlimited.
	MaxWaitingPerIdentity int `yaml:"max_waiting_per_identity"`
	// NegativeTTL is how long a failed lookup is remembered. Default 5s.
	NegativeTTL config.Duration `yaml:"negative_ttl"`
	// NegativeCacheSize bounds the negative cache. Default 65,536.
	NegativeCacheSize int `yaml:"negative_cache_size"`
	// PublishQueuePerIdentity bounds the location records (publish or
	// withdraw jobs) of one identity waiting for the resolver. Identities
	// are served in turn, and a failed job is retried until it succeeds
	// or is replaced; an advertisement that would exceed the bound is
	// refused rate_limited (gdp_router_quota_refusals_total
	// {reason="publish_queue"}), never accepted and then dropped.
	// Withdrawals are never refused. Default 4,096. Negative: unlimited.
	PublishQueuePerIdentity int `yaml:"publish_queue_per_identity"`
	// RouteCacheTTL is how long a learned route is used before the
	// resolver is asked again (it also ends with the record). Default 30s.
	RouteCacheTTL config.Duration `yaml:"route_cache_ttl"`
}

// AdvertiseConfig tunes attachment.
type AdvertiseConfig struct {
	// MaxNamesPerFace bounds the names one endpoint may hold. Default
	// 100,000.
	MaxNamesPerFace int `yaml:"max_names_per_face"`
	// MaxNamesPerIdentity bounds the names one identity may hold at this
	// router, counted across all its faces, so several tunnels do not buy
	// more of the FIB; beyond it names are refused identity_quota
	// (gdp_router_quota_refusals_total{reason="identity_quota"}). Default
	// 100,000. Negative: unlimited.
	MaxNamesPerIdentity int `yaml:"max_names_per_identity"`
	// MaxNamesPerDomain bounds the names the identities of one other
	// domain (not this router's own) may hold at this router, all
	// together, so a domain minting identities does not buy more of the
	// FIB; beyond it names are refused identity_quota
	// (gdp_router_quota_refusals_total{reason="domain_quota"}). Each
	// identity's first MaxNamesPerDomain / face.max_per_domain names are
	// never refused for the domain's total (one member filling it does not
	// shut the others out), so the domain holds at most twice this.
	// Default 100,000. Negative: unlimited.
	MaxNamesPerDomain int `yaml:"max_names_per_domain"`
	// ClockWindow is how far an advertisement's sequence (the endpoint's
	// clock) may be from the router's. Default 5m.
	ClockWindow config.Duration `yaml:"clock_window"`
	// Rate bounds the names per second one identity may have verified
	// (three signature checks each), shared by all its faces; beyond it
	// names are refused rate_limited. Default 1,000. Negative: unlimited.
	Rate float64 `yaml:"rate"`
	// Burst is how many names above the rate may be verified at once, e.g.
	// when a server attaches with many capsules. Default 5,000.
	Burst int `yaml:"burst"`
	// DomainRate bounds the names per second the identities of one other
	// domain (not this router's own) may have verified, all together:
	// that domain's operator mints identities at will, each with a fresh
	// Rate, so without it a domain's identities could spend every core on
	// signature checks. Beyond it names are refused rate_limited
	// (gdp_router_quota_refusals_total{reason="domain_rate"}); the domain's
	// members share it, and once it is spent each still has a floor of
	// DomainRate / face.max_per_domain names/s (burst DomainBurst /
	// face.max_per_domain; none below one name), so the domain verifies at
	// most twice this. Default 2,000 (Session 13). Negative: unlimited.
	DomainRate float64 `yaml:"domain_rate"`
	// DomainBurst is how many names above DomainRate one other domain may
	// have verified at once (its members re-attaching after a restart).
	// Default 10,000.
	DomainBurst int `yaml:"domain_burst"`
	// MaxPublishWait caps how long the router holds the answer to an
	// ADVERTISE that asks to wait until its names' location records are in
	// the resolver (a capsule server answering CREATE, PROTOCOL.md §5.4);
	// names not published by then are answered pending
	// (gdp_router_publish_waits_total{result="pending"}). Default 15s.
	MaxPublishWait config.Duration `yaml:"max_publish_wait"`
	// MaxPublishWaitsPerIdentity bounds the ADVERTISEs of one identity
	// waiting for their records at once; beyond it the names are answered
	// pending at once (gdp_router_quota_refusals_total
	// {reason="publish_waits"}). Default 64. Negative: unlimited.
	MaxPublishWaitsPerIdentity int `yaml:"max_publish_waits_per_identity"`
}

// DefaultDHTListen is where a router's DHT node listens in mode dht unless
// resolver.listen says otherwise: every address, since the other routers
// and resolvers of the domain must reach it.
const DefaultDHTListen = "/ip4/0.0.0.0/udp/8011/quic-v1"

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *config.Duration, v time.Duration) {
		if *p == 0 {
			*p = config.Duration(v)
		}
	}
	def(&c.Listen, "[::]:8009")
	def(&c.Keystore, "/var/lib/gdp/keys")
	def(&c.Identity, "router")
	def(&c.MemberCert, "/etc/gdp/router.member")
	def(&c.Domain, "/etc/gdp/domain.meta")
	def(&c.Admin, "127.0.0.1:8019")
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "json")
	if c.DialOnDemand == nil {
		t := true
		c.DialOnDemand = &t
	}
	defInt(&c.MaxPDU, pdu.MaxPDU)
	defInt(&c.FIBSize, 1_000_000)
	if c.Face.RatePPS == 0 {
		c.Face.RatePPS = 200_000
	}
	defInt(&c.Face.Burst, 20_000)
	if c.Face.NAKRate == 0 {
		c.Face.NAKRate = 200
	}
	defInt(&c.Face.NAKBurst, 50)
	defInt(&c.Face.Queue, 4096)
	defInt(&c.Face.MaxPerIdentity, 8)
	defInt(&c.Face.MaxPerDomain, 1024)
	defInt(&c.Face.QueueBytes, 8<<20)
	defInt(&c.Face.MaxPDUStreams, 16)
	defInt(&c.Face.ReceiveWindow, 2<<20)
	defInt(&c.Dedup.Slots, 1<<20)
	defDur(&c.Dedup.Window, 2*time.Second)
	if c.Resolver.Mode == "dht" && len(c.Resolver.Listen) == 0 {
		c.Resolver.Listen = []string{DefaultDHTListen}
	}
	defDur(&c.Resolver.Cache.MaxAge, 30*time.Second)
	c.Resolver.Config = c.Resolver.Config.WithDefaults()
	defInt(&c.Resolver.Workers, 8)
	defDur(&c.Resolver.Timeout, 3*time.Second)
	defInt(&c.Resolver.MaxWaiting, 4096)
	defInt(&c.Resolver.MaxWaitingPerName, 64)
	defInt(&c.Resolver.MaxWaitingPerIdentity, 1024)
	defDur(&c.Resolver.NegativeTTL, 5*time.Second)
	defInt(&c.Resolver.NegativeCacheSize, 65536)
	defDur(&c.Resolver.RouteCacheTTL, 30*time.Second)
	defInt(&c.Resolver.PublishQueuePerIdentity, 4096)
	defInt(&c.Advertise.MaxNamesPerFace, 100_000)
	defInt(&c.Advertise.MaxNamesPerIdentity, 100_000)
	defInt(&c.Advertise.MaxNamesPerDomain, 100_000)
	defDur(&c.Advertise.ClockWindow, 5*time.Minute)
	defDur(&c.Advertise.MaxPublishWait, 15*time.Second)
	defInt(&c.Advertise.MaxPublishWaitsPerIdentity, 64)
	defDur(&c.ClockSkew, 5*time.Minute) // certs.DefaultClockSkew
	if c.Advertise.Rate == 0 {
		c.Advertise.Rate = 1000
	}
	defInt(&c.Advertise.Burst, 5000)
	if c.Advertise.DomainRate == 0 {
		c.Advertise.DomainRate = 2000
	}
	defInt(&c.Advertise.DomainBurst, 10_000)
	defDur(&c.DrainTimeout, 5*time.Second)
	defDur(&c.Tick, DefaultTick)
	c.Tunnel = c.Tunnel.WithDefaults()
	return c
}

// Validate reports the first impossible value.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.MaxPDU < pdu.HeaderLen || c.MaxPDU > pdu.MaxPDU:
		return fmt.Errorf("max_pdu %d: want %d to %d", c.MaxPDU, pdu.HeaderLen, pdu.MaxPDU)
	case c.FIBSize < 0:
		return fmt.Errorf("fib_size %d: must not be negative", c.FIBSize)
	case c.Tick.Std() < time.Millisecond:
		return fmt.Errorf("tick %s: want at least 1ms", c.Tick)
	case c.Face.Burst < 0 || c.Face.NAKBurst < 0 || c.Face.Queue < 0 || c.Face.MaxPDUStreams < 0 || c.Face.ReceiveWindow < 0:
		return fmt.Errorf("face burst and queue must not be negative")
	case c.Dedup.Slots < 0 || c.Resolver.Workers < 0 || c.Resolver.MaxWaiting < 0 || c.Resolver.MaxWaitingPerName < 0:
		return fmt.Errorf("sizes must not be negative")
	case c.Advertise.MaxNamesPerFace < 0:
		return fmt.Errorf("advertise.max_names_per_face must not be negative")
	}
	if err := c.Tunnel.Validate(); err != nil {
		return err
	}
	if err := c.Resolver.Config.Validate(); err != nil {
		return err
	}
	for i, p := range c.Peers {
		if p.Name.IsZero() || p.Addr == "" {
			return fmt.Errorf("peers[%d]: name and addr are required", i)
		}
	}
	if c.Upstream != nil {
		found := false
		for _, p := range c.Peers {
			found = found || p.Name == *c.Upstream
		}
		if !found {
			return fmt.Errorf("upstream %s is not one of the peers", *c.Upstream)
		}
	}
	return nil
}
