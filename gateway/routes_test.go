package gateway_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/router"
)

// TestUplinkKeepsItsRoutes: a gateway's names live at its router until
// the earliest NotAfter of their chains (its RtCert: an hour by default;
// the router's membership). A gateway whose RtCerts last 3 s must keep
// its own name advertised and keep answering appends for four of those
// lifetimes. Session 20: it advertised its names once, at attach; the
// life soak (test/e2e TestSoakLife) found them expired at the router
// after the first lifetime, and every answer to the gateway dropped from
// then on.
func TestUplinkKeepsItsRoutes(t *testing.T) {
	w := newWorld(t)
	w.rtcertLife = 3 * time.Second
	r := w.router("r")
	s1, s2 := w.replica(r, "s1"), w.replica(r, "s2")
	g := w.gateway(gateway.Config{}, r)
	var created struct {
		Capsule string `json:"capsule"`
	}
	body := fmt.Sprintf(`{"owner":"alice","servers":[%q,%q],"w":2,"description":"routes test"}`, s1.Name, s2.Name)
	if code, b := g.do("POST", "/v1/capsules", "application/json", []byte(body), &created); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	self := g.up.Client().Self().Name
	held := func() (time.Time, bool) {
		for _, ri := range r.Router.Routes(0, router.OriginLocal) {
			if ri.Name == self && len(ri.Hops) > 0 && ri.Hops[0].Expiry != nil {
				return *ri.Hops[0].Expiry, true
			}
		}
		return time.Time{}, false
	}
	start := time.Now()
	var latest time.Time
	for i := 1; time.Since(start) < 4*w.rtcertLife; i++ {
		var a struct {
			Last uint64 `json:"last"`
		}
		if code, b := g.do("POST", "/v1/capsules/"+created.Capsule+"/records", "application/json", []byte(`{"data":"tick"}`), &a); code != http.StatusOK || a.Last != uint64(i) {
			t.Fatalf("append %d, %s after the attach: %d %s", i, time.Since(start).Round(time.Millisecond), code, b)
		}
		exp, ok := held()
		if !ok {
			t.Fatalf("%s after the attach the router no longer holds the gateway's name", time.Since(start).Round(time.Millisecond))
		}
		latest = exp
		time.Sleep(300 * time.Millisecond)
	}
	if lived := time.Since(start); !latest.After(start.Add(lived - time.Second)) {
		t.Fatalf("the gateway's route expires at %s, %s after the attach: not renewed", latest, latest.Sub(start))
	}
}
