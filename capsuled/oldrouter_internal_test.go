package capsuled

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestCreateOnRouterWithoutPublishWait: a router older than the ADVERTISE
// wait (PROTOCOL.md §5.2 key 5) refuses it as malformed. The server then
// advertises as before and the CREATE succeeds (with a WARN), so a domain
// whose capsule servers are upgraded before its routers keeps placing
// capsules.
func TestCreateOnRouterWithoutPublishWait(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: time.Second})
	var mu sync.Mutex
	var waits []uint32
	router := pdu.Name{0xee}
	sw.net.mu.Lock()
	sw.net.control = func(p []byte, h pdu.Header) []byte {
		if h.Type != pdu.TypeAdvertise {
			return nil
		}
		a, err := advert.ParseAdvertise(h.Payload)
		if err != nil {
			return nil
		}
		mu.Lock()
		waits = append(waits, a.Wait)
		mu.Unlock()
		if a.Wait > 0 { // what a router that predates key 5 answers
			nh, ok := pdu.NAK(p, pdu.CodeMalformed, router)
			if !ok {
				return nil
			}
			b, _ := nh.Marshal()
			return b
		}
		res := &advert.Result{Seq: a.Seq}
		for _, n := range a.Names {
			res.Names = append(res.Names, advert.NameResult{Name: n.Name, Status: advert.StatusOK, Expiry: time.Now().Add(time.Hour).Unix()})
		}
		payload, err := advert.MarshalResult(res)
		if err != nil {
			return nil
		}
		b, _ := (&pdu.Header{Type: pdu.TypeAdvertiseResult, TTL: pdu.DefaultTTL, Sequence: h.Sequence, Dst: h.Src, Src: router, Payload: payload}).Marshal()
		return b
	}
	sw.net.mu.Unlock()

	now := time.Now()
	ad, err := certs.IssueAdCert(sw.owner.Key, sw.c, sw.self.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	replicas := []pdu.Name{sw.self.Name, sw.p.Name, sw.m.Name}
	rec, err := capsule.SignPlacement(sw.owner.Key, sw.meta, replicas, 2, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := &wire.Message{Op: wire.OpCreate, ID: 77, Capsule: sw.c[:], Metadata: sw.meta.Marshal(), AdCert: ad.Marshal(),
		Replicas: wire.NameBytes(replicas), W: 2, Placement: rec.Marshal()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := sw.s.handleCreate(ctx, request{from: sw.owner.Name, dst: sw.self.Name, msg: m})
	if resp == nil || resp.Status != wire.StatusOK {
		t.Fatalf("CREATE (a renewal) through an older router: %+v", resp)
	}
	mu.Lock()
	defer mu.Unlock()
	// (the server's own re-advertisements, without a wait, may come
	// in between)
	first := slices.IndexFunc(waits, func(w uint32) bool { return w > 0 })
	if first < 0 || !slices.Contains(waits[first:], 0) {
		t.Fatalf("ADVERTISE waits sent %v, want one with a wait, then one without", waits)
	}
}
