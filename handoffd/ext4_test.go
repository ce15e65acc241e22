package handoffd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// ext4Pair builds, with e2fsprogs, a base ext4 image (16 MiB, fsBlock-byte
// blocks) and a current one derived from it by debugfs: keep.bin (300 KiB
// of random bytes) written, gone.bin (400 KiB) written and deleted — its
// blocks free again but still holding its bytes. It returns the paths, the
// bytes of keep.bin and gone.bin's file-system blocks.
func ext4Pair(t *testing.T, fsBlock int) (base, cur string, keep []byte, gone []int64) {
	t.Helper()
	for _, c := range []string{"mkfs.ext4", "debugfs", "e2fsck"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("no %s (apt-get install e2fsprogs): the ext4 free-block tests did not run", c)
		}
	}
	dir := t.TempDir()
	base, cur = filepath.Join(dir, "base.img"), filepath.Join(dir, "cur.img")
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run("mkfs.ext4", "-q", "-F", "-b", strconv.Itoa(fsBlock), "-U", "6f1c3a52-8d2e-4b7a-9c10-2f5e6d7a8b9c", "-E", "nodiscard,lazy_itable_init=0", base, "16M")
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cur, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rngFor(11)
	keep = make([]byte, 300<<10)
	goneData := make([]byte, 400<<10)
	for i := range keep {
		keep[i] = byte(rng.Uint32())
	}
	for i := range goneData {
		goneData[i] = byte(rng.Uint32())
	}
	kp, gp := filepath.Join(dir, "keep.src"), filepath.Join(dir, "gone.src")
	os.WriteFile(kp, keep, 0o644)
	os.WriteFile(gp, goneData, 0o644)
	run("debugfs", "-w", "-R", "write "+kp+" keep.bin", cur)
	run("debugfs", "-w", "-R", "write "+gp+" gone.bin", cur)
	for _, f := range strings.Fields(run("debugfs", "-R", "blocks gone.bin", cur)) {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil {
			gone = append(gone, n)
		}
	}
	if len(gone) < (400<<10)/fsBlock {
		t.Fatalf("gone.bin has %d blocks", len(gone))
	}
	run("debugfs", "-w", "-R", "rm gone.bin", cur)
	run("e2fsck", "-fn", cur)
	return base, cur, keep, gone
}

// dumpe2fsFree is the file system's free blocks as dumpe2fs lists them.
func dumpe2fsFree(t *testing.T, img string) map[int64]bool {
	t.Helper()
	out, err := exec.Command("dumpe2fs", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs: %v", err)
	}
	free := map[int64]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Free blocks: ")
		if !ok {
			continue
		}
		for _, part := range strings.Split(rest, ",") {
			a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
			x, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				continue
			}
			y := x
			if isRange {
				y, _ = strconv.ParseInt(b, 10, 64)
			}
			for k := x; k <= y; k++ {
				free[k] = true
			}
		}
	}
	return free
}

// TestExt4FreeBlocks reads the free blocks of real ext4 images (4 KiB and
// 1 KiB file-system blocks) and checks them against dumpe2fs: every block
// said free is free by dumpe2fs (never an allocated one), with 4 KiB blocks
// exactly dumpe2fs's list (one initialised group), and the deleted file's
// blocks are among them.
func TestExt4FreeBlocks(t *testing.T) {
	for _, fsBlock := range []int{4096, 1024} {
		t.Run(strconv.Itoa(fsBlock), func(t *testing.T) {
			_, cur, _, gone := ext4Pair(t, fsBlock)
			f, err := os.Open(cur)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			bits, n, err := ext4Free(f, fi.Size())
			if err != nil {
				t.Fatal(err)
			}
			want := dumpe2fsFree(t, cur)
			per := int64(BlockSize / fsBlock)
			var got int64
			for i := int64(0); i < blocksOf(fi.Size()); i++ {
				if !bitSet(bits, i) {
					continue
				}
				got++
				for k := i * per; k < (i+1)*per; k++ {
					if !want[k] {
						t.Fatalf("image block %d said free, but file-system block %d is in use", i, k)
					}
				}
			}
			if got != n || n == 0 {
				t.Fatalf("%d free blocks counted, %d set", n, got)
			}
			if fsBlock == BlockSize && int(n) != len(want) {
				t.Fatalf("%d free blocks, dumpe2fs lists %d", n, len(want))
			}
			missed := 0
			for _, b := range gone {
				if !bitSet(bits, b/per) {
					missed++
				}
			}
			if missed > len(gone)/8 { // 1 KiB blocks: a 4 KiB block shared with a used one stays
				t.Fatalf("%d of the deleted file's %d blocks not found free", missed, len(gone))
			}
		})
	}
}

// TestExt4UninitGroupInUse: a group whose bitmap is not initialised
// (BLOCK_UNINIT) counts as in use, whatever its bitmap block holds.
func TestExt4UninitGroupInUse(t *testing.T) {
	_, cur, _, _ := ext4Pair(t, 4096)
	b, err := os.ReadFile(cur)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := ext4Free(bytes.NewReader(b), int64(len(b)))
	if err != nil || n == 0 {
		t.Fatalf("%d free blocks, %v", n, err)
	}
	b[BlockSize+0x12] |= ext4BgBlockUninit // group 0's descriptor (the only group)
	_, n, err = ext4Free(bytes.NewReader(b), int64(len(b)))
	if err != nil || n != 0 {
		t.Fatalf("group 0 marked BLOCK_UNINIT: %d blocks said free (%v), want none", n, err)
	}
}

// TestPairHandoffSkipsFreeBlocks hands off an ext4 image pair with FS
// "ext4": the deleted file's 400 KiB of random bytes are not sent (the wire
// shrinks by about that much against the same handoff without FS), the
// destination's image equals the source's in every block but the free
// ones, which hold the base's bytes, e2fsck finds it clean and the kept
// file reads back whole.
func TestPairHandoffSkipsFreeBlocks(t *testing.T) {
	basePath, curPath, keep, _ := ext4Pair(t, 4096)
	e := &pairEnv{dir: t.TempDir(), basePath: basePath, curPath: curPath}
	e.openCaches(t)
	send := func(fs string) (*Report, *Received) {
		a, b := tcpPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ch := make(chan sendResult, 1)
		go func() {
			rep, err := Send(ctx, a, &Handoff{ID: "fs-" + fs, Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath, FS: fs}}},
				SendConfig{Cache: e.src, Mode: "zstd-1", Logger: zap.NewNop()})
			ch <- sendResult{rep, err}
		}()
		rec, rerr := Receive(ctx, b, ReceiveConfig{Cache: e.dst, Dir: filepath.Join(e.dir, "out"), Logger: zap.NewNop()})
		sr := <-ch
		if sr.err != nil || rerr != nil {
			t.Fatalf("fs %q: send %v, receive %v", fs, sr.err, rerr)
		}
		return sr.rep, rec
	}
	full, recFull := send("")
	sameFile(t, curPath, recFull.Images["disk"])
	if full.FreeSkippedBytes != 0 {
		t.Fatalf("without FS: %d bytes skipped", full.FreeSkippedBytes)
	}
	skip, rec := send("ext4")
	t.Logf("wire: %d bytes with every changed block, %d without the free ones (%d bytes of free blocks skipped)", full.WireBytes, skip.WireBytes, skip.FreeSkippedBytes)
	if skip.FreeSkippedBytes < 380<<10 || full.WireBytes-skip.WireBytes < 350<<10 {
		t.Fatalf("free blocks: %d bytes skipped, wire %d -> %d: want the deleted file's ~400 KiB left out", skip.FreeSkippedBytes, full.WireBytes, skip.WireBytes)
	}
	cur, _ := os.ReadFile(curPath)
	base, _ := os.ReadFile(basePath)
	got, _ := os.ReadFile(rec.Images["disk"])
	f, _ := os.Open(curPath)
	bits, _, err := ext4Free(f, int64(len(cur)))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < blocksOf(int64(len(cur))); i++ {
		want := cur[i*BlockSize : (i+1)*BlockSize]
		if bitSet(bits, i) {
			want = base[i*BlockSize : (i+1)*BlockSize]
		}
		if !bytes.Equal(got[i*BlockSize:(i+1)*BlockSize], want) {
			t.Fatalf("block %d (free %v): not the expected bytes", i, bitSet(bits, i))
		}
	}
	if out, err := exec.Command("e2fsck", "-fn", rec.Images["disk"]).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck of the destination's image: %v\n%s", err, out)
	}
	out, err := exec.Command("debugfs", "-R", "cat keep.bin", rec.Images["disk"]).Output()
	if err != nil || !bytes.Equal(out, keep) {
		t.Fatalf("keep.bin at the destination: %d bytes (%v), want the %d written", len(out), err, len(keep))
	}
}

// TestFreeBlocksRefused: free-block elision refuses a file system that is
// not quiescent (needs_recovery set), an image that is not ext4, an
// unknown file system name and a VM handoff — each with a clear error
// before any data is sent.
func TestFreeBlocksRefused(t *testing.T) {
	basePath, curPath, _, _ := ext4Pair(t, 4096)
	e := &pairEnv{dir: t.TempDir(), basePath: basePath, curPath: curPath}
	e.openCaches(t)
	dirty := filepath.Join(e.dir, "dirty.img")
	b, _ := os.ReadFile(curPath)
	b[1024+0x60] |= ext4IncompatRecov
	os.WriteFile(dirty, b, 0o644)
	notFS := filepath.Join(e.dir, "zero.img")
	os.WriteFile(notFS, make([]byte, len(b)), 0o644)
	for _, c := range []struct {
		name, path, fs, want string
		vm                   bool
	}{
		{"needs recovery", dirty, "ext4", "journal recovery", false},
		{"not ext4", notFS, "ext4", "no ext2/3/4 superblock", false},
		{"unknown fs", curPath, "xfs", `file system "xfs"`, false},
		{"vm", curPath, "ext4", "image pairs", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &Handoff{Images: []Image{{Name: "disk", Base: e.baseID, Path: c.path, FS: c.fs}}}
			if c.vm {
				h.VM = &vectorVM{}
			}
			conn := &replayConn{Reader: bytes.NewReader(nil)}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := Send(ctx, conn, h, SendConfig{Cache: e.src, Logger: zap.NewNop()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
			if conn.out.Len() != 0 {
				t.Fatalf("%d bytes sent before the refusal", conn.out.Len())
			}
		})
	}
}
