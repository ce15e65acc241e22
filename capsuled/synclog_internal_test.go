package capsuled

import (
	"errors"
	"fmt"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// Anti-entropy failures are logged, at WARN once when they start and at
// INFO once when they stop, not every round and not only at DEBUG.
func TestSyncFailuresLogged(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	var f syncFailures
	c, peer := pdu.Name{1}, pdu.Name{2}
	f.report(log, c, peer, nil)
	for i := 0; i < 10; i++ {
		f.report(log, c, peer, errors.New("no answer"))
	}
	f.report(log, c, peer, nil)
	f.report(log, c, peer, nil)
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	infos := logs.FilterLevelExact(zapcore.InfoLevel).All()
	if len(warns) != 1 || warns[0].ContextMap()["error"] != "no answer" || warns[0].ContextMap()["peer"] != peer.String() {
		t.Fatalf("want one WARN with the error and the peer, got %v", logs.All())
	}
	if len(infos) != 1 {
		t.Fatalf("want one INFO on recovery, got %v", logs.All())
	}
	if r := warns[0].ContextMap()["reason"]; r != "sync_failed" {
		t.Fatalf("reason %v, want sync_failed", r)
	}
	// The reason field names the kind of failure, for operators to grep.
	for want, err := range map[string]error{
		"head_not_held": fmt.Errorf("%w: head 9: no possession tag", errHeadNotHeld),
		"nak":           fmt.Errorf("sync: %w", errNAK),
		"refused":       &wire.StatusError{Status: wire.StatusUnavailable},
	} {
		if got := syncFailureReason(err); got != want {
			t.Errorf("reason of %v: %s, want %s", err, got, want)
		}
	}
}
