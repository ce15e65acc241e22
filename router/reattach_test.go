package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/router"
)

// TestReadvertiseReplacesOlderHop: a capsule server restarts (or its
// tunnel is re-dialled) before its old tunnel has timed out, and advertises
// its capsule again from a new face. The new face takes the name at once:
// every PDU for the capsule reaches the new process, none is hashed onto
// the dead face. The old face stays attached and keeps the names it alone
// advertised (one identity may run several processes); its hop for the
// capsule is kept as a last resort only.
func TestReadvertiseReplacesOlderHop(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	serverID, _ := certs.NewIdentity(certs.KindServer, "capsule server")
	cap, _ := newCapsule("sensor log")
	other, _ := newCapsule("only the old process hosts this")
	ad, _ := cap.AdCert(serverID.Name, time.Hour)
	ad2, _ := other.AdCert(serverID.Name, time.Hour)

	old := w.attach(r, serverID)
	advertise(t, old, old.Self(), client.CapsuleRoute(cap.Meta, ad), client.CapsuleRoute(other.Meta, ad2))
	fresh := w.attach(r, serverID)
	advertise(t, fresh, client.CapsuleRoute(cap.Meta, ad))

	hops := r.FIB().Lookup(cap.Meta.Name())
	if len(hops) != 2 || hops[0].Cost != 0 || hops[1].Cost == 0 {
		t.Fatalf("capsule hops after the re-advertisement: %+v, want the new face first and the old one demoted", hops)
	}
	if len(r.FIB().Lookup(other.Meta.Name())) != 1 || len(r.FIB().Lookup(serverID.Name)) != 1 {
		t.Fatal("the older face lost names it alone advertised")
	}
	if n := len(r.Faces()); n != 2 {
		t.Fatalf("%d faces, want both attachments kept", n)
	}
	// Another server with its own AdCert for the capsule shares the name
	// but demotes nobody: only the same identity's newer face does.
	otherID, _ := certs.NewIdentity(certs.KindServer, "another replica")
	adOther, _ := cap.AdCert(otherID.Name, time.Hour)
	replica := w.attach(r, otherID)
	advertise(t, replica, client.CapsuleRoute(cap.Meta, adOther))
	costs := map[uint32]int{}
	for _, h := range r.FIB().Lookup(cap.Meta.Name()) {
		costs[h.Cost]++
	}
	if costs[0] != 2 || len(costs) != 2 {
		t.Fatalf("hop costs after another identity advertised: %v, want the new face and the other replica at 0", costs)
	}
	advertise(t, fresh, client.CapsuleRoute(cap.Meta, ad)) // back to one live holder for the checks below
	_, _ = replica.Withdraw(context.Background(), cap.Meta.Name())

	cl := w.endpoint(r, certs.KindClient, "client")
	advertise(t, cl)
	for i := range 20 {
		if _, err := cl.Send(cap.Meta.Name(), fmt.Appendf(nil, "append %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if m := receive(t, fresh); string(m.Payload) != fmt.Sprintf("append %d", i) {
			t.Fatalf("new process got %q, want append %d", m.Payload, i)
		}
	}
	if got := metric(t, r, "gdp_router_routes_removed_total", "reason", "replaced"); got != 1 {
		t.Fatalf("routes_removed{reason=replaced} = %g, want 1", got)
	}
}
