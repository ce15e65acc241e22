package handoffd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestBackgroundSync: the receiver fsyncs its images while blocks arrive
// (every syncEvery bytes applied and at each round end), so its commit
// writes out only what came last; and a writeback error such an fsync
// hears — Linux reports it to that fsync only, the commit's own would
// succeed — fails the handoff: nothing is committed.
func TestBackgroundSync(t *testing.T) {
	defer func(n int64, f func(*os.File) error) { syncEvery, backgroundSync = n, f }(syncEvery, backgroundSync)
	syncEvery = 64 << 10
	var calls atomic.Int64
	fail := atomic.Bool{}
	backgroundSync = func(f *os.File) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New("injected writeback error")
		}
		return f.Sync()
	}

	e := newPairEnv(t, 700, 150)
	rep, rec, err, rerr := e.run(t, SendConfig{Mode: "zstd-1", BlobSize: 64 << 10}, nil)
	if err != nil || rerr != nil {
		t.Fatalf("send: %v; receive: %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
	if n := calls.Load(); n == 0 {
		t.Fatalf("no background fsync during a handoff of %d changed bytes (one every %d applied)", rep.ChangedBytes, syncEvery)
	}

	e = newPairEnv(t, 700, 150)
	fail.Store(true)
	calls.Store(0)
	_, _, err, rerr = e.run(t, SendConfig{Mode: "zstd-1", BlobSize: 64 << 10}, nil)
	if calls.Load() == 0 {
		t.Fatal("no background fsync")
	}
	if rerr == nil || !strings.Contains(rerr.Error(), "injected writeback error") {
		t.Fatalf("receive after a background fsync failed: %v; want that error", rerr)
	}
	if err == nil {
		t.Fatal("the sender was told the handoff committed")
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, "out", "*")); len(left) != 0 {
		t.Fatalf("the destination kept %v", left)
	}
}
