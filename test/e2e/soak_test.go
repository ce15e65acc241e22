package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// The fault suite (issue 16, `make soak`): real gdp processes on loopback —
// a resolver, three routers in a line (r1 – r2 – r3), three capsule servers
// (sN at rN) holding one capsule with W = 2 of N = 3 — under a steady load
// of appends (one record, then a flush that waits for W receipts) and
// quorum reads (R = 2: R + W > N), while each round injects faults:
// SIGKILL and restart of a router or a server at a random point, a
// partition (a router stopped with SIGSTOP, its server and its peers cut
// off, then SIGCONT), and a full disk (s3's data directory is a small tmpfs
// that is filled, then emptied). Every client operation is recorded and the
// round's history checked with porcupine: the quorum reads must be
// linearizable with the acknowledged appends. After each round: the three
// replicas converge on the last acknowledged record, every acknowledged
// record reads back verified, and no daemon leaks goroutines, file
// descriptors or memory.
//
// Environment (nothing runs without GDP_SOAK=1):
//
//	GDP_SOAK=1              run it
//	GDP_SOAK_ROUNDS=10      rounds (default 10)
//	GDP_SOAK_DURATION=30m   instead: rounds until this much time passed
//	GDP_SOAK_ROUND=8s       length of a round's faulty part
//	GDP_SOAK_SEED=n         fault schedule seed (default: time)
//	GDP_SOAK_FAULTS=a,b     only these fault kinds (default: all of
//	                        kill-router kill-server partition skew
//	                        skew-far disk-full)
//	GDP_SOAK_LOG=info       the daemons' log level (default warn)
//	GDP_SOAK_OUT=dir        where histories and porcupine's visualizations
//	                        go (default: a temporary directory, kept on failure)
//
// Clock skew: Go reads the vDSO clock, which libfaketime cannot skew, so
// the daemons take an offset from the fault-injection knob
// GDP_FAULT_CLOCK_OFFSET (internal/clock). A "skew" fault restarts a
// router, a server or the resolver with its clock 1–2.5 minutes ahead or
// behind, kept until its next skew (any two nodes then stay within the 5
// minutes tolerated: certs.DefaultClockSkew, the routers' clock_window,
// capsuled's DeleteWindow); "skew-far" restarts a server 10 minutes off,
// beyond the tolerance: its router must refuse its advertisements (counted
// as replay) while the rest carries on and nothing it holds is lost, and it
// is then restarted with its previous clock.
func TestSoak(t *testing.T) {
	if os.Getenv("GDP_SOAK") != "1" {
		t.Skip("the fault suite runs with GDP_SOAK=1 (make soak)")
	}
	rounds := envInt("GDP_SOAK_ROUNDS", 10)
	var until time.Time
	if d, err := time.ParseDuration(os.Getenv("GDP_SOAK_DURATION")); err == nil && d > 0 {
		until = time.Now().Add(d)
		rounds = 1 << 30
	}
	roundLen := 8 * time.Second
	if d, err := time.ParseDuration(os.Getenv("GDP_SOAK_ROUND")); err == nil && d > 0 {
		roundLen = d
	}
	seed := uint64(envInt("GDP_SOAK_SEED", int(time.Now().UnixNano()%1_000_000)))
	out := os.Getenv("GDP_SOAK_OUT")
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "gdp-soak-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: seed %d, %s per round, histories in %s", seed, roundLen, out)
	rng := rand.New(rand.NewPCG(seed, 16))

	cl := newSoakCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := cl.client(t, ctx)

	h := &history{start: time.Now()}
	var last soakState // the state after the previous round
	totalFaults := map[string]int{}
	totalOps, totalReads, totalAppends := 0, 0, 0
	var convergence []time.Duration
	var startUsage map[string]usage
	for round := 1; round <= rounds && (until.IsZero() || time.Now().Before(until)); round++ {
		h.reset()
		roundStart := time.Now()
		loadCtx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); w.appendLoop(loadCtx, h) }()
		for id := 1; id <= 2; id++ {
			wg.Add(1)
			go func() { defer wg.Done(); w.readLoop(loadCtx, h, id) }()
		}
		// the faults, at random points of the round
		faults := cl.injectFaults(t, rng, roundLen)
		for _, f := range faults {
			totalFaults[strings.Fields(f)[0]]++
		}
		stopLoad()
		wg.Wait()
		// a flush still waiting is finished (or left pending) before the check
		w.finishPending(ctx, h)
		ops := h.operations()
		res, info := porcupine.CheckOperationsVerbose(soakModel(last), ops, time.Minute)
		if res != porcupine.Ok {
			path := filepath.Join(out, fmt.Sprintf("round-%d.html", round))
			if err := porcupine.VisualizePath(soakModel(last), info, path); err != nil {
				t.Logf("visualization: %v", err)
			}
			h.save(filepath.Join(out, fmt.Sprintf("round-%d.json", round)))
			t.Fatalf("round %d: the history of %d operations is %s (faults %v); visualization %s", round, len(ops), res, faults, path)
		}
		reads, appends := h.counts()
		totalOps += len(ops)
		totalReads += reads
		totalAppends += appends
		// after the round: convergence, every record back, no leak
		last = w.state()
		conv := cl.converge(t, ctx, w, last.N, 60*time.Second)
		convergence = append(convergence, conv)
		w.checkAll(t, ctx, last.N)
		u := cl.usage(t)
		if startUsage == nil {
			startUsage = u
		}
		cl.checkLeaks(t, round, u)
		t.Logf("round %d: %v; %d operations (%d appends acked, %d quorum reads) linearizable; %d records verified; replicas converged %s after the load stopped; round %s",
			round, faults, len(ops), appends, reads, last.N, conv.Round(time.Millisecond), time.Since(roundStart).Round(time.Millisecond))
	}
	end := cl.usage(t)
	for _, p := range cl.procNames() {
		s, e := startUsage[p], end[p]
		t.Logf("usage %s: goroutines %d → %d, fds %d → %d, RSS %d → %d KiB", p, s.goroutines, e.goroutines, s.fds, e.fds, s.rssKiB, e.rssKiB)
	}
	var worst time.Duration
	for _, c := range convergence {
		worst = max(worst, c)
	}
	t.Logf("soak: %d rounds, faults %v, %d records written and verified, %d operations checked (%d appends, %d quorum reads), worst convergence %s",
		len(convergence), totalFaults, last.N, totalOps, totalAppends, totalReads, worst.Round(time.Millisecond))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// soakState is the model's state: the log's length and its last record.
type soakState struct {
	N    uint64
	Last string
}

type appendIn struct {
	Seq uint64
	Val string
}

type readOut struct {
	H   uint64
	Val string
}

// soakModel: a single-writer log. An append of seqno s is the next record;
// a quorum read returns the head and its record as of its linearization
// point.
func soakModel(init soakState) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return init },
		Step: func(state, input, output any) (bool, any) {
			s := state.(soakState)
			switch in := input.(type) {
			case appendIn:
				if in.Seq != s.N+1 {
					return false, s
				}
				return true, soakState{N: in.Seq, Last: in.Val}
			default: // a read
				o := output.(readOut)
				return o.H == s.N && (o.H == 0 || o.Val == s.Last), s
			}
		},
		DescribeOperation: func(input, output any) string {
			if in, ok := input.(appendIn); ok {
				return fmt.Sprintf("append(%d)", in.Seq)
			}
			o := output.(readOut)
			return fmt.Sprintf("read() → %d %q", o.H, o.Val)
		},
		DescribeState: func(state any) string {
			s := state.(soakState)
			return fmt.Sprintf("%d records, last %q", s.N, s.Last)
		},
	}
}

// history records client operations as porcupine operations.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *history) reset() {
	h.mu.Lock()
	h.ops = nil
	h.mu.Unlock()
}

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

func (h *history) counts() (reads, appends int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range h.ops {
		if _, ok := op.Input.(appendIn); ok {
			appends++
		} else {
			reads++
		}
	}
	return reads, appends
}

func (h *history) save(path string) {
	b, _ := json.MarshalIndent(h.operations(), "", " ")
	_ = os.WriteFile(path, b, 0o644)
}

// soakWriter is the load: one writer, quorum readers.
type soakWriter struct {
	ep    *client.Endpoint
	cli   *client.Client
	cc    *client.CapsuleClient
	wr    *client.Writer
	c     pdu.Name
	mu    sync.Mutex
	data  map[uint64]string
	acked uint64
	// pending is an append invoked whose flush has not succeeded yet.
	pending *porcupine.Operation
}

func (w *soakWriter) state() soakState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return soakState{N: w.acked, Last: w.data[w.acked]}
}

// appendLoop appends one record and flushes until W receipts came back,
// again and again; a flush that fails (faults) is retried until it
// succeeds or the load stops.
func (w *soakWriter) appendLoop(ctx context.Context, h *history) {
	for ctx.Err() == nil {
		if !w.flushPending(ctx, h) {
			return
		}
		call := h.now()
		val := fmt.Sprintf("r%d", time.Now().UnixNano())
		seq, err := w.wr.Append(ctx, []byte(val))
		if err != nil {
			continue
		}
		w.mu.Lock()
		w.data[seq] = val
		w.pending = &porcupine.Operation{ClientId: 0, Input: appendIn{Seq: seq, Val: val}, Call: call, Output: true}
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// flushPending flushes until the pending append is acknowledged; false if
// ctx ended first.
func (w *soakWriter) flushPending(ctx context.Context, h *history) bool {
	for {
		w.mu.Lock()
		p := w.pending
		w.mu.Unlock()
		if p == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		d, err := w.wr.Flush(fctx)
		cancel()
		if err == nil && d.Met && d.Seqno >= p.Input.(appendIn).Seq {
			op := *p
			op.Return = h.now()
			h.add(op)
			w.mu.Lock()
			w.acked, w.pending = op.Input.(appendIn).Seq, nil
			w.mu.Unlock()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finishPending acknowledges the pending append once the faults are over
// (up to a minute), so each round ends quiescent.
func (w *soakWriter) finishPending(ctx context.Context, h *history) {
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	w.flushPending(fctx, h)
}

// readLoop does quorum reads: a fresh reader asks two replicas for their
// heads, adopts the newest heartbeat and reads that record, verified.
func (w *soakWriter) readLoop(ctx context.Context, h *history, id int) {
	for ctx.Err() == nil {
		call := h.now()
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		h0, val, err := w.quorumRead(rctx)
		cancel()
		if err == nil {
			h.add(porcupine.Operation{ClientId: id, Input: "read", Call: call, Output: readOut{H: h0, Val: val}, Return: h.now()})
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *soakWriter) quorumRead(ctx context.Context) (uint64, string, error) {
	rd, err := w.cc.NewReader(ctx, w.c, client.ReaderOptions{Quorum: 2})
	if err != nil {
		return 0, "", err
	}
	hb := rd.Heartbeat()
	if hb == nil || hb.Seqno == 0 {
		return 0, "", nil
	}
	recs, err := rd.Read(ctx, hb.Seqno, hb.Seqno)
	if err != nil {
		return 0, "", err
	}
	if len(recs) != 1 || recs[0].Seqno != hb.Seqno {
		return 0, "", fmt.Errorf("read %d: %d records", hb.Seqno, len(recs))
	}
	return hb.Seqno, string(recs[0].Data), nil
}

// checkAll reads every record 1..n back through a quorum reader, verified,
// and compares it with what was written.
func (w *soakWriter) checkAll(t *testing.T, ctx context.Context, n uint64) {
	t.Helper()
	if n == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = w.scan(rctx, n); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("acknowledged records do not read back: %v", err)
}

func (w *soakWriter) scan(ctx context.Context, n uint64) error {
	rd, err := w.cc.NewReader(ctx, w.c, client.ReaderOptions{Quorum: 2})
	if err != nil {
		return err
	}
	next := uint64(1)
	if err := rd.Scan(ctx, 1, n, func(r capsule.Record) error {
		if r.Seqno != next {
			return fmt.Errorf("record %d read where %d was expected", r.Seqno, next)
		}
		w.mu.Lock()
		want := w.data[r.Seqno]
		w.mu.Unlock()
		if string(r.Data) != want {
			return fmt.Errorf("record %d reads %q, wrote %q", r.Seqno, r.Data, want)
		}
		next++
		return nil
	}); err != nil {
		return err
	}
	if next != n+1 {
		return fmt.Errorf("read back %d records, %d were acknowledged", next-1, n)
	}
	return nil
}

// soakCluster is the set of daemons.
type soakCluster struct {
	dir      string
	ksDir    string
	ids      map[string]*certs.Identity
	members  map[string]*certs.Cert
	dom      *certs.Identity
	procs    map[string]*proc
	admin    map[string]string // router admin / server metrics address
	routers  map[string]string // router UDP address
	tmpfs    string            // s3's data directory (a tmpfs when mounted)
	mounted  bool
	cname    pdu.Name
	restarts map[string]int // per process, within the current round
	names    []string       // the daemons, in procNames order
	domPath  string         // the domain's metadata file
}

// soakOpts varies the cluster for the life soak (TestSoakLife); the zero
// value is the fault suite's and the steady soak's cluster.
type soakOpts struct {
	// memberLife, when set, is the lifetime of every membership (issued
	// a minute back, as gdp cert renew issues them), and the domain's
	// key is saved in the keystore as "domain" so gdp cert renew can sign.
	memberLife time.Duration
	rtcertLife time.Duration // capsuled's rtcert_lifetime ("" when 0)
	gateway    bool          // a gdp gateway ("gw") attached to r1
	handoffd   bool          // a gdp handoffd ("ho") attached to r3
	logLevel   string        // default GDP_SOAK_LOG, else warn
	pprof      bool          // capsuled's pprof: true (heap profiles from its metrics address)
}

func newSoakCluster(t *testing.T) *soakCluster { return newSoakClusterWith(t, soakOpts{}) }

func newSoakClusterWith(t *testing.T, o soakOpts) *soakCluster {
	t.Helper()
	dir := t.TempDir()
	c := &soakCluster{dir: dir, ksDir: filepath.Join(dir, "keys"), ids: map[string]*certs.Identity{}, members: map[string]*certs.Cert{},
		procs: map[string]*proc{}, admin: map[string]string{}, routers: map[string]string{}, restarts: map[string]int{},
		names: []string{"resolver", "r1", "r2", "r3", "s1", "s2", "s3"}}
	kinds := map[string]certs.Kind{"resolver": certs.KindResolver,
		"r1": certs.KindRouter, "r2": certs.KindRouter, "r3": certs.KindRouter,
		"s1": certs.KindServer, "s2": certs.KindServer, "s3": certs.KindServer,
		"client": certs.KindClient, "alice": certs.KindClient, "alice-writer": certs.KindClient}
	if o.gateway {
		kinds["gw"] = certs.KindClient
		c.names = append(c.names, "gw")
	}
	if o.handoffd {
		kinds["ho"] = certs.KindClient
		c.names = append(c.names, "ho")
	}
	// memberships issued an hour back: a node skewed 10 minutes behind
	// then meets the clock windows, not certificates younger than its skew
	// (certs TestClockSkew)
	d := newE2EDomain(t, dir, "soak domain", time.Hour, kinds)
	c.dom, c.ids, c.members = d.dom, d.ids, d.members
	domainPath := d.domainPath
	c.domPath = domainPath
	if o.memberLife > 0 {
		if err := d.ks.Save("domain", d.dom); err != nil {
			t.Fatal(err)
		}
		nb := time.Now().Add(-time.Minute)
		for alias, id := range d.ids {
			if alias == "alice" || alias == "alice-writer" {
				continue // the capsule's owner and writer keys: no daemon shows them
			}
			m, err := certs.IssueMember(d.dom, id.Name, nb, nb.Add(o.memberLife))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, alias+".member"), certs.Armor(certs.PEMCert, m.Marshal()), 0o644); err != nil {
				t.Fatal(err)
			}
			c.members[alias] = m
		}
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p.cmd != nil {
				_ = p.cmd.Process.Signal(syscall.SIGCONT)
			}
			p.kill9()
		}
		if c.mounted {
			_ = exec.Command("umount", c.tmpfs).Run()
		}
		if t.Failed() {
			for _, p := range c.procs {
				b, _ := os.ReadFile(p.log)
				t.Logf("--- log of %s (last 3000 bytes):\n%s", p.name, tail(b, 3000))
				if out := os.Getenv("GDP_SOAK_OUT"); out != "" {
					_ = os.WriteFile(filepath.Join(out, p.name+".log"), b, 0o644)
				}
			}
		}
	})
	daemon := func(name string, args ...string) *proc {
		p := &proc{name: name, args: args, log: filepath.Join(dir, name+".log")}
		c.procs[name] = p
		p.start(t)
		return p
	}
	creds := func(alias string) string {
		return fmt.Sprintf("keystore: %s\nidentity: %s\nmember_cert: %s\ndomain: %s\n", c.ksDir, alias,
			filepath.Join(dir, alias+".member"), domainPath)
	}
	logLevel := cmpOr(o.logLevel, cmpOr(os.Getenv("GDP_SOAK_LOG"), "warn"))
	resConf, resAPI := resolverConf(t, creds("resolver"), logLevel)
	c.admin["resolver"] = resAPI
	daemon("resolver", "resolver", "--config", writeConf(t, dir, "resolver", resConf))
	rst := waitResolver(t, resAPI, 30*time.Second)
	for _, n := range []string{"r1", "r2", "r3"} {
		c.routers[n] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
		c.admin[n] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	}
	for _, n := range []string{"r2", "r1", "r3"} {
		peers := ""
		if n != "r2" {
			peers = fmt.Sprintf("peers:\n  - name: %s\n    addr: %q\n", c.ids["r2"].Name, c.routers["r2"])
		}
		conf := creds(n) + peers + fmt.Sprintf(`listen: %q
admin: %q
drain_timeout: 1s
log: {level: %s}
resolver:
  mode: dht
  listen: [/ip4/127.0.0.1/udp/%d/quic-v1]
  bootstrap: [%s]
  min_puts: 1
  handshake_timeout: 5s
  negative_ttl: 300ms
  cache: {negative_ttl: 300ms}
`, c.routers[n], c.admin[n], logLevel, freePort(t, "udp"), strings.Join(rst.Addrs, ", "))
		daemon(n, "router", "--config", writeConf(t, dir, n, conf))
	}
	for _, n := range []string{"r1", "r2", "r3"} {
		waitFor(t, n+" up", 30*time.Second, func() bool { return c.routerUp(n) })
	}
	// s3's data directory: a 32 MiB tmpfs, so its disk can be filled
	c.tmpfs = filepath.Join(dir, "s3-data")
	if err := os.MkdirAll(c.tmpfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", c.tmpfs).CombinedOutput(); err != nil {
		t.Logf("no tmpfs for s3 (%v: %s): the disk-full fault is skipped", err, out)
	} else {
		c.mounted = true
	}
	for i, n := range []string{"s1", "s2", "s3"} {
		rn := fmt.Sprintf("r%d", i+1)
		c.admin[n] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		data := filepath.Join(dir, n+"-data")
		if n == "s3" {
			data = c.tmpfs
		}
		conf := creds(n) + fmt.Sprintf(`router: %q
router_name: %q
dir: %s
metrics: %q
sync_interval: 300ms
min_free_bytes: 4194304
log: {level: %s}
`, c.routers[rn], c.ids[rn].Name, data, c.admin[n], logLevel)
		if o.rtcertLife > 0 {
			conf += fmt.Sprintf("rtcert_lifetime: %s\n", o.rtcertLife)
		}
		if o.pprof {
			conf += "pprof: true\n"
		}
		daemon(n, "capsuled", "--config", writeConf(t, dir, n, conf))
	}
	for i, n := range []string{"s1", "s2", "s3"} {
		rn := fmt.Sprintf("r%d", i+1)
		waitFor(t, n+" attached", 30*time.Second, func() bool {
			var routes []router.RouteInfo
			return getJSON("http://"+c.admin[rn]+"/v1/routes?name="+c.ids[n].Name.String(), &routes) && len(routes) > 0
		})
	}
	if o.gateway {
		c.admin["gw"] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		conf := creds("gw") + fmt.Sprintf("router: %q\nrouter_name: %q\nsocket: %s\nmetrics: %q\nlog: {level: %s}\n",
			c.routers["r1"], c.ids["r1"].Name, filepath.Join(dir, "gw.sock"), c.admin["gw"], logLevel)
		daemon("gw", "gateway", "--config", writeConf(t, dir, "gw", conf))
		waitFor(t, "the gateway attached to r1", 30*time.Second, func() bool { return promGauge(c.admin["gw"], "gdp_tunnel_links") == 1 })
	}
	if o.handoffd {
		c.admin["ho"] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		conf := creds("ho") + fmt.Sprintf("router: %q\nrouter_name: %q\ncache: %s\ndir: %s\nmetrics: %q\nlog: {level: %s}\n",
			c.routers["r3"], c.ids["r3"].Name, filepath.Join(dir, "ho-cache"), filepath.Join(dir, "ho-received"), c.admin["ho"], logLevel)
		daemon("ho", "handoffd", "--config", writeConf(t, dir, "ho", conf))
		waitFor(t, "handoffd attached to r3", 30*time.Second, func() bool { return promGauge(c.admin["ho"], "gdp_tunnel_links") == 1 })
	}
	common := []string{"--router", c.routers["r2"], "--router-name", c.ids["r2"].Name.String(), "--keystore", c.ksDir,
		"--identity", "client", "--member", filepath.Join(dir, "client.member"), "--domain", domainPath}
	var created struct {
		Capsule string `json:"capsule"`
	}
	waitFor(t, "gdp capsule create", 60*time.Second, func() bool {
		out, err := exec.Command(gdpBin, append([]string{"capsule", "create", "--owner", "alice", "--writer", "alice-writer",
			"--desc", "soak log", "--servers", c.ids["s1"].Name.String() + "," + c.ids["s2"].Name.String() + "," + c.ids["s3"].Name.String(),
			"--w", "2", "--json", "--timeout", "10s"}, common...)...).CombinedOutput()
		if err != nil {
			t.Logf("create: %v: %s", err, out)
			return false
		}
		return json.Unmarshal(out, &created) == nil && created.Capsule != ""
	})
	var err2 error
	if c.cname, err2 = pdu.ParseName(created.Capsule); err2 != nil {
		t.Fatal(err2)
	}
	return c
}

func (c *soakCluster) routerUp(n string) bool {
	var s router.Summary
	return getJSON("http://"+c.admin[n]+"/v1/status", &s) && s.Name == c.ids[n].Name
}

func (c *soakCluster) procNames() []string { return c.names }

// client attaches the test's endpoint at r2 (r1 and r3 as failover) and
// opens the writer.
func (c *soakCluster) client(t *testing.T, ctx context.Context) *soakWriter {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: c.ids["client"], Member: c.members["client"], Domain: c.dom.Meta, Conn: conn,
		Options: client.Options{InboxSize: 8192, RequestTimeout: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := ep.AttachAny(actx, []client.RouterAddr{
		{Addr: c.routers["r2"], Name: c.ids["r2"].Name},
		{Addr: c.routers["r1"], Name: c.ids["r1"].Name},
		{Addr: c.routers["r3"], Name: c.ids["r3"].Name},
	}, client.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if _, err := cl.Advertise(actx, cl.Self()); err != nil {
		t.Fatal(err)
	}
	cc := client.NewCapsuleClient(cl, client.CapsuleOptions{Timeout: time.Second})
	t.Cleanup(func() { cc.Close() })
	ks, err := certs.OpenKeystore(c.ksDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ks.Load("alice-writer")
	if err != nil {
		t.Fatal(err)
	}
	w := &soakWriter{ep: ep, cli: cl, cc: cc, c: c.cname, data: map[uint64]string{}}
	waitFor(t, "a writer", 60*time.Second, func() bool {
		w.wr, err = cc.NewWriter(actx, c.cname, key.Key, client.WriterOptions{W: 2, Timeout: 400 * time.Millisecond, Cadence: -1})
		return err == nil
	})
	return w
}

// injectFaults runs one round's faults at random points of d and returns
// what it did. Two faults per round, chosen among: kill -9 and restart a
// router, kill -9 and restart a server, a partition (SIGSTOP a router for
// 1.5–3 s), s3's disk filled to 1 MiB free for 3 s (below its
// min_free_bytes: it refuses writes; without the reserve pebble stops the
// process at its next log write, which this suite found).
func (c *soakCluster) injectFaults(t *testing.T, rng *rand.Rand, d time.Duration) []string {
	t.Helper()
	for k := range c.restarts {
		delete(c.restarts, k)
	}
	kinds := []string{"kill-router", "kill-server", "partition", "skew", "skew-far", "disk-full"}
	if !c.mounted {
		kinds = kinds[:len(kinds)-1]
	}
	if only := os.Getenv("GDP_SOAK_FAULTS"); only != "" {
		kinds = slices.DeleteFunc(kinds, func(k string) bool { return !slices.Contains(strings.Split(only, ","), k) })
		if len(kinds) == 0 {
			t.Fatalf("GDP_SOAK_FAULTS=%s: no such fault kinds", only)
		}
	}
	start := time.Now()
	var did []string
	for i := 0; i < 2; i++ {
		// a random point in this half of the round
		at := start.Add(time.Duration(i)*d/2 + time.Duration(rng.Int64N(int64(d/4))))
		time.Sleep(time.Until(at))
		kind := kinds[rng.IntN(len(kinds))]
		if testing.Verbose() {
			t.Logf("fault %s at %s", kind, time.Now().UTC().Format("15:04:05.000"))
		}
		switch kind {
		case "kill-router":
			n := fmt.Sprintf("r%d", 1+rng.IntN(3))
			c.kill9Restart(t, n, time.Duration(300+rng.IntN(1200))*time.Millisecond)
			waitFor(t, n+" up again", 30*time.Second, func() bool { return c.routerUp(n) })
			did = append(did, "kill-router "+n)
		case "kill-server":
			n := fmt.Sprintf("s%d", 1+rng.IntN(3))
			c.kill9Restart(t, n, time.Duration(300+rng.IntN(1200))*time.Millisecond)
			did = append(did, "kill-server "+n)
		case "partition":
			n := fmt.Sprintf("r%d", 1+rng.IntN(3))
			p := c.procs[n]
			cut := time.Duration(1500+rng.IntN(1500)) * time.Millisecond
			_ = p.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(cut)
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			did = append(did, fmt.Sprintf("partition %s %s", n, cut.Round(100*time.Millisecond)))
		case "skew":
			// minutes ahead or behind, within the tolerated skew
			all := c.procNames()
			n := all[rng.IntN(len(all))]
			off := time.Duration(60+rng.IntN(91)) * time.Second
			if rng.IntN(2) == 0 {
				off = -off
			}
			c.procs[n].env = []string{clock.EnvOffset + "=" + off.String()}
			c.kill9Restart(t, n, time.Duration(300+rng.IntN(700))*time.Millisecond)
			if _, isRouter := c.routers[n]; isRouter {
				waitFor(t, n+" up again", 30*time.Second, func() bool { return c.routerUp(n) })
			}
			did = append(did, fmt.Sprintf("skew %s %s", n, off))
		case "skew-far":
			// a server 10 minutes off: outside its router's clock window,
			// its advertisements are refused (replay, counted) and it stays
			// up; then back to its previous clock
			i := 1 + rng.IntN(3)
			n, rn := fmt.Sprintf("s%d", i), fmt.Sprintf("r%d", i)
			off := 10 * time.Minute
			if rng.IntN(2) == 0 {
				off = -off
			}
			p := c.procs[n]
			prev := p.env
			before := promCounter(c.admin[rn], "gdp_router_advertisements_total", `result="replay"`)
			p.env = []string{clock.EnvOffset + "=" + off.String()}
			c.kill9Restart(t, n, 300*time.Millisecond)
			waitFor(t, rn+" refusing "+n+"'s advertisements as replays", 30*time.Second, func() bool {
				return promCounter(c.admin[rn], "gdp_router_advertisements_total", `result="replay"`) > before
			})
			time.Sleep(time.Second)
			if p.exited() {
				t.Fatalf("%s, its clock %s off, exited", n, off)
			}
			p.env = prev
			c.kill9Restart(t, n, 300*time.Millisecond)
			did = append(did, fmt.Sprintf("skew-far %s %s", n, off))
		case "disk-full":
			// another program fills s3's disk to 1 MiB free, below the
			// server's min_free_bytes (4 MiB): s3 refuses writes (503)
			// until the file goes
			filler := filepath.Join(c.tmpfs, "filler")
			if f, err := os.Create(filler); err == nil {
				buf := make([]byte, 256<<10)
				for {
					var st syscall.Statfs_t
					if syscall.Statfs(c.tmpfs, &st) != nil || st.Bavail*uint64(st.Bsize) <= 1<<20+uint64(len(buf)) {
						break
					}
					if _, err := f.Write(buf); err != nil {
						break
					}
				}
				f.Close()
			}
			time.Sleep(3 * time.Second)
			os.Remove(filler)
			did = append(did, "disk-full s3 3s")
		}
	}
	time.Sleep(time.Until(start.Add(d)))
	for _, n := range c.procNames() {
		if c.procs[n].exited() {
			t.Fatalf("%s exited by itself during the faults %v", n, did)
		}
	}
	return did
}

func (c *soakCluster) kill9Restart(t *testing.T, name string, down time.Duration) {
	t.Helper()
	p := c.procs[name]
	p.kill9()
	time.Sleep(down)
	p.start(t)
	c.restarts[name]++
}

// converge waits until every server's head is n (anti-entropy after the
// faults) and returns how long it took.
func (c *soakCluster) converge(t *testing.T, ctx context.Context, w *soakWriter, n uint64, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	heads := map[string]uint64{}
	for time.Since(start) < limit {
		all := true
		for _, s := range []string{"s1", "s2", "s3"} {
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			in, err := w.cc.Info(ictx, c.cname, c.ids[s].Name)
			cancel()
			if err != nil || in.Heartbeat == nil || in.Heartbeat.Seqno < n {
				all = false
				if err == nil && in.Heartbeat != nil {
					heads[s] = in.Heartbeat.Seqno
				}
				break
			}
			heads[s] = in.Heartbeat.Seqno
		}
		if all {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replicas did not converge on %d records within %s: heads %v", n, limit, heads)
	return 0
}

// usage is one daemon's footprint.
type usage struct {
	goroutines, fds int
	rssKiB          int
}

func (c *soakCluster) usage(t *testing.T) map[string]usage {
	t.Helper()
	out := map[string]usage{}
	for _, n := range c.procNames() {
		p := c.procs[n]
		if p.cmd == nil {
			continue
		}
		pid := p.cmd.Process.Pid
		u := usage{goroutines: -1}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			u.fds = len(ents)
		}
		if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
					u.rssKiB, _ = strconv.Atoi(strings.Fields(v)[0])
				}
			}
			f.Close()
		}
		u.goroutines = goroutinesOf(c.admin[n])
		out[n] = u
	}
	return out
}

// promCounter sums the samples of a counter whose labels contain match on
// a daemon's /metrics (-1 if unreachable).
func promCounter(addr, name, match string) float64 {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		if f := strings.Fields(line); len(f) >= 2 {
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// goroutinesOf reads go_goroutines from a daemon's /metrics (-1 if none).
func goroutinesOf(addr string) int {
	hc := http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/metrics"} {
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				resp.Body.Close()
				n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return int(n)
			}
		}
		resp.Body.Close()
	}
	return -1
}

// soakPrev is the previous round's usage of each daemon, for the leak check.
var soakPrev = map[string]usage{}

// checkLeaks: a daemon that was not restarted this round may not grow by
// more than 50 % + 50 goroutines, 50 % + 20 file descriptors or 50 % +
// 64 MiB of RSS since the previous round (the first rounds set the
// baseline; growth that then stops is a cache warming, not a leak).
func (c *soakCluster) checkLeaks(t *testing.T, round int, u map[string]usage) {
	t.Helper()
	var errs []error
	for n, now := range u {
		prev, ok := soakPrev[n]
		soakPrev[n] = now
		if !ok || c.restarts[n] > 0 || round < 3 {
			continue
		}
		if prev.goroutines > 0 && now.goroutines > prev.goroutines*3/2+50 {
			errs = append(errs, fmt.Errorf("%s: goroutines %d → %d", n, prev.goroutines, now.goroutines))
		}
		if now.fds > prev.fds*3/2+20 {
			errs = append(errs, fmt.Errorf("%s: fds %d → %d", n, prev.fds, now.fds))
		}
		if now.rssKiB > prev.rssKiB*3/2+64<<10 {
			errs = append(errs, fmt.Errorf("%s: RSS %d → %d KiB", n, prev.rssKiB, now.rssKiB))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("round %d: a daemon grows: %v", round, err)
	}
}

// TestSoakModel checks the checker: the soak's model accepts a history
// where reads follow the acknowledged appends, and porcupine refuses a
// quorum read that misses an acknowledged append (what R + W ≤ N, or a
// reader taking the first answer instead of the newest, would give) and a
// read of a record never written.
func TestSoakModel(t *testing.T) {
	ap := func(seq uint64, val string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 0, Input: appendIn{Seq: seq, Val: val}, Call: call, Output: true, Return: ret}
	}
	rd := func(h uint64, val string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Input: "read", Call: call, Output: readOut{H: h, Val: val}, Return: ret}
	}
	init := soakState{N: 4, Last: "d"}
	good := []porcupine.Operation{ap(5, "e", 0, 10), rd(4, "d", 1, 3), rd(5, "e", 5, 12), ap(6, "f", 11, 20), rd(6, "f", 21, 22)}
	if res := porcupine.CheckOperations(soakModel(init), good); !res {
		t.Fatal("a linearizable history refused")
	}
	for name, h := range map[string][]porcupine.Operation{
		"stale read after the ack": {ap(5, "e", 0, 10), rd(4, "d", 11, 12)},
		"a record never written":   {ap(5, "e", 0, 10), rd(5, "x", 11, 12)},
		"reads going back in time": {ap(5, "e", 0, 10), rd(5, "e", 2, 4), rd(4, "d", 5, 6)},
	} {
		if porcupine.CheckOperations(soakModel(init), h) {
			t.Errorf("%s: accepted", name)
		}
	}
	res, info := porcupine.CheckOperationsVerbose(soakModel(init), []porcupine.Operation{ap(5, "e", 0, 10), rd(4, "d", 11, 12)}, time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("verbose check: %s", res)
	}
	path := filepath.Join(t.TempDir(), "v.html")
	if err := porcupine.VisualizePath(soakModel(init), info, path); err != nil {
		t.Fatalf("visualization: %v", err)
	}
}

func cmpOr(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
