package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/browsertest"
	"github.com/gdpnet/gdpnet/internal/dashboard"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// dashDescription is the test capsule's description: markup, which the
// page must show as text (SECURITY §2.11).
const dashDescription = `dashboard log <img src=x onerror="document.body.dataset.pwned=1">`

// dashTopo is a small real deployment in this process, every daemon run
// from its YAML file as `gdp router|resolver|capsuled` runs it: a resolver
// node, routers A and B (B peers with A; both resolve in the resolver's
// DHT), capsule servers S1 at A and S2 at B, an endpoint at A and a
// pinger at B.
type dashTopo struct {
	t                    *testing.T
	dir, ksDir, domPath  string
	dom                  *certs.Identity
	ids                  map[string]*certs.Identity
	resolverAPI          string
	a, b                 *routerDaemon
	s1Metrics, s2Metrics string
	endpoint             *client.Client
	capsule              pdu.Name
	records              uint64
}

func (d *dashTopo) member(id *certs.Identity) *certs.Cert {
	now := time.Now()
	m, err := certs.IssueMember(d.dom, id.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		d.t.Fatal(err)
	}
	return m
}

// identity makes and saves a keystore identity with its membership file.
func (d *dashTopo) identity(alias string, kind certs.Kind) *certs.Identity {
	id, err := certs.NewIdentity(kind, alias)
	if err != nil {
		d.t.Fatal(err)
	}
	ks, err := certs.OpenKeystore(d.ksDir)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := ks.Save(alias, id); err != nil {
		d.t.Fatal(err)
	}
	writePEM(d.t, filepath.Join(d.dir, alias+".member"), certs.PEMCert, d.member(id).Marshal())
	d.ids[alias] = id
	return id
}

// run runs f (a daemon's run function) until the test ends.
func (d *dashTopo) run(what, cfg string, f func(ctx context.Context, cfgPath string) error) {
	path := filepath.Join(d.dir, what+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx, path) }()
	d.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			d.t.Errorf("%s exited: %v", what, err)
		}
	})
}

func (d *dashTopo) common(alias string) string {
	return fmt.Sprintf("keystore: %s\nidentity: %s\nmember_cert: %s\ndomain: %s\nlog: {level: error}\n",
		d.ksDir, alias, filepath.Join(d.dir, alias+".member"), d.domPath)
}

func startDashTopo(t *testing.T) *dashTopo {
	t.Helper()
	d := &dashTopo{t: t, dir: t.TempDir(), ids: map[string]*certs.Identity{}}
	d.ksDir = filepath.Join(d.dir, "keys")
	d.dom, _ = certs.NewIdentity(certs.KindDomain, "dashboard domain")
	d.domPath = filepath.Join(d.dir, "domain.meta")
	writePEM(t, d.domPath, certs.PEMMetadata, d.dom.Meta.Marshal())

	// The resolver node.
	d.identity("resolver", certs.KindResolver)
	d.resolverAPI = freePort(t)
	d.run("resolver", d.common("resolver")+fmt.Sprintf("api: %s\nresolver:\n  mode: dht\n  listen: [/ip4/127.0.0.1/udp/0/quic-v1]\n  min_puts: 1\n", d.resolverAPI),
		func(ctx context.Context, p string) error { return runResolver(ctx, p, false) })
	var rst resolver.Status
	waitFor(t, "the resolver API", func() bool { return getJSON("http://"+d.resolverAPI+"/status", &rst) && len(rst.Addrs) > 0 })

	// Routers A and B; B peers with A.
	startRouter := func(alias string, peer *routerDaemon) *routerDaemon {
		id := d.identity(alias, certs.KindRouter)
		rd := &routerDaemon{admin: adminPort(t), name: id.Name}
		cfg := d.common(alias) + fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin: %q\ndrain_timeout: 1s\nresolver:\n  mode: dht\n  listen: [/ip4/127.0.0.1/udp/0/quic-v1]\n  bootstrap: [%s]\n  min_puts: 1\n",
			rd.admin, rst.Addrs[0])
		if peer != nil {
			cfg += fmt.Sprintf("peers:\n  - name: %s\n    addr: %q\n", peer.name, peer.addr)
		}
		d.run(alias, cfg, runRouter)
		var s router.Summary
		waitFor(t, "router "+alias, func() bool { return rd.getJSON("/v1/status", &s) && s.Name == id.Name && len(s.Addrs) == 1 })
		rd.addr = s.Addrs[0]
		return rd
	}
	d.a = startRouter("router-a", nil)
	d.b = startRouter("router-b", d.a)
	waitFor(t, "B's tunnel to A", func() bool {
		var ps []router.PeerInfo
		return d.a.getJSON("/v1/peers", &ps) && hasPeer(ps, d.b.name)
	})

	// Capsule servers S1 at A and S2 at B.
	server := func(alias string, at *routerDaemon, extra string) string {
		id := d.identity(alias, certs.KindServer)
		metrics := freePort(t)
		d.run(alias, d.common(alias)+fmt.Sprintf("router: %q\nrouter_name: %s\ndir: %s\nmetrics: %s\nsync_interval: 500ms\n",
			at.addr, at.name, filepath.Join(d.dir, alias+"-data"), metrics)+extra, runCapsuled)
		waitFor(t, alias+" attached", func() bool {
			var rs []router.RouteInfo
			return at.getJSON("/v1/routes?name="+id.Name.String(), &rs) && len(rs) == 1
		})
		return metrics
	}
	d.s1Metrics = server("s1", d.a, "")
	// S2 serves Go's profiles beside its metrics (pprof: true, Session 21)
	d.s2Metrics = server("s2", d.b, "pprof: true\n")

	// An endpoint at A, and a pinger at B that pings it until the test
	// ends: traffic through both routers.
	d.endpoint = d.attach("endpoint", d.a)
	pinger := d.attach("pinger", d.b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, "a ping from B's pinger to A's endpoint", func() bool {
		rep, err := pinger.Ping(ctx, d.endpoint.Name(), 32, time.Second)
		return err == nil && rep.Reached
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_, _ = pinger.Ping(ctx, d.endpoint.Name(), 32, time.Second)
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// A capsule on S1 and S2 (w 1), written at S1 only: S2 learns the
	// records by anti-entropy.
	owner := d.identity("owner", certs.KindClient)
	writer, _ := certs.NewIdentity(certs.KindClient, "dashboard writer")
	meta, err := certs.NewCapsule(owner.Key, writer.Public(), dashDescription)
	if err != nil {
		t.Fatal(err)
	}
	cc := client.NewCapsuleClient(d.attach("writer-client", d.a), client.CapsuleOptions{Timeout: 3 * time.Second})
	t.Cleanup(func() { _ = cc.Close() })
	places, err := client.PlaceCapsule(owner, meta, []pdu.Name{d.ids["s1"].Name, d.ids["s2"].Name}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if err := cc.Create(cctx, owner, meta, 1, places); err != nil {
		t.Fatal(err)
	}
	wr, err := cc.NewWriter(cctx, meta.Name(), writer.Key, client.WriterOptions{Cadence: -1, Replicas: []pdu.Name{d.ids["s1"].Name}, W: 1})
	if err != nil {
		t.Fatal(err)
	}
	d.records = 7
	for i := range d.records {
		if _, err := wr.Append(cctx, fmt.Appendf(nil, "record %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if dur, err := wr.Flush(cctx); err != nil || !dur.Met {
		t.Fatalf("write: %v %v", dur, err)
	}
	_ = wr.Close(cctx)
	d.capsule = meta.Name()
	return d
}

// attach attaches a new client identity at r and advertises its name.
func (d *dashTopo) attach(alias string, r *routerDaemon) *client.Client {
	d.t.Helper()
	id := d.identity(alias, certs.KindClient)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		d.t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: d.member(id), Domain: d.dom.Meta, Conn: conn,
		Options: client.Options{RequestTimeout: 3 * time.Second}})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := ep.Attach(ctx, r.addr, r.name)
	if err != nil {
		d.t.Fatal(err)
	}
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		d.t.Fatal(err)
	}
	return c
}

func getJSON(url string, v any) bool {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}

// view reads a dashboard's /api/status, raw and decoded.
func view(t *testing.T, addr string) (string, dashboard.View) {
	t.Helper()
	resp, err := http.Get("http://" + addr + dashboard.PathStatus)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v dashboard.View
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil {
		t.Fatalf("GET %s%s: %s\n%s", addr, dashboard.PathStatus, resp.Status, b)
	}
	return string(b), v
}

func card(v dashboard.View, id string) string {
	for _, c := range v.Cards {
		if c.ID == id {
			return c.Value
		}
	}
	return "<no card " + id + ">"
}

func counter(v dashboard.View, id string) float64 {
	for _, c := range v.Counters {
		if c.ID == id {
			return c.Value
		}
	}
	return -1
}

func tableRows(v dashboard.View, id string) [][]string {
	for _, tb := range v.Tables {
		if tb.ID == id {
			return tb.Rows
		}
	}
	return nil
}

// hasRow reports whether some row of table id has every cell of want at
// the given columns.
func hasRow(v dashboard.View, id string, want map[int]string) bool {
	return slices.ContainsFunc(tableRows(v, id), func(r []string) bool {
		for i, s := range want {
			if i >= len(r) || r[i] != s {
				return false
			}
		}
		return true
	})
}

// noSecrets fails if body holds any identity's private key, in any of
// the encodings the project prints keys in.
func (d *dashTopo) noSecrets(what, body string) {
	d.t.Helper()
	for alias, id := range d.ids {
		seed := id.Key.Seed()
		for _, enc := range []string{hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), base64.RawURLEncoding.EncodeToString(seed),
			hex.EncodeToString(id.Key), base64.StdEncoding.EncodeToString(id.Key), base64.RawURLEncoding.EncodeToString(id.Key)} {
			if strings.Contains(body, enc) {
				d.t.Errorf("%s shows %s's private key", what, alias)
			}
		}
	}
	if strings.Contains(body, "PRIVATE") || strings.Contains(body, "BEGIN ") {
		d.t.Errorf("%s holds PEM armour:\n%s", what, body)
	}
}

// TestDashboards runs a small deployment (resolver node, two routers, two
// capsule servers, traffic, a replicated capsule) and reads each daemon's
// dashboard: the JSON of /api/status against the daemons' own admin APIs
// and state, no key material in it, unknown paths and other methods
// refused; then (subtest chromium) loads each page in headless Chromium,
// waits until it shows the live figures — face count, a FIB name, a
// forwarding rate above zero, the capsule's head at both replicas, the
// resolver's peers — and saves screenshots.
func TestDashboards(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a deployment")
	}
	d := startDashTopo(t)

	// The router's view against its admin API.
	var sum router.Summary
	waitFor(t, "router A's view to match its admin API", func() bool {
		_, v := view(t, d.a.admin)
		if !d.a.getJSON("/v1/status", &sum) {
			return false
		}
		return card(v, "faces") == fmt.Sprint(sum.Faces) && card(v, "fib") == fmt.Sprint(sum.FIBNames) &&
			card(v, "peers") == fmt.Sprint(sum.Peers) && card(v, "name") == d.a.name.String()
	})
	body, v := view(t, d.a.admin)
	d.noSecrets("router A's /api/status", body)
	if v.Kind != "router" || !strings.Contains(v.Title, d.a.name.String()) {
		t.Errorf("router view kind %q title %q", v.Kind, v.Title)
	}
	if !hasRow(v, "fib", map[int]string{0: d.endpoint.Name().String(), 2: "endpoint"}) {
		t.Errorf("router A's FIB table has no endpoint row for %s: %v", d.endpoint.Name(), tableRows(v, "fib"))
	}
	if !hasRow(v, "peers", map[int]string{0: d.b.name.String()}) {
		t.Errorf("router A's peers table has no row for B: %v", tableRows(v, "peers"))
	}
	if n := len(tableRows(v, "faces")); fmt.Sprint(n) != card(v, "faces") {
		t.Errorf("faces table has %d rows, card says %s", n, card(v, "faces"))
	}
	in1 := counter(v, "gdp_router_pdus_in_total")
	if in1 <= 0 || counter(v, "gdp_router_advertisements_total/bad_signature") != 0 || counter(v, "gdp_router_pdus_dropped_total/malformed") < 0 {
		t.Errorf("router counters: in %v, refusals %v", in1, v.Counters)
	}
	for _, c := range v.Counters {
		if c.Group == "Advertisement refusals by reason" && c.Label == "accepted" {
			t.Errorf("accepted advertisements listed among the refusals")
		}
	}
	waitFor(t, "router A's PDU counter to grow", func() bool { _, v := view(t, d.a.admin); return counter(v, "gdp_router_pdus_in_total") > in1 })

	// The capsule servers: the capsule, its head at S1, S2 caught up and
	// S1 seeing S2's head (replication state).
	rec := fmt.Sprint(d.records)
	waitFor(t, "both replicas of the capsule at head "+rec+" in the dashboards", func() bool {
		_, v1 := view(t, d.s1Metrics)
		_, v2 := view(t, d.s2Metrics)
		return hasRow(v1, "capsules", map[int]string{0: d.capsule.String(), 1: dashDescription, 2: rec, 4: "0"}) &&
			hasRow(v1, "replication", map[int]string{0: d.capsule.String(), 1: d.ids["s2"].Name.String(), 2: rec, 3: "0"}) &&
			hasRow(v2, "capsules", map[int]string{0: d.capsule.String(), 2: rec, 4: "0"}) &&
			hasRow(v2, "replication", map[int]string{0: d.capsule.String(), 1: d.ids["s1"].Name.String(), 2: rec})
	})
	body, v = view(t, d.s1Metrics)
	d.noSecrets("S1's /api/status", body)
	if v.Kind != "capsuled" || card(v, "capsules") != "1" || counter(v, "gdp_capsuled_appended_records_total") < float64(d.records) {
		t.Errorf("S1 view: kind %q capsules %s appended %v", v.Kind, card(v, "capsules"), counter(v, "gdp_capsuled_appended_records_total"))
	}
	_, v = view(t, d.s2Metrics)
	if got := counter(v, "gdp_capsuled_synced_records_total"); got < float64(d.records) {
		t.Errorf("S2 pulled %v records, want %d", got, d.records)
	}

	// The resolver node: its domain, both routers admitted as peers, and a
	// looked-up name in its cache.
	var views []resolver.View
	if !getJSON("http://"+d.resolverAPI+"/lookup/"+d.endpoint.Name().String()+"?format=json", &views) || len(views) == 0 {
		t.Fatalf("resolver lookup of %s failed", d.endpoint.Name())
	}
	waitFor(t, "the resolver's view", func() bool {
		_, v := view(t, d.resolverAPI)
		return card(v, "domain") == d.dom.Name.String() && hasRow(v, "peers", map[int]string{1: d.a.name.String()}) &&
			hasRow(v, "peers", map[int]string{1: d.b.name.String()}) &&
			hasRow(v, "cache", map[int]string{0: d.endpoint.Name().String(), 1: d.a.name.String()})
	})
	body, v = view(t, d.resolverAPI)
	d.noSecrets("the resolver's /api/status", body)
	if v.Kind != "resolver" || card(v, "mode") != "dht" || card(v, "name") != d.ids["resolver"].Name.String() {
		t.Errorf("resolver view: %+v", v.Cards)
	}

	// Read-only and nothing else: other methods and unknown paths are
	// refused on every daemon's address; the existing APIs still answer.
	for _, addr := range []string{d.a.admin, d.s1Metrics, d.resolverAPI} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			for _, p := range []string{"/", dashboard.PathStatus, "/dashboard/app.js"} {
				req, _ := http.NewRequest(m, "http://"+addr+p, strings.NewReader("{}"))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s http://%s%s: %s, want 405 or 404", m, addr, p, resp.Status)
				}
			}
		}
		for _, p := range []string{"/nope", "/dashboard/", "/api/nope", "/dashboard/secret.key"} {
			if resp, err := http.Get("http://" + addr + p); err != nil || resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET http://%s%s: %v %v, want 404", addr, p, resp.Status, err)
			} else {
				resp.Body.Close()
			}
		}
		if _, err := httpGet("http://" + addr + "/metrics"); err != nil {
			t.Errorf("/metrics beside the dashboard: %v", err)
		}
	}
	// capsuled's profiles: only where pprof: true (S2), never by default (S1)
	if resp, err := http.Get("http://" + d.s1Metrics + "/debug/pprof/heap"); err != nil {
		t.Errorf("GET /debug/pprof/heap of a capsuled without pprof: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/heap of a capsuled without pprof: %s, want 404", resp.Status)
		}
	}
	if body, err := httpGet("http://" + d.s2Metrics + "/debug/pprof/heap?debug=1"); err != nil || !strings.Contains(body, "heap profile:") {
		t.Errorf("GET /debug/pprof/heap?debug=1 of a capsuled with pprof: true: %v %.200q", err, body)
	}
	if !d.a.getJSON("/v1/status", &sum) {
		t.Error("the router's admin API no longer answers beside the dashboard")
	}
	if !getJSON("http://"+d.resolverAPI+"/status", new(resolver.Status)) {
		t.Error("the resolver's API no longer answers beside the dashboard")
	}

	t.Run("chromium", func(t *testing.T) { dashboardsInChromium(t, d) })
}

// dashboardsInChromium loads each dashboard in headless Chromium and waits
// for the live figures of the deployment.
func dashboardsInChromium(t *testing.T, d *dashTopo) {
	b := browsertest.New(t, browsertest.Options{Width: 1400, Height: 1000})
	art := browsertest.ArtifactDir(t)
	text := func(sel string) string {
		return browsertest.MustEval[string](b, fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel))
	}

	// Router A: the face count the admin API reports, B's name among the
	// peers, the endpoint in the FIB, and a rate of PDUs in above zero
	// (the pinger runs), computed by the page from two polls.
	b.Navigate("http://" + d.a.admin + "/")
	b.WaitFor("router A's page to poll twice", `Number(document.body.dataset.polls) >= 2`, 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var s router.Summary
		if d.a.getJSON("/v1/status", &s) && text("#card-faces .value") == fmt.Sprint(s.Faces) && s.Faces >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page shows %q faces; the admin API %d", text("#card-faces .value"), s.Faces)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.WaitFor("the endpoint in the FIB table", fmt.Sprintf(`document.querySelector("#tbl-fib").innerText.includes(%q)`, d.endpoint.Name().String()), 10*time.Second)
	b.WaitFor("router B among the peers", fmt.Sprintf(`document.querySelector("#tbl-peers").innerText.includes(%q)`, d.b.name.String()), 10*time.Second)
	b.WaitFor("a rate of PDUs in above zero", `Number((document.getElementById("ctr-gdp_router_pdus_in_total")||{dataset:{}}).dataset.rate) > 0`, 15*time.Second)
	if got := text("#state"); !strings.HasPrefix(got, "live") {
		t.Errorf("state %q, want live", got)
	}
	if got := text("#grp-advertisement-refusals-by-reason"); !strings.Contains(got, "bad_signature") {
		t.Errorf("no advertisement refusals by reason: %q", got)
	}
	png := filepath.Join(art, "dashboard-router.png")
	if n := b.Screenshot(png); n < 10000 {
		t.Errorf("screenshot of %d bytes", n)
	}
	if os.Getenv("GDP_DOCS_IMG") != "" {
		// Refresh the picture docs/OPERATIONS.md shows.
		if data, err := os.ReadFile(png); err == nil {
			_ = os.WriteFile(filepath.Join("..", "..", "docs", "img", "dashboard.png"), data, 0o644)
		}
	}

	// S1: the capsule at its head, S2's head learnt.
	b.Navigate("http://" + d.s1Metrics + "/")
	b.WaitFor("the capsule in S1's table", fmt.Sprintf(`document.querySelector("#tbl-capsules").innerText.includes(%q)`, d.capsule.String()), 10*time.Second)
	b.WaitFor("S2 in S1's replication table", fmt.Sprintf(`document.querySelector("#tbl-replication").innerText.includes(%q)`, d.ids["s2"].Name.String()), 10*time.Second)
	// The owner's description is text, not markup.
	b.WaitFor("the description shown as text", `document.querySelector("#tbl-capsules").innerText.includes('<img src=x onerror=')`, 10*time.Second)
	if made := browsertest.MustEval[bool](b, `document.querySelector("#tbl-capsules img") !== null || document.body.dataset.pwned === "1"`); made {
		t.Error("a capsule description became markup in the page")
	}
	if got := text("#card-capsules .value"); got != "1" {
		t.Errorf("S1 page: %q capsules", got)
	}
	b.WaitFor("S1's page to poll twice (rates shown)", `Number(document.body.dataset.polls) >= 2`, 15*time.Second)
	b.Screenshot(filepath.Join(art, "dashboard-capsuled.png"))

	// The resolver: its domain and both routers among its peers.
	b.Navigate("http://" + d.resolverAPI + "/")
	b.WaitFor("the resolver's domain", fmt.Sprintf(`document.querySelector("#card-domain .value").textContent === %q`, d.dom.Name.String()), 10*time.Second)
	b.WaitFor("both routers among the resolver's peers", fmt.Sprintf(`document.querySelector("#tbl-peers").innerText.includes(%q) && document.querySelector("#tbl-peers").innerText.includes(%q)`,
		d.a.name.String(), d.b.name.String()), 10*time.Second)
	b.WaitFor("the resolver's page to poll twice (rates shown)", `Number(document.body.dataset.polls) >= 2`, 15*time.Second)
	b.Screenshot(filepath.Join(art, "dashboard-resolver.png"))

	// Every page loaded only from its own daemon, without errors (a CSP
	// violation is a console error).
	for _, u := range b.Requests() {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("the page requested %s", u)
		}
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
