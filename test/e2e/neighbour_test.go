package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// neighbourBound is how soon after a neighbour's restart the dependent
// daemon must be back in service on its own (docs/OPERATIONS.md §6.14).
const neighbourBound = 3 * time.Second

// TestNeighbourRestart covers the pairs TestKillNineEveryDaemon does not:
// a `gdp gateway` and a `gdp handoffd` attached to one router (no
// failover), a router peer, and the `gdp resolver` the routers bootstrap
// from. All are real processes from the built binary on loopback:
//
//	resolver ── r1 ── r2 (r2 dials r1: a configured peer)
//	            │  └─ gateway, handoffd (r1 their only router)
//
// r1 is killed with SIGKILL, left down 0.5 s and started again (same
// identity, same ports): the gateway and handoffd must be attached and
// their names routed at r1 again, and r2's tunnel to r1 up again, within
// neighbourBound; each says in one WARN line what it lost and what to do
// (fix), and r2 when its peer is back. Then the
// resolver is killed and restarted: its lookup API must answer for the
// gateway's name again within neighbourBound, without a router restart.
func TestNeighbourRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes; skipped with -short")
	}
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "neighbour domain", time.Minute, map[string]certs.Kind{"resolver": certs.KindResolver,
		"r1": certs.KindRouter, "r2": certs.KindRouter, "gw": certs.KindClient, "handoffd": certs.KindClient})
	procs := newProcSet(t, dir)
	daemon, creds := procs.start, d.creds

	resConf, resAPI := resolverConf(t, creds("resolver"), "info")
	res := daemon("resolver", "resolver", "--config", writeConf(t, dir, "resolver", resConf))
	rst := waitResolver(t, resAPI, 20*time.Second)

	addr := map[string]string{}
	admin := map[string]string{}
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
		conf := creds(n) + peers + fmt.Sprintf(`listen: %q
admin: %q
drain_timeout: 1s
log: {level: info}
resolver:
  mode: dht
  listen: [/ip4/127.0.0.1/udp/%d/quic-v1]
  bootstrap: [%s]
  min_puts: 1
  handshake_timeout: 5s
  negative_ttl: 300ms
  cache: {negative_ttl: 300ms}
`, addr[n], admin[n], freePort(t, "udp"), strings.Join(rst.Addrs, ", "))
		routers[n] = daemon(n, "router", "--config", writeConf(t, dir, n, conf))
	}
	routerUp := func(n string) bool {
		var s router.Summary
		return getJSON("http://"+admin[n]+"/v1/status", &s) && s.Name == d.ids[n].Name
	}
	for _, n := range []string{"r1", "r2"} {
		waitFor(t, n+" up", 20*time.Second, func() bool { return routerUp(n) })
	}
	routed := func(alias string) bool {
		var routes []router.RouteInfo
		return getJSON("http://"+admin["r1"]+"/v1/routes?name="+d.ids[alias].Name.String(), &routes) && len(routes) > 0
	}
	// r2's face to r1 (0: none).
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
	peered := func() bool { return peerFace() != 0 }

	// The gateway: r1 its only router, its API on a unix socket.
	sock := filepath.Join(dir, "gw.sock")
	gwConf := creds("gw") + fmt.Sprintf(`router: %q
router_name: %q
socket: %s
metrics: "off"
log: {level: info}
`, addr["r1"], d.ids["r1"].Name, sock)
	daemon("gateway", "gateway", "--config", writeConf(t, dir, "gateway", gwConf))
	gwc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	type gwStatus struct {
		Router     string `json:"router"`
		Reattached uint64 `json:"reattached"`
	}
	gwStat := func() (gwStatus, bool) {
		var st gwStatus
		resp, err := gwc.Get("http://gdp/v1/status")
		if err != nil {
			return st, false
		}
		defer resp.Body.Close()
		return st, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil
	}

	// handoffd: r1 its only router, on the overlay only.
	hoConf := creds("handoffd") + fmt.Sprintf(`router: %q
router_name: %q
cache: %s
dir: %s
metrics: "off"
log: {level: info}
`, addr["r1"], d.ids["r1"].Name, filepath.Join(dir, "ho-cache"), filepath.Join(dir, "ho-dir"))
	daemon("handoffd", "handoffd", "--config", writeConf(t, dir, "handoffd", hoConf))

	waitFor(t, "the gateway attached and routed at r1", 20*time.Second, func() bool {
		st, ok := gwStat()
		return ok && st.Router == d.ids["r1"].Name.String() && routed("gw")
	})
	waitFor(t, "handoffd routed at r1", 20*time.Second, func() bool { return routed("handoffd") })
	waitFor(t, "r2's tunnel to r1", 20*time.Second, peered)
	lookup := func() bool {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + resAPI + "/lookup/" + d.ids["gw"].Name.String() + "?format=json&cache=no")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	waitFor(t, "the resolver finding the gateway's name", 20*time.Second, lookup)

	// r1: kill -9, down 0.5 s, started again.
	oldFace := peerFace()
	routers["r1"].kill9()
	time.Sleep(500 * time.Millisecond)
	restarted := time.Now()
	routers["r1"].start(t)
	checks := []struct {
		what string
		ok   func() bool
	}{
		{"the gateway's name routed at r1", func() bool { return routed("gw") }},
		{"the gateway re-attached", func() bool { st, ok := gwStat(); return ok && st.Reattached >= 1 }},
		{"handoffd's name routed at r1", func() bool { return routed("handoffd") }},
		{"r2's tunnel to r1 (a new one)", func() bool { f := peerFace(); return f != 0 && f != oldFace }},
	}
	for _, c := range checks {
		waitFor(t, c.what+" after r1's restart", 15*time.Second, c.ok)
		took := time.Since(restarted)
		t.Logf("kill -9 r1: %s again %s after the restart", c.what, took.Round(time.Millisecond))
		if took > neighbourBound {
			t.Errorf("kill -9 r1: %s took %s, want ≤ %s", c.what, took.Round(time.Millisecond), neighbourBound)
		}
	}
	// One WARN line each says what was lost, where, and that it redials.
	for _, name := range []string{"gateway", "handoffd"} {
		wantLogLine(t, filepath.Join(dir, name+".log"), "tunnel to the router lost; redialing", "peer", "addr", "reason", "fix")
	}
	wantLogLine(t, filepath.Join(dir, "r2.log"), "tunnel to a configured peer lost; redialing", "peer", "addr", "reason", "fix")
	for file, msg := range map[string]string{"gateway": "tunnel to the router lost; redialing", "handoffd": "tunnel to the router lost; redialing",
		"r2": "tunnel to a configured peer lost; redialing"} {
		if n := logLines(filepath.Join(dir, file+".log"), msg); n != 1 {
			t.Errorf("%s: %d %q lines for one restart of r1, want 1", file, n, msg)
		}
	}
	wantLogLine(t, filepath.Join(dir, "r2.log"), "configured peer back", "peer", "addr", "after")

	// The resolver: kill -9, down 0.5 s, started again.
	res.kill9()
	time.Sleep(500 * time.Millisecond)
	restarted = time.Now()
	res.start(t)
	waitFor(t, "the resolver finding the gateway's name after its restart", 15*time.Second, lookup)
	took := time.Since(restarted)
	t.Logf("kill -9 resolver: lookups answered again %s after the restart", took.Round(time.Millisecond))
	if took > neighbourBound {
		t.Errorf("kill -9 resolver: lookups answered again after %s, want ≤ %s", took.Round(time.Millisecond), neighbourBound)
	}
	// The router that found the resolver gone (its bootstrap peer) said
	// so in one WARN line and redialled it; the other may have been
	// reached by the resolver first, before it noticed.
	const lostMsg = "bootstrap peer lost; redialing"
	var lostIn string
	waitFor(t, "a router's "+lostMsg, neighbourBound, func() bool {
		for _, n := range []string{"r1", "r2"} {
			if logLine(filepath.Join(dir, n+".log"), lostMsg) == "" {
				lostIn = n
				return true
			}
		}
		return false
	})
	wantLogLine(t, filepath.Join(dir, lostIn+".log"), lostMsg, "peer_id", "addr", "fix")
	for _, p := range procs.all {
		if p.exited() {
			t.Fatalf("%s exited by itself", p.name)
		}
	}
}

// wantLogLine finds a JSON log line in file whose msg is msg and which
// has every one of fields.
func wantLogLine(t *testing.T, file, msg string, fields ...string) {
	t.Helper()
	if problem := logLine(file, msg, fields...); problem != "" {
		t.Error(problem)
	}
}

// logLines counts the lines of file whose msg is msg.
func logLines(file, msg string) int {
	b, _ := os.ReadFile(file)
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == msg {
			n++
		}
	}
	return n
}

// logLine says what is wrong with the first line of file whose msg is msg
// ("" when it is there with every one of fields).
func logLine(file, msg string, fields ...string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) != nil || m["msg"] != msg {
			continue
		}
		missing := []string{}
		for _, f := range fields {
			if _, ok := m[f]; !ok {
				missing = append(missing, f)
			}
		}
		if len(missing) == 0 {
			return ""
		}
		return fmt.Sprintf("%s: %q lacks %v: %s", filepath.Base(file), msg, missing, line)
	}
	return fmt.Sprintf("%s: no %q line", filepath.Base(file), msg)
}
