package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/config"
)

// Config is the resolver part of a node's YAML: the `resolver:` block of
// deploy/resolver.yaml, and what a router passes to Open to embed one.
// The zero value is a static (in-memory) resolver with a cache.
type Config struct {
	// Mode is "static" (in-memory, one site) or "dht" (the domain's DHT,
	// federated when Global or Borders is set). Default static.
	Mode string `yaml:"mode"`
	// Listen are the domain DHT's libp2p multiaddrs. Default
	// ["/ip4/127.0.0.1/udp/8011/quic-v1"].
	Listen []string `yaml:"listen"`
	// Bootstrap are domain DHT nodes to join at start, as multiaddrs
	// ending in /p2p/<peer id> (the node logs its own at start, and
	// `gdp resolver --print-addrs` prints them). Empty on the first node.
	Bootstrap []string `yaml:"bootstrap"`
	// Global, when set, makes this node a border: it also joins the
	// global DHT and announces its domain's names there.
	Global *GlobalConfig `yaml:"global"`
	// Borders are the domain-tier multiaddrs of the domain's border nodes;
	// a non-border node exports its records to them and asks them for
	// names of other domains.
	Borders []string `yaml:"borders"`
	// Quorum: answers a lookup waits for. Default 1.
	Quorum int `yaml:"quorum"`
	// MinPuts: peers a publish must reach. Default 3.
	MinPuts int `yaml:"min_puts"`
	// RecordAge is how long a DHT node keeps a record it was given
	// (kad-dht MaxRecordAge). Default 1h.
	RecordAge config.Duration `yaml:"record_age"`
	// Republish is how often a node re-puts what it published. Default
	// record_age / 3.
	Republish config.Duration `yaml:"republish"`
	// HandshakeTimeout bounds the membership handshake. Default 5s.
	HandshakeTimeout config.Duration `yaml:"handshake_timeout"`
	// PutTimeout bounds each remote put and a publish's search for the
	// closest peers; a dial (QUIC and TLS handshake) gets half of it.
	// Default 5s. A host starved of CPU (the simulator's netns mode: a
	// hundred router processes on two cores) needs more.
	PutTimeout config.Duration `yaml:"put_timeout"`
	// BootstrapTimeout is how long a node keeps trying its bootstrap
	// peers at start when none was admitted (rounds 1 s apart, doubling
	// to 8 s; every peer dialled at once each round). Default 0: one
	// round, then the node fails to start.
	BootstrapTimeout config.Duration `yaml:"bootstrap_timeout"`
	// BootstrapKeepalive is how often a running node pings each bootstrap
	// peer and redials one it lost (backoff 1 s doubling to 8 s; a WARN
	// "bootstrap peer lost; redialing" and
	// gdp_resolver_dht_bootstrap_lost_total): a restarted `gdp resolver`
	// gets its routing table back within about this long. Default 1s with
	// join "refresh", off with "seeded"; negative: off.
	BootstrapKeepalive config.Duration `yaml:"bootstrap_keepalive"`
	// Join is how the node joins the domain DHT at start: "refresh"
	// (default: the bootstrap peers, then kad-dht's routing table
	// refresh, a lookup per bucket that on a DHT of a hundred nodes dials
	// most of them) or "seeded" (the bootstrap peers only, and they are
	// the routing table: list the node's nearest nodes in the key space
	// and a few farther ones; the simulator's netns mode does). The
	// periodic refresh runs either way; the global tier always refreshes.
	Join string `yaml:"join"`
	// RefreshInterval is how often the routing table is refreshed.
	// Default 10m (kad-dht's).
	RefreshInterval config.Duration `yaml:"refresh_interval"`
	// MaxRecordsPerRouter bounds the names holding an entry of any one
	// router in this node's DHT store; beyond it that router's entries
	// for new names are dropped (records_refused_total{reason=
	// "router_quota"}). Keep it at least the names one router announces.
	// Default 100,000. Negative: unlimited.
	MaxRecordsPerRouter int `yaml:"max_records_per_router"`
	// MaxRecordsPerDomain bounds the entries of all the routers of one
	// OTHER domain (the issuer of their memberships) in this node's DHT
	// store, so a trusted domain minting routers at will cannot fill the
	// global tier's nodes router by router; beyond it that domain's
	// entries for new names are dropped (records_refused_total{reason=
	// "domain_quota"}). The node's own domain is not bounded. Default
	// 1,000,000 (ten routers' max_records_per_router). Negative:
	// unlimited.
	MaxRecordsPerDomain int `yaml:"max_records_per_domain"`
	// StoreSweep is how often stored records older than record_age, and
	// expired entries, are deleted. Default min(1m, record_age / 4).
	StoreSweep config.Duration `yaml:"store_sweep"`
	// Cache tunes the lookup cache.
	Cache CacheYAML `yaml:"cache"`
}

// GlobalConfig is the border node's global-tier settings.
type GlobalConfig struct {
	// Listen are the global DHT's multiaddrs. Default
	// ["/ip4/127.0.0.1/udp/8012/quic-v1"].
	Listen []string `yaml:"listen"`
	// Bootstrap are global DHT nodes (border nodes of any domain).
	Bootstrap []string `yaml:"bootstrap"`
	// BorderAddrs are the underlay addresses ("ip:port") of the border
	// router that other domains send traffic to; they go into the border
	// records. Required.
	BorderAddrs []string `yaml:"border_addrs"`
}

// CacheYAML sizes the cache.
type CacheYAML struct {
	// Size is the number of records kept. Default 65,536.
	Size int `yaml:"size"`
	// NegativeTTL is how long a miss is remembered. Default 2s.
	NegativeTTL config.Duration `yaml:"negative_ttl"`
	// MaxAge is the longest a record is answered from the cache (a name
	// may move before its record expires). Default 0: until the record
	// expires.
	MaxAge config.Duration `yaml:"max_age"`
}

// NodeCredentials are the node's identity, membership and trust.
type NodeCredentials struct {
	Identity *certs.Identity
	Member   *certs.Cert
	Domain   *certs.Metadata
	// Certs trusts the node's own domain and every federated domain.
	Certs *certs.Verifier
}

// Defaults of the settings Open fills in (DHTConfig and CacheConfig state
// the same).
const (
	DefaultListen              = "/ip4/127.0.0.1/udp/8011/quic-v1"
	DefaultGlobalListen        = "/ip4/127.0.0.1/udp/8012/quic-v1"
	DefaultQuorum              = 1
	DefaultMinPuts             = 3
	DefaultRecordAge           = time.Hour
	DefaultHandshakeTimeout    = 5 * time.Second
	DefaultPutTimeout          = 5 * time.Second
	DefaultMaxRecordsPerRouter = 100_000
	// DefaultMaxRecordsPerDomain is MaxRecordsPerDomain's default.
	DefaultMaxRecordsPerDomain = 1_000_000
	DefaultCacheSize           = 1 << 16
	DefaultNegativeTTL         = 2 * time.Second
	DefaultJoin                = JoinRefresh
)

// WithDefaults returns c with every unset field at its documented default,
// as Open would run it (so that a config file can state the defaults).
// Listen addresses are filled in mode dht only; Republish defaults to
// RecordAge / 3.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = "static"
	}
	if c.Mode == "dht" && len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	if c.Global != nil && len(c.Global.Listen) == 0 {
		g := *c.Global
		g.Listen = []string{DefaultGlobalListen}
		c.Global = &g
	}
	if c.Quorum == 0 {
		c.Quorum = DefaultQuorum
	}
	if c.MinPuts == 0 {
		c.MinPuts = DefaultMinPuts
	}
	if c.RecordAge == 0 {
		c.RecordAge = config.Duration(DefaultRecordAge)
	}
	if c.Republish == 0 {
		c.Republish = c.RecordAge / 3
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = config.Duration(DefaultHandshakeTimeout)
	}
	if c.PutTimeout == 0 {
		c.PutTimeout = config.Duration(DefaultPutTimeout)
	}
	if c.Join == "" {
		c.Join = DefaultJoin
	}
	if c.BootstrapKeepalive == 0 && c.Join == JoinRefresh {
		c.BootstrapKeepalive = config.Duration(time.Second)
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = config.Duration(DefaultRefreshInterval)
	}
	if c.MaxRecordsPerRouter == 0 {
		c.MaxRecordsPerRouter = DefaultMaxRecordsPerRouter
	}
	if c.MaxRecordsPerDomain == 0 {
		c.MaxRecordsPerDomain = DefaultMaxRecordsPerDomain
	}
	if c.StoreSweep == 0 {
		c.StoreSweep = config.Duration(min(time.Minute, c.RecordAge.Std()/4))
	}
	if c.Cache.Size == 0 {
		c.Cache.Size = DefaultCacheSize
	}
	if c.Cache.NegativeTTL == 0 {
		c.Cache.NegativeTTL = config.Duration(DefaultNegativeTTL)
	}
	return c
}

// Validate reports the first impossible value.
func (c Config) Validate() error {
	switch c.Mode {
	case "", "static":
		if c.Global != nil || len(c.Borders) > 0 || len(c.Bootstrap) > 0 {
			return errors.New("resolver: global, borders and bootstrap need mode dht")
		}
	case "dht":
		if c.Global != nil && len(c.Global.BorderAddrs) == 0 {
			return errors.New("resolver: global.border_addrs is required on a border node")
		}
		if c.Global != nil && len(c.Borders) > 0 {
			return errors.New("resolver: a border node (global) does not list borders")
		}
	default:
		return fmt.Errorf("resolver: mode %q: want static or dht", c.Mode)
	}
	if c.BootstrapTimeout < 0 {
		return errors.New("resolver: bootstrap_timeout must not be negative")
	}
	switch c.Join {
	case "", JoinRefresh, JoinSeeded:
	default:
		return fmt.Errorf("resolver: join %q: want %s or %s", c.Join, JoinRefresh, JoinSeeded)
	}
	if c.RefreshInterval < 0 || c.PutTimeout < 0 {
		return errors.New("resolver: refresh_interval and put_timeout must not be negative")
	}
	if c.StoreSweep < 0 {
		return errors.New("resolver: store_sweep must not be negative")
	}
	if c.Quorum < 0 || c.MinPuts < 0 || c.Cache.Size < 0 {
		return errors.New("resolver: quorum, min_puts and cache.size must not be negative")
	}
	if c.Republish > 0 && c.RecordAge > 0 && c.Republish >= c.RecordAge {
		return fmt.Errorf("resolver: republish %s must be below record_age %s", c.Republish, c.RecordAge)
	}
	return nil
}

// Service is an opened resolver: a Cache in front of Static or Federated,
// with the DHT nodes exposed for status pages. It is a Resolver.
type Service struct {
	*Cache
	// Local and Global are the DHT nodes (nil in static mode; Global is
	// nil except on a border).
	Local, Global *DHT
	// Static is the in-memory resolver (static mode only).
	Static *Static
	// trust is the static resolver's trust once a reload replaced it.
	trust atomic.Pointer[certs.Verifier]
}

// Open builds the resolver c describes for the node with credentials n:
// what `gdp resolver` runs and what a router embeds.
func Open(ctx context.Context, c Config, n NodeCredentials, log *zap.Logger, reg prometheus.Registerer) (*Service, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if n.Certs == nil {
		return nil, errors.New("resolver: no trusted domains")
	}
	now := n.Certs.Now
	s := &Service{}
	var inner Resolver
	if c.Mode == "" || c.Mode == "static" {
		s.Static = NewStatic(&Verifier{Certs: n.Certs, trust: &s.trust})
		inner = s.Static
	} else {
		dc := DHTConfig{
			Identity: n.Identity, Member: n.Member, Domain: n.Domain, Certs: n.Certs,
			Listen: c.Listen, Bootstrap: c.Bootstrap, Quorum: c.Quorum, MinPuts: c.MinPuts,
			RecordAge: c.RecordAge.Std(), Republish: c.Republish.Std(), HandshakeTimeout: c.HandshakeTimeout.Std(),
			BootstrapTimeout: c.BootstrapTimeout.Std(), BootstrapKeepalive: c.BootstrapKeepalive.Std(),
			Join: c.Join, RefreshInterval: c.RefreshInterval.Std(), PutTimeout: c.PutTimeout.Std(),
			MaxRecordsPerRouter: c.MaxRecordsPerRouter, MaxRecordsPerDomain: c.MaxRecordsPerDomain, StoreSweep: c.StoreSweep.Std(),
			Logger: log.Named("dht"), Registerer: reg,
		}
		if len(dc.Listen) == 0 {
			dc.Listen = []string{DefaultListen}
		}
		var err error
		if s.Local, err = NewDHT(ctx, dc); err != nil {
			return nil, fmt.Errorf("resolver: domain dht: %w", err)
		}
		fc := FederatedConfig{Local: s.Local, Borders: c.Borders, Logger: log.Named("federation")}
		if c.Global != nil {
			gc := dc
			gc.Global = true
			gc.Listen, gc.Bootstrap = c.Global.Listen, c.Global.Bootstrap
			gc.Join = JoinRefresh // the global bootstrap lists are not seeded
			if len(gc.Listen) == 0 {
				gc.Listen = []string{DefaultGlobalListen}
			}
			gc.Logger = log.Named("global")
			if s.Global, err = NewDHT(ctx, gc); err != nil {
				s.Local.Close()
				return nil, fmt.Errorf("resolver: global dht: %w", err)
			}
			fc.Global, fc.BorderAddrs = s.Global, c.Global.BorderAddrs
		}
		f, err := NewFederated(fc)
		if err != nil {
			if s.Global != nil {
				s.Global.Close()
			}
			s.Local.Close()
			return nil, fmt.Errorf("resolver: %w", err)
		}
		inner = f
	}
	cache, err := NewCache(inner, CacheConfig{Size: c.Cache.Size, NegativeTTL: c.Cache.NegativeTTL.Std(),
		MaxAge: c.Cache.MaxAge.Std(), Now: now, Registerer: reg})
	if err != nil {
		inner.Close()
		return nil, fmt.Errorf("resolver: cache: %w", err)
	}
	s.Cache = cache
	return s, nil
}
