package fs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/fs/mount"
)

// mountOrSkip mounts f at a temporary directory, or skips the test when
// this machine cannot mount FUSE file systems.
func mountOrSkip(t *testing.T, f *fs.FS) (string, *mount.Mount) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable: /dev/fuse: %v", err)
	}
	_, errFM := exec.LookPath("fusermount3")
	if _, err := exec.LookPath("fusermount"); os.Geteuid() != 0 && err != nil && errFM != nil {
		t.Skip("FUSE unavailable: not root and no fusermount/fusermount3 (apt-get install fuse3)")
	}
	dir := t.TempDir()
	m, err := mount.New(dir, f, mount.Options{})
	if err != nil {
		t.Skipf("FUSE unavailable: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return dir, m
}

// TestMountReadOnly: an unmodified program (os.ReadFile, sha256sum) reads
// capsule files by path through the FUSE mount and gets the source bytes;
// unknown paths are ENOENT, writes EROFS; with only a tampered replica
// left, the read is EIO and returns none of its bytes.
func TestMountReadOnly(t *testing.T) {
	s := newSetup(t, 2, 2)
	src := content(7, 3*fs.ChunkSize+4321)
	v := s.put(t, "models/m.bin", src)
	s.put(t, "a.txt", []byte("hello\n"))
	f := s.open(t, fs.Options{})
	dir, m := mountOrSkip(t, f)

	got, err := os.ReadFile(filepath.Join(dir, "models", "m.bin"))
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read through the mount: %d bytes, %v", len(got), err)
	}
	want := sha256.Sum256(src)
	if _, err := exec.LookPath("sha256sum"); err == nil {
		out, err := exec.Command("sha256sum", filepath.Join(dir, "models", "m.bin")).Output()
		if err != nil || !strings.HasPrefix(string(out), hex.EncodeToString(want[:])) {
			t.Fatalf("sha256sum through the mount: %q %v", out, err)
		}
	}
	es, err := os.ReadDir(dir)
	if err != nil || len(es) != 2 || es[0].Name() != "a.txt" || es[1].Name() != "models" || !es[1].IsDir() {
		t.Fatalf("readdir: %v %v", es, err)
	}
	st, err := os.Stat(filepath.Join(dir, "models", "m.bin"))
	if err != nil || st.Size() != int64(len(src)) || st.Mode().Perm()&0o222 != 0 {
		t.Fatalf("stat: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "models", "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unknown path: %v", err)
	}
	for what, err := range map[string]error{
		"create":           os.WriteFile(filepath.Join(dir, "new.txt"), []byte("x"), 0o644),
		"overwrite":        os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x"), 0o644),
		"remove":           os.Remove(filepath.Join(dir, "a.txt")),
		"mkdir":            os.Mkdir(filepath.Join(dir, "d"), 0o755),
		"rename":           os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")),
		"chmod":            os.Chmod(filepath.Join(dir, "a.txt"), 0o777),
		"open for writing": openWrite(filepath.Join(dir, "models", "m.bin")),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", what, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(got) != "hello\n" {
		t.Fatalf("a.txt changed: %q", got)
	}

	// Only a tampered replica left: EIO, no bytes.
	bad := s.rs[0]
	bad.stop()
	bad.tamper(t, s.name, v.Extents[0].First+1)
	s.w.start(bad)
	s.rs[1].stop()
	f2 := s.open(t, fs.Options{Server: bad.id.Name})
	dir2, m2 := mountOrSkip(t, f2)
	fh, err := os.Open(filepath.Join(dir2, "models", "m.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, fs.ChunkSize)
	n, err := fh.ReadAt(buf, fs.ChunkSize)
	if !errors.Is(err, syscall.EIO) || n != 0 {
		t.Fatalf("tampered chunk through the mount: %d bytes, %v; want EIO", n, err)
	}
	if m2.Stats.EIO.Load() == 0 || m.Stats.EIO.Load() != 0 {
		t.Fatalf("EIO counters %d (tampered), %d (honest)", m2.Stats.EIO.Load(), m.Stats.EIO.Load())
	}
}

func openWrite(p string) error {
	fh, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err == nil {
		fh.Close()
	}
	return err
}
