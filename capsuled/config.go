package capsuled

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
)

// DefaultMaxData is the default bound on one record's data: an APPEND of
// one record with its heartbeat must fit one PDU payload.
const DefaultMaxData = wire.MaxRecordData

// DefaultMaxBytesPerRequester is PlacementPolicy.MaxBytesPerRequester's
// default: 64 GiB.
const DefaultMaxBytesPerRequester = 64 << 30

// DefaultMaxBytesPerDomain is PlacementPolicy.MaxBytesPerDomain's
// default: 256 GiB (four members' worth).
const DefaultMaxBytesPerDomain = 256 << 30

// DefaultPossessionInterval is Config.PossessionInterval's default.
const DefaultPossessionInterval = time.Minute

// DefaultPossessionSamples is Config.PossessionSamples's default.
const DefaultPossessionSamples = 16

// Config tunes a Server. The zero value works (with Dir set).
type Config struct {
	// Dir holds the store (Dir/store) and the placements (Dir/placements).
	// Required.
	Dir string
	// Engine is the store engine, "pebble" or "bbolt". Default pebble.
	Engine string
	// MinFreeBytes: while the store's file system has less free space
	// than this, writes (appends, and CREATE of a new capsule before it is
	// advertised) are refused 503 (nothing stored, counted in
	// gdp_capsuled_disk_full_total) instead of running the disk full, which
	// would stop the process. Default 64 MiB (store.Options); negative: no
	// check.
	MinFreeBytes int64
	// MaxData bounds one record's data. Default DefaultMaxData (56,000);
	// at most that, so that one record always fits an APPEND.
	MaxData int
	// Workers is how many requests are served at once. Default 8.
	Workers int
	// Queue bounds requests waiting for a worker; more are answered
	// "unavailable". They are served round robin over requester groups
	// (a proven identity of the server's own domain; another domain's
	// proven members together; every requester that proved nothing
	// together), then over source names within a group; a full queue
	// evicts from the largest group first (Session 15). Default 4096.
	Queue int
	// RequesterCache bounds the source names whose request proof
	// (PROTOCOL.md §8.3) the server remembers, shared max-min over the
	// request queue's groups (Session 16): full, the least recently used
	// name of the group holding the most is dropped
	// (gdp_capsuled_requester_cache_total{result="evicted"}, or
	// "group_share" when that is the newcomer's own group); a
	// dropped name counts in the unproven pool until its client proves it
	// again (within its proof refresh, 30 s by default). Default 65,536.
	RequesterCache int
	// RequesterCachePerIdentity bounds the names one identity has in that
	// cache (its own, its session names, its other devices'): beyond it,
	// its own least recently used name is dropped, not another member's.
	// Default 64.
	RequesterCachePerIdentity int
	// SyncInterval is how often each capsule's replicas are compared
	// (anti-entropy). Default 1s.
	SyncInterval time.Duration
	// PossessionInterval bounds how long a peer's head, once it proved it
	// holds it (PROTOCOL.md §8.3), stays shown on answers that repeat it
	// without a new proof. Anti-entropy asks a peer for a possession tag
	// only when a check is due: no head of the peer proven yet, the last
	// answer left one pending (a claim not proven, a check that failed, a
	// claim of another head this server holds), this server's own head
	// moved since the last check, or the last check is older than this,
	// jittered to between half of it and all of it so checks of many
	// capsules do not fall in one round. A peer that lost entries after
	// its last check is caught at the next due one. Each check costs the
	// peer 1 + PossessionSamples entry reads and a hash, and this server
	// the same again. Default 1m.
	PossessionInterval time.Duration
	// PossessionSamples is how many entries of its log, besides the head,
	// a peer's possession tag must cover (PROTOCOL.md §8.3, drawn by the
	// nonce, distinct): a peer holding a fraction f of the entries passes
	// a check with probability at most f^PossessionSamples (0.9^16 ≈
	// 0.19) where one entry gave f. Sent in each SYNC that asks for a tag
	// (key 24). Default 16; at most 64 (wire.MaxPossessionSamples).
	PossessionSamples int
	// PossessionMinSamples is the fewest samples a peer's tag may cover:
	// an answer covering fewer (a replica that predates sampled tags
	// answers with one entry's; or one that lies about its count) is
	// refused as a failed check and counted
	// (gdp_capsuled_dropped_total{reason="too_few_samples"}). Default
	// PossessionSamples; at most that. While upgrading a placement's
	// servers, set 1 to accept the older replicas' one-entry tags, and
	// back once all run this version (a reload, SIGHUP, changes it).
	PossessionMinSamples int
	// PeerTimeout bounds one request to a peer replica. Default 2s.
	PeerTimeout time.Duration
	// MaxLease is the longest subscription lease granted. Default 60s.
	MaxLease time.Duration
	// MaxSubscriptions bounds live subscriptions. When it is reached, a
	// subscriber holding fewer than the largest holder less one takes one
	// of that holder's (gdp_capsuled_subscription_quota_total
	// {reason="subscription_evicted"}); otherwise the new one is refused
	// 503 (reason "subscriptions_full"). Default 4096.
	MaxSubscriptions int
	// MaxSubscriptionsPerSubscriber bounds the live subscriptions of one
	// subscriber: of one proven identity, whatever names it subscribes
	// from (Session 15), or of one source name that proved nothing; more
	// are refused 503 (reason "subscriber_quota"). Default 64.
	MaxSubscriptionsPerSubscriber int
	// MaxSubscriptionsUnproven bounds the live subscriptions of every
	// subscriber that proved no identity (older clients, names that
	// cannot prove) together; more are refused 503 (reason
	// "unproven_quota"). Default MaxSubscriptions / 4.
	MaxSubscriptionsUnproven int
	// ReadLimit caps the entries one READ answer carries. Default 4096.
	ReadLimit int
	// SyncParallel is how many capsules anti-entropy works on at once;
	// within a capsule, its peers are asked in parallel. Default 16.
	SyncParallel int
	// SyncWindow is how many range SYNCs one catch-up from one peer has
	// outstanding at once (PROTOCOL.md §8.5): a replica far behind asks
	// for the next ranges while the answers before them travel and are
	// stored. Default 4; 1: one SYNC at a time.
	SyncWindow int
	// SyncAnswersPerPeer bounds the SYNCs of one peer answered at once, its
	// share of the Workers; more are answered 503 and counted
	// (gdp_capsuled_sync_refused_total{share}), and the peer asks again
	// shortly. A peer is a proven identity over all the names it asks
	// from; every asker that proved nothing (a replica older than Session
	// 15) is one peer together (Session 16; before, each source name).
	// Default 4.
	SyncAnswersPerPeer int
	// PeerBackoff is the longest a peer that did not answer (timeout or a
	// NAK such as NO_ROUTE) is left alone before it is asked again; the
	// wait starts at SyncInterval and doubles. Default 30s.
	PeerBackoff time.Duration
	// Placement says who may place capsules on this server.
	Placement PlacementPolicy
	// ReorderWait is how long, after the store's own reorder window (250
	// ms, for batches of a pipelining writer that arrive out of order) has
	// refused an APPEND as starting beyond the head, the server waits for
	// the durable head to catch up before calling the replica behind.
	// Default 50ms.
	ReorderWait time.Duration
	// BulkStreamsPerPeer bounds the bulk read streams (QUIC over names,
	// PROTOCOL.md §8.8) one reader identity has open at once; more are
	// answered 503 and counted (gdp_capsuled_bulk_refused_total). Default
	// 4; negative: bulk reads off (readers use READ PDUs).
	BulkStreamsPerPeer int
	// PublishWait bounds how long a CREATE waits, after the server's router
	// accepted the capsule's name, for the router to confirm that the
	// name's location record is in the resolver (PROTOCOL.md §5.4): a
	// CREATE is answered only once other routers can resolve the capsule.
	// When it expires the CREATE is answered 503, a new capsule's name is
	// withdrawn and nothing is stored (gdp_capsuled_placements_refused_total
	// {reason="not_published"}); the client retries. New waits, at most
	// PublishWait in all, for the records of the server's own name and of
	// every capsule it holds (not confirmed in time: served all the same,
	// one WARN). Default 5s.
	PublishWait time.Duration
	// CreatesPerPeer bounds the CREATEs of one requester waiting at once
	// for their location records (up to PublishWait each): a proven
	// identity over every name it sends from, every requester that proved
	// nothing together (Session 16; before, each source name). They wait
	// off the Workers, so a slow resolver never holds the workers that
	// serve reads, appends and syncs; more are answered 503 and counted
	// (gdp_capsuled_placements_refused_total{reason="creates_per_peer"},
	// "creates_unproven" for the pool). Default 16.
	CreatesPerPeer int
	// ReadAheadBytes bounds the records read ahead for one requester's
	// sequential READs (a file reader asking for chunk after chunk), over
	// all the capsules it reads (store.Options.ReadAheadBytes); a
	// requester, for this and ReadAheadStreams, is a proven identity over
	// every name it reads from, every requester that proved nothing
	// together (Session 16; before, each source name); a fill
	// stops there (gdp_capsuled_readahead_limited_total
	// {reason="requester_bytes"}). Default 4 MiB; negative: no read-ahead.
	ReadAheadBytes int
	// ReadAheadStreams bounds the capsules one requester is read ahead for
	// at once; a new one drops its least recently used
	// (reason="requester_streams"). Default 4.
	ReadAheadStreams int
	// ReadAheadTotal bounds the bytes read ahead for all requesters
	// (reason="total_bytes"). Default 64 MiB.
	ReadAheadTotal int
	// ReadAheadIdle: a requester's read-ahead for a capsule it has not read
	// for this long is dropped (reason="idle"). Default 10s.
	ReadAheadIdle time.Duration
}

// PlacementPolicy limits who may place capsules on a server, and how
// much. A CREATE it refuses is answered 403 and counted
// (gdp_capsuled_placements_refused_total{reason}). Renewing a capsule
// already held does not count again.
type PlacementPolicy struct {
	// Owners, when not empty, are the only owner keys (the Key of the
	// capsule's metadata) whose capsules may be placed here. Default
	// empty: any owner.
	Owners []ed25519.PublicKey
	// MaxPerOwner bounds the capsules one owner key has placed here.
	// Default 1024; negative: no bound.
	MaxPerOwner int
	// MaxPerRequester bounds the capsules one requester has placed here
	// (renewals, from anyone, do not count again); more are refused
	// (reason "requester_quota"). Owner keys cost nothing to mint, so
	// MaxPerOwner alone let one member fill MaxPlacements. A requester is
	// the identity its CREATE proves (Session 14: its membership, for the
	// PDU's source name or one of its session names — every name one
	// member holds counts as one), or, for a CREATE that proves none (an
	// older client), its source name, which its router verified the sender
	// holds (one member may hold advertise.max_names_per_identity of
	// those: see MaxPerDomain). Default 1024; negative: no bound.
	MaxPerRequester int
	// MaxBytesPerRequester bounds the bytes of records (store.Bytes: the
	// entries in wire form, abandoned branches too) held here for the
	// capsules one requester placed (MaxPerRequester's count): beyond it a
	// writer's APPEND to any of them is answered 503 and anti-entropy does
	// not pull them (gdp_capsuled_storage_refused_total{op,share=
	// "requester"}), so one member's writers cannot fill the disk that
	// min_free_bytes then closes to every member. Checked before each
	// write, against a sum taken from the store at most once a second plus
	// the creator's own APPENDs since, so one batch, or what anti-entropy
	// pulls within that second, may pass it. Default 64 GiB; negative: no
	// bound.
	MaxBytesPerRequester int64
	// MaxPerDomain bounds the capsules the members of one other domain
	// (not this server's own: its operator admits each member) have placed
	// here together, as the routers' face.max_per_domain bounds their
	// tunnels; more are refused (reason "domain_quota"). Every requester
	// that proves no identity (an older client, a forged or untrusted
	// membership, a source name its proof does not cover) counts in one
	// pool with the same bound (reason "unproven_quota"), so names that
	// prove nothing get one domain's share together, however many. Session
	// 14. Default 16384 (a quarter of the default MaxPlacements); negative:
	// no bound.
	MaxPerDomain int
	// MaxBytesPerDomain bounds the bytes of records held here for the
	// capsules MaxPerDomain counts together (one other domain's, or the
	// unproven pool's), as MaxBytesPerRequester does for one requester
	// (gdp_capsuled_storage_refused_total{op,share="domain"|"unproven"}).
	// Default 256 GiB; negative: no bound.
	MaxBytesPerDomain int64
	// MaxReplicas bounds a capsule's replica set. Default 7; at most 16.
	MaxReplicas int
	// MaxPlacements bounds the capsules placed here in all. Default 65536.
	MaxPlacements int
}

// WithDefaults is c with every zero field at its default, checked as New
// checks it (gdp doctor compares the shares it resolves to with their
// totals).
func (c Config) WithDefaults() (Config, error) { return c.withDefaults() }

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, fmt.Errorf("capsuled config: dir is required")
	}
	if c.MaxData <= 0 {
		c.MaxData = DefaultMaxData
	}
	if c.MaxData > DefaultMaxData || c.MaxData > capsule.MaxDataLimit {
		return c, fmt.Errorf("capsuled config: max_data %d above %d (one record must fit an APPEND)", c.MaxData, DefaultMaxData)
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.BulkStreamsPerPeer == 0 {
		c.BulkStreamsPerPeer = 4
	}
	if c.Queue <= 0 {
		c.Queue = 4096
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = time.Second
	}
	if c.PossessionInterval <= 0 {
		c.PossessionInterval = DefaultPossessionInterval
	}
	switch {
	case c.PossessionSamples < 0 || c.PossessionSamples > wire.MaxPossessionSamples:
		return c, fmt.Errorf("capsuled config: possession_samples %d outside [1, %d]", c.PossessionSamples, wire.MaxPossessionSamples)
	case c.PossessionSamples == 0:
		c.PossessionSamples = DefaultPossessionSamples
	}
	switch {
	case c.PossessionMinSamples < 0 || c.PossessionMinSamples > c.PossessionSamples:
		return c, fmt.Errorf("capsuled config: possession_min_samples %d outside [1, possession_samples %d] (above it, every check would fail)",
			c.PossessionMinSamples, c.PossessionSamples)
	case c.PossessionMinSamples == 0:
		c.PossessionMinSamples = c.PossessionSamples
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = 2 * time.Second
	}
	if c.MaxLease <= 0 {
		c.MaxLease = time.Minute
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 4096
	}
	if c.MaxSubscriptionsPerSubscriber <= 0 {
		c.MaxSubscriptionsPerSubscriber = 64
	}
	if c.MaxSubscriptionsUnproven <= 0 {
		c.MaxSubscriptionsUnproven = max(1, c.MaxSubscriptions/4)
	}
	if c.RequesterCache <= 0 {
		c.RequesterCache = 65536
	}
	if c.RequesterCachePerIdentity <= 0 {
		c.RequesterCachePerIdentity = 64
	}
	if c.CreatesPerPeer <= 0 {
		c.CreatesPerPeer = 16
	}
	if c.PublishWait <= 0 {
		c.PublishWait = 5 * time.Second
	}
	if c.ReorderWait <= 0 {
		c.ReorderWait = 50 * time.Millisecond
	}
	if c.SyncParallel <= 0 {
		c.SyncParallel = 16
	}
	if c.SyncWindow <= 0 {
		c.SyncWindow = 4
	}
	if c.SyncAnswersPerPeer <= 0 {
		c.SyncAnswersPerPeer = 4
	}
	if c.PeerBackoff <= 0 {
		c.PeerBackoff = 30 * time.Second
	}
	pp := &c.Placement
	if pp.MaxPerOwner == 0 {
		pp.MaxPerOwner = 1024
	}
	if pp.MaxPerRequester == 0 {
		pp.MaxPerRequester = 1024
	}
	if pp.MaxBytesPerRequester == 0 {
		pp.MaxBytesPerRequester = DefaultMaxBytesPerRequester
	}
	if pp.MaxPerDomain == 0 {
		pp.MaxPerDomain = 16384
	}
	if pp.MaxBytesPerDomain == 0 {
		pp.MaxBytesPerDomain = DefaultMaxBytesPerDomain
	}
	if pp.MaxReplicas <= 0 {
		pp.MaxReplicas = 7
	}
	if pp.MaxReplicas > wire.MaxReplicas {
		return c, fmt.Errorf("capsuled config: placement max_replicas %d above %d", pp.MaxReplicas, wire.MaxReplicas)
	}
	if pp.MaxPlacements <= 0 {
		pp.MaxPlacements = 65536
	}
	for i, k := range pp.Owners {
		if len(k) != ed25519.PublicKeySize {
			return c, fmt.Errorf("capsuled config: placement owner %d has %d bytes, want %d", i, len(k), ed25519.PublicKeySize)
		}
	}
	if c.ReadLimit <= 0 || c.ReadLimit > wire.MaxRecords {
		c.ReadLimit = wire.MaxRecords
	}
	return c, nil
}
