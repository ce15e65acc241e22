package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// TestRunLinear: a built-in runs end to end in-process; every ping is
// answered and the results say so in one line.
func TestRunLinear(t *testing.T) {
	top, err := Builtin("linear", Params{N: 4, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Seed = 11
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := t.TempDir()
	res, err := Run(ctx, top, Options{Out: out, Progress: os.Stderr, Plots: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	if want := "Results: 0% dropped (20/20 received)"; res.Summary != want {
		t.Fatalf("summary %q, want %q", res.Summary, want)
	}
	for _, f := range []string{"results.json", "samples.csv", "links.csv", "events.csv", "summary.txt", "latency-cdf.png", "latency-cdf.svg"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s missing or empty: %v", f, err)
		}
	}
	if png, _ := os.ReadFile(filepath.Join(out, "latency-cdf.png")); !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("latency-cdf.png is no PNG")
	}
	b, _ := os.ReadFile(filepath.Join(out, "samples.csv"))
	if n := strings.Count(string(b), "\n"); n != 21 {
		t.Fatalf("samples.csv has %d lines, want a header and 20 pings", n)
	}
	// Units and what it takes to run it again (Session 19): every sample
	// names its unit; results.json the seed and mode; topology.yaml is the
	// topology as run, which loads back to the same topology.
	if lines := strings.Split(string(b), "\n"); !strings.HasSuffix(lines[0], ",unit") || !strings.HasSuffix(lines[1], ",ms") {
		t.Fatalf("samples.csv %q: want a unit column, ms for a ping", lines[:2])
	}
	var got struct {
		Seed      uint64 `json:"seed"`
		Mode      string `json:"mode"`
		Workloads []struct {
			SampleUnit string `json:"sample_unit"`
		} `json:"workloads"`
	}
	if js, err := os.ReadFile(filepath.Join(out, "results.json")); err != nil || json.Unmarshal(js, &got) != nil {
		t.Fatalf("results.json: %v", err)
	}
	if got.Seed != top.Seed || got.Mode != ModeInProcess || got.Workloads[0].SampleUnit != "ms" {
		t.Fatalf("results.json: seed %d mode %q unit %q, want %d %q ms", got.Seed, got.Mode, got.Workloads[0].SampleUnit, top.Seed, ModeInProcess)
	}
	again, err := Load(filepath.Join(out, "topology.yaml"))
	if err != nil {
		t.Fatalf("topology.yaml: %v", err)
	}
	again.Mode = top.Mode // the file names the mode it ran in
	if !bytes.Equal(again.Marshal(), top.Marshal()) {
		t.Fatalf("topology.yaml:\n%s\nwant\n%s", again.Marshal(), top.Marshal())
	}
}

// TestRunInterrupted: a run stopped early (Ctrl-C) says so, and counts
// only what it sent: the pings and datagrams it never sent, or that were
// in flight when it stopped, are not reported as lost.
func TestRunInterrupted(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Workloads[0].Count, top.Workloads[0].Interval = 200, 50*time.Millisecond // 10 s
	top.Workloads = append(top.Workloads, &Workload{Kind: WorkUDP, From: "c1", To: "c2", Rate: 100, Size: 200, Duration: 10 * time.Second})
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rctx, stop := context.WithCancel(ctx)
	time.AfterFunc(1500*time.Millisecond, stop) // Ctrl-C, 1.5 s into a 10 s run
	res, err := s.Run(rctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	if !strings.Contains(res.Interrupted, "stopped") || !strings.Contains(res.Summary, "interrupted") {
		t.Fatalf("interrupted %q, summary %q: want the early stop said", res.Interrupted, res.Summary)
	}
	planned := map[string]int{WorkPing: 200, WorkUDP: 1000}
	for _, w := range res.Workloads {
		// 1.5 s of a 10 s workload was sent; a perfect path loses nothing
		// but what a starved machine keeps past the ping's 1 s timeout.
		if w.Sent == 0 || w.Sent > w.Received+2 || w.Sent*2 > planned[w.Kind] {
			t.Errorf("%s: want about 15%% of the workload sent and all of it received", w.Line())
		}
		if len(w.Outages) > 0 {
			t.Errorf("%s: an outage reported for pings never sent", w.Line())
		}
	}
}

// lockedBuffer is a progress writer several goroutines print to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProgress: a long build and a long run say how far they got, every
// progressEvery (10 s; shortened here), and a build stops at Ctrl-C
// instead of finishing first (40,000 routers took 4 silent minutes).
func TestProgress(t *testing.T) {
	old := progressEvery
	progressEvery = 2 * time.Millisecond
	t.Cleanup(func() { progressEvery = old })
	top, err := Builtin("grid", Params{Rows: 10, Cols: 10, Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Workloads[0].Count, top.Workloads[0].Interval = 10, 100*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var prog lockedBuffer
	s, err := Start(ctx, top, Options{Progress: &prog})
	if err != nil {
		t.Fatal(err)
	}
	progressEvery = 100 * time.Millisecond
	_, err = s.Run(ctx)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := prog.String()
	if !strings.Contains(out, "  building: ") || !strings.Contains(out, " nodes made, ") {
		t.Errorf("no build progress in\n%s", out)
	}
	if n := strings.Count(out, "  running: "); n < 3 || !strings.Contains(out, "workloads done") {
		t.Errorf("%d run progress lines in\n%s", n, out)
	}

	stopped, stop := context.WithCancel(ctx)
	stop() // Ctrl-C before the build
	if s, err := Start(stopped, top, Options{}); err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "build stopped") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("start after Ctrl-C: %v, want the build stopped", err)
	}
}

// TestStreamHeldBack: a stream offered faster than its client's access
// link carries is held back by the client's QUIC connection (its sends
// block); the result says so instead of reporting the rate as the one
// offered.
func TestStreamHeldBack(t *testing.T) {
	mk := func(d time.Duration) *Topology {
		t.Helper()
		top := New("held-back")
		top.AddRouter("r1", "")
		top.AddRouter("r2", "")
		top.AddClient("c1", "r1")
		top.AddClient("c2", "r2")
		top.Link("r1", "r2", Delay(2*time.Millisecond))
		top.Link("r1", "c1", Delay(time.Millisecond), Bandwidth(1_000_000))
		// PDUs of 1,000 bytes at 1,000/s: 8 Mbit/s offered to 1 Mbit/s.
		top.Workloads = append(top.Workloads, &Workload{Kind: WorkStream, From: "c1", To: "c2", Rate: 1000, Size: 1000, Duration: d})
		if err := top.Validate(); err != nil {
			t.Fatal(err)
		}
		return top
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := Run(ctx, mk(500*time.Millisecond), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := res.Workloads[0]
	t.Log(w.Line())
	if w.Sent != 500 || w.SendS < 1 || !strings.Contains(w.Note, "the sender was held back: 500 PDUs took") {
		t.Fatalf("%s: want all 500 sent, over a second, and the hold-back said", w.Line())
	}
}

// TestPaceStops: a sender that fell behind (its sends blocked) catches up
// in a burst; a stop ends the burst at once (Session 19: a stream whose
// sends had blocked for 45 s sent the rest of its 6,000 PDUs after the
// run was stopped).
func TestPaceStops(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sent := 0
	pace(ctx, 1000, 1000, func(k int) {
		sent++
		if k == 0 {
			time.Sleep(100 * time.Millisecond) // a blocked send: 100 PDUs fall due
		}
		if k == 5 {
			stop() // Ctrl-C during the catch-up burst
		}
	})
	if sent != 6 {
		t.Fatalf("sent %d after a stop at the 6th, want 6", sent)
	}
}

// TestFailures: a partition cuts the pings off until it heals, a crashed
// router takes its client's name with it until it restarts; each outage
// is measured and ends; the events are recorded.
func TestFailures(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Workloads[0].Count, top.Workloads[0].Interval = 120, 50*time.Millisecond // 6 s
	top.At(1*time.Second, Failure{Kind: FailPartition, Groups: [][]string{{"r1", "c1"}, {"r2", "r3", "c2"}}})
	top.At(2*time.Second, Failure{Kind: FailHeal})
	top.At(3500*time.Millisecond, Failure{Kind: FailCrash, Node: "r3"})
	top.At(4*time.Second, Failure{Kind: FailRestart, Node: "r3"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	p := res.Workloads[0]
	if len(res.Events) != 4 {
		t.Fatalf("events %v", res.Events)
	}
	for _, e := range res.Events {
		if e.Err != "" {
			t.Fatalf("event failed: %+v", e)
		}
	}
	// Two outages: the partition (1–2 s) and the crash (3.5 s to after
	// the restart), both over before the end. Times are the events'
	// recorded ones; a ping still in flight when a failure struck is lost
	// with it, and on a starved machine a round trip can take a quarter
	// second, so an outage may start up to 0.25 s before its event.
	const inFlight = 0.25
	part, heal, crash, restart := res.Events[0].At, res.Events[1].At, res.Events[2].At, res.Events[3].At
	var inPart, inCrash bool
	for _, o := range p.Outages {
		if o.End == 0 {
			t.Fatalf("an outage from %.2fs never ended", o.Start)
		}
		if o.Start >= part-inFlight && o.Start < part+0.2 && o.End >= heal {
			inPart = true
		}
		if o.Start >= crash-inFlight && o.Start < crash+0.2 && o.End >= restart {
			inCrash = true
		}
	}
	if !inPart || !inCrash {
		t.Fatalf("outages %+v, events %+v: want one from the partition and one from the crash", p.Outages, res.Events)
	}
	// No loss outside the outages' windows.
	for _, s := range p.Samples {
		if !s.OK && (s.T < part-inFlight || (s.T > heal+0.5 && s.T < crash-inFlight)) {
			t.Fatalf("ping at %.2fs lost outside a failure", s.T)
		}
	}
}

// TestSourceCrashCounted (review12): pings scheduled while their source
// client is crashed are lost, as its user sees them, not left out: the
// run was not interrupted, so every scheduled ping is counted and the
// outage starts at the crash. 7fe46b4 left out every ping not counted by
// its own answer or timeout — a crashed source's too — so a client crash
// showed no outage until its restart, and its pings in between were
// neither sent nor lost.
func TestSourceCrashCounted(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Workloads[0].Count, top.Workloads[0].Interval = 60, 50*time.Millisecond // 3 s
	top.At(1*time.Second, Failure{Kind: FailCrash, Node: top.Workloads[0].From})
	top.At(2*time.Second, Failure{Kind: FailRestart, Node: top.Workloads[0].From})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	p := res.Workloads[0]
	if res.Interrupted != "" || p.Sent != 60 || len(p.Samples) != 60 {
		t.Fatalf("interrupted %q, %d pings counted, %d samples; want all 60 of an uninterrupted run", res.Interrupted, p.Sent, len(p.Samples))
	}
	crash := res.Events[0].At
	for _, o := range p.Outages {
		if o.Start >= crash-0.25 && o.Start < crash+0.2 && o.Lost >= 10 {
			return
		}
	}
	t.Fatalf("outages %+v: want one from the source's crash at %.2fs", p.Outages, crash)
}

// TestRetryUntil: an endpoint's first attach is tried again, a pause
// apart, until it succeeds or its budget ends (then the last error, with
// the attempts); the netns mode's budget is longer than in-process.
func TestRetryUntil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := 0
	err := retryUntil(ctx, time.Millisecond, permanentAttachError, func() error {
		calls++
		if calls < 3 {
			return errors.New("control accept: deadline exceeded")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want success at the third", err, calls)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	calls = 0
	err = retryUntil(short, 5*time.Millisecond, permanentAttachError, func() error { calls++; return errors.New("refused") })
	if err == nil || !strings.Contains(err.Error(), "refused") || calls < 2 {
		t.Fatalf("budget over: err %v after %d calls, want the last error after several", err, calls)
	}
	// A refusal is final: the router refused the credentials in the TLS
	// handshake (as the attach returns it: joined, wrapped) or the link's
	// kind, proved another name, or a key its metadata lacks — one
	// attempt, that error, at once.
	for _, perm := range []error{
		fmt.Errorf("attach: %w", errors.Join(fmt.Errorf("r: tunnel: dial: %w: %w", tunnel.ErrPeerRefused,
			&quic.TransportError{Remote: true, ErrorCode: quic.TransportErrorCode(0x100 + 42)}))),
		fmt.Errorf("attach: %w", errors.Join(fmt.Errorf("%w: peer refused the link (code 1)", tunnel.ErrPeerRefused))),
		fmt.Errorf("dial: %w: got x, want y", tunnel.ErrWrongPeer),
		fmt.Errorf("dial: %w", tunnel.ErrKeyMismatch),
	} {
		calls = 0
		start := time.Now()
		err = retryUntil(ctx, 50*time.Millisecond, permanentAttachError, func() error { calls++; return perm })
		if !errors.Is(err, perm) || calls != 1 || time.Since(start) > 2*time.Second {
			t.Fatalf("permanent %v: err %v after %d calls in %s, want it back after one", perm, err, calls, time.Since(start))
		}
	}
	// The router closing the connection after a failed setup reads as a
	// refusal too, but may be its own deadline on a starved router (the
	// failure the retry is for): retried.
	calls = 0
	setupFailed := fmt.Errorf("attach: %w", errors.Join(fmt.Errorf("r: tunnel: dial: %w: %w", tunnel.ErrPeerRefused,
		&quic.ApplicationError{Remote: true, ErrorCode: 1, ErrorMessage: "control accept: deadline exceeded"})))
	err = retryUntil(ctx, time.Millisecond, permanentAttachError, func() error {
		if calls++; calls < 3 {
			return setupFailed
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("a setup the router gave up on: err %v after %d calls, want success at the third", err, calls)
	}
	in, ns := (&Sim{}).attachBudget(), (&Sim{ns: &nsRun{}}).attachBudget()
	if in != 15*time.Second || ns != 60*time.Second {
		t.Fatalf("attach budget in-process %s, netns %s; want 15s and 60s", in, ns)
	}
}

// TestClientsKeepTheirRoutes: the simulator's clients advertise their
// names again before they expire, so an experiment longer than the RtCert
// (an hour) keeps its answers. With 3 s RtCerts, c1's pings to c2 are
// answered for two lifetimes and a second. Session 21: advertised once,
// every ping failed after the first hour.
func TestClientsKeepTheirRoutes(t *testing.T) {
	top, err := Builtin("linear", Params{N: 2, Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const life = 3 * time.Second
	s, err := Start(ctx, top, Options{rtCertLifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for start := time.Now(); time.Since(start) < 2*life+time.Second; time.Sleep(300 * time.Millisecond) {
		if _, err := s.Ping(ctx, "c1", "c2", 0, 2*time.Second); err != nil {
			t.Fatalf("ping c1 -> c2 %s after the start: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
}

// stuckLink is a client's link whose Send blocks until release is closed
// (quic-go's SendDatagram on a path whose queue stays full).
type stuckLink struct {
	release, done chan struct{}
	sends         atomic.Int64
}

func (l *stuckLink) Peer() pdu.Name        { return pdu.Name{0xee} }
func (l *stuckLink) Done() <-chan struct{} { return l.done }
func (l *stuckLink) Close() error          { return nil }
func (l *stuckLink) Send([]byte) error {
	l.sends.Add(1)
	<-l.release
	return nil
}

// TestStreamSendsHaveDeadlines (Session 21): a stream's sends wait for
// the source's link at most streamSendTimeout each, and not past a stop:
// with the link's Send blocked for good, a stopped stream returns, counts
// what it gave up on and says so. Before, it sent with Client.Send (no
// deadline) and stayed in the first send until the link's idle timeout.
func TestStreamSendsHaveDeadlines(t *testing.T) {
	src, _ := certs.NewIdentity(certs.KindClient, "stream source")
	dst, _ := certs.NewIdentity(certs.KindClient, "stream sink")
	link := &stuckLink{release: make(chan struct{}), done: make(chan struct{})}
	c := client.New(src, link, client.Options{})
	defer func() { close(link.release); _ = c.Close() }()
	s := &Sim{nodes: map[string]*simNode{"a": {id: src, c: c}, "b": {id: dst}}}
	w := &Workload{Kind: WorkStream, From: "a", To: "b", Rate: 100, Size: 64, Duration: 10 * time.Second}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	time.AfterFunc(2500*time.Millisecond, stop)
	var r WorkloadResult
	done := make(chan struct{})
	go func() { defer close(done); s.runStream(ctx, 0, w, &r) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the stream still waits for its blocked link 17.5 s after the stop (%d sends reached the link)", link.sends.Load())
	}
	if r.Sent < 2 || !strings.Contains(r.Note, "PDUs not sent: the source's link stayed full for 1s each") {
		t.Fatalf("sent %d, note %q: want the sends that gave up counted and said", r.Sent, r.Note)
	}
}
