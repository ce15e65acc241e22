package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/gdpnet/gdpnet/handoffd"
	"github.com/gdpnet/gdpnet/internal/freeport"
)

// opsEnv is a node an operator sets up by following docs/OPERATIONS.md:
// the gdp binary, a work directory, $GDP_KEYSTORE.
type opsEnv struct {
	t    *testing.T
	bin  string
	work string
	env  []string
}

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "gdp")
	linkGdp(t, bin)
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir,
		"LC_ALL=C", "GDP_KEYSTORE=" + filepath.Join(work, "keys")}
	return &opsEnv{t: t, bin: bin, work: work, env: env}
}

// gdp runs one command to completion.
func (e *opsEnv) gdp(args ...string) (string, error) {
	cmd := exec.Command(e.bin, args...)
	cmd.Dir, cmd.Env = e.work, e.env
	out, err := cmd.CombinedOutput()
	e.t.Logf("$ gdp %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func (e *opsEnv) mustGDP(args ...string) string {
	e.t.Helper()
	out, err := e.gdp(args...)
	if err != nil {
		e.t.Fatalf("gdp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// deployConfig reads deploy/NAME.yaml, the file an operator starts from,
// and sets the keys given (dotted paths) for this machine: loopback ports,
// files in the work directory. The keystore key is removed, so the daemon
// finds its keys through $GDP_KEYSTORE.
func (e *opsEnv) deployConfig(name string, set map[string]any) string {
	e.t.Helper()
	return writeDeployConfig(e.t, e.work, name, set, "keystore")
}

// writeDeployConfig writes deploy/NAME.yaml into dir as NAME.yaml with
// the keys of set (dotted paths, made where missing) set and the top-level
// keys of drop removed, and returns its path.
func writeDeployConfig(t testing.TB, dir, name string, set map[string]any, drop ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range drop {
		delete(m, k)
	}
	for k, v := range set {
		cur := m
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = v
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// opsDaemon is a running `gdp router|resolver|capsuled` process.
type opsDaemon struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []string // stderr (the JSON log) and stdout, line by line
}

func (e *opsEnv) start(name string, args ...string) *opsDaemon {
	e.t.Helper()
	d := &opsDaemon{t: e.t, name: name, done: make(chan struct{})}
	d.cmd = exec.Command(e.bin, args...)
	d.cmd.Dir, d.cmd.Env = e.work, e.env
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, r := range []io.Reader{stderr, stdout} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				d.mu.Lock()
				d.lines = append(d.lines, sc.Text())
				d.mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	e.t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		d.mu.Lock()
		defer d.mu.Unlock()
		e.t.Logf("%s log:\n%s", d.name, strings.Join(d.lines, "\n"))
	})
	return d
}

func (d *opsDaemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// waitLog waits for a log line containing all of subs.
func (d *opsDaemon) waitLog(subs ...string) string {
	d.t.Helper()
	var found string
	waitFor(d.t, d.name+" to log "+strings.Join(subs, " … "), func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, l := range d.lines {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				found = l
				return true
			}
		}
		if !d.running() {
			d.t.Fatalf("%s exited (%v) before logging %q:\n%s", d.name, d.err, subs, strings.Join(d.lines, "\n"))
		}
		return false
	})
	return found
}

// stop sends SIGTERM and waits for a clean exit with a final "stopped" line.
func (d *opsDaemon) stop() {
	d.t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.t.Fatalf("%s did not stop on SIGTERM", d.name)
	}
	if d.err != nil {
		d.t.Errorf("%s exited with %v", d.name, d.err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var last map[string]any
	for i := len(d.lines) - 1; i >= 0; i-- {
		if json.Unmarshal([]byte(d.lines[i]), &last) == nil {
			break
		}
	}
	if last["msg"] != "stopped" || last["logger"] != d.name {
		d.t.Errorf("%s: last log line %v, want {logger: %s, msg: stopped}", d.name, last, d.name)
	}
	// Logs fit docs/OPERATIONS.md "Log fields": JSON, no stack traces on
	// expected errors, no "cause" field, no quic-go "Application error".
	for _, l := range d.lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue // --print-addrs output, say
		}
		if _, ok := m["stacktrace"]; ok {
			d.t.Errorf("%s logged a stack trace: %s", d.name, l)
		}
		if _, ok := m["cause"]; ok {
			d.t.Errorf("%s logged a cause field (the documented name is reason): %s", d.name, l)
		}
		if strings.Contains(l, "Application error 0x0") {
			d.t.Errorf("%s logged a normal close as an error: %s", d.name, l)
		}
	}
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

func udpPort(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t) // free for UDP and TCP
}

var nameRe = regexp.MustCompile(`[A-Za-z0-9_-]{43}`)

// TestOperationsWalkthroughDaemons walks docs/OPERATIONS.md §2-§5 with real
// gdp processes on loopback, from the shipped deploy/*.yaml files: doctor,
// a router, a resolver node, a capsule server, a client identity with its
// membership writing and reading a capsule; then the operations the doc
// promises: metrics (build info, certificate expiry, tunnels), a membership
// renewed and reloaded with SIGHUP by every daemon, and a clean stop.
func TestOperationsWalkthroughDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp and runs daemons")
	}
	e := newOpsEnv(t)
	e.mustGDP("cert", "new-domain", "--alias", "acme", "--description", "walkthrough domain")
	for _, k := range []struct{ kind, alias string }{{"router", "router"}, {"resolver", "resolver"}, {"server", "capsuled"}, {"client", "client"}, {"client", "alice"}} {
		e.mustGDP("cert", "keygen", "--kind", k.kind, "--alias", k.alias)
		e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", k.alias+".meta", "--duration", "48h", "--out", k.alias+".member")
	}

	// §2 / §3.1: doctor on the router's config, then the router.
	listen, admin := udpPort(t), freePort(t)
	routerSet := map[string]any{"listen": listen, "admin": admin,
		"member_cert": "router.member", "domain": "acme.meta"}
	routerCfg := e.deployConfig("router", routerSet)
	out := e.mustGDP("doctor", "--config", routerCfg, "--role", "router")
	for _, want := range []string{"ok    config:", "ok    port listen:", "ok    port admin:", "ok    identity:", "ok    membership:"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor: no %q line", want)
		}
	}
	rt := e.start("router", "router", "--config", routerCfg)
	rt.waitLog(`"router up"`)
	waitFor(t, "the admin API", func() bool { _, err := httpGet("http://" + admin + "/v1/status"); return err == nil })
	out = e.mustGDP("router", "status", "--admin", admin)
	if strings.Contains(out, "0001-01-01") || !strings.Contains(out, "member    until") {
		t.Errorf("router status:\n%s", out)
	}
	routerName := nameRe.FindString(out)

	// Session 18: a second router whose admin address is taken (another
	// router's config copied with only listen changed) stops before it
	// says it is up — before, it logged "router up" and published its
	// record, then stopped — in one ERROR line saying what is wrong and
	// what to do.
	twiceDir := filepath.Join(e.work, "twice")
	if err := os.MkdirAll(twiceDir, 0o755); err != nil {
		t.Fatal(err)
	}
	twiceCfg := writeDeployConfig(t, twiceDir, "router", map[string]any{"listen": udpPort(t), "admin": admin,
		"member_cert": filepath.Join(e.work, "router.member"), "domain": filepath.Join(e.work, "acme.meta")}, "keystore")
	twice := e.start("router twice", "router", "--config", twiceCfg)
	select {
	case <-twice.done:
	case <-time.After(60 * time.Second):
		t.Fatal("a second router whose admin address is taken did not stop")
	}
	if twice.err == nil {
		t.Error("a second router whose admin address is taken exited 0")
	}
	twice.mu.Lock()
	var stopped []string
	for _, l := range twice.lines {
		if strings.Contains(l, `"router up"`) {
			t.Errorf("a second router whose admin address is taken said it was up: %s", l)
		}
		if strings.Contains(l, `"msg":"stopped"`) {
			stopped = append(stopped, l)
		}
	}
	twice.mu.Unlock()
	if len(stopped) != 1 || !strings.Contains(stopped[0], "address already in use") || !strings.Contains(stopped[0], `"fix":"another process holds that address`) {
		t.Errorf("a second router whose admin address is taken: stopped lines %q, want one naming the address in use with a fix", stopped)
	}

	// §4.1: a resolver node.
	dhtPort, api := udpPort(t), freePort(t)
	_, p, _ := net.SplitHostPort(dhtPort)
	resolverSet := map[string]any{"api": api, "member_cert": "resolver.member", "domain": "acme.meta",
		"resolver.listen": []string{"/ip4/127.0.0.1/udp/" + p + "/quic-v1"}}
	resolverCfg := e.deployConfig("resolver", resolverSet)
	e.mustGDP("doctor", "--config", resolverCfg, "--role", "resolver")
	rs := e.start("resolver", "resolver", "--config", resolverCfg)
	rs.waitLog(`"resolver up"`)
	waitFor(t, "the resolver API", func() bool { _, err := httpGet("http://" + api + "/status"); return err == nil })

	// §5.1: a capsule server attached to the router.
	metrics := freePort(t)
	capsuledSet := map[string]any{"router": listen, "admin": admin, "router_name": "",
		"member_cert": "capsuled.member", "domain": "acme.meta", "dir": filepath.Join(e.work, "store"), "metrics": metrics}
	capsuledCfg := e.deployConfig("capsuled", capsuledSet)
	e.mustGDP("doctor", "--config", capsuledCfg, "--role", "capsuled")
	cs := e.start("capsuled", "capsuled", "--config", capsuledCfg)
	cs.waitLog(`"capsuled attached"`)
	waitFor(t, "capsuled metrics", func() bool { _, err := httpGet("http://" + metrics + "/metrics"); return err == nil })
	serverName := nameRe.FindString(cs.waitLog(`"capsuled attached"`))

	// §5.2-5.3: a client identity with its membership (client.member,
	// found through $GDP_KEYSTORE) places a capsule and writes and reads it.
	conn := []string{"--router", listen, "--admin", admin, "--identity", "client", "--member", "client.member", "--domain", "acme.meta"}
	out = e.mustGDP(append([]string{"capsule", "create", "--owner", "alice", "--writer", "alice", "--servers", serverName, "--w", "1", "--desc", "walkthrough"}, conn...)...)
	capsule := nameRe.FindString(out)
	e.mustGDP(append([]string{"capsule", "append", capsule, "--writer", "alice", "--data", "one", "--data", "two"}, conn...)...)
	out = e.mustGDP(append([]string{"capsule", "read", capsule, "-q"}, conn...)...)
	if !strings.Contains(out, "one") || !strings.Contains(out, "two") {
		t.Errorf("read back:\n%s", out)
	}

	// §3.3, §4.3, §5.5: every daemon exports its build and its
	// membership's remaining life; the router and the server their tunnels.
	pages := map[string]string{"router": "http://" + admin + "/metrics", "resolver": "http://" + api + "/metrics", "capsuled": "http://" + metrics + "/metrics"}
	memberLeft := func(d string) float64 {
		page, err := httpGet(pages[d])
		if err != nil {
			t.Fatal(err)
		}
		v, ok := promValue(page, "gdp_cert_expiry_seconds", `kind="member"`)
		if !ok {
			t.Fatalf("%s: no gdp_cert_expiry_seconds{kind=\"member\"}", d)
		}
		return v
	}
	for d, u := range pages {
		page, err := httpGet(u)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := promValue(page, "gdp_build_info", "goversion="); !ok || v != 1 {
			t.Errorf("%s: gdp_build_info missing", d)
		}
		if left := memberLeft(d); left < 47*3600 || left > 48*3600 {
			t.Errorf("%s: membership left %vs, want about 48h", d, left)
		}
		if d == "resolver" {
			continue
		}
		if v, ok := promValue(page, "gdp_tunnel_pdus_total", `direction="in"`); !ok || v == 0 {
			t.Errorf("%s: gdp_tunnel_pdus_total{direction=\"in\"} = %v (%v)", d, v, ok)
		}
		if _, ok := promValue(page, "gdp_tunnel_drops_total", `reason="`); !ok {
			t.Errorf("%s: gdp_tunnel_drops_total has no series at zero", d)
		}
	}
	_ = routerName
	// Every metric the doc names exists from the start, labelled ones with
	// their series at zero: a dashboard or alert built from the doc finds
	// it.
	all := ""
	for _, u := range pages {
		page, _ := httpGet(u)
		all += page
	}
	// So does every metric the Grafana dashboard queries.
	checkDashboardMetrics(t, all)
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	var agentMetrics []string
	for _, m := range regexp.MustCompile(`gdp_[a-z_]+`).FindAllString(string(doc), -1) {
		if strings.HasSuffix(m, "_") {
			continue
		}
		// The gateway and the handoff agent do not run in this walkthrough:
		// the names the doc gives for them are checked against what their
		// packages register (documentedAgentMetrics).
		if strings.HasPrefix(m, "gdp_gateway_") || strings.HasPrefix(m, "gdp_handoff_") {
			agentMetrics = append(agentMetrics, m)
			continue
		}
		if _, ok := promValue(all, m); !ok {
			if _, ok := promValue(all, m+"_count"); !ok { // histograms
				t.Errorf("docs/OPERATIONS.md names %s; no daemon exports a series of it", m)
			}
		}
	}
	documentedAgentMetrics(t, agentMetrics)

	// §1.2 / §3.2: renew every membership and reload with SIGHUP: each
	// daemon keeps running and runs with the renewed certificate.
	for _, d := range []*opsDaemon{rt, rs, cs} {
		e.mustGDP("cert", "issue", "member", "--domain", "acme", "--member", d.name+".meta", "--duration", "96h", "--force", "--out", d.name+".member")
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.waitLog(`"reloaded`)
		waitFor(t, d.name+" to run with the renewed membership", func() bool { return memberLeft(d.name) > 72*3600 })
		if !d.running() {
			t.Fatalf("%s exited on SIGHUP", d.name)
		}
	}
	out = e.mustGDP(append([]string{"capsule", "read", capsule, "-q"}, conn...)...)
	if !strings.Contains(out, "two") {
		t.Errorf("read after the reloads:\n%s", out)
	}

	// §4 / §5 signals: SIGHUP also reloads the resolver's trusted domains
	// and the server's placement policy; a config that does not load is
	// refused with one line naming the file and the line, and the running
	// configuration stays.
	e.mustGDP("cert", "new-domain", "--alias", "beta", "--description", "a federated domain")
	with := func(base map[string]any, k string, v any) map[string]any {
		m := map[string]any{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	reload := func(d *opsDaemon, set map[string]any, want ...string) {
		t.Helper()
		e.deployConfig(d.name, set)
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.waitLog(want...)
		if !d.running() {
			t.Fatalf("%s exited on SIGHUP", d.name)
		}
	}
	reload(rs, with(resolverSet, "trusted_domains", []string{"beta.meta"}), `"membership and trusted domains reloaded"`, `"trusted_domains":2`)
	reload(rs, with(resolverSet, "bogus_key", 1), `"reload failed`, resolverCfg+": line ", "bogus_key",
		`"fix":"correct the file the error names (gdp doctor --config `+resolverCfg+" --role resolver")
	// Session 17: gdp capsuled's trusted_domains are reloaded too, and the
	// reload says what it dropped.
	reload(cs, with(capsuledSet, "trusted_domains", []string{"beta.meta"}),
		`"trusted domains reloaded: requester proofs of domains no longer trusted dropped"`, `"trusted_domains":2`)
	// Session 18: the trusted_domains file that reload added is watched
	// (before, only the files named at start were): replacing it reloads
	// on its own.
	countLines := func(d *opsDaemon, sub string) int {
		d.mu.Lock()
		defer d.mu.Unlock()
		n := 0
		for _, l := range d.lines {
			if strings.Contains(l, sub) {
				n++
			}
		}
		return n
	}
	// replace rewrites name (same bytes) until d says the change reloads
	// it: the watch of a file a reload added starts just after that
	// reload's lines, so a change made at once may come before it.
	replace := func(d *opsDaemon, name string) {
		t.Helper()
		p := filepath.Join(e.work, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seen := func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			for _, l := range d.lines {
				if strings.Contains(l, `"a certificate file changed; reloading"`) && strings.Contains(l, name) {
					return true
				}
			}
			return false
		}
		for deadline := time.Now().Add(20 * time.Second); !seen(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s never reloaded on its own after %s was replaced", d.name, name)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			for end := time.Now().Add(3 * certFileDebounce); time.Now().Before(end) && !seen(); time.Sleep(25 * time.Millisecond) {
			}
		}
	}
	csTrust := countLines(cs, `"trusted domains reloaded`)
	replace(cs, "beta.meta")
	waitFor(t, "capsuled's reload after beta.meta was replaced", func() bool { return countLines(cs, `"trusted domains reloaded`) > csTrust })
	reload(cs, with(capsuledSet, "placement.max_per_owner", 1), `"placement policy and subscription limits reloaded"`, `"max_per_owner":1`)
	// A router trusting beta, then no longer: the reload that withdraws it
	// says so, with what it dropped (Session 17). The first reload's line
	// is the same as earlier reloads': wait for one more of them, or the
	// second SIGHUP may come before the first is done and both read the
	// file without beta.
	reloaded := func() int { return countLines(rt, `"reloaded certificates, trusted domains and policy"`) }
	before := reloaded()
	e.deployConfig("router", with(routerSet, "trusted_domains", []string{"beta.meta"}))
	if err := rt.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the router's reload that trusts beta", func() bool { return reloaded() > before })
	// The router watches the file that reload added too (Session 18).
	before = reloaded()
	replace(rt, "beta.meta")
	waitFor(t, "the router's reload after beta.meta was replaced", func() bool { return reloaded() > before })
	reload(rt, routerSet, `"trust withdrawn: faces of those domains closed`, `"learned_routes_dropped"`)
	create := append([]string{"capsule", "create", "--owner", "alice", "--writer", "alice", "--servers", serverName, "--w", "1", "--desc", "second"}, conn...)
	if out, err := e.gdp(create...); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("alice's second capsule after max_per_owner: 1 was reloaded: %v\n%s", err, out)
	}
	reload(cs, with(with(capsuledSet, "placement.max_per_owner", 5), "placement.max_replicas", 99),
		`"reload failed`, capsuledCfg, "max_replicas 99", `"fix":"correct the file`, "systemctl reload gdp-capsuled")
	if out, err := e.gdp(create...); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("alice's second capsule after a refused reload: %v\n%s", err, out)
	}
	cs.stop()
	rs.stop()
	rt.stop()
}

// documentedAgentMetrics checks that each gateway or handoff metric the
// operations doc names is one those daemons register: the handoff agent's
// from its collectors (handoffd.NewMetrics), the gateway's by the name its
// metrics file registers.
func documentedAgentMetrics(t *testing.T, names []string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	handoffd.NewMetrics(reg)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	src, err := os.ReadFile(filepath.Join("..", "..", "gateway", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range names {
		if strings.HasPrefix(m, "gdp_handoff_") && !have[m] {
			// a vector with no series yet is not gathered: look for its name
			if hs, err := os.ReadFile(filepath.Join("..", "..", "handoffd", "metrics.go")); err != nil || !strings.Contains(string(hs), `Name: "`+m+`"`) {
				t.Errorf("docs/OPERATIONS.md names %s; the handoff agent registers no such metric", m)
			}
		}
		if strings.HasPrefix(m, "gdp_gateway_") && !strings.Contains(string(src), `Name: "`+m+`"`) {
			t.Errorf("docs/OPERATIONS.md names %s; the gateway registers no such metric", m)
		}
	}
}
