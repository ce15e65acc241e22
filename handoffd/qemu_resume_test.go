package handoffd

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestResumeAfterStopCutShort: a real QEMU (no guest needed) stopped for
// the final round by a Stop whose context ended at once — the sender
// interrupted while QEMU writes the device state — is running after
// Resume, and still running a moment later: the migration Stop started is
// cancelled and waited for, not left to pause the VM again when it
// completes after the cont (run state postmigrate). Five times.
func TestResumeAfterStopCutShort(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skipf("%v: the QEMU resume test cannot run", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := StartQEMU(ctx, QEMUConfig{Dir: dir, MemoryMiB: 64, MemPath: filepath.Join(dir, "ram")})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Kill()
	for i := 0; i < 5; i++ {
		cut, stop := context.WithCancel(ctx)
		stop()
		_, serr := q.Stop(cut)
		if err := q.Resume(ctx); err != nil {
			t.Fatalf("round %d (stop: %v): resume: %v", i, serr, err)
		}
		time.Sleep(300 * time.Millisecond)
		if st, err := q.Status(); err != nil || st != "running" {
			t.Fatalf("round %d (stop: %v): the VM is %q (%v) after Resume, want running", i, serr, st, err)
		}
	}
}

// TestQEMURAMPad: QEMUConfig.RAMPadKiB gives the guest that much RAM
// beyond MemoryMiB — the machine, its memory backend and the RAM file
// (BenchmarkVMDowntime's QEMU baseline needs RAM off a 256 KiB multiple,
// docs/HANDOFF.md §8 Session 20) — and a padding QEMU would round is
// refused before QEMU starts.
func TestQEMURAMPad(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skipf("%v: the QEMU RAM padding test cannot run", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mem := filepath.Join(dir, "ram")
	q, err := StartQEMU(ctx, QEMUConfig{Dir: dir, MemoryMiB: 16, RAMPadKiB: 8, MemPath: mem, ExtraArgs: []string{"-S"}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Kill()
	const want = 16<<20 + 8<<10
	ram, err := q.RAM()
	if err != nil {
		t.Fatal(err)
	}
	r, err := q.Run("query-memory-size-summary", nil)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Base int64 `json:"base-memory"`
	}
	json.Unmarshal(r, &sum)
	fi, err := os.Stat(mem)
	if err != nil {
		t.Fatal(err)
	}
	if ram.Size != want || sum.Base != want || fi.Size() != want {
		t.Fatalf("RAMPadKiB 8 on 16 MiB: backend %d, machine %d, RAM file %d bytes; want %d", ram.Size, sum.Base, fi.Size(), want)
	}
	if _, err := StartQEMU(ctx, QEMUConfig{Dir: t.TempDir(), MemoryMiB: 16, RAMPadKiB: 4, MemPath: filepath.Join(dir, "ram4")}); err == nil || !strings.Contains(err.Error(), "multiple of 8 KiB") {
		t.Fatalf("RAMPadKiB 4: %v, want refused (QEMU rounds -m up to 8 KiB)", err)
	}
}
