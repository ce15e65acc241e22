package mount

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestWritesRefused: the handlers themselves refuse every change with
// EROFS (the kernel's "ro" mount option refuses most before they get
// here; this checks the second line of defence).
func TestWritesRefused(t *testing.T) {
	n := &node{st: &Stats{}, log: zap.NewNop(), path: "f"}
	ctx := context.Background()
	for _, fl := range []uint32{syscall.O_WRONLY, syscall.O_RDWR, syscall.O_RDONLY | syscall.O_TRUNC, syscall.O_WRONLY | syscall.O_APPEND} {
		if _, _, errno := n.Open(ctx, fl); errno != syscall.EROFS {
			t.Fatalf("open with flags %#x: %v, want EROFS", fl, errno)
		}
	}
	if _, errno := (&handle{n: n}).Write(ctx, []byte("x"), 0); errno != syscall.EROFS {
		t.Fatalf("write: %v", errno)
	}
	checks := map[string]syscall.Errno{
		"setattr": n.Setattr(ctx, nil, nil, nil),
		"unlink":  n.Unlink(ctx, "f"),
		"rmdir":   n.Rmdir(ctx, "d"),
		"rename":  n.Rename(ctx, "f", n, "g", 0),
	}
	_, _, _, checks["create"] = n.Create(ctx, "g", 0, 0o644, nil)
	_, checks["mkdir"] = n.Mkdir(ctx, "d", 0o755, nil)
	_, checks["mknod"] = n.Mknod(ctx, "d", 0o644, 0, nil)
	_, checks["symlink"] = n.Symlink(ctx, "f", "l", nil)
	_, checks["link"] = n.Link(ctx, n, "l", nil)
	for op, errno := range checks {
		if errno != syscall.EROFS {
			t.Fatalf("%s: %v, want EROFS", op, errno)
		}
	}
	if got := n.st.Refused.Load(); got != 14 {
		t.Fatalf("refused counter %d, want 14", got)
	}
}

// TestReadAheadNotSetWarns: when the mount's readahead cannot be set (not
// root), one WARN says so with the fixed fields (capsule, reason, err) and
// what to do; nothing is tried for a readahead of -1 (the kernel's).
func TestReadAheadNotSetWarns(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	c := pdu.Name{7}
	calls := 0
	denied := func(string, int) error { calls++; return fmt.Errorf("set readahead: %w", os.ErrPermission) }
	applyReadAhead("/mnt/m", c, -1, zap.New(core), denied)
	if calls != 0 || logs.Len() != 0 {
		t.Fatalf("readahead -1: %d attempts, %d log lines; want none", calls, logs.Len())
	}
	applyReadAhead("/mnt/m", c, 1024, zap.New(core), denied)
	if calls != 1 || logs.Len() != 1 {
		t.Fatalf("denied: %d attempts, %d log lines; want 1 and 1", calls, logs.Len())
	}
	e := logs.All()[0]
	f := e.ContextMap()
	if f["capsule"] != c.String() || f["reason"] != "read_ahead_not_set" || f["dir"] != "/mnt/m" || f["read_ahead_kb"] != int64(1024) ||
		!strings.Contains(fmt.Sprint(f["error"]), "permission denied") {
		t.Fatalf("WARN fields %v", f)
	}
	if !strings.Contains(e.Message, "run as root") || !strings.Contains(e.Message, "--kernel-read-ahead -1") {
		t.Fatalf("WARN %q does not say what to do", e.Message)
	}
}
