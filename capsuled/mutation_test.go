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
	owner *certs.Identity
	meta  *certs.Metadata
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
	return placementCapsule{owner: owner, meta: meta}
}
