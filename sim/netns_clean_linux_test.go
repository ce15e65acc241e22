//go:build linux

package sim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestCleanSparesRunStartingMeanwhile: a run that starts while gdp sim
// clean works — it writes its state file, then makes its namespace, after
// the clean began — keeps its namespace and state file. (make test runs
// cmd/gdp's clean tests beside this package's netns runs, and an operator
// may clean while a colleague starts a run.) The run starts at the one
// point between the clean's two looks: at the namespaces and at the state
// files. With the namespaces listed after the state files were read, the
// clean removed the new run's namespace as one no live run names.
func TestCleanSparesRunStartingMeanwhile(t *testing.T) {
	if err := NetnsAvailable(); err != nil {
		t.Skipf("netns mode unavailable here: %v", err)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	run := "t" + hex.EncodeToString(idb[:])[1:] // not hex: no simulator run has this id
	ns := NetnsPrefix + run + "-hub"
	state := filepath.Join(StateDir, run+".json")
	t.Cleanup(func() {
		_ = deleteNS(ns)
		_ = os.Remove(state)
	})
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	started := false
	testHookCleanListed = func() {
		// What setup does: the state file first, then the namespace.
		b, err := json.Marshal(nsState{Run: run, PID: os.Getpid(), PIDStart: procStart(os.Getpid()), Started: time.Now().UTC(),
			Namespaces: []string{ns}})
		if err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(state, b, 0o600); err != nil {
			t.Error(err)
			return
		}
		h, err := newNamedNS(ns)
		if err != nil {
			t.Error(err)
			return
		}
		h.Close()
		started = true
	}
	t.Cleanup(func() { testHookCleanListed = nil })
	rep, err := CleanNetns(false)
	if err != nil {
		t.Logf("clean: %v (other leftovers on this machine)", err)
	}
	if !started {
		t.Fatal("the run did not start")
	}
	if slices.Contains(rep.Namespaces, ns) {
		t.Errorf("the clean removed the starting run's namespace %s", ns)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
		t.Errorf("the starting run's namespace: %v", err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("the starting run's state file: %v", err)
	}
	// Once the run is gone (its simulator dead: here, a pid that is not
	// its own), the next clean removes what it left.
	b, _ := json.Marshal(nsState{Run: run, PID: os.Getpid(), PIDStart: procStart(os.Getpid()) + 1, Namespaces: []string{ns}})
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	testHookCleanListed = nil
	rep, _ = CleanNetns(false)
	if !slices.Contains(rep.Namespaces, ns) || !slices.Contains(rep.Runs, run) {
		t.Errorf("a dead run's leftovers not removed: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
		t.Errorf("the dead run's namespace %s is still there", ns)
	}
}
