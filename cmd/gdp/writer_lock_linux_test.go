//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// readOnly bind-mounts dir over itself read-only (as kubelet mounts a
// Secret) until the test ends; it skips the test where that needs root.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a read-only bind mount needs root")
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}

// TestWriterLockReadOnlyKeystore (Session 20): a keystore on a read-only
// file system (a Kubernetes Secret: gdp sim export mounts the node's at
// /var/lib/gdp) still gets a writer lock, in a 0700 directory of the user
// under the temporary directory, the same for every process using that
// keystore, so a second writer is still refused — found by the exported
// cluster's end-to-end test: gdp capsule append on the client failed,
// "mkdir /var/lib/gdp/keys.locks: read-only file system".
func TestWriterLockReadOnlyKeystore(t *testing.T) {
	creds := t.TempDir()
	ks := filepath.Join(creds, "keys")
	if err := os.Mkdir(ks, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	readOnly(t, creds)
	c := pdu.Name{9}
	unlock, err := lockWriter(ks, c)
	if err != nil {
		t.Fatalf("lock beside a read-only keystore: %v", err)
	}
	defer unlock()
	if _, err := lockWriter(ks, c); err == nil || !strings.Contains(err.Error(), errWriterLocked.Error()) {
		t.Fatalf("second writer of the capsule: %v, want refused", err)
	}
	// Another capsule's writer is not held up.
	u2, err := lockWriter(ks, pdu.Name{10})
	if err != nil {
		t.Fatal(err)
	}
	u2()
	top := filepath.Join(os.Getenv("TMPDIR"), fmt.Sprintf("gdp-%d", os.Getuid()))
	if st, err := os.Stat(top); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("lock directory %s: %v %v, want 0700", top, st, err)
	}
	// A lock directory another user could write is refused.
	if err := os.Chmod(top, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := lockWriter(ks, pdu.Name{11}); err == nil || !strings.Contains(err.Error(), "not a 0700 directory") {
		t.Fatalf("lock in a 0777 directory: %v, want refused", err)
	}
}
