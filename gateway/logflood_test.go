package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/internal/logging"
)

// 10,000 requests failing with a 5xx (a client repeating a request the
// overlay cannot answer) cost the log one line per reason and interval.
func TestFailedRequestFloodLogsBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{log: zap.New(core), logLim: logging.NewLimiter(0, 0, nil), m: m}
	const n = 10000
	for i := 0; i < n; i++ {
		w := httptest.NewRecorder()
		s.fail(w, http.StatusBadGateway, "overlay_error", errors.New("no route"))
		if w.Code != http.StatusBadGateway {
			t.Fatalf("request %d answered %d", i, w.Code)
		}
	}
	lines := logs.FilterMessage("request failed").All()
	if len(lines) != 1 {
		t.Fatalf("%d \"request failed\" lines for %d failed requests, want 1", len(lines), n)
	}
	if r := lines[0].ContextMap()["reason"]; r != "overlay_error" {
		t.Errorf("reason %v", r)
	}
}
