package capsuled

import (
	"strings"
	"testing"
	"time"
)

// TestCheckReloadRunningSamples: a file that raises possession_samples and
// possession_min_samples together is valid on its own (Check passes: a
// restart would take it), but a reload keeps the running possession_samples
// (restart-only), so Reload refuses its minimum. CheckReload — what `gdp
// capsuled` asks before it reloads the membership certificate, so that a
// SIGHUP is all or nothing — refuses it too, naming possession_samples as
// restart-only, and the policy in force stays. Before, the daemon checked
// the file with Check: the membership was reloaded, then Reload refused,
// and the log said the running membership was kept.
func TestCheckReloadRunningSamples(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	file := Config{Dir: sw.s.cfg.Dir, PossessionSamples: 32, PossessionMinSamples: 32}
	if err := file.Check(); err != nil {
		t.Fatalf("the file on its own: %v", err)
	}
	err := sw.s.CheckReload(file)
	if err == nil {
		t.Fatal("CheckReload accepts possession_min_samples 32 while the server runs with possession_samples 16")
	}
	t.Logf("CheckReload: %v", err)
	if !strings.Contains(err.Error(), "restart") {
		t.Fatalf("CheckReload: %v; want it to say possession_samples changes on restart only", err)
	}
	if err := sw.s.Reload(file); err == nil {
		t.Fatal("Reload accepts what CheckReload refused")
	}
	if got := sw.s.minSamples(); got != 16 {
		t.Fatalf("after the refused reload the minimum is %d, want 16", got)
	}
	// What Reload takes, CheckReload takes.
	for _, ok := range []Config{{}, {PossessionMinSamples: 1}, {PossessionSamples: 8, PossessionMinSamples: 16}} {
		if err := sw.s.CheckReload(ok); err != nil {
			t.Fatalf("CheckReload(%+v): %v", ok, err)
		}
		if err := sw.s.Reload(ok); err != nil {
			t.Fatalf("Reload(%+v): %v", ok, err)
		}
	}
}
