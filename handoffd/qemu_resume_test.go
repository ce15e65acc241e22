package handoffd

import (
	"context"
	"os/exec"
	"path/filepath"
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
