package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestSealedUnknownAnswer (review9): a plain writer refused because no
// replica showed record 1 of a capsule it resumes above seqno 0 is
// answered 502 overlay_error, as docs/GATEWAY.md says, whatever the
// replicas' own errors were: one replica's NO_ROUTE NAK or 404 (down, or
// lying) made it 404 unknown_capsule for a capsule that exists, a
// timeout 504.
func TestSealedUnknownAnswer(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{m: m, log: zap.NewNop(), logLim: logging.NewLimiter(0, 0, nil)}
	for _, tc := range []struct {
		what string
		errs []error
	}{
		{"a replica unreachable, another empty", []error{&client.NAKError{Code: pdu.CodeNoRoute}, nil}},
		{"a replica answering 404", []error{fmt.Errorf("read: %w", &wire.StatusError{Status: 404})}},
		{"a replica silent", []error{fmt.Errorf("read: %w", client.ErrNoAnswer)}},
		{"every replica empty", nil},
	} {
		w := httptest.NewRecorder()
		s.overlayError(w, "open writer", sealedUnknown(pdu.Name{1}, 3, tc.errs))
		var e apiError
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s: body %q: %v", tc.what, w.Body.Bytes(), err)
		}
		if w.Code != http.StatusBadGateway || e.Reason != "overlay_error" {
			t.Errorf("%s: %d %s, want 502 overlay_error (%s)", tc.what, w.Code, e.Reason, e.Error)
		}
	}
	if errors.Is(sealedUnknown(pdu.Name{1}, 3, []error{client.ErrNoAnswer}), client.ErrNoAnswer) {
		t.Error("a replica's error is wrapped")
	}
}
