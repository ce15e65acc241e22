package mount

import (
	"context"
	"syscall"
	"testing"

	"go.uber.org/zap"
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
