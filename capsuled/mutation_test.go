package capsuled

import (
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// The tests in this file each kill mutants that survived the capsuled
// tests run in the sweep (docs/SECURITY.md, "Mutation sweep").

// TestParsePlacementRefuses: every check of a CREATE's placement, on a
// good CREATE with one field changed (mutants: each guard skipped, each ||
// operand dropped, the replica comparison forced true, len > 0 → >= 0).
func TestParsePlacementRefuses(t *testing.T) {
	self, other := pdu.Name{1}, pdu.Name{2}
	tc := newPlacementCapsule(t, "placement")
	name := tc.meta.Name()
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{self, other}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := capsule.SignPlacement(tc.owner.Key, tc.meta, []pdu.Name{self, other}, 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tc2 := newPlacementCapsule(t, "another")
	places2, err := client.PlaceCapsule(tc2.owner, tc2.meta, []pdu.Name{self}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := func() *wire.Message {
		return &wire.Message{Op: wire.OpCreate, Capsule: name[:], Metadata: tc.meta.Marshal(),
			AdCert: places[0].AdCert.Marshal(), Placement: rec.Marshal()}
	}
	p, err := parsePlacement(good(), self, true)
	if err != nil || len(p.replicas) != 2 || p.w != 2 {
		t.Fatalf("the good CREATE: %+v, %v", p, err)
	}
	srv := newPlacementCapsule(t, "server").owner.Meta // a client's metadata: not a capsule
	srvName := srv.Name()
	tests := []struct {
		name string
		mut  func(m *wire.Message)
		req  bool // requireRecord
		want error
	}{
		{"metadata that does not parse", func(m *wire.Message) { m.Metadata = []byte("junk") }, true, wire.ErrMalformed},
		{"metadata of a client", func(m *wire.Message) { m.Metadata, m.Capsule = srv.Marshal(), srvName[:] }, true, wire.ErrMalformed},
		{"metadata of another name", func(m *wire.Message) { m.Capsule = other[:] }, true, wire.ErrMalformed},
		{"adcert that does not parse", func(m *wire.Message) { m.AdCert = []byte("junk") }, true, errForbidden},
		{"adcert for another server", func(m *wire.Message) { m.AdCert = places[1].AdCert.Marshal() }, true, errForbidden},
		{"adcert of another capsule", func(m *wire.Message) { m.AdCert = places2[0].AdCert.Marshal() }, true, errForbidden},
		{"placement record that does not parse", func(m *wire.Message) { m.Placement = []byte("junk") }, true, errForbidden},
		{"replicas other than the record's", func(m *wire.Message) { m.Replicas = wire.NameBytes([]pdu.Name{self}) }, true, wire.ErrMalformed},
		{"w other than the record's", func(m *wire.Message) { m.W = 1 }, true, wire.ErrMalformed},
		{"a replica twice", func(m *wire.Message) {
			m.Placement, m.Replicas = nil, wire.NameBytes([]pdu.Name{self, self})
		}, false, wire.ErrMalformed},
		{"this server not a replica", func(m *wire.Message) {
			m.Placement, m.Replicas = nil, wire.NameBytes([]pdu.Name{other})
		}, false, errForbidden},
		{"w above n", func(m *wire.Message) { m.Placement, m.W = nil, 3 }, false, wire.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.mut(m)
			if _, err := parsePlacement(m, self, tt.req); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// No record where none is required: the replicas and w of the message.
	m := good()
	m.Placement, m.Replicas = nil, wire.NameBytes([]pdu.Name{self, other})
	if p, err := parsePlacement(m, self, false); err != nil || len(p.replicas) != 2 || p.w != 2 {
		t.Fatalf("no record, not required: %+v, %v", p, err)
	}
}

type placementCapsule struct {
	owner  *certs.Identity
	writer *certs.Identity
	meta   *certs.Metadata
}

func newPlacementCapsule(t *testing.T, desc string) placementCapsule {
	t.Helper()
	owner, err := certs.NewIdentity(certs.KindClient, desc+" owner")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := certs.NewIdentity(certs.KindClient, desc+" writer")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := certs.NewCapsule(owner.Key, writer.Public(), desc)
	if err != nil {
		t.Fatal(err)
	}
	return placementCapsule{owner: owner, writer: writer, meta: meta}
}

// TestPlacementAdmitBounds: the placement policy's bounds at their edges
// (mutants: MaxPlacements skipped or >= → >, > → >= for MaxReplicas,
// MaxPerOwner 0 read as "no bound", another owner's capsules counted as
// this owner's).
func TestPlacementAdmitBounds(t *testing.T) {
	a, b := newPlacementCapsule(t, "owner a"), newPlacementCapsule(t, "owner b")
	pl := func(c placementCapsule, replicas int) *placement {
		rs := make([]pdu.Name, replicas)
		for i := range rs {
			rs[i] = pdu.Name{byte(i + 1)}
		}
		return &placement{name: c.meta.Name(), meta: c.meta, replicas: rs}
	}
	held := func(cs ...placementCapsule) *placements {
		ps := &placements{m: map[pdu.Name]*placement{}}
		for i, c := range cs {
			p := pl(c, 1)
			p.name = pdu.Name{0xee, byte(i)}
			ps.m[p.name] = p
		}
		return ps
	}
	pol := PlacementPolicy{MaxReplicas: 2, MaxPlacements: 2, MaxPerOwner: 1}
	tests := []struct {
		name string
		ps   *placements
		p    *placement
		pol  PlacementPolicy
		want string // refusal reason; "" admitted
	}{
		{"MaxReplicas replicas", held(), pl(a, 2), pol, ""},
		{"MaxReplicas+1 replicas", held(), pl(a, 3), pol, refuseReplicas},
		{"one below MaxPlacements", held(b), pl(a, 1), pol, ""},
		{"at MaxPlacements", held(b, b), pl(a, 1), PlacementPolicy{MaxReplicas: 2, MaxPlacements: 2, MaxPerOwner: -1}, refuseFull},
		{"another owner's capsule is not this owner's", held(b), pl(a, 1), pol, ""},
		{"the owner at MaxPerOwner", held(a), pl(a, 1), pol, refuseQuota},
		{"MaxPerOwner 0 admits none", held(), pl(a, 1), PlacementPolicy{MaxReplicas: 2, MaxPlacements: 2, MaxPerOwner: 0}, refuseQuota},
		{"MaxPerRequester 0 admits none", held(), withCreator(pl(a, 1), pdu.Name{0xa1}), PlacementPolicy{MaxReplicas: 2, MaxPlacements: 2, MaxPerOwner: -1, MaxPerRequester: 0}, refuseRequester},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reason, err := tt.ps.admit(tt.pol, tt.p, false)
			if reason != tt.want || (tt.want == "") != (err == nil) {
				t.Fatalf("got %q, %v; want %q", reason, err, tt.want)
			}
		})
	}
}

func withCreator(p *placement, creator pdu.Name) *placement {
	p.creator, p.who = creator, who{share: creator}
	return p
}

// TestPlacementAdmitReservedCountedOnce (Session 14): a reservation is
// counted in a total only for what it adds — a capsule stored and still
// reserved is not counted twice in max_placements, max_per_requester and
// max_per_owner, and a capsule of another owner waiting is not this
// owner's (mutants: the "stored" operand dropped from the pending scan,
// the pending capsule's owner comparison forced true). Each limit is one
// above what is held, so a double count refuses where one count admits.
func TestPlacementAdmitReservedCountedOnce(t *testing.T) {
	a, b := newPlacementCapsule(t, "owner a"), newPlacementCapsule(t, "owner b")
	alice := pdu.Name{0xa1}
	pl := func(c placementCapsule, creator pdu.Name) *placement {
		return &placement{name: c.meta.Name(), meta: c.meta, replicas: []pdu.Name{{1}}, creator: creator, who: who{share: creator}}
	}
	loose := PlacementPolicy{MaxReplicas: 1, MaxPlacements: 100, MaxPerOwner: -1, MaxPerRequester: -1}
	for _, tt := range []struct {
		name string
		pol  PlacementPolicy
		next *placement
	}{
		{"max_placements", PlacementPolicy{MaxReplicas: 1, MaxPlacements: 2, MaxPerOwner: -1, MaxPerRequester: -1}, pl(b, pdu.Name{0xb0})},
		{"max_per_requester", PlacementPolicy{MaxReplicas: 1, MaxPlacements: 100, MaxPerOwner: -1, MaxPerRequester: 2}, pl(b, alice)},
	} {
		t.Run("stored and reserved, "+tt.name, func(t *testing.T) {
			ps := &placements{m: map[pdu.Name]*placement{}, byShare: index{}, byGroup: index{}}
			first := pl(a, alice)
			rel, reason, err := ps.admit(loose, first, false)
			if err != nil {
				t.Fatalf("first: %s %v", reason, err)
			}
			defer rel()
			ps.index(first, nil)
			ps.m[first.name] = first // stored, its CREATE not answered yet
			if _, reason, err := ps.admit(tt.pol, tt.next, false); err != nil {
				t.Fatalf("one capsule held (stored and reserved), limit 2: refused %s (%v), want admitted", reason, err)
			}
		})
	}
	t.Run("another owner's capsule waiting, max_per_owner", func(t *testing.T) {
		ps := &placements{m: map[pdu.Name]*placement{}, byShare: index{}, byGroup: index{}}
		rel, reason, err := ps.admit(loose, pl(b, alice), false)
		if err != nil {
			t.Fatalf("b: %s %v", reason, err)
		}
		defer rel()
		pol := PlacementPolicy{MaxReplicas: 1, MaxPlacements: 100, MaxPerOwner: 1, MaxPerRequester: -1}
		if _, reason, err := ps.admit(pol, pl(a, alice), false); err != nil {
			t.Fatalf("owner b's capsule waiting, owner a has none, max_per_owner 1: refused %s (%v)", reason, err)
		}
	})
}

// TestPlacementAdmitReserves (Session 13): a new capsule admitted but not
// yet stored (its CREATE waits for publication) counts in
// max_per_requester, max_per_owner and max_placements until released; the
// same capsule admitted twice counts once; a stored capsule still
// reserved counts once; a released slot is free again.
func TestPlacementAdmitReserves(t *testing.T) {
	a := newPlacementCapsule(t, "owner a")
	other := func(desc string) *certs.Metadata { // another capsule of a's owner
		w, err := certs.NewIdentity(certs.KindClient, desc+" writer")
		if err != nil {
			t.Fatal(err)
		}
		meta, err := certs.NewCapsule(a.owner.Key, w.Public(), desc)
		if err != nil {
			t.Fatal(err)
		}
		return meta
	}
	alice, bob := pdu.Name{0xa1}, pdu.Name{0xb0}
	pl := func(meta *certs.Metadata, creator pdu.Name) *placement {
		return &placement{name: meta.Name(), meta: meta, replicas: []pdu.Name{{1}}, creator: creator, who: who{share: creator}}
	}
	// Session 14: alice and bob members of one other domain, or both
	// unproven.
	inGroup := func(p *placement, g pdu.Name) *placement { p.who.group = g; return p }
	partner := pdu.Name{0xd0}
	m1, m2 := other("one"), other("two")
	for _, tt := range []struct {
		name   string
		pol    PlacementPolicy
		second *placement // admitted while the first (m1 by alice) waits
		want   string
	}{
		{"max_per_requester", PlacementPolicy{MaxReplicas: 1, MaxPlacements: 10, MaxPerOwner: -1, MaxPerRequester: 1}, pl(newPlacementCapsule(t, "b").meta, alice), refuseRequester},
		{"max_per_owner", PlacementPolicy{MaxReplicas: 1, MaxPlacements: 10, MaxPerOwner: 1, MaxPerRequester: -1}, pl(m2, bob), refuseQuota},
		{"max_placements", PlacementPolicy{MaxReplicas: 1, MaxPlacements: 1, MaxPerOwner: -1, MaxPerRequester: -1}, pl(newPlacementCapsule(t, "c").meta, bob), refuseFull},
		{"max_per_domain", PlacementPolicy{MaxReplicas: 1, MaxPlacements: 10, MaxPerOwner: -1, MaxPerRequester: -1, MaxPerDomain: 1}, inGroup(pl(newPlacementCapsule(t, "d").meta, bob), partner), refuseDomain},
		{"unproven pool", PlacementPolicy{MaxReplicas: 1, MaxPlacements: 10, MaxPerOwner: -1, MaxPerRequester: -1, MaxPerDomain: 1}, inGroup(pl(newPlacementCapsule(t, "e").meta, bob), unprovenGroup), refuseUnproven},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ps := &placements{m: map[pdu.Name]*placement{}, byShare: index{}, byGroup: index{}}
			first := inGroup(pl(m1, alice), tt.second.who.group)
			rel1, reason, err := ps.admit(tt.pol, first, false)
			if err != nil {
				t.Fatalf("first: %s %v", reason, err)
			}
			// The same capsule again (a second CREATE of it) counts once.
			rel1b, reason, err := ps.admit(tt.pol, inGroup(pl(m1, alice), tt.second.who.group), false)
			if err != nil {
				t.Fatalf("the same capsule again: %s %v", reason, err)
			}
			if _, reason, _ := ps.admit(tt.pol, tt.second, false); reason != tt.want {
				t.Fatalf("second capsule while the first waits: %q, want %q", reason, tt.want)
			}
			rel1()
			rel1() // a second call gives nothing more back
			if _, reason, _ := ps.admit(tt.pol, tt.second, false); reason != tt.want {
				t.Fatalf("second capsule while the first's other CREATE waits: %q, want %q", reason, tt.want)
			}
			rel1b()
			rel2, reason, err := ps.admit(tt.pol, tt.second, false)
			if err != nil {
				t.Fatalf("second capsule once the first failed: %s %v", reason, err)
			}
			rel2()
			// Stored and still reserved: counted once, still full.
			ps.index(first, nil)
			ps.m[first.name] = first
			rel1, _, _ = ps.admit(PlacementPolicy{MaxReplicas: 1, MaxPlacements: 10, MaxPerOwner: 10, MaxPerRequester: 10, MaxPerDomain: 10}, inGroup(pl(m1, alice), tt.second.who.group), false)
			if _, reason, _ := ps.admit(tt.pol, tt.second, false); reason != tt.want {
				t.Fatalf("second capsule once the first is stored: %q, want %q", reason, tt.want)
			}
			rel1()
			if len(ps.pending) != 0 {
				t.Fatalf("%d reservations left", len(ps.pending))
			}
		})
	}
}
