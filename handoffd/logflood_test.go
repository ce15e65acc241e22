package handoffd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// floodListener hands out n streams from one peer, then waits for ctx.
type floodListener struct {
	peer string
	n    int
}

type nopStream struct{}

func (nopStream) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopStream) Write(b []byte) (int, error) { return len(b), nil }
func (nopStream) Close() error                { return nil }

func (l *floodListener) Accept(ctx context.Context) (Stream, string, error) {
	if l.n == 0 {
		<-ctx.Done()
		return nil, "", ctx.Err()
	}
	l.n--
	return nopStream{}, l.peer, nil
}

func (l *floodListener) Close() error { return nil }

// A sender the agent does not allow, opening 10,000 handoffs, has every one
// counted in gdp_handoff_refused_total and costs the log one line per
// reason and peer and interval.
func TestRefusedHandoffFloodLogsBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	a := &Agent{Dir: t.TempDir(), Logger: zap.New(core), Metrics: NewMetrics(reg),
		Config: AgentConfig{Senders: []string{"the allowed sender"}}}
	const n = 10000
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, &floodListener{peer: "mallory", n: n}) }()
	deadline := time.Now().Add(10 * time.Second)
	for refusedCount(a, "not_allowed") < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if got := refusedCount(a, "not_allowed"); got != n {
		t.Errorf("refused{reason=not_allowed} = %v, want %d", got, n)
	}
	lines := logs.FilterMessage("handoff refused").All()
	if len(lines) != 1 {
		t.Fatalf("%d \"handoff refused\" lines for %d refused handoffs, want 1", len(lines), n)
	}
}

func refusedCount(a *Agent, reason string) float64 {
	var d dto.Metric
	if err := a.Metrics.Refused.WithLabelValues(reason).Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// helloStream is one handoff that says hello (a valid one: the agent
// prepares it and logs "handoff receiving") and then ends; Close tells
// the listener the agent is done with it.
type helloStream struct {
	r      *bytes.Reader
	closed chan struct{}
	once   sync.Once
}

func (s *helloStream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *helloStream) Write(b []byte) (int, error) { return len(b), nil }
func (s *helloStream) Close() error                { s.once.Do(func() { close(s.closed) }); return nil }

// loopListener hands out n helloStreams from one peer, each once the
// agent closed the one before (a sender that retries as fast as it can).
type loopListener struct {
	peer  string
	n     int
	hello func(i int) []byte
	prev  *helloStream
}

func (l *loopListener) Accept(ctx context.Context) (Stream, string, error) {
	if l.prev != nil {
		select {
		case <-l.prev.closed:
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	if l.n == 0 {
		<-ctx.Done()
		return nil, "", ctx.Err()
	}
	l.prev = &helloStream{r: bytes.NewReader(l.hello(l.n)), closed: make(chan struct{})}
	l.n--
	return l.prev, l.peer, nil
}

func (l *loopListener) Close() error { return nil }

// An allowed sender that opens a handoff and drops it after the hello, 50
// times in a row, costs the agent at most PeerLogBurst "handoff receiving"
// and "handoff failed; nothing kept" lines an interval, while
// gdp_handoff_received_total{result="failed"} counts each.
func TestHandoffLoopLogsBounded(t *testing.T) {
	e := newPairEnv(t, 64, 16)
	fi, err := os.Stat(e.curPath)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	a := &Agent{Cache: e.dst, Dir: t.TempDir(), Logger: zap.New(core), Metrics: NewMetrics(reg),
		Config: AgentConfig{MaxConcurrent: 2, MaxPerPeer: 2}}
	const n = 50
	ln := &loopListener{peer: "looping sender", n: n, hello: func(i int) []byte {
		var b bytes.Buffer
		h := hello{Version: 1, ID: fmt.Sprintf("loop-%d", i), Bases: []string{e.baseID},
			Images: []helloImage{{Name: "disk", Base: e.baseID, Size: fi.Size()}}}
		if err := writeJSON(&b, frameHello, h); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	deadline := time.Now().Add(20 * time.Second)
	for receivedCount(a, "failed") < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if got := receivedCount(a, "failed"); got != n {
		t.Fatalf("received{result=failed} = %v, want %d", got, n)
	}
	for _, msg := range []string{"handoff receiving", "handoff failed; nothing kept"} {
		if got := logs.FilterMessage(msg).Len(); got < 1 || got > PeerLogBurst {
			t.Errorf("%d %q lines for %d handoffs of one sender, want 1..%d", got, msg, n, PeerLogBurst)
		}
	}
}

func receivedCount(a *Agent, result string) float64 {
	var d dto.Metric
	if err := a.Metrics.Handoffs.WithLabelValues(result).Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}
