package capsuled

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestAppendWaitsPerIdentity (Session 17): the APPENDs that wait for their
// predecessors off the workers (appendWaitsPerPeer) are one share per
// proven identity over every name it writes from, and one for every
// requester that proved nothing; beyond its share an APPEND waits on the
// worker, counted by share. Per source name, as before, a member holding
// many names had a share (and goroutines) per name.
func TestAppendWaitsPerIdentity(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	s := sw.s
	dom, err := certs.NewIdentity(certs.KindDomain, "append waits domain")
	if err != nil {
		t.Fatal(err)
	}
	member := func(desc string) asker {
		id, err := certs.NewIdentity(certs.KindClient, desc)
		if err != nil {
			t.Fatal(err)
		}
		return askerOfMember(client.Member{Meta: id.Meta, Domain: dom.Name, Own: true})
	}
	mallory, other := member("mallory"), member("another writer")
	own, session, otherName := pdu.Name{0x01}, pdu.Name{0x02}, pdu.Name{0x03}
	unproven1, unproven2 := pdu.Name{0x11}, pdu.Name{0x12}

	// A batch that starts beyond the (empty) capsule's head: records 3-4.
	w := capsule.NewWriter(sw.c, sw.writer.Key)
	w.Append([]byte("one"))
	w.Append([]byte("two"))
	w.Flush()
	w.Append([]byte("three"))
	w.Append([]byte("four"))
	recs, hb := w.Flush()
	beyond := func() *wire.Message {
		m := &wire.Message{Op: wire.OpAppend, ID: uint64(time.Now().UnixNano()), Capsule: sw.c[:], Heartbeat: hb.Marshal()}
		for _, r := range recs {
			m.Records = append(m.Records, r.Marshal())
		}
		return m
	}
	if !s.startsBeyondHead(beyond()) {
		t.Fatal("the test's batch does not start beyond the head")
	}
	// Mallory's own name holds its identity's 8 waits, two unproven
	// names the pool's 8.
	for range appendWaitsPerPeer {
		if !s.appendWaits.admit(mallory.shareOf(own), appendWaitsPerPeer) {
			t.Fatal("mallory's first waits refused")
		}
	}
	for i := range appendWaitsPerPeer {
		if !s.appendWaits.admit(unprovenAsker.shareOf([]pdu.Name{unproven1, unproven2}[i%2]), appendWaitsPerPeer) {
			t.Fatal("the unproven pool's first waits refused")
		}
	}
	limited := func(share string) float64 { return counterValue(s.met.appendWaitsLimited.WithLabelValues(share)) }
	ctx := context.Background()
	for _, tt := range []struct {
		what    string
		from    pdu.Name
		a       asker
		limited string // the share counted, "" for none
	}{
		{"mallory's session name", session, mallory, "identity"},
		{"a third unproven name", pdu.Name{0x13}, unprovenAsker, "unproven"},
		{"another member", otherName, other, ""},
	} {
		id0, un0 := limited("identity"), limited("unproven")
		s.serve(ctx, request{from: tt.from, msg: beyond(), asker: tt.a})
		gotID, gotUn := limited("identity")-id0, limited("unproven")-un0
		want := map[string][2]float64{"identity": {1, 0}, "unproven": {0, 1}, "": {0, 0}}[tt.limited]
		if gotID != want[0] || gotUn != want[1] {
			t.Fatalf("%s: append_waits_limited_total rose identity %v, unproven %v; want %v, %v", tt.what, gotID, gotUn, want[0], want[1])
		}
	}
}
