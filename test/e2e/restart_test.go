package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/freeport"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// recoveryBound is how soon after a restart traffic must flow again
// (issue 10: "traffic flows again ≤ 3 s after a router or server restarts").
const recoveryBound = 3 * time.Second

// recordsPerFlush is the load: this many records, then a flush that waits
// for every replica's answer.
const recordsPerFlush = 5

// proc is one gdp daemon run as a child process, restartable.
type proc struct {
	name string
	bin  string // the gdp binary; "" is the one built for this run
	args []string
	env  []string // added to the environment at each start (the soak's clock offset)
	log  string   // stdout and stderr, appended across restarts
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== start %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.env, " "))
	bin := gdpBin
	if p.bin != "" {
		bin = p.bin
	}
	cmd := exec.Command(bin, p.args...)
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.cmd, p.done = cmd, done
}

// kill9 kills the process without a chance to say goodbye.
func (p *proc) kill9() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// exited reports whether the process ended by itself.
func (p *proc) exited() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// freePort is a loopback port for a daemon the test starts, free for
// network ("udp", "tcp"; it is free for both): below the kernel's
// ephemeral range, so that no test of another package binding port 0
// meanwhile takes it (internal/freeport).
func freePort(t *testing.T, network string) int {
	t.Helper()
	return freeport.Port(t)
}

func getJSON(url string, v any) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flushed is one acknowledged flush of the load.
type flushed struct {
	at       time.Time
	seqno    uint64
	holders  []pdu.Name // replicas that stored it
	answered []pdu.Name // and those that answered they are catching up
}

// TestKillNineEveryDaemon: three routers (a line r1 – r2 – r3 of
// configured peers, each a node of the domain's DHT bootstrapped from a
// `gdp resolver`), three `gdp capsuled` (sN attached to rN) holding one
// capsule (w=2 of 3), all real processes from the built binary. A writer
// appends steadily through r2 (with r1 and r3 as failover). Each router and
// then each server in turn is killed with SIGKILL and started again. After
// each restart, the server behind the restarted daemon must acknowledge an
// append again within recoveryBound (each recovery time is logged). At the
// end every acknowledged record reads back, verified.
func TestKillNineEveryDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes; skipped with -short")
	}
	dir := t.TempDir()
	d := newE2EDomain(t, dir, "e2e domain", time.Minute, map[string]certs.Kind{"resolver": certs.KindResolver,
		"r1": certs.KindRouter, "r2": certs.KindRouter, "r3": certs.KindRouter,
		"s1": certs.KindServer, "s2": certs.KindServer, "s3": certs.KindServer,
		"client": certs.KindClient, "alice": certs.KindClient, "alice-writer": certs.KindClient})
	ks, ksDir, domainPath, dom, ids, members := d.ks, d.ksDir, d.domainPath, d.dom, d.ids, d.members
	procs := newProcSet(t, dir)
	daemon, creds := procs.start, d.creds

	// The resolver: the DHT's first node, the routers' bootstrap.
	resConf, resAPI := resolverConf(t, creds("resolver"), "warn")
	daemon("resolver", "resolver", "--config", writeConf(t, dir, "resolver", resConf))
	rst := waitResolver(t, resAPI, 20*time.Second)

	// Three routers in a line; r1 and r3 keep a tunnel to r2.
	type rinfo struct {
		p     *proc
		addr  string
		admin string
	}
	routers := map[string]*rinfo{}
	for _, n := range []string{"r1", "r2", "r3"} {
		routers[n] = &rinfo{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))}
	}
	for _, n := range []string{"r2", "r1", "r3"} {
		ri := routers[n]
		peers := ""
		if n != "r2" {
			peers = fmt.Sprintf("peers:\n  - name: %s\n    addr: %q\n", ids["r2"].Name, routers["r2"].addr)
		}
		conf := creds(n) + peers + fmt.Sprintf(`listen: %q
admin: %q
drain_timeout: 1s
log: {level: warn}
resolver:
  mode: dht
  listen: [/ip4/127.0.0.1/udp/%d/quic-v1]
  bootstrap: [%s]
  min_puts: 1
  handshake_timeout: 5s
  negative_ttl: 300ms
  cache: {negative_ttl: 300ms}
`, ri.addr, ri.admin, freePort(t, "udp"), strings.Join(rst.Addrs, ", "))
		ri.p = daemon(n, "router", "--config", writeConf(t, dir, n, conf))
	}
	routerUp := func(n string) bool {
		var s router.Summary
		return getJSON("http://"+routers[n].admin+"/v1/status", &s) && s.Name == ids[n].Name
	}
	for _, n := range []string{"r1", "r2", "r3"} {
		waitFor(t, n+" up", 20*time.Second, func() bool { return routerUp(n) })
	}

	// Three capsule servers, sN at rN.
	servers := map[string]*proc{}
	for i, n := range []string{"s1", "s2", "s3"} {
		rn := fmt.Sprintf("r%d", i+1)
		conf := creds(n) + fmt.Sprintf(`router: %q
router_name: %q
dir: %s
metrics: "off"
sync_interval: 300ms
log: {level: warn}
`, routers[rn].addr, ids[rn].Name, filepath.Join(dir, n+"-data"))
		servers[n] = daemon(n, "capsuled", "--config", writeConf(t, dir, n, conf))
	}
	holds := func(rn, name string) bool {
		var routes []router.RouteInfo
		return getJSON("http://"+routers[rn].admin+"/v1/routes?name="+ids[name].Name.String(), &routes) && len(routes) > 0
	}
	for i, n := range []string{"s1", "s2", "s3"} {
		waitFor(t, n+" attached", 20*time.Second, func() bool { return holds(fmt.Sprintf("r%d", i+1), n) })
	}

	// The capsule, created with the CLI at r2 on all three servers.
	common := []string{"--router", routers["r2"].addr, "--router-name", ids["r2"].Name.String(), "--keystore", ksDir,
		"--identity", "client", "--member", filepath.Join(dir, "client.member"), "--domain", domainPath}
	var created struct {
		Capsule string `json:"capsule"`
	}
	waitFor(t, "gdp capsule create", 30*time.Second, func() bool {
		out, err := exec.Command(gdpBin, append([]string{"capsule", "create", "--owner", "alice", "--writer", "alice-writer",
			"--desc", "e2e log", "--servers", ids["s1"].Name.String() + "," + ids["s2"].Name.String() + "," + ids["s3"].Name.String(),
			"--w", "2", "--json", "--timeout", "10s"}, common...)...).CombinedOutput()
		if err != nil {
			t.Logf("create: %v: %s", err, out)
			return false
		}
		return json.Unmarshal(out, &created) == nil && created.Capsule != ""
	})
	cname, err := pdu.ParseName(created.Capsule)
	if err != nil {
		t.Fatal(err)
	}

	// The writer: an SDK endpoint attached at r2, r1 and r3 as failover.
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: ids["client"], Member: members["client"], Domain: dom.Meta, Conn: conn,
		Options: client.Options{InboxSize: 8192, RequestTimeout: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := ep.AttachAny(ctx, []client.RouterAddr{
		{Addr: routers["r2"].addr, Name: ids["r2"].Name},
		{Addr: routers["r1"].addr, Name: ids["r1"].Name},
		{Addr: routers["r3"].addr, Name: ids["r3"].Name},
	}, client.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Advertise(ctx, cl.Self()); err != nil {
		t.Fatal(err)
	}
	cc := client.NewCapsuleClient(cl, client.CapsuleOptions{Timeout: time.Second})
	defer cc.Close()
	writerKey, err := ks.Load("alice-writer")
	if err != nil {
		t.Fatal(err)
	}
	var wr *client.Writer
	waitFor(t, "a writer", 20*time.Second, func() bool {
		wr, err = cc.NewWriter(ctx, cname, writerKey.Key, client.WriterOptions{W: 3, Timeout: 400 * time.Millisecond, Cadence: -1})
		return err == nil
	})

	// The steady load: one record per flush; a flush reports who holds it.
	var (
		mu     sync.Mutex
		acks   []flushed
		data   = map[uint64]string{}
		failed error
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 0; loadCtx.Err() == nil; i++ {
			var err error
			for j := 0; j < recordsPerFlush && err == nil; j++ {
				d := fmt.Sprintf("record %d.%d at %s", i, j, time.Now().Format(time.RFC3339Nano))
				var seq uint64
				if seq, err = wr.Append(loadCtx, []byte(d)); err == nil {
					mu.Lock()
					data[seq] = d
					mu.Unlock()
				}
			}
			if err == nil {
				var dur client.Durability
				dur, err = wr.Flush(loadCtx)
				if err == nil && dur.Acks > 0 {
					mu.Lock()
					acks = append(acks, flushed{at: time.Now(), seqno: dur.Seqno, holders: dur.Holders,
						answered: append(slices.Clone(dur.Holders), dur.Lagging...)})
					mu.Unlock()
				}
			}
			if err != nil && loadCtx.Err() == nil {
				mu.Lock()
				failed = fmt.Errorf("record %d: %w", i, err)
				mu.Unlock()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	// heldBy returns when server first answered an append after since
	// (stored it, or said it is catching up after a restart: either way
	// the append went there and back), waiting up to d.
	heldBy := func(server string, since time.Time, d time.Duration) (time.Time, bool) {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, a := range acks {
				if a.at.After(since) && slices.Contains(a.answered, ids[server].Name) {
					mu.Unlock()
					return a.at, true
				}
			}
			f := failed
			mu.Unlock()
			if f != nil {
				t.Fatalf("the writer failed: %v", f)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Time{}, false
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		if _, ok := heldBy(s, time.Now().Add(-time.Minute), 20*time.Second); !ok {
			t.Fatalf("%s never acknowledged an append before the kills", s)
		}
	}

	// Kill -9 and restart each router, then each server, in turn.
	type event struct {
		victim *proc
		check  string // the server whose acknowledgements show recovery
		up     func() bool
	}
	events := []event{
		{routers["r1"].p, "s1", func() bool { return routerUp("r1") }},
		{routers["r2"].p, "s2", func() bool { return routerUp("r2") }},
		{routers["r3"].p, "s3", func() bool { return routerUp("r3") }},
		{servers["s1"], "s1", nil},
		{servers["s2"], "s2", nil},
		{servers["s3"], "s3", nil},
	}
	var worst time.Duration
	for _, ev := range events {
		killed := time.Now()
		ev.victim.kill9()
		time.Sleep(500 * time.Millisecond) // down for a moment: the others notice
		restarted := time.Now()
		ev.victim.start(t)
		at, ok := heldBy(ev.check, restarted, 15*time.Second)
		if !ok {
			t.Fatalf("kill -9 %s: %s acknowledged nothing within 15 s of the restart", ev.victim.name, ev.check)
		}
		rec := at.Sub(restarted)
		worst = max(worst, rec)
		t.Logf("kill -9 %s: traffic through %s again %s after the restart (%s after the kill)", ev.victim.name, ev.check,
			rec.Round(time.Millisecond), at.Sub(killed).Round(time.Millisecond))
		if rec > recoveryBound {
			t.Errorf("kill -9 %s: recovery took %s, want ≤ %s", ev.victim.name, rec, recoveryBound)
		}
		for _, p := range procs.all {
			if p.exited() {
				t.Fatalf("%s exited by itself after the kill of %s", p.name, ev.victim.name)
			}
		}
		// Steady load for a moment before the next kill.
		mu.Lock()
		n0 := len(acks)
		mu.Unlock()
		time.Sleep(time.Second)
		mu.Lock()
		t.Logf("  then %d flushes in the next second", len(acks)-n0)
		mu.Unlock()
	}
	stopLoad()
	<-loadDone
	mu.Lock()
	if failed != nil {
		t.Fatalf("the writer failed: %v", failed)
	}
	var last uint64
	for _, a := range acks {
		last = max(last, a.seqno)
	}
	mu.Unlock()
	t.Logf("%d flushes acknowledged, records 1..%d; worst recovery %s", len(acks), last, worst.Round(time.Millisecond))

	// Every acknowledged record reads back, verified (hash chain and
	// inclusion proofs against writer-signed heartbeats).
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	rd, err := cc.NewReader(rctx, cname, client.ReaderOptions{Quorum: 2})
	if err != nil {
		t.Fatal(err)
	}
	next := uint64(1)
	if err := rd.Scan(rctx, 1, last, func(r capsule.Record) error {
		if r.Seqno != next {
			return fmt.Errorf("record %d read where %d was expected", r.Seqno, next)
		}
		mu.Lock()
		want := data[r.Seqno]
		mu.Unlock()
		if string(r.Data) != want {
			return fmt.Errorf("record %d reads %q, wrote %q", r.Seqno, r.Data, want)
		}
		next++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if next != last+1 {
		t.Fatalf("read back %d records, %d were acknowledged", next-1, last)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
