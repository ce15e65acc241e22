package capsuled_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// childEnv names the file that turns the test binary into a replica
// process (see runChild).
const childEnv = "GDP_CAPSULED_TEST_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		if err := runChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2/internal/invariants.init.0.func1"),
		goleak.IgnoreTopFunction("github.com/quic-go/quic-go.(*Transport).listen"),
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2.(*tableCacheShard).releaseLoop"),
	)
}

// childSpec is what a replica process needs: its identity, its membership,
// the domain, its router and its data directory.
type childSpec struct {
	Key        []byte   `json:"key"`
	Meta       []byte   `json:"meta"`
	Member     []byte   `json:"member"`
	Domain     []byte   `json:"domain"`
	Router     pdu.Name `json:"router"`
	RouterAddr string   `json:"router_addr"`
	Dir        string   `json:"dir"`
}

// runChild runs one capsule server until SIGTERM (drain) or SIGKILL.
func runChild(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var sp childSpec
	if err := json.Unmarshal(b, &sp); err != nil {
		return err
	}
	meta, err := certs.ParseMetadata(sp.Meta)
	if err != nil {
		return err
	}
	id, err := certs.NewIdentityFor(meta, sp.Key)
	if err != nil {
		return err
	}
	member, err := certs.ParseCert(sp.Member)
	if err != nil {
		return err
	}
	dom, err := certs.ParseMetadata(sp.Domain)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: dom, Conn: pc,
		Options: client.Options{InboxSize: 8192}})
	if err != nil {
		return err
	}
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ep.Attach(ctx, sp.RouterAddr, sp.Router)
	if err != nil {
		return err
	}
	srv, err := capsuled.New(ctx, capsuled.Config{Dir: sp.Dir, SyncInterval: 300 * time.Millisecond, PeerTimeout: time.Second},
		capsuled.Deps{Identity: id, Client: c, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	srv.Drain(dctx)
	return srv.Close()
}

// procReplica is a replica running in its own process.
type procReplica struct {
	id   *certs.Identity
	spec string
	data string // the store directory (Dir/store)
	cmd  *exec.Cmd
}

func (w *world) procReplica(n *router.Node, desc string) *procReplica {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindServer, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	member, err := w.dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	dir := w.t.TempDir()
	b, err := json.Marshal(childSpec{Key: id.Key, Meta: id.Meta.Marshal(), Member: member.Marshal(), Domain: w.dom.ID.Meta.Marshal(),
		Router: n.Router.Name(), RouterAddr: n.Addr(), Dir: filepath.Join(dir, "data")})
	if err != nil {
		w.t.Fatal(err)
	}
	p := &procReplica{id: id, spec: filepath.Join(dir, "spec.json"), data: filepath.Join(dir, "data", "store")}
	if err := os.WriteFile(p.spec, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	p.start(w.t)
	w.t.Cleanup(func() { p.kill() })
	return p
}

// start runs the replica process and waits until it serves.
func (p *procReplica) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+p.spec)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("child said %q", line)
		}
		ready <- err
		_, _ = bufio.NewReader(out).WriteTo(discard{})
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("replica process: %v", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("replica process did not start")
	}
	p.cmd = cmd
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// kill sends SIGKILL: no drain, no close, no flush.
func (p *procReplica) kill() {
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// createW2 places tc on servers with W = 2 through writer and returns the
// context the test's appends run under. Generous: appends run under this
// deadline, and under -race on a loaded machine they take many seconds; the
// writer waits for slow replicas within it (it gives up only on its expiry).
func (tc *testCapsule) createW2(t *testing.T, writer *client.CapsuleClient, servers ...certs.Name) (context.Context, context.CancelFunc) {
	t.Helper()
	places, err := client.PlaceCapsule(tc.owner, tc.meta, servers, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), slow*5*time.Minute)
	if err := writer.Create(ctx, tc.owner, tc.meta, 2, places); err != nil {
		cancel()
		t.Fatal(err)
	}
	return ctx, cancel
}

// TestKillNineReplica: three replicas run as separate processes attached to
// router r1 over QUIC; the writer is at r1, the reader at r2. One replica
// is killed with SIGKILL in the middle of the stream (with appends in
// flight), writing goes on with W=2, the replica restarts over its store,
// converges, and every acknowledged record is read back verified from each
// replica. 100k records (20k under -race, 8,000 under -short).
func TestKillNineReplica(t *testing.T) {
	n := fullSize(8000)
	w := newWorld(t)
	r1 := w.router("r1")
	r2 := w.router("r2", r1)
	ps := []*procReplica{w.procReplica(r1, "proc a"), w.procReplica(r1, "proc b"), w.procReplica(r1, "proc c")}
	writer := w.user(r1, "writer")
	reader := w.reader(r2, "reader")
	tc := newTestCapsule(t, "kill -9 log")
	var servers []certs.Name
	for _, p := range ps {
		servers = append(servers, p.id.Name)
	}
	ctx, cancel := tc.createW2(t, writer, servers...)
	defer cancel()
	name := tc.meta.Name()
	wr, err := writer.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Cadence: -1, MaxBatchRecords: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	var ack acked
	start := time.Now()

	// Kill c while batches are in flight: SIGKILL fires from another
	// goroutine once the writer is ~600 records into the second quarter,
	// while it keeps appending (up to 4 batches in flight).
	writeN(t, wr, 1, n/4, &ack)
	killed := make(chan struct{})
	var cReported uint64
	for i := n/4 + 1; i <= n/2; i++ {
		if _, err := wr.Append(ctx, payload(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		ack.note(wr.Durability())
		if i == n/4+600 {
			// With W=2 the writer may never wait for c's own acks, so
			// also ask c what it durably holds right before the kill:
			// everything it reports must survive SIGKILL.
			eventually(t, slow*60*time.Second, "c reports a head", func() bool {
				ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
				defer icancel()
				in, err := writer.Info(ictx, name, ps[2].id.Name)
				if err == nil && in.Head.Seqno > 0 {
					cReported = in.Head.Seqno
				}
				return cReported > 0
			})
			go func() {
				ps[2].kill()
				close(killed)
			}()
		}
	}
	if d, err := wr.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	} else {
		ack.note(d)
	}
	<-killed
	writeN(t, wr, n/2+1, 3*n/4, &ack)
	if d := wr.Durability(); !d.Met {
		t.Fatalf("durability with c killed: %v", d)
	}
	t.Logf("c killed, writes went on: %s", time.Since(start))
	// What c acknowledged before SIGKILL is in its store, whole: reopen
	// the store the dead process left (before c restarts and syncs).
	st, err := store.Open(ps[2].data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := st.Head(name)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Seqno, max(ack.by[ps[2].id.Name], cReported); got < want || want == 0 {
		t.Fatalf("c's store after SIGKILL holds %d entries; c had acknowledged or reported up to %d", got, want)
	}
	if _, err := st.Read(name, 1, h.Seqno); err != nil {
		t.Fatalf("c's store after SIGKILL: %v", err)
	}
	t.Logf("c acknowledged up to %d and reported %d before SIGKILL; its store holds %d, every entry readable", ack.by[ps[2].id.Name], cReported, h.Seqno)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ps[2].start(t)
	t.Logf("c restarted: %s", time.Since(start))
	writeN(t, wr, 3*n/4+1, n, &ack)
	t.Logf("%d records written in %s (one replica SIGKILLed and restarted)", n, time.Since(start))
	if ack.upTo != n {
		t.Fatalf("acknowledged up to %d, wrote %d", ack.upTo, n)
	}
	for _, p := range ps {
		reachable(t, reader, name, p.id.Name, n)
		t.Logf("%s converged: %s", p.id.Meta.Description, time.Since(start))
		checkAll(t, reader, name, p.id.Name, ack.upTo)
	}
}

// TestKillNineMidCatchUp: replica c, a separate process, restarts far
// behind and catches up with range SYNCs in flight (sync_window, default
// 4, answers stored in order as they arrive); it is SIGKILLed as soon as
// it reports a head on the way. The store it leaves holds whole batches
// only (every entry up to its head reads back), and after a restart it
// converges and serves every acknowledged record, verified by the reader.
func TestKillNineMidCatchUp(t *testing.T) {
	n := fullSize(6000) / 10
	w := newWorld(t)
	r1 := w.router("r1")
	ra, rb := w.newReplica(r1, "a"), w.newReplica(r1, "b")
	pc := w.procReplica(r1, "proc c")
	writer := w.user(r1, "writer")
	reader := w.reader(r1, "reader")
	tc := newTestCapsule(t, "kill -9 mid catch-up")
	ctx, cancel := tc.createW2(t, writer, ra.id.Name, rb.id.Name, pc.id.Name)
	defer cancel()
	name := tc.meta.Name()
	pc.kill()
	wr, err := writer.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	var ack acked
	writeN(t, wr, 1, n, &ack)
	if ack.upTo != n {
		t.Fatalf("acknowledged up to %d of %d", ack.upTo, n)
	}
	pc.start(t)
	var seen uint64
	eventually(t, slow*60*time.Second, "c reports a head", func() bool {
		ictx, icancel := context.WithTimeout(ctx, time.Second)
		defer icancel()
		if in, err := writer.Info(ictx, name, pc.id.Name); err == nil {
			seen = in.Head.Seqno
		}
		return seen > 0
	})
	pc.kill()
	st, err := store.Open(pc.data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := st.Head(name)
	if err != nil {
		t.Fatal(err)
	}
	if h.Seqno < seen {
		t.Fatalf("c reported head %d, its store after SIGKILL holds %d", seen, h.Seqno)
	}
	if _, err := st.Read(name, 1, h.Seqno); err != nil {
		t.Fatalf("c's store after SIGKILL mid catch-up: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("c reported %d of %d records, SIGKILLed; its store holds %d, every entry readable", seen, n, h.Seqno)
	pc.start(t)
	reachable(t, reader, name, pc.id.Name, n)
	checkAll(t, reader, name, pc.id.Name, n)
}
