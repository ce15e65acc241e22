package handoffd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQEMUPadRefusedTouchesNothing: a RAM padding QEMU would round is
// refused before StartQEMU touches its directory — the sockets of a QEMU
// still running there stay (it removed them first, then refused). Needs
// no QEMU: nothing is started.
func TestQEMUPadRefusedTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	socks := []string{filepath.Join(dir, "qmp.sock"), filepath.Join(dir, "serial.sock")}
	for _, p := range socks {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := StartQEMU(context.Background(), QEMUConfig{Dir: dir, MemoryMiB: 16, RAMPadKiB: 4, MemPath: filepath.Join(dir, "ram"),
		Binary: filepath.Join(dir, "no-such-qemu")})
	if err == nil || !strings.Contains(err.Error(), "multiple of 8 KiB") {
		t.Fatalf("RAMPadKiB 4: %v, want refused", err)
	}
	for _, p := range socks {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s after the refusal: %v, want left in place", filepath.Base(p), err)
		}
	}
}
