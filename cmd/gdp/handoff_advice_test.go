package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
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

// TestHandoffBadIDRefusedFirst: gdp handoff send and vm send refuse an
// --id the destination would refuse before they open the base cache, dial
// or touch the VM: the error names --id (the cache directory given does
// not exist and is not created).
func TestHandoffBadIDRefusedFirst(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "never")
	send := &handoffSendOpts{id: "Bad_ID", tcp: "127.0.0.1:1"}
	vm := &handoffVMOpts{handoffSendOpts: handoffSendOpts{id: "-x", tcp: "127.0.0.1:1", memoryBase: "y"}, qmp: "/nonexistent/qmp.sock"}
	for what, run := range map[string]func() error{
		"send":    func() error { return send.run(&cobra.Command{}, cache) },
		"vm send": func() error { return vm.run(&cobra.Command{}, cache) },
	} {
		err := run()
		if err == nil || !strings.HasPrefix(err.Error(), "--id ") {
			t.Fatalf("gdp handoff %s --id bad: %v; want the --id refused first", what, err)
		}
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Fatalf("the base cache was opened before the --id was checked (%v)", err)
	}
}
