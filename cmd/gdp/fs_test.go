package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/fs"
)

// TestFSCLI runs `gdp fs put|ls|log|get|cat|rm` with the built binary
// against a router and a capsule server, and `gdp fs mount` as its own
// process (where FUSE is available): a file read through the mount by an
// unmodified program equals the source, and SIGTERM unmounts.
func TestFSCLI(t *testing.T) {
	w := newCLIWorld(t, []string{"store1"}, nil)
	dir, ids := w.dir, w.ids
	run := func(args ...string) (string, error) {
		cmd := w.command(args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String() + stderr.String(), err
		}
		return stdout.String(), nil
	}
	gdp := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("gdp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	capsuleName := strings.TrimSpace(gdp("capsule", "create", "--owner", "alice", "--writer", "alice-writer",
		"--servers", ids["store1"].Name.String(), "--w", "1"))

	src := make([]byte, 2*fs.ChunkSize+777)
	for i := range src {
		src[i] = byte(i*7 + i/1000)
	}
	local := filepath.Join(dir, "model.bin")
	if err := os.WriteFile(local, src, 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	_ = os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	_ = os.WriteFile(filepath.Join(tree, "a.txt"), []byte("first\n"), 0o644)
	_ = os.WriteFile(filepath.Join(tree, "sub", "b.txt"), []byte("bee\n"), 0o644)

	var put []struct {
		Path    string `json:"path"`
		Version uint64 `json:"version"`
		Size    uint64 `json:"size"`
		SHA256  string `json:"sha256"`
	}
	out := gdp("fs", "put", capsuleName, local, "models/model.bin", "--writer", "alice-writer", "--json")
	if err := json.Unmarshal([]byte(out), &put); err != nil || len(put) != 1 || put[0].Size != uint64(len(src)) {
		t.Fatalf("put: %v\n%s", err, out)
	}
	sum := sha256.Sum256(src)
	if put[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("put reports sha256 %s", put[0].SHA256)
	}
	first := put[0].Version
	gdp("fs", "put", capsuleName, tree, "docs", "--writer", "alice-writer")
	// A second version of the model, then its log.
	if err := os.WriteFile(local, src[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	gdp("fs", "put", capsuleName, local, "models/model.bin", "--writer", "alice-writer")

	if out := gdp("fs", "ls", capsuleName); out != "d\t-\t-\t-\tdocs/\nd\t-\t-\t-\tmodels/\n" {
		t.Fatalf("ls /:\n%s", out)
	}
	if out := gdp("fs", "ls", capsuleName, "docs"); !strings.Contains(out, "\ta.txt\n") || !strings.HasSuffix(out, "sub/\n") {
		t.Fatalf("ls docs:\n%s", out)
	}
	if out := gdp("fs", "log", capsuleName, "models/model.bin"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "\t1000\t") {
		t.Fatalf("log:\n%s", out)
	}
	if out := gdp("fs", "cat", capsuleName, "docs/sub/b.txt"); out != "bee\n" {
		t.Fatalf("cat: %q", out)
	}
	got := filepath.Join(dir, "got.bin")
	gdp("fs", "get", capsuleName, "models/model.bin", got, "--version", itoa(first))
	if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, src) {
		t.Fatalf("get --version %d: %d bytes, %v", first, len(b), err)
	}
	gdp("fs", "rm", capsuleName, "docs/a.txt", "--writer", "alice-writer")
	if out, err := run("fs", "cat", capsuleName, "docs/a.txt"); err == nil || !strings.Contains(out, "no such file") {
		t.Fatalf("cat of a removed file: %v\n%s", err, out)
	}
	if out, err := run("fs", "put", capsuleName, local, "../escape", "--writer", "alice-writer"); err == nil || !strings.Contains(out, "bad path") {
		t.Fatalf("put to ../escape: %v\n%s", err, out)
	}
	// A KV record or a plain one appended to the files capsule is refused
	// before it is written (Session 19): after the files it made every
	// read of the tree fail, for good.
	for _, args := range [][]string{
		{"kv", "put", capsuleName, "oops", "x", "--writer", "alice-writer"},
		{"capsule", "append", capsuleName, "--data", "oops", "--writer", "alice-writer"},
	} {
		if out, err := run(args...); err == nil || !strings.Contains(out, "holds files") {
			t.Fatalf("gdp %s on a files capsule: %v, want refused\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out := gdp("fs", "cat", capsuleName, "models/model.bin"); out != string(src[:1000]) {
		t.Fatalf("the file after the refused writes: %d bytes, want its newest version's 1000", len(out))
	}

	// gdp fs mount, as its own process.
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable (/dev/fuse: %v): mount not tested", err)
	}
	mnt := filepath.Join(dir, "mnt")
	_ = os.Mkdir(mnt, 0o755)
	mcmd := w.command("fs", "mount", capsuleName, mnt, "--at", itoa(first))
	var merr lockedBuffer // read while the mount runs
	mcmd.Stderr = &merr
	if err := mcmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- mcmd.Wait() }()
	defer func() {
		_ = mcmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = mcmd.Process.Kill()
		}
	}()
	target := filepath.Join(mnt, "models", "model.bin")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(target); err == nil {
			break
		}
		select {
		case err := <-exited:
			if strings.Contains(merr.String(), "fusermount") || strings.Contains(merr.String(), "permission") {
				t.Skipf("FUSE unavailable: %v\n%s", err, merr.String())
			}
			t.Fatalf("gdp fs mount exited: %v\n%s", err, merr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount did not show %s\n%s", target, merr.String())
		}
	}
	// The tree as of the first version: the first model, no docs yet.
	out2, err := exec.Command("sha256sum", target).Output()
	if err != nil || !strings.HasPrefix(string(out2), hex.EncodeToString(sum[:])) {
		t.Fatalf("sha256sum through gdp fs mount: %q %v", out2, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "docs")); !os.IsNotExist(err) {
		t.Fatalf("docs in the tree as of %d: %v", first, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "x"), []byte("x"), 0o644); err == nil {
		t.Fatal("a write through the mount succeeded")
	}
	// Ctrl-C while a program holds a file open in the mount (Session
	// 19): the unmount is busy, so the mount is detached — gone from the
	// tree at once, not left dead ("Transport endpoint is not connected")
	// — and the open file is still served, whole and verified, until it is
	// closed; then the command exits 0.
	held, err := os.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, held, 1000); err != nil {
		t.Fatal(err)
	}
	_ = mcmd.Process.Signal(os.Interrupt)
	// Detached: the directory is the empty one beneath, and the command
	// said why (after the detach: wait for both).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if es, err := os.ReadDir(mnt); err == nil && len(es) == 0 && strings.Contains(merr.String(), "fuser -vm") {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("gdp fs mount exited on Ctrl-C with a file open in it (%v): the mount is left dead\n%s", err, merr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ctrl-C with a file open: the mount is still in the tree, or no busy report naming fuser\n%s", merr.String())
		}
	}
	if !strings.Contains(merr.String(), "is busy") {
		t.Fatalf("no busy report:\n%s", merr.String())
	}
	if _, err := io.Copy(h, held); err != nil {
		t.Fatalf("reading the held file after the detach: %v", err)
	}
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Fatal("the held file read after the detach differs from the source")
	}
	select {
	case err := <-exited:
		t.Fatalf("gdp fs mount exited while a file was still open in it: %v\n%s", err, merr.String())
	default:
	}
	_ = held.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("gdp fs mount after the last file closed: %v\n%s", err, merr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("gdp fs mount did not exit when the last file open in it closed\n%s", merr.String())
	}
	if !strings.Contains(merr.String(), "unmounted") {
		t.Fatalf("no unmount report:\n%s", merr.String())
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
