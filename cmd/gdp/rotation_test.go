package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/router"
)

// TestRtCertRotationUnderTraffic runs real `gdp router`, `gdp capsuled` and
// `gdp ping` processes on loopback. The capsule server issues its own
// RtCerts (rtcert_lifetime: 8s), so while `gdp ping` sends 400 echo
// requests through the router to the server's name, the route's chain is
// renewed several times by the server (new RtCert, advertised again before
// the old one runs out); meanwhile the router's membership file is replaced
// twice (an atomic `gdp cert issue member --force`) and picked up by the
// file watch. Not one echo is lost, the router's route to the server shows
// at least three different expiries (the first RtCert and two renewals),
// and the server exports its current RtCert's expiry.
func TestRtCertRotationUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs daemons")
	}
	e := newOpsEnv(t)
	e.mustGDP("cert", "new-domain", "--alias", "acme", "--description", "rotation domain")
	for _, k := range []struct{ kind, alias, life string }{{"router", "router", "1h"}, {"server", "capsuled", "48h"}, {"client", "ping", "48h"}} {
		e.mustGDP("cert", "keygen", "--kind", k.kind, "--alias", k.alias)
		e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", k.alias+".meta", "--duration", k.life, "--out", k.alias+".member")
	}
	listen, admin := udpPort(t), freePort(t)
	routerCfg := e.deployConfig("router", map[string]any{"listen": listen, "admin": admin,
		"member_cert": "router.member", "domain": "acme.meta"})
	rt := e.start("router", "router", "--config", routerCfg)
	rt.waitLog(`"router up"`)
	status := func() router.Summary {
		var s router.Summary
		if b, err := httpGet("http://" + admin + "/v1/status"); err == nil {
			_ = json.Unmarshal([]byte(b), &s)
		}
		return s
	}
	waitFor(t, "the admin API", func() bool { return !status().MemberExpiry.IsZero() })

	metrics := freePort(t)
	capsuledCfg := e.deployConfig("capsuled", map[string]any{"router": listen, "admin": admin, "router_name": "",
		"member_cert": "capsuled.member", "domain": "acme.meta", "dir": filepath.Join(e.work, "store"),
		"metrics": metrics, "rtcert_lifetime": "8s"})
	cs := e.start("capsuled", "capsuled", "--config", capsuledCfg)
	server := nameRe.FindString(cs.waitLog(`"capsuled attached"`))

	// routeExpiry is the expiry of the router's local hop to the server:
	// the earliest NotAfter of the chain it accepted, here the RtCert's.
	routeExpiry := func() time.Time {
		var ris []router.RouteInfo
		if b, err := httpGet("http://" + admin + "/v1/routes?name=" + server); err == nil {
			_ = json.Unmarshal([]byte(b), &ris)
		}
		for _, ri := range ris {
			for _, h := range ri.Hops {
				if h.Origin == "local" && h.Expiry != nil {
					return *h.Expiry
				}
			}
		}
		return time.Time{}
	}
	waitFor(t, "the server's route", func() bool { return !routeExpiry().IsZero() })

	// Traffic: a `gdp ping` process, 400 echoes at 25 ms to the server.
	ping := e.start("ping", "ping", "--router", listen, "--admin", admin, "--identity", "ping",
		"--member", "ping.member", "--domain", "acme.meta", "-c", "400", "-i", "25ms", server)
	ping.waitLog("bytes from")

	expiries := map[int64]bool{}
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			if x := routeExpiry(); !x.IsZero() {
				expiries[x.Unix()] = true
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	// Two membership rotations of the router while the pings run, no
	// SIGHUP: the file watch reloads each.
	for i, life := range []string{"48h", "72h"} {
		before := status().MemberExpiry
		e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", "router.meta", "--duration", life, "--force", "--out", "router.member")
		waitFor(t, fmt.Sprintf("rotation %d of the router's membership", i+1), func() bool {
			return status().MemberExpiry.After(before.Add(time.Hour))
		})
	}
	select {
	case <-ping.done:
	case <-time.After(90 * time.Second):
		t.Fatal("gdp ping did not finish")
	}
	close(stop)
	<-polled
	if ping.err != nil {
		t.Fatalf("gdp ping: %v", ping.err)
	}
	summary := ping.waitLog("--- ")
	_ = summary
	stats := ping.waitLog(" sent, ")
	if !strings.Contains(stats, "400 sent, 400 received, 0% loss") {
		t.Errorf("pings across the rotations: %s", stats)
	}
	if len(expiries) < 3 {
		t.Errorf("the server's route had %d different expiries during the run, want at least 3 (two RtCert renewals)", len(expiries))
	}
	if m := status().MemberExpiry; time.Until(m) < 71*time.Hour {
		t.Errorf("router membership after the rotations expires %s, want the 72h one", m)
	}
	page, err := httpGet("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := promValue(page, "gdp_cert_expiry_seconds", `kind="rtcert"`); !ok || v <= 0 || v > 8 {
		t.Errorf(`capsuled gdp_cert_expiry_seconds{kind="rtcert"} = %v (%v), want in (0, 8]`, v, ok)
	}
	rt.waitLog(`"a certificate file changed; reloading"`)
	cs.stop()
	rt.stop()
}
