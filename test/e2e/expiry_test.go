package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestEveryDaemonWarnsBeforeExpiry: every daemon — `gdp resolver`,
// `router`, `capsuled`, `gateway`, `handoffd`, real processes on loopback —
// runs with a membership that has 10 % of its lifetime left (9 h used, 1 h
// to go). Each must say so at start in one WARN line with the fixed fields
// (kind, name, expiry, left, and a fix naming the file to renew) and
// export gdp_cert_expiry_seconds{kind="member"} with the time left, for an
// alert to fire on (docs/OPERATIONS.md §6.3).
func TestEveryDaemonWarnsBeforeExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes; skipped with -short")
	}
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "expiry domain", time.Minute, map[string]certs.Kind{"resolver": certs.KindResolver,
		"r1": certs.KindRouter, "s1": certs.KindServer, "gw": certs.KindClient, "handoffd": certs.KindClient})
	// Re-issue every membership: 9 h of its 10 h used.
	now := time.Now()
	for alias, id := range d.ids {
		m, err := certs.IssueMember(d.dom, id.Name, now.Add(-9*time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, alias+".member"), certs.Armor(certs.PEMCert, m.Marshal()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	procs := newProcSet(t, dir)
	daemon, creds := procs.start, d.creds
	metricsAddr := map[string]string{} // daemon -> where its /metrics is

	resConf, resAPI := resolverConf(t, creds("resolver"), "info")
	daemon("resolver", "resolver", "--config", writeConf(t, dir, "resolver", resConf))
	metricsAddr["resolver"] = resAPI

	raddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	radmin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	daemon("router", "router", "--config", writeConf(t, dir, "r1", creds("r1")+fmt.Sprintf(`listen: %q
admin: %q
drain_timeout: 1s
log: {level: info}
`, raddr, radmin)))
	metricsAddr["router"] = radmin
	attach := func(alias string) string {
		m := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		return creds(alias) + fmt.Sprintf("router: %q\nrouter_name: %q\nmetrics: %q\nlog: {level: info}\n", raddr, d.ids["r1"].Name, m)
	}
	cconf := attach("s1")
	metricsAddr["capsuled"] = metricAddrOf(cconf)
	daemon("capsuled", "capsuled", "--config", writeConf(t, dir, "s1", cconf+fmt.Sprintf("dir: %s\n", filepath.Join(dir, "s1-data"))))
	gconf := attach("gw")
	metricsAddr["gateway"] = metricAddrOf(gconf)
	daemon("gateway", "gateway", "--config", writeConf(t, dir, "gw", gconf+fmt.Sprintf("socket: %s\n", filepath.Join(dir, "gw.sock"))))
	hconf := attach("handoffd")
	metricsAddr["handoffd"] = metricAddrOf(hconf)
	daemon("handoffd", "handoffd", "--config", writeConf(t, dir, "handoffd", hconf+fmt.Sprintf("cache: %s\ndir: %s\n",
		filepath.Join(dir, "ho-cache"), filepath.Join(dir, "ho-dir"))))

	alias := map[string]string{"resolver": "resolver", "router": "r1", "capsuled": "s1", "gateway": "gw", "handoffd": "handoffd"}
	const msg = "certificate expires soon: less than 20% of its lifetime left"
	for _, p := range procs.all {
		name, file := d.ids[alias[p.name]].Name.String(), filepath.Join(dir, alias[p.name]+".member")
		var left float64
		waitFor(t, p.name+"'s gdp_cert_expiry_seconds", 20*time.Second, func() bool {
			var ok bool
			left, ok = certExpiryGauge(metricsAddr[p.name], "member", name)
			return ok
		})
		if left <= 0 || left > 3600 {
			t.Errorf("%s: gdp_cert_expiry_seconds{kind=\"member\"} = %v, want (0, 3600]", p.name, left)
		}
		if problem := logLine(p.log, msg, "kind", "name", "expiry", "left", "fix"); problem != "" {
			t.Errorf("%s: %s", p.name, problem)
			continue
		}
		line := logLineText(t, p.log, msg)
		if !strings.Contains(line, `"kind":"member"`) || !strings.Contains(line, name) || !strings.Contains(line, file) {
			t.Errorf("%s: the WARN does not name the membership, %s and its file %s: %s", p.name, name, file, line)
		}
		t.Logf("%s: gdp_cert_expiry_seconds %.0f; %s", p.name, left, strings.TrimSpace(line))
		if p.exited() {
			t.Errorf("%s exited", p.name)
		}
	}

	// Session 12: every daemon that holds tunnels warns about its tunnel
	// peers' memberships too (the router about each attached daemon, each
	// of them about the router), one WARN per peer naming it, and
	// exports the soonest as gdp_tunnel_peer_expiry_seconds.
	const peerMsg = "peer's membership expires soon: less than 20% of its lifetime left"
	peersOf := map[string][]string{"router": {"s1", "gw", "handoffd"}, "capsuled": {"r1"}, "gateway": {"r1"}, "handoffd": {"r1"}}
	for _, p := range procs.all {
		peers, ok := peersOf[p.name]
		if !ok {
			continue
		}
		for _, peer := range peers {
			want := `"peer":"` + d.ids[peer].Name.String() + `"`
			waitFor(t, p.name+"'s warning about "+peer+"'s membership", 20*time.Second, func() bool {
				return strings.Contains(logLinesText(p.log, peerMsg), want)
			})
		}
		if problem := logLine(p.log, peerMsg, "peer", "expiry", "left", "fix"); problem != "" {
			t.Errorf("%s: %s", p.name, problem)
		}
		if n := logLines(p.log, peerMsg); n != len(peers) {
			t.Errorf("%s: %d warnings about peers' memberships, want %d (one per peer)", p.name, n, len(peers))
		}
		if left := promGauge(metricsAddr[p.name], "gdp_tunnel_peer_expiry_seconds"); left <= 0 || left > 3600 {
			t.Errorf("%s: gdp_tunnel_peer_expiry_seconds = %v, want (0, 3600]", p.name, left)
		}
		if n := promGauge(metricsAddr[p.name], "gdp_tunnel_peers_expiring"); n != float64(len(peers)) {
			t.Errorf("%s: gdp_tunnel_peers_expiring = %v, want %d", p.name, n, len(peers))
		}
	}
}

// logLinesText is every line of file whose msg is msg, joined.
func logLinesText(file, msg string) string {
	b, _ := os.ReadFile(file)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"msg":"`+msg+`"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metricAddrOf is the metrics: address in a daemon's YAML.
func metricAddrOf(conf string) string {
	for _, l := range strings.Split(conf, "\n") {
		if v, ok := strings.CutPrefix(l, "metrics: "); ok {
			s, _ := strconv.Unquote(v)
			return s
		}
	}
	return ""
}

// certExpiryGauge reads gdp_cert_expiry_seconds{kind, name} from the
// /metrics at addr.
func certExpiryGauge(addr, kind, name string) (float64, bool) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "gdp_cert_expiry_seconds{") || !strings.Contains(l, `kind="`+kind+`"`) || !strings.Contains(l, `name="`+name+`"`) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// logLineText is the first line of file whose msg is msg.
func logLineText(t *testing.T, file, msg string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"msg":"`+msg+`"`) {
			return l
		}
	}
	return ""
}
