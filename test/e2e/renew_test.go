package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// TestRenewalKeepsPeerLinkUp: two `gdp router` processes, r2 peered with
// r1, both with memberships that end 30 s from now (14 % of their
// lifetime left). Each warns about the other's membership (one WARN, the
// peer named) and exports it as gdp_tunnel_peer_expiry_seconds. Then both
// membership files are replaced with renewed ones and both routers get
// SIGHUP: the tunnel between them is the same one past the old NotAfter
// (the same face, no "link down", no redial), each side accepted the
// other's renewal on the live link, and the gauge shows the new expiry.
// A `gdp gateway` attached to r1 (a client.Endpoint) is renewed with them
// and keeps its tunnel the same way, in both directions.
//
// With GDP_E2E_OLD_GDP naming a gdp binary built from before Session 12
// (gdp-tunnel/1 only), r1 runs that binary: the renewal then must not
// break the link (the new router sends no RENEW to it); the old router
// still closes it once at the old NotAfter, as before.
//
// Timing (Session 13): everything before the renewal — the processes'
// start, the peering, the gateway's attachment, the warnings — shares one
// deadline, 15 s after the memberships were issued, and the renewals must
// be accepted 2 s before the old NotAfter. A slow start fails as a slow
// start, never as a redial: before, each wait had its own bound (up to
// 45 s in all inside a 25 s membership), so a slow machine let the
// memberships run out before the renewal and read as a broken link.
func TestRenewalKeepsPeerLinkUp(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes for 35-40 s; skipped with -short")
	}
	oldBin := os.Getenv("GDP_E2E_OLD_GDP")
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "renewal domain", time.Minute, map[string]certs.Kind{"r1": certs.KindRouter, "r2": certs.KindRouter, "gw": certs.KindClient})
	now := time.Now()
	oldExp := now.Truncate(time.Second).Add(30 * time.Second)
	// The setup's budget, well inside the memberships: 15 s of the 30
	// are left for the renewal to be accepted before the old NotAfter.
	setupBy := now.Add(15 * time.Second)
	setupLeft := func() time.Duration { return time.Until(setupBy) }
	member := func(alias string, na time.Time) {
		m, err := certs.IssueMember(d.dom, d.ids[alias].Name, now.Add(-3*time.Minute), na)
		if err != nil {
			t.Fatal(err)
		}
		// Written aside and renamed into place, as gdp cert issue --force does.
		p := filepath.Join(dir, alias+".member")
		if err := os.WriteFile(p+".new", certs.Armor(certs.PEMCert, m.Marshal()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	member("r1", oldExp)
	member("r2", oldExp)
	member("gw", oldExp)

	procs := newProcSet(t, dir)
	addr, admin := map[string]string{}, map[string]string{}
	for _, n := range []string{"r1", "r2"} {
		addr[n] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
		admin[n] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	}
	routers := map[string]*proc{}
	for _, n := range []string{"r1", "r2"} {
		peers := ""
		if n == "r2" {
			peers = fmt.Sprintf("peers:\n  - name: %s\n    addr: %q\n", d.ids["r1"].Name, addr["r1"])
		}
		conf := d.creds(n) + peers + fmt.Sprintf("listen: %q\nadmin: %q\ndrain_timeout: 1s\nlog: {level: info}\n", addr[n], admin[n])
		p := &proc{name: n, args: []string{"router", "--config", writeConf(t, dir, n, conf)}, log: filepath.Join(dir, n+".log")}
		if n == "r1" {
			p.bin = oldBin
		}
		procs.all = append(procs.all, p)
		p.start(t)
		routers[n] = p
	}
	peerFace := func() uint64 {
		var peers []router.PeerInfo
		if !getJSON("http://"+admin["r2"]+"/v1/peers", &peers) {
			return 0
		}
		for _, p := range peers {
			if p.Name == d.ids["r1"].Name {
				return p.Face
			}
		}
		return 0
	}
	waitFor(t, "r2 peered with r1 (the setup's budget)", setupLeft(), func() bool { return peerFace() != 0 })
	face := peerFace()

	// A daemon attached to r1 through client.Endpoint: the gateway.
	var gwMetrics string
	if oldBin == "" {
		gwMetrics = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		gwConf := d.creds("gw") + fmt.Sprintf("router: %q\nrouter_name: %q\nsocket: %s\nmetrics: %q\nlog: {level: info}\n",
			addr["r1"], d.ids["r1"].Name, filepath.Join(dir, "gw.sock"), gwMetrics)
		routers["gw"] = procs.start("gw", "gateway", "--config", writeConf(t, dir, "gw", gwConf))
		waitFor(t, "the gateway attached to r1 (the setup's budget)", setupLeft(), func() bool {
			return promGauge(gwMetrics, "gdp_tunnel_links") == 1
		})
	}
	other := map[string]string{"r1": "r2", "r2": "r1"} // and r1 about gw, after it attaches
	const warnMsg = "peer's membership expires soon: less than 20% of its lifetime left"
	for _, n := range []string{"r1", "r2"} {
		if n == "r1" && oldBin != "" {
			continue
		}
		log := routers[n].log
		waitFor(t, n+"'s warning about "+other[n]+"'s membership (the setup's budget)", setupLeft(), func() bool { return logLines(log, warnMsg) > 0 })
		line := logLineText(t, log, warnMsg)
		if !strings.Contains(line, `"peer":"`+d.ids[other[n]].Name.String()+`"`) || !strings.Contains(line, `"level":"warn"`) ||
			!strings.Contains(line, `"expiry"`) || !strings.Contains(line, "peer's operator must renew") {
			t.Errorf("%s's warning: %s", n, line)
		}
		if left := promGauge(admin[n], "gdp_tunnel_peer_expiry_seconds"); left <= 0 || left > 30 {
			t.Errorf("%s: gdp_tunnel_peer_expiry_seconds %v, want (0, 30]", n, left)
		}
	}

	// Renew both and reload them, inside the setup's budget.
	if left := time.Until(oldExp); left < 13*time.Second {
		t.Fatalf("the setup ended %s before the old NotAfter, want at least 13 s: too slow to test a renewal before it", left.Round(100*time.Millisecond))
	}
	renewed := now.Truncate(time.Second).Add(time.Hour)
	for _, n := range []string{"r1", "r2", "gw"} {
		if routers[n] == nil {
			continue
		}
		member(n, renewed)
		if err := routers[n].cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	if oldBin != "" {
		if v := promGauge(admin["r1"], "gdp_tunnel_renewals_sent_total"); v != -1 {
			t.Fatalf("r1 exports gdp_tunnel_renewals_sent_total (%v): %s is not from before Session 12", v, oldBin)
		}
		time.Sleep(3 * time.Second)
		if f := peerFace(); f != face {
			t.Fatalf("the old router's link broke at the renewal: face %d, was %d", f, face)
		}
		if n := logLines(routers["r2"].log, "link down"); n != 0 {
			t.Fatalf("r2 logged %d link down", n)
		}
		if s := promGauge(admin["r2"], "gdp_tunnel_renewals_sent_total"); s != 0 {
			t.Fatalf("r2 sent %v renewals to a gdp-tunnel/1 router", s)
		}
		return
	}
	// r1 from r2 and the gateway, r2 and the gateway from r1.
	metrics := map[string]string{"r1": admin["r1"], "r2": admin["r2"], "gw": gwMetrics}
	for n, want := range map[string]float64{"r1": 2, "r2": 1, "gw": 1} {
		// Accepted before the old NotAfter, else the check past it tests nothing.
		waitFor(t, fmt.Sprintf("%s accepting %v renewals 2 s before the old NotAfter", n, want), time.Until(oldExp.Add(-2*time.Second)), func() bool {
			return promCounter(metrics[n], "gdp_tunnel_renewals_received_total", `result="accepted"`) >= want
		})
	}
	time.Sleep(time.Until(oldExp.Add(3 * time.Second)))
	if f := peerFace(); f != face {
		t.Fatalf("r2's face to r1 is %d past the old NotAfter, was %d: the tunnel was redialled", f, face)
	}
	if n := promGauge(gwMetrics, "gdp_tunnel_links"); n != 1 {
		t.Errorf("the gateway has %v tunnels past the old NotAfter, want its one", n)
	}
	for _, n := range []string{"r1", "r2", "gw"} {
		log := routers[n].log
		for _, msg := range []string{"link down", "tunnel to a configured peer lost; redialing", "tunnel to the router lost; redialing", "peer's membership expired: link closed"} {
			if c := logLines(log, msg); c != 0 {
				t.Errorf("%s logged %q %d times across the old NotAfter", n, msg, c)
			}
		}
		if c, want := logLines(log, warnMsg), map[string]int{"r1": 2, "r2": 1, "gw": 1}[n]; c != want {
			t.Errorf("%s warned %d times about its peers' memberships, want %d", n, c, want)
		}
		if left := promGauge(metrics[n], "gdp_tunnel_peer_expiry_seconds"); left < 3000 {
			t.Errorf("%s: gdp_tunnel_peer_expiry_seconds %v after the renewal, want about 3600", n, left)
		}
		if e := promGauge(metrics[n], "gdp_tunnel_peers_expiring"); e != 0 {
			t.Errorf("%s: gdp_tunnel_peers_expiring %v after the renewal", n, e)
		}
	}
}

// promGauge reads an unlabelled sample from a daemon's /metrics (-1 if
// absent or unreachable).
func promGauge(addr, name string) float64 {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
