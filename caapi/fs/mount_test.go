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

// TestMountReadahead: the mount asks the kernel for 1 MiB of readahead
// (its READ requests grow from 128 KiB to up to 1 MiB), a sequential read
// through it returns the source bytes; and with a tampered chunk deep in
// the file, inside the window fetched ahead, the sequential read gets the
// verified bytes before it and then EIO — never the tampered bytes.
func TestMountReadahead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting the mount's readahead (sysfs) needs root")
	}
	s := newSetup(t, 1, 1)
	const chunks = 40
	src := content(13, chunks*fs.ChunkSize-7)
	v := s.put(t, "m.bin", src)
	dir, m := mountOrSkip(t, s.open(t, fs.Options{}))
	rap, err := mount.ReadAheadPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := os.ReadFile(rap)
	if err != nil || strings.TrimSpace(string(ra)) != "1024" {
		t.Fatalf("read_ahead_kb of the mount: %q %v, want 1024", ra, err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "m.bin"))
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read through the mount: %d bytes, %v", len(got), err)
	}
	if per := m.Stats.ReadBytes.Load() / max(1, m.Stats.Reads.Load()); per <= 128<<10 {
		t.Fatalf("%d bytes per kernel READ request: the readahead was not raised", per)
	}

	const bad = 25 // chunk index
	r := s.rs[0]
	r.stop()
	r.tamper(t, s.name, v.Extents[0].First+bad)
	s.w.start(r)
	dir2, m2 := mountOrSkip(t, s.open(t, fs.Options{}))
	fh, err := os.Open(filepath.Join(dir2, "m.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var read []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := fh.Read(buf)
		read = append(read, buf[:n]...)
		if err != nil {
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("sequential read over a tampered chunk: %v after %d bytes, want EIO", err, len(read))
			}
			break
		}
		if n == 0 {
			t.Fatal("the whole file read: the tampered chunk was returned")
		}
	}
	if len(read) > bad*fs.ChunkSize || !bytes.Equal(read, src[:len(read)]) {
		t.Fatalf("%d bytes before EIO (the tampered chunk starts at %d), equal to the source: %v", len(read), bad*fs.ChunkSize, bytes.Equal(read, src[:min(len(read), len(src))]))
	}
	if m2.Stats.EIO.Load() == 0 {
		t.Fatal("no EIO counted")
	}
}
