package main

import (
	"errors"
	"strings"
	"testing"
)

// TestHandoffFailedAdvice: the sender's line tells the operator to send
// again under the same id, except when the destination already committed
// that id, where sending again can only be refused again.
func TestHandoffFailedAdvice(t *testing.T) {
	err := handoffFailed("h1", errors.New("destination: hello: handoff h1 already committed here"))
	if strings.Contains(err.Error(), "send again with --id") || !strings.Contains(err.Error(), "holds it already") {
		t.Fatalf("committed handoff: %q advises sending again", err)
	}
	err = handoffFailed("h1", errors.New("stream reset"))
	if !strings.Contains(err.Error(), "then send again with --id h1") {
		t.Fatalf("failed handoff: %q lacks the retry advice", err)
	}
}
