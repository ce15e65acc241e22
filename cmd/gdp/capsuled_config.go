package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// attachConfig says how an endpoint (the capsule server, or a `gdp
// capsule` command) reaches its router. Shared by deploy/capsuled.yaml and
// the capsule commands' --config file.
type attachConfig struct {
	// Router is the router's tunnel address. Default 127.0.0.1:8009.
	Router string `yaml:"router"`
	// RouterName is the router's name. Default: asked from Admin.
	RouterName string `yaml:"router_name"`
	// Admin is the router's admin address, used only to learn its name.
	// Default 127.0.0.1:8019.
	Admin string `yaml:"admin"`
	// Listen is the local UDP address of the tunnel socket. Default
	// 127.0.0.1:0 when Router is on loopback, else [::]:0.
	Listen string `yaml:"listen"`
	// Keystore holds the endpoint's key. Default $GDP_KEYSTORE, else
	// /var/lib/gdp/keys.
	Keystore string `yaml:"keystore"`
	// Identity is the keystore alias of the endpoint. Default "capsuled"
	// for the server, "client" for the commands.
	Identity string `yaml:"identity"`
	// MemberCert is the endpoint's membership certificate file. Default
	// /etc/gdp/<identity>.member.
	MemberCert string `yaml:"member_cert"`
	// Domain is the domain metadata file. Default /etc/gdp/domain.meta.
	Domain string `yaml:"domain"`
	// ClockSkew is how far ahead of this node's clock a certificate's
	// NotBefore may lie and still be taken (routers' memberships, AdCerts
	// are checked with certs.DefaultClockSkew); NotAfter is never
	// stretched. Default 5m (certs.DefaultClockSkew); the same field in
	// capsuled, gateway and handoffd configs. (A YAML duration cannot be
	// negative: the tolerance can be narrowed, e.g. 1s, not switched off.)
	ClockSkew config.Duration `yaml:"clock_skew"`
	// Timeout bounds one request attempt. Default 2s.
	Timeout config.Duration `yaml:"timeout"`
	// Routers are more routers to attach to, after Router: tried in order
	// at start, and in turn whenever the attached one is lost (the
	// endpoint redials with backoff and advertises its names again at
	// whichever answers). Each needs addr and name. Default none.
	Routers []routerAddr `yaml:"routers"`
	// Tunnel is the liveness of the tunnel: keepalive (default 1s) and
	// idle_timeout (default 5s), as in the router's tunnel: block.
	Tunnel router.TunnelConfig `yaml:"tunnel"`

	role string // "capsuled" or "client": the identity's default alias and kind
	// trusted are further trusted domains' metadata files (capsuled's
	// trusted_domains; the other users of the block trust their own domain
	// only).
	trusted []string
}

// routerAddr is one entry of routers:.
type routerAddr struct {
	// Addr is the router's tunnel address "ip:port". Required.
	Addr string `yaml:"addr"`
	// Name is the router's name. Required.
	Name pdu.Name `yaml:"name"`
}

func (a *attachConfig) withDefaults(identity string) {
	a.role = identity
	if a.Router == "" {
		a.Router = "127.0.0.1:8009"
	}
	if a.Admin == "" {
		a.Admin = "127.0.0.1:8019"
	}
	if a.Keystore == "" {
		a.Keystore = defaultKeystoreDir()
	}
	if a.Identity == "" {
		a.Identity = identity
	}
	if a.MemberCert == "" {
		a.MemberCert = "/etc/gdp/" + a.Identity + ".member"
	}
	if a.Domain == "" {
		a.Domain = "/etc/gdp/domain.meta"
	}
	if a.Listen == "" {
		a.Listen = "[::]:0"
		if h, _, err := net.SplitHostPort(a.Router); err == nil {
			if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
				a.Listen = net.JoinHostPort(h, "0")
			}
		}
	}
	if a.Timeout <= 0 {
		a.Timeout = config.Duration(2 * time.Second)
	}
}

// flags lets the command line override the file.
func (a *attachConfig) flags(c *cobra.Command) {
	c.Flags().StringVar(&a.Router, "router", "", "router tunnel address (default 127.0.0.1:8009)")
	c.Flags().StringVar(&a.RouterName, "router-name", "", "router name (default: asked from --admin)")
	c.Flags().StringVar(&a.Admin, "admin", "", "router admin address, to learn its name (default 127.0.0.1:8019)")
	c.Flags().StringVar(&a.Keystore, "keystore", "", "keystore directory (default $GDP_KEYSTORE, else /var/lib/gdp/keys)")
	c.Flags().StringVar(&a.Identity, "identity", "", "keystore alias of this endpoint (default client)")
	c.Flags().StringVar(&a.MemberCert, "member", "", "membership certificate of the identity (default /etc/gdp/<identity>.member)")
	c.Flags().StringVar(&a.Domain, "domain", "", "domain metadata file (default /etc/gdp/domain.meta)")
}

// merge fills a's empty fields from file.
func (a *attachConfig) merge(file attachConfig) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&a.Router, file.Router)
	fill(&a.RouterName, file.RouterName)
	fill(&a.Admin, file.Admin)
	fill(&a.Listen, file.Listen)
	fill(&a.Keystore, file.Keystore)
	fill(&a.Identity, file.Identity)
	fill(&a.MemberCert, file.MemberCert)
	fill(&a.Domain, file.Domain)
	if a.Timeout == 0 {
		a.Timeout = file.Timeout
	}
	if a.ClockSkew == 0 {
		a.ClockSkew = file.ClockSkew
	}
	if len(a.Routers) == 0 {
		a.Routers = file.Routers
	}
	if a.Tunnel == (router.TunnelConfig{}) {
		a.Tunnel = file.Tunnel
	}
}

// validate checks the router list and the tunnel block.
func (a *attachConfig) validate() error {
	for i, r := range a.Routers {
		if r.Addr == "" || r.Name.IsZero() {
			return fmt.Errorf("routers[%d]: addr and name are required", i)
		}
	}
	return a.Tunnel.Validate()
}

// files are the credential files of the block, with its clock_skew.
func (a *attachConfig) files() credFiles {
	return credFiles{keystore: a.Keystore, identity: a.Identity, member: a.MemberCert, domain: a.Domain, trusted: a.trusted, skew: a.ClockSkew.Std()}
}

// certFiles are the certificate files the block names: what the daemon
// watches to reload on its own when one is replaced (certFileWatch).
func (a *attachConfig) certFiles() []string {
	return append([]string{a.MemberCert, a.Domain}, a.trusted...)
}

// verifier reads the block's domain and trusted domains and returns the
// domain with a verifier of them that applies its clock_skew: what a reload
// checks a new membership with and puts in force (client.Endpoint.Reload).
func (a *attachConfig) verifier() (*certs.Metadata, *certs.Verifier, error) {
	domain, v, err := trustedVerifier(a.Domain, a.trusted)
	if err != nil {
		return nil, nil, err
	}
	withSkew(v, a.ClockSkew.Std())
	return domain, v, nil
}

// attached is an endpoint attached to its router.
type attached struct {
	id     *certs.Identity
	member *certs.Cert
	ks     *certs.Keystore
	ep     *client.Endpoint
	client *client.Client
}

func (at *attached) Close() error {
	_ = at.client.Close()
	return at.ep.Close()
}

// attach loads the identity and opens a tunnel to the router.
func (a *attachConfig) attach(ctx context.Context, opts client.Options) (*attached, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	creds, err := loadCreds(cmpOr(a.role, "endpoint"), a.files())
	if err != nil {
		return nil, err
	}
	rname := a.RouterName
	if rname == "" {
		if rname, err = adminName(ctx, a.Admin); err != nil {
			return nil, fmt.Errorf("router name: %w (or set router_name)", err)
		}
	}
	rn, err := pdu.ParseName(rname)
	if err != nil {
		return nil, fmt.Errorf("router name: %w", err)
	}
	conn, err := net.ListenPacket("udp", a.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", a.Listen, err)
	}
	opts.RequestTimeout = a.Timeout.Std()
	tc := a.Tunnel.WithDefaults()
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: creds.id, Member: creds.member, Domain: creds.domain, Verifier: creds.verifier, Conn: conn,
		Options: opts, Logger: opts.Logger, KeepAlive: tc.KeepAlive.Std(), IdleTimeout: tc.IdleTimeout.Std(),
		RetryAboveHandshakes: tc.RetryAboveHandshakes, CountDatagramDrops: tc.CountDatagramDrops})
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	list := []client.RouterAddr{{Addr: a.Router, Name: rn}}
	for _, r := range a.Routers {
		list = append(list, client.RouterAddr{Addr: r.Addr, Name: r.Name})
	}
	c, err := ep.AttachAny(ctx, list, client.AttachOptions{})
	if err != nil {
		_ = ep.Close()
		return nil, err
	}
	return &attached{id: creds.id, member: creds.member, ks: creds.ks, ep: ep, client: c}, nil
}

// capsuledConfig is deploy/capsuled.yaml.
type capsuledConfig struct {
	attachConfig `yaml:",inline"`
	// TrustedDomains are the metadata files of other domains whose members
	// this server believes (Session 14): their CREATEs prove their identity
	// and domain (placement.max_per_requester per member, max_per_domain
	// per domain; a member of a domain not listed counts in the unproven
	// pool), and their QUIC-over-names dials are admitted (bulk reads,
	// max_conns_per_domain). Default none: the own domain only. Reloaded
	// on SIGHUP (Session 17): a domain removed proves nothing from then on
	// (its proven names are dropped, its accepted QUIC connections closed).
	TrustedDomains []string `yaml:"trusted_domains"`
	// Dir holds the store and the placements. Default /var/lib/gdp/capsuled.
	Dir string `yaml:"dir"`
	// Engine is pebble or bbolt. Default pebble.
	Engine string `yaml:"engine"`
	// MaxData bounds one record's data. Default 56,000 (the most).
	MaxData int `yaml:"max_data"`
	// MinFreeBytes: below this much free space on the store's file
	// system, writes (appends and the CREATE of a new capsule) are refused
	// 503 (gdp_capsuled_disk_full_total; a CREATE also in
	// gdp_capsuled_placements_refused_total{reason="disk_full"}) rather
	// than filling the disk, which stops the process. Default 67108864
	// (64 MiB); -1: no check.
	MinFreeBytes int64 `yaml:"min_free_bytes"`
	// Workers serving requests. Default 8.
	Workers int `yaml:"workers"`
	// SyncInterval between anti-entropy rounds. Default 1s.
	SyncInterval config.Duration `yaml:"sync_interval"`
	// MaxSubscriptions bounds live subscriptions; at the bound a
	// subscriber holding fewer than the largest holder takes one of its.
	// Default 4096.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxSubscriptionsPerSubscriber bounds one subscriber's live
	// subscriptions (503 beyond): one proven identity's, whatever names it
	// subscribes from (Session 15), or one unproven name's. Default 64.
	MaxSubscriptionsPerSubscriber int `yaml:"max_subscriptions_per_subscriber"`
	// MaxSubscriptionsUnproven bounds the live subscriptions of every
	// subscriber that proved no identity (older clients) together (503
	// beyond, gdp_capsuled_subscription_quota_total{reason="unproven_quota"}).
	// Default max_subscriptions / 4.
	MaxSubscriptionsUnproven int `yaml:"max_subscriptions_unproven"`
	// RequesterCache bounds the source names whose request proof the
	// server remembers (PROTOCOL.md §8.3), shared max-min over the
	// request queue's groups (each own-domain member, each other domain
	// together; Session 16): full, the least recently used name of the
	// largest group is dropped (gdp_capsuled_requester_cache_total
	// {result="evicted"|"group_share"}). Restart to change. Default 65536.
	RequesterCache int `yaml:"requester_cache"`
	// RequesterCachePerIdentity bounds one identity's names in that cache
	// (its own least recently used dropped first,
	// {result="identity_share"}). Restart to change. Default 64.
	RequesterCachePerIdentity int `yaml:"requester_cache_per_identity"`
	// BulkStreamsPerPeer bounds the bulk read streams (QUIC over names)
	// one reader identity has open at once (503 beyond, counted in
	// gdp_capsuled_bulk_refused_total). Default 4; -1: bulk reads off.
	BulkStreamsPerPeer int `yaml:"bulk_streams_per_peer"`
	// PeerTimeout bounds one anti-entropy request to a peer. Default 2s.
	PeerTimeout config.Duration `yaml:"peer_timeout"`
	// PossessionInterval: a peer replica's head, once it proved it holds
	// it (a possession tag, PROTOCOL.md §8.3), is checked again at the
	// latest after this long (jittered between half of it and all of
	// it), and sooner when this server's head moves or the peer claims
	// another head; in between, anti-entropy asks for no tag
	// (gdp_capsuled_possession_checks_total counts the checks). A peer
	// that lost entries is caught within it. Restart to change. Default
	// 1m.
	PossessionInterval config.Duration `yaml:"possession_interval"`
	// PossessionSamples: how many of its entries, drawn by the nonce,
	// besides the head, a peer's possession tag covers (PROTOCOL.md
	// §8.3): a peer holding a fraction f of the entries passes a check
	// with probability at most f^possession_samples (0.9^16 ≈ 0.19).
	// Each check costs the peer and this server 1 + this many entry reads.
	// Restart to change. Default 16; at most 64.
	PossessionSamples int `yaml:"possession_samples"`
	// PossessionMinSamples: the fewest samples a peer's tag may cover; an
	// answer with fewer (a replica before Session 11 answers with one) is
	// a failed check (gdp_capsuled_dropped_total{reason="too_few_samples"}).
	// While upgrading a placement's servers set 1, and remove it after
	// (SIGHUP reloads it). Default possession_samples; at most that.
	PossessionMinSamples int `yaml:"possession_min_samples"`
	// SyncParallel capsules compared with their peers at once. Default 16.
	SyncParallel int `yaml:"sync_parallel"`
	// SyncWindow is how many range SYNCs one catch-up from one peer keeps
	// outstanding at once (PROTOCOL.md §8.5). Default 4; 1: one at a time.
	SyncWindow int `yaml:"sync_window"`
	// SyncAnswersPerPeer bounds the SYNCs of one peer answered at once
	// (503 beyond, counted in gdp_capsuled_sync_refused_total{share}): a
	// proven identity over all its names, every peer that proved nothing
	// together (Session 16). Default 4.
	SyncAnswersPerPeer int `yaml:"sync_answers_per_peer"`
	// PeerBackoff is the longest an unreachable peer is left alone.
	// Default 30s.
	PeerBackoff config.Duration `yaml:"peer_backoff"`
	// PublishWait bounds how long a CREATE waits for the router to confirm
	// the capsule's location record is in the resolver; then 503, the
	// name withdrawn, nothing stored (gdp_capsuled_placements_refused_total
	// {reason="not_published"}). Default 5s.
	PublishWait config.Duration `yaml:"publish_wait"`
	// CreatesPerPeer bounds the CREATEs of one requester waiting at once
	// for their location records (they wait off the workers): a proven
	// identity over all its names, every requester that proved nothing
	// together (Session 16); more are answered 503
	// (gdp_capsuled_placements_refused_total{reason="creates_per_peer"|
	// "creates_unproven"}). Default 16.
	CreatesPerPeer int `yaml:"creates_per_peer"`
	// ReadAheadBytes bounds the records read ahead for one requester's
	// sequential READs, over all the capsules it reads (a requester, here
	// and in read_ahead_streams: a proven identity over all its names,
	// every requester that proved nothing together, Session 16; a fill
	// stops there:
	// gdp_capsuled_readahead_limited_total{reason="requester_bytes"}).
	// Default 4194304 (4 MiB); -1: no read-ahead.
	ReadAheadBytes int `yaml:"read_ahead_bytes"`
	// ReadAheadStreams bounds the capsules one requester is read ahead for
	// at once; a new one drops its least recently used
	// (reason="requester_streams"). Default 4.
	ReadAheadStreams int `yaml:"read_ahead_streams"`
	// ReadAheadTotal bounds the bytes read ahead for all requesters
	// (reason="total_bytes"). Default 67108864 (64 MiB).
	ReadAheadTotal int `yaml:"read_ahead_total"`
	// ReadAheadIdle drops a requester's read-ahead for a capsule it has not
	// read for this long (reason="idle"). Default 10s.
	ReadAheadIdle config.Duration `yaml:"read_ahead_idle"`
	// Placement is the policy for who may place capsules here.
	Placement placementYAML `yaml:"placement"`
	// Metrics is the address of /metrics. Default 127.0.0.1:8029; "off"
	// disables it.
	Metrics string `yaml:"metrics"`
	// Pprof serves Go's profiles (/debug/pprof/: heap, goroutine, CPU) on
	// the metrics listener, which must then be a loopback address. Default
	// false (Session 21: how capsuled's memory in the life soak was read).
	Pprof bool `yaml:"pprof"`
	// DrainTimeout bounds the drain on SIGTERM. Default 5s.
	DrainTimeout config.Duration `yaml:"drain_timeout"`
	// RtCertLifetime is the validity of the RtCerts the server issues
	// itself for its router (docs/OPERATIONS.md §1.2): it re-issues one at
	// half its life and advertises again at two thirds of the route's
	// remaining life, so the route never lapses. Default 1h; at least 5s.
	RtCertLifetime config.Duration `yaml:"rtcert_lifetime"`
	// Log selects level and format. Default info, json.
	Log logging.Config `yaml:"log"`
}

// placementYAML is the placement: block (capsuled.PlacementPolicy).
type placementYAML struct {
	// Owners allowed to place capsules: owner public keys (the Key of the
	// capsule's metadata), base64url without padding or hex. Default
	// empty: any owner.
	Owners []string `yaml:"owners"`
	// MaxPerOwner capsules one owner key may place. Default 1024; -1: no bound.
	MaxPerOwner int `yaml:"max_per_owner"`
	// MaxPerRequester capsules one requester may place: the identity its
	// CREATE proves (Session 14: its membership, however many names it
	// sends from), or the CREATE's source name when it proves none.
	// Default 1024; -1: no bound.
	MaxPerRequester int `yaml:"max_per_requester"`
	// MaxBytesPerRequester bytes of records held for the capsules one
	// requester placed; beyond, their appends are refused 503 and
	// anti-entropy does not pull them. Default 68719476736 (64 GiB); -1: no bound.
	MaxBytesPerRequester int64 `yaml:"max_bytes_per_requester"`
	// MaxPerDomain capsules the members of one other domain may place
	// together (domain_quota); every requester that proves no identity
	// counts in one pool of the same size (unproven_quota). Session 14.
	// Default 16384; -1: no bound.
	MaxPerDomain int `yaml:"max_per_domain"`
	// MaxBytesPerDomain bytes of records held for the capsules of one
	// other domain's members, or of the unproven pool, together. Default
	// 274877906944 (256 GiB); -1: no bound.
	MaxBytesPerDomain int64 `yaml:"max_bytes_per_domain"`
	// MaxReplicas of one capsule. Default 7; at most 16.
	MaxReplicas int `yaml:"max_replicas"`
	// MaxPlacements capsules in all. Default 65536.
	MaxPlacements int `yaml:"max_placements"`
}

// policy converts the block, decoding the owner keys.
func (p placementYAML) policy() (capsuled.PlacementPolicy, error) {
	pol := capsuled.PlacementPolicy{MaxPerOwner: p.MaxPerOwner, MaxPerRequester: p.MaxPerRequester, MaxBytesPerRequester: p.MaxBytesPerRequester,
		MaxPerDomain: p.MaxPerDomain, MaxBytesPerDomain: p.MaxBytesPerDomain, MaxReplicas: p.MaxReplicas, MaxPlacements: p.MaxPlacements}
	for _, o := range p.Owners {
		k, err := hex.DecodeString(o)
		if err != nil || len(k) != ed25519.PublicKeySize {
			k, err = base64.RawURLEncoding.DecodeString(o)
		}
		if err != nil || len(k) != ed25519.PublicKeySize {
			return pol, fmt.Errorf("capsuled config: placement owner %q is not a 32-byte key in base64url or hex", o)
		}
		pol.Owners = append(pol.Owners, ed25519.PublicKey(k))
	}
	return pol, nil
}

// server is the capsuled.Config the file describes.
func (cfg capsuledConfig) server() (capsuled.Config, error) {
	pol, err := cfg.Placement.policy()
	if err != nil {
		return capsuled.Config{}, err
	}
	return capsuled.Config{Dir: cfg.Dir, Engine: cfg.Engine, MaxData: cfg.MaxData, MinFreeBytes: cfg.MinFreeBytes, Workers: cfg.Workers,
		SyncInterval: cfg.SyncInterval.Std(), PeerTimeout: cfg.PeerTimeout.Std(), SyncParallel: cfg.SyncParallel, SyncWindow: cfg.SyncWindow, SyncAnswersPerPeer: cfg.SyncAnswersPerPeer,
		PossessionInterval: cfg.PossessionInterval.Std(), PossessionSamples: cfg.PossessionSamples, PossessionMinSamples: cfg.PossessionMinSamples,
		PeerBackoff: cfg.PeerBackoff.Std(), Placement: pol, MaxSubscriptions: cfg.MaxSubscriptions,
		MaxSubscriptionsPerSubscriber: cfg.MaxSubscriptionsPerSubscriber, MaxSubscriptionsUnproven: cfg.MaxSubscriptionsUnproven,
		RequesterCache: cfg.RequesterCache, RequesterCachePerIdentity: cfg.RequesterCachePerIdentity, BulkStreamsPerPeer: cfg.BulkStreamsPerPeer,
		PublishWait: cfg.PublishWait.Std(), CreatesPerPeer: cfg.CreatesPerPeer,
		ReadAheadBytes: cfg.ReadAheadBytes, ReadAheadStreams: cfg.ReadAheadStreams, ReadAheadTotal: cfg.ReadAheadTotal, ReadAheadIdle: cfg.ReadAheadIdle.Std()}, nil
}

func loadCapsuledConfig(path string) (capsuledConfig, error) {
	var cfg capsuledConfig
	if path != "" {
		if err := config.Load(path, &cfg); err != nil {
			return cfg, err
		}
	}
	cfg.withDefaults("capsuled")
	cfg.attachConfig.trusted = cfg.TrustedDomains
	if err := cfg.attachConfig.validate(); err != nil {
		return cfg, err
	}
	if cfg.Dir == "" {
		cfg.Dir = "/var/lib/gdp/capsuled"
	}
	if cfg.Metrics == "" {
		cfg.Metrics = "127.0.0.1:8029"
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = config.Duration(5 * time.Second)
	}
	if cfg.RtCertLifetime == 0 {
		cfg.RtCertLifetime = config.Duration(time.Hour)
	}
	if _, err := cfg.Placement.policy(); err != nil {
		return cfg, err
	}
	return cfg, validateCapsuledConfig(cfg)
}
