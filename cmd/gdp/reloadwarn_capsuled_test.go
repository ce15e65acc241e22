package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestartOnlyCapsuledPossession: possession_min_samples is put in
// force by a capsule server's reload (the upgrade procedure of OPERATIONS
// §6.5.2 sets it to 1 and back with SIGHUP), so editing it is not reported
// as waiting for a restart; possession_samples is restart-only and is.
// Before, the restart-only WARN named possession_min_samples after every
// reload that changed it, though it was in force.
func TestRestartOnlyCapsuledPossession(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "capsuled.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	load := func(extra string) any {
		t.Helper()
		src := string(b)
		if extra != "" {
			src = strings.Replace(src, "\npossession_samples: 16\n", "\n"+extra+"\n", 1)
			if !strings.Contains(src, extra) {
				t.Fatal("deploy/capsuled.yaml has no possession_samples: 16 line to edit")
			}
		}
		p := filepath.Join(dir, "capsuled.yaml")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := loadCapsuledConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	running := load("")
	if got := restartOnlyChanges(running, load("possession_samples: 16\npossession_min_samples: 1"), capsuledReloaded...); len(got) != 0 {
		t.Fatalf("possession_min_samples 16 → 1 reported as restart-only: %v", got)
	}
	if got := restartOnlyChanges(running, load("possession_samples: 32"), capsuledReloaded...); len(got) != 1 || got[0] != "possession_samples" {
		t.Fatalf("possession_samples 16 → 32: %v reported, want [possession_samples]", got)
	}
}
