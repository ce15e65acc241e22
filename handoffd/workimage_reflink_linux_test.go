package handoffd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareImageReflink: on a file system with reflinks (btrfs, made in a
// file and loop-mounted by the test) the working image is a clone of the
// base — its extents shared with the base's, nothing copied — holding the
// base's bytes (zeros beyond, cut at a smaller size), and a block the
// handoff then writes changes the image only, never the base (copy on
// write). Needs root and mkfs.btrfs (CI installs btrfs-progs); skips
// saying so otherwise.
func TestPrepareImageReflink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to loop-mount a btrfs file system")
	}
	for _, tool := range []string{"mkfs.btrfs", "mount", "umount", "filefrag"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (apt-get install btrfs-progs e2fsprogs)", tool)
		}
	}
	dir := t.TempDir()
	fsImg, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20)
	f.Close()
	if out, err := exec.Command("mkfs.btrfs", "-q", fsImg).CombinedOutput(); err != nil {
		t.Skipf("mkfs.btrfs: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", fsImg, mnt).CombinedOutput(); err != nil {
		t.Skipf("loop-mount btrfs (no loop devices or btrfs in this kernel?): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})

	base, b := raggedBase(t, mnt, 2048, 1, 4) // 8 MiB, every block holding data
	exec.Command("sync").Run()                // filefrag reports delayed extents otherwise
	for _, size := range []int64{int64(len(base)) + 10*BlockSize, 100*BlockSize + 17} {
		p := filepath.Join(mnt, "work.img")
		w, how, err := prepareImage(b, p, size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if how != "reflink" {
			w.Close()
			t.Fatalf("size %d: made by %s on btrfs, want reflink", size, how)
		}
		want := make([]byte, size)
		copy(want, base)
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) {
			w.Close()
			t.Fatalf("size %d: the reflinked image differs from the base", size)
		}
		w.Sync()
		out, err := exec.Command("filefrag", "-v", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "shared") {
			w.Close()
			t.Fatalf("size %d: the image's extents are not shared with the base (err %v):\n%s", size, err, out)
		}
		// The handoff writes a block: the image changes, the base does not.
		blk := bytes.Repeat([]byte{0x5a}, BlockSize)
		if _, err := w.WriteAt(blk, 7*BlockSize); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if got, _ := os.ReadFile(b.Path); !bytes.Equal(got, base) {
			t.Fatalf("size %d: a write to the working image changed the base", size)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got[7*BlockSize:8*BlockSize], blk) {
			t.Fatalf("size %d: the write did not land in the working image", size)
		}
		os.Remove(p)
	}
}
