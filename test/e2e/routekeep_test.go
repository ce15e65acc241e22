package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// TestDaemonsKeepTheirRoutes: a route lives until the earliest NotAfter
// of its chain, the router's membership included. A `gdp router` whose
// membership has 40 s left, with a `gdp handoffd` and a `gdp gateway`
// attached; the router's membership file is then renewed (the watch
// reloads it). Past the old NotAfter the router must still hold both
// daemons' names, with an expiry past it: each daemon advertised again
// and its route carries the renewed membership. Session 20: both
// advertised once, at start, and their names expired at the router at
// the old NotAfter — with the default RtCert, an hour after start at the
// latest — and nothing reached them from then on (found by the life soak,
// TestSoakLife).
func TestDaemonsKeepTheirRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes for about 45 s; skipped with -short")
	}
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "route keeping domain", time.Minute, map[string]certs.Kind{"r1": certs.KindRouter, "handoffd": certs.KindClient, "gw": certs.KindClient})
	now := time.Now()
	oldExp := now.Truncate(time.Second).Add(40 * time.Second)
	member := func(na time.Time) {
		m, err := certs.IssueMember(d.dom, d.ids["r1"].Name, now.Add(-time.Minute), na)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "r1.member")
		if err := os.WriteFile(p+".new", certs.Armor(certs.PEMCert, m.Marshal()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	member(oldExp)
	procs := newProcSet(t, dir)
	raddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	radmin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	procs.start("r1", "router", "--config", writeConf(t, dir, "r1", d.creds("r1")+fmt.Sprintf("listen: %q\nadmin: %q\ndrain_timeout: 1s\nlog: {level: info}\n", raddr, radmin)))
	attach := func(alias string) string {
		return d.creds(alias) + fmt.Sprintf("router: %q\nrouter_name: %q\nmetrics: \"127.0.0.1:%d\"\nlog: {level: info}\n", raddr, d.ids["r1"].Name, freePort(t, "tcp"))
	}
	procs.start("handoffd", "handoffd", "--config", writeConf(t, dir, "handoffd", attach("handoffd")+fmt.Sprintf("cache: %s\ndir: %s\n",
		filepath.Join(dir, "ho-cache"), filepath.Join(dir, "ho-dir"))))
	procs.start("gw", "gateway", "--config", writeConf(t, dir, "gw", attach("gw")+fmt.Sprintf("socket: %s\n", filepath.Join(dir, "gw.sock"))))
	expiry := func(alias string) time.Time {
		var routes []router.RouteInfo
		if !getJSON("http://"+radmin+"/v1/routes?name="+d.ids[alias].Name.String(), &routes) {
			return time.Time{}
		}
		for _, r := range routes {
			for _, h := range r.Hops {
				if h.Expiry != nil {
					return *h.Expiry
				}
			}
		}
		return time.Time{}
	}
	// Both up with 25 s of the 40 left, so the renewal below comes before
	// their next advertisement (at two thirds of the time left).
	for _, a := range []string{"handoffd", "gw"} {
		waitFor(t, a+"'s route at the router (a slow start fails here)", time.Until(oldExp.Add(-25*time.Second)), func() bool { return !expiry(a).IsZero() })
		if e := expiry(a); !e.Equal(oldExp) {
			t.Fatalf("%s's route expires at %s, want the router's membership NotAfter %s", a, e, oldExp)
		}
	}
	member(now.Add(time.Hour))
	var st router.Summary
	waitFor(t, "the router to reload its renewed membership", 10*time.Second, func() bool {
		return getJSON("http://"+radmin+"/v1/status", &st) && st.MemberExpiry.After(oldExp)
	})
	time.Sleep(time.Until(oldExp.Add(2 * time.Second)))
	for _, a := range []string{"handoffd", "gw"} {
		if e := expiry(a); !e.After(oldExp) {
			t.Errorf("2 s past the router's old membership NotAfter, %s's route at the router expires at %s (zero: gone): not advertised again", a, e)
		}
	}
	for _, p := range procs.all {
		if p.exited() {
			t.Errorf("%s exited", p.name)
		}
	}
}
