package capsuled

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/vfsutil"
	"github.com/gdpnet/gdpnet/pdu"
)

// placement is what a CREATE put on this server: the capsule's metadata,
// the owner's AdCert for this server, the replica set and W.
type placement struct {
	name     pdu.Name
	meta     *certs.Metadata
	adcert   *certs.Cert
	replicas []pdu.Name
	w        int
	// record is the owner-signed placement record replicas and w come
	// from (nil only for a placement stored before records existed).
	record *capsule.Placement
	// creator is the requester whose CREATE first placed the capsule here
	// (the source name its router verified); renewals keep it. Zero for a
	// placement stored before Session 13 (counted in no requester's
	// share).
	creator pdu.Name
	// who is whose shares it counts in (requester.go): the creator's
	// proven identity and domain (Session 14), or its name and the
	// unproven pool; renewals keep it.
	who who
}

// message is the placement as a CREATE message (its file form).
func (p *placement) message() *wire.Message {
	m := &wire.Message{Op: wire.OpCreate, Capsule: p.name[:], Metadata: p.meta.Marshal(),
		AdCert: p.adcert.Marshal(), Replicas: wire.NameBytes(p.replicas), W: uint64(p.w)}
	if p.record != nil {
		m.Placement = p.record.Marshal()
	}
	if p.creator != (pdu.Name{}) {
		// The file form only: key 11, which every version's decoder
		// knows, so an older binary still opens the file (and ignores it).
		m.Hash = p.creator[:]
	}
	// Key 13 (Session 14): the requester's proof, or unprovenMark. Every
	// version's decoder knows the key; an older binary ignores it here.
	m.Proof = p.who.proof
	return m
}

// peers are the other replicas.
func (p *placement) peers(self pdu.Name) []pdu.Name {
	var out []pdu.Name
	for _, r := range p.replicas {
		if r != self {
			out = append(out, r)
		}
	}
	return out
}

// parsePlacement checks a CREATE's fields for server self. The replica set
// and W come from the owner-signed placement record the CREATE must carry
// (a CREATE's own Replicas and W, when present, must agree with it);
// without requireRecord (a placement file written before records
// existed) a missing record falls back to the message's fields.
func parsePlacement(m *wire.Message, self pdu.Name, requireRecord bool) (*placement, error) {
	meta, err := certs.ParseMetadata(m.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", wire.ErrMalformed, err)
	}
	if meta.Kind != certs.KindCapsule || len(meta.WriterKey) == 0 {
		return nil, fmt.Errorf("%w: metadata is a %s, not a capsule with a writer key", wire.ErrMalformed, meta.Kind)
	}
	name := meta.Name()
	if m.CapsuleName() != name {
		return nil, fmt.Errorf("%w: metadata hashes to %s, not %s", wire.ErrMalformed, name, m.CapsuleName())
	}
	ad, err := certs.ParseCert(m.AdCert)
	if err != nil {
		return nil, fmt.Errorf("%w: adcert: %v", errForbidden, err)
	}
	if ad.Kind != certs.KindAdCert || ad.Issuer != name || ad.Subject != self {
		return nil, fmt.Errorf("%w: adcert is a %s from %s for %s; want an adcert from the capsule for this server", errForbidden, ad.Kind, ad.Issuer, ad.Subject)
	}
	p := &placement{name: name, meta: meta, adcert: ad, replicas: m.ReplicaNames(), w: int(m.W)}
	switch {
	case len(m.Placement) > 0:
		rec, err := capsule.UnmarshalPlacement(m.Placement)
		if err != nil {
			return nil, fmt.Errorf("%w: placement record: %v", errForbidden, err)
		}
		if err := rec.Verify(meta); err != nil {
			return nil, fmt.Errorf("%w: placement record: %v", errForbidden, err)
		}
		if (len(m.Replicas) > 0 && !slices.Equal(p.replicas, rec.Replicas)) || (m.W != 0 && int(m.W) != rec.W) {
			return nil, fmt.Errorf("%w: replicas and w differ from the signed placement record", wire.ErrMalformed)
		}
		p.record, p.replicas, p.w = rec, rec.Replicas, rec.W
	case requireRecord:
		return nil, fmt.Errorf("%w: no placement record signed by the capsule's owner", errForbidden)
	}
	if len(p.replicas) == 0 {
		p.replicas = []pdu.Name{self}
	}
	seen := map[pdu.Name]bool{}
	for _, r := range p.replicas {
		if seen[r] {
			return nil, fmt.Errorf("%w: replica %s listed twice", wire.ErrMalformed, r)
		}
		seen[r] = true
	}
	if !seen[self] {
		return nil, fmt.Errorf("%w: this server is not in the replica set", errForbidden)
	}
	if p.w == 0 {
		p.w = len(p.replicas)/2 + 1
	}
	if p.w > len(p.replicas) {
		return nil, fmt.Errorf("%w: w %d > n %d", wire.ErrMalformed, p.w, len(p.replicas))
	}
	return p, nil
}

// errForbidden: the CREATE carries no AdCert valid for this server.
var errForbidden = errors.New("forbidden")

// refusal is a placement the policy refuses: its text is what the
// requester is told — one line naming the limit and what to do — and it
// is errForbidden (403, which the requester's answer already says).
type refusal string

func refusalf(format string, a ...any) error { return refusal(fmt.Sprintf(format, a...)) }

func (r refusal) Error() string        { return string(r) }
func (r refusal) Is(target error) bool { return target == errForbidden }

// requesterName is whom a refusal names: the identity a proven requester
// proved, else the CREATE's source name.
func (p *placement) requesterName() pdu.Name {
	if p.who.name != (pdu.Name{}) {
		return p.who.name
	}
	return p.creator
}

// placements persists placements, one file per capsule, replaced
// atomically (write, fsync, rename, fsync the directory). The files live on
// fs: the operating system's file system, or in tests a strict in-memory
// one that drops whatever was not synced (TestPlacementsPowerLoss).
type placements struct {
	fs  vfs.FS
	dir string
	tmp atomic.Uint64 // temporary file names
	// wmu orders the writes of placements (put, remove): a file and the
	// map change together, and put checks the held record under it.
	wmu sync.Mutex
	mu  sync.RWMutex
	m   map[pdu.Name]*placement
	// byShare and byGroup index m by who.share and who.group
	// (max_bytes_per_requester and max_bytes_per_domain sum the bytes of
	// their capsules at each write).
	byShare, byGroup index
	// pending holds the new capsules admitted but not yet stored (their
	// CREATEs wait for the location record): each counts in its
	// requester's, its group's, its owner's and the server's totals from
	// admission on, so CREATEs waiting at once cannot together pass a limit
	// (Session 13). Keyed by share and capsule; the count is of CREATEs
	// holding the entry.
	pending map[pendingKey]*pendingPlacement
	// own is the server's own domain now (its client's: a reload that
	// replaces the domain key changes it): its members' placements are not
	// limited per domain (its operator admits each of them). nil: none.
	own func() pdu.Name
}

// limitedGroup reports whether g is a group max_per_domain and
// max_bytes_per_domain apply to: another domain, or the unproven pool.
func (ps *placements) limitedGroup(g pdu.Name) bool {
	return g != (pdu.Name{}) && (ps.own == nil || g != ps.own())
}

// ofUntrusted is how many placements were made by members of a domain
// trusted reports false for (Session 18: the reload's line says how many a
// withdrawal left; they stay).
func (ps *placements) ofUntrusted(trusted func(pdu.Name) bool) int {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	n := 0
	for _, p := range ps.m {
		if g := p.who.group; g != (pdu.Name{}) && g != unprovenGroup && !trusted(g) {
			n++
		}
	}
	return n
}

type pendingKey struct{ share, name pdu.Name }

// index is a set of capsules per key.
type index map[pdu.Name]map[pdu.Name]struct{}

func (ix index) add(k, c pdu.Name) {
	if k == (pdu.Name{}) {
		return
	}
	set := ix[k]
	if set == nil {
		set = map[pdu.Name]struct{}{}
		ix[k] = set
	}
	set[c] = struct{}{}
}

func (ix index) remove(k, c pdu.Name) {
	if set := ix[k]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(ix, k)
		}
	}
}

type pendingPlacement struct {
	p    *placement
	refs int
}

// index records p under its share and group (mu held for writing); old
// is the placement p replaces, if any.
func (ps *placements) index(p, old *placement) {
	if old != nil {
		ps.unindex(old)
	}
	ps.byShare.add(p.who.share, p.name)
	ps.byGroup.add(p.who.group, p.name)
}

func (ps *placements) unindex(p *placement) {
	ps.byShare.remove(p.who.share, p.name)
	ps.byGroup.remove(p.who.group, p.name)
}

// heldBy lists the capsules placed here in share k.
func (ps *placements) heldBy(k pdu.Name) []pdu.Name { return ps.list(ps.byShare, k) }

// heldByGroup lists the capsules placed here in group g.
func (ps *placements) heldByGroup(g pdu.Name) []pdu.Name { return ps.list(ps.byGroup, g) }

func (ps *placements) list(ix index, k pdu.Name) []pdu.Name {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	out := make([]pdu.Name, 0, len(ix[k]))
	for c := range ix[k] {
		out = append(out, c)
	}
	return out
}

func openPlacements(dir string) (*placements, error) { return openPlacementsOn(vfs.Default, dir) }

func openPlacementsOn(fs vfs.FS, dir string) (*placements, error) {
	// The directory's own entry must survive a power cut too.
	if err := vfsutil.MkdirAll(fs, dir, 0o700); err != nil {
		return nil, fmt.Errorf("placements: %w", err)
	}
	ps := &placements{fs: fs, dir: dir, m: map[pdu.Name]*placement{}, byShare: index{}, byGroup: index{},
		pending: map[pendingKey]*pendingPlacement{}}
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("placements: %w", err)
	}
	for _, e := range names {
		if strings.Contains(e, ".tmp-") {
			_ = fs.Remove(filepath.Join(dir, e)) // a write cut short
			continue
		}
		if !strings.HasSuffix(e, ".place") {
			continue
		}
		b, err := vfsutil.ReadFile(fs, filepath.Join(dir, e))
		if err != nil {
			return nil, fmt.Errorf("placements: %w", err)
		}
		m, err := wire.Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("placement %s: %w", e, err)
		}
		ad, err := certs.ParseCert(m.AdCert)
		if err != nil {
			return nil, fmt.Errorf("placement %s: %w", e, err)
		}
		p, err := parsePlacement(m, ad.Subject, false)
		if err != nil {
			return nil, fmt.Errorf("placement %s: %w", e, err)
		}
		if len(m.Hash) == pdu.NameLen {
			p.creator = pdu.Name(m.Hash)
		}
		if p.who, err = whoOfFile(m.Proof, p.creator); err != nil {
			return nil, fmt.Errorf("placement %s: %w", e, err)
		}
		ps.index(p, ps.m[p.name])
		ps.m[p.name] = p
	}
	return ps, nil
}

// writeFileOn writes data to path atomically and durably (a uniquely
// named temporary file, fsync, rename, fsync of the directory).
func (ps *placements) writeFileOn(path string, data []byte) error {
	return vfsutil.WriteFile(ps.fs, fmt.Sprintf("%s.tmp-%d", path, ps.tmp.Add(1)), path, data)
}

func (ps *placements) get(n pdu.Name) *placement {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.m[n]
}

func (ps *placements) all() []*placement {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	out := make([]*placement, 0, len(ps.m))
	for _, p := range ps.m {
		out = append(out, p)
	}
	return out
}

// put stores p durably, unless the placement held has a newer placement
// record (capsule.ErrStale). handleCreate checks that first, but a CREATE
// waits for its location record between that check and this put, and two
// CREATEs of one capsule run at once (the owner's renewal and a replay of
// the CREATE held, whose record is not older): the check is made again
// here, with the writes ordered, so the older cannot land last and roll
// the replica set and AdCert back, nor the file and the map end up
// holding different CREATEs.
func (ps *placements) put(p *placement) error {
	b, err := p.message().Marshal()
	if err != nil {
		return err
	}
	ps.wmu.Lock()
	defer ps.wmu.Unlock()
	if held := ps.get(p.name); held != nil && held.record != nil && p.record != nil && p.record.Issued.Before(held.record.Issued) {
		return fmt.Errorf("create %s: %w: placement record of %s is older than the one held (%s), stored meanwhile", p.name, capsule.ErrStale,
			p.record.Issued.Format(time.RFC3339), held.record.Issued.Format(time.RFC3339))
	}
	path := filepath.Join(ps.dir, p.name.String()+".place")
	if err := ps.writeFileOn(path, b); err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	ps.mu.Lock()
	ps.index(p, ps.m[p.name])
	ps.m[p.name] = p
	ps.mu.Unlock()
	return nil
}

// Reasons a placement is refused (the placements_refused_total label).
const (
	refuseOwner = "owner_not_allowed"
	refuseQuota = "owner_quota"
	// refuseRequester: the requester (its proven identity, or an unproven
	// source name) has placed max_per_requester capsules here (owner keys
	// cost nothing to mint, so owner_quota alone bounds no member)
	refuseRequester = "requester_quota"
	// refuseDomain: the members of the requester's domain (another than
	// the server's) have placed max_per_domain capsules here together
	refuseDomain = "domain_quota"
	// refuseUnproven: the requesters that proved no identity have placed
	// max_per_domain capsules here together
	refuseUnproven = "unproven_quota"
	refuseReplicas = "too_many_replicas"
	refuseFull     = "server_full"
	refuseDisk     = "disk_full" // below min_free_bytes
	// refuseCreates: the requester (its proven identity) has
	// creates_per_peer CREATEs waiting
	refuseCreates = "creates_per_peer"
	// refuseCreatesUnproven: the requesters that proved no identity have
	// creates_per_peer CREATEs waiting together (Session 16)
	refuseCreatesUnproven = "creates_unproven"
	// refuseUnpublished: the router did not confirm the location record
	// within publish_wait.
	refuseUnpublished = "not_published"
)

// admit applies the placement policy to a new placement p (renewal: the
// capsule is held already) asked for by p.who. It returns the refusal
// reason and error, or "" and nil. An admitted new capsule is reserved in
// every total until release is called (always non-nil; call it once the
// CREATE has stored the placement or failed, whichever way).
func (ps *placements) admit(pol PlacementPolicy, p *placement, renewal bool) (release func(), reason string, err error) {
	release = func() {}
	if len(p.replicas) > pol.MaxReplicas {
		return release, refuseReplicas, refusalf("%d replicas, this server accepts at most %d (placement.max_replicas): place the capsule on fewer servers", len(p.replicas), pol.MaxReplicas)
	}
	if len(pol.Owners) > 0 && !slices.ContainsFunc(pol.Owners, func(k ed25519.PublicKey) bool { return k.Equal(p.meta.Key) }) {
		return release, refuseOwner, refusalf("the capsule's owner key may not place capsules on this server (placement.owners): ask this server's operator to list the key, or place the capsule on another server")
	}
	if renewal {
		return release, "", nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	// The pending capsules not stored yet (one CREATE's capsule may be
	// stored and still reserved: counted once), added to each total; p's
	// own (another CREATE of it waits) is not counted against it.
	var mine, group, all, owners int
	seen, seenGroup := map[pdu.Name]bool{}, map[pdu.Name]bool{}
	for k, e := range ps.pending {
		if _, stored := ps.m[k.name]; stored || k.name == p.name {
			continue
		}
		if k.share == p.who.share {
			mine++
		}
		if e.p.who.group == p.who.group && !seenGroup[k.name] {
			seenGroup[k.name] = true
			group++
		}
		if !seen[k.name] {
			seen[k.name] = true
			all++
			if e.p.meta.Key.Equal(p.meta.Key) {
				owners++
			}
		}
	}
	// The requester's share first: a member at its share is told so, not
	// that its domain's or the server's are used up (which its own
	// capsules may have made them).
	if pol.MaxPerRequester >= 0 && p.who.share != (pdu.Name{}) {
		if n := len(ps.byShare[p.who.share]) + mine; n >= pol.MaxPerRequester {
			return release, refuseRequester, refusalf("%s has placed %d capsules here, its most (placement.max_per_requester): delete one it no longer needs (gdp capsule delete), or ask this server's operator to raise the limit", p.requesterName(), n)
		}
	}
	if pol.MaxPerDomain >= 0 && ps.limitedGroup(p.who.group) {
		if n := len(ps.byGroup[p.who.group]) + group; n >= pol.MaxPerDomain {
			if p.who.group == unprovenGroup {
				return release, refuseUnproven, refusalf("the requesters that proved no identity have placed %d capsules here together, their most (placement.max_per_domain): "+
					"send the CREATE with a membership of a domain this server trusts (a client of Session 14 or later proves it), or ask this server's operator to raise the limit", n)
			}
			return release, refuseDomain, refusalf("the members of domain %s have placed %d capsules here together, their most (placement.max_per_domain): ask this server's operator to raise the limit, or place the capsule on another server", p.who.group, n)
		}
	}
	if n := len(ps.m) + all; n >= pol.MaxPlacements {
		return release, refuseFull, refusalf("this server holds %d capsules, its most (placement.max_placements): place the capsule on another server", n)
	}
	if pol.MaxPerOwner >= 0 {
		n := owners
		for _, q := range ps.m {
			if q.meta.Key.Equal(p.meta.Key) {
				n++
			}
		}
		if n >= pol.MaxPerOwner {
			return release, refuseQuota, refusalf("the capsule's owner key has placed %d capsules here, its most (placement.max_per_owner): delete one it no longer needs (gdp capsule delete), or ask this server's operator to raise the limit", n)
		}
	}
	if ps.pending == nil {
		ps.pending = map[pendingKey]*pendingPlacement{}
	}
	k := pendingKey{p.who.share, p.name}
	e := ps.pending[k]
	if e == nil {
		e = &pendingPlacement{p: p}
		ps.pending[k] = e
	}
	e.refs++
	var once sync.Once
	return func() {
		once.Do(func() {
			ps.mu.Lock()
			defer ps.mu.Unlock()
			if e.refs--; e.refs == 0 {
				delete(ps.pending, k)
			}
		})
	}, "", nil
}
