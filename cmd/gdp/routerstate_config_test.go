package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRouterStateDirDefault: `gdp router` keeps its sequence floor in
// state_dir, by default the directory "router" beside its keystore
// (/var/lib/gdp/router with the default keystore); state_dir in the file
// wins.
func TestRouterStateDirDefault(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"keystore: " + filepath.Join(dir, "keys") + "\n", filepath.Join(dir, "router")},
		{"keystore: " + filepath.Join(dir, "keys") + "\nstate_dir: " + filepath.Join(dir, "elsewhere") + "\n", filepath.Join(dir, "elsewhere")},
	} {
		p := filepath.Join(t.TempDir(), "router.yaml")
		if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadRouterConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.StateDir != tc.want {
			t.Errorf("%q: state_dir %q, want %q", tc.yaml, cfg.StateDir, tc.want)
		}
	}
}
