package handoffd

import (
	"context"
	"errors"
	"io"
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
