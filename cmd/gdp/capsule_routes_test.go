package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// TestCLISessionKeepsItsRoutes: the connection of `gdp capsule`, `gdp fs`
// and `gdp kv` commands advertises the identity's name and its session
// name, which live at the router until the earliest NotAfter of their
// chains (the RtCert: an hour). A command that runs longer — `gdp fs
// mount`, `gdp capsule tail -f` — must advertise them again: with 3 s
// RtCerts, pings answered for four of those lifetimes and both names held
// with a moving expiry. Session 20 (review13): advertised once, every
// answer to such a command was dropped after the first hour.
func TestCLISessionKeepsItsRoutes(t *testing.T) {
	w := newCLIWorld(t, []string{"store1"}, nil)
	const life = 3 * time.Second
	cc := &capsuleCmd{rtCertLifetime: life, attach: attachConfig{
		Router: w.node.Addr(), RouterName: w.node.Router.Name().String(), Keystore: filepath.Join(w.dir, "keys"),
		Identity: "client", MemberCert: filepath.Join(w.dir, "client.member"), Domain: filepath.Join(w.dir, "domain.meta"),
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, at, closeConn, err := cc.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()
	session, err := at.client.Session()
	if err != nil {
		t.Fatal(err)
	}
	expiry := func(n pdu.Name) (time.Time, bool) {
		for _, ri := range w.node.Router.Routes(0, router.OriginLocal) {
			if ri.Name == n && len(ri.Hops) > 0 && ri.Hops[0].Expiry != nil {
				return *ri.Hops[0].Expiry, true
			}
		}
		return time.Time{}, false
	}
	start := time.Now()
	latest := map[string]time.Time{}
	for time.Since(start) < 4*life {
		if _, err := at.client.Ping(ctx, w.ids["store1"].Name, 0, time.Second); err != nil {
			t.Fatalf("ping %s after the attach: %v", time.Since(start).Round(time.Millisecond), err)
		}
		for what, n := range map[string]pdu.Name{"name": at.id.Name, "session": session.Name} {
			exp, ok := expiry(n)
			if !ok || !exp.After(time.Now()) {
				t.Fatalf("%s after the attach the router no longer holds the command's %s (expiry %s)",
					time.Since(start).Round(time.Millisecond), what, exp)
			}
			latest[what] = exp
		}
		time.Sleep(300 * time.Millisecond)
	}
	for what, exp := range latest {
		if lived := time.Since(start); !exp.After(start.Add(lived - time.Second)) {
			t.Fatalf("the command's %s expires at the router %s after the attach: not advertised again", what, exp.Sub(start).Round(time.Millisecond))
		}
	}
}

// TestPingKeepsItsRoute: `gdp ping` and `gdp traceroute` advertise the
// probe's name so answers come back; a `gdp ping -c 0` runs for longer
// than the RtCert (an hour). With 3 s RtCerts the probe's pings are
// answered for two lifetimes and a second. Session 21: advertised once,
// every answer was dropped after the first hour.
func TestPingKeepsItsRoute(t *testing.T) {
	w := newCLIWorld(t, []string{"store1"}, nil)
	const life = 3 * time.Second
	pf := probeFlags{routerAddr: w.node.Addr(), routerName: w.node.Router.Name().String(), keystore: filepath.Join(w.dir, "keys"),
		identity: "client", member: filepath.Join(w.dir, "client.member"), domain: filepath.Join(w.dir, "domain.meta"),
		timeout: time.Second, rtCertLifetime: life}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, done, err := pf.attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for start := time.Now(); time.Since(start) < 2*life+time.Second; time.Sleep(300 * time.Millisecond) {
		if _, err := c.Ping(ctx, w.ids["store1"].Name, 0, time.Second); err != nil {
			t.Fatalf("ping %s after the attach: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
}
