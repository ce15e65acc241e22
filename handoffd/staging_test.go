package handoffd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// TestAgentStagingGuard: an agent refuses a handoff it has no room to
// stage — less than min_free_bytes would be left once the declared image
// is staged, or the sender's share (max_bytes_per_peer) would be exceeded
// — before a byte is staged, tells the sender why, counts it
// (gdp_handoff_refused_total{reason}) and keeps nothing; exactly at either
// boundary the handoff commits. A disk filling up mid-transfer fails the
// handoff at the next blob, partial files removed. The first case runs the
// real statfs(2); the others replace it with a fixed figure.
func TestAgentStagingGuard(t *testing.T) {
	e := newPairEnv(t, 64, 8)
	fi, err := os.Stat(e.curPath)
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(fi.Size())
	const minFree = 1 << 20
	fixed := func(free uint64) func(string) (uint64, error) {
		return func(string) (uint64, error) { return free, nil }
	}
	for _, tc := range []struct {
		name    string
		cfg     AgentConfig
		want    string // refusal reason; "" commits
		preface bool   // refused at the hello (nothing staged), not mid-transfer
	}{
		{name: "real statfs, more to keep free than any disk has", cfg: AgentConfig{MinFreeBytes: 1 << 62}, want: "disk_full", preface: true},
		{name: "real statfs, room", cfg: AgentConfig{}},
		{name: "one byte short of min_free_bytes", cfg: AgentConfig{MinFreeBytes: minFree, freeBytes: fixed(size + minFree - 1)}, want: "disk_full", preface: true},
		{name: "exactly min_free_bytes left", cfg: AgentConfig{MinFreeBytes: minFree, freeBytes: fixed(size + minFree)}},
		{name: "disk fills during the transfer", cfg: AgentConfig{MinFreeBytes: minFree, freeBytes: fillsAfter(1, size+minFree)}, want: "disk_full"},
		{name: "one byte over the sender's share", cfg: AgentConfig{MaxBytesPerPeer: int64(size) - 1}, want: "peer_bytes", preface: true},
		{name: "exactly the sender's share", cfg: AgentConfig{MaxBytesPerPeer: int64(size)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			m := NewMetrics(prometheus.NewRegistry())
			a := &Agent{Cache: e.dst, Dir: out, Metrics: m, Config: tc.cfg}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- a.Serve(ctx, TCPListener(ln)) }()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			_, err = Send(ctx, c, &Handoff{ID: "guarded", Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}},
				SendConfig{Cache: e.src, Mode: "lz4", Logger: zap.NewNop(), BlobSize: 16 << 10})
			c.Close()
			// The agent's side ends after the sender's: wait for it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				a.mu.Lock()
				busy := a.active
				a.mu.Unlock()
				if busy == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the handoff never ended at the agent")
				}
				time.Sleep(5 * time.Millisecond)
			}
			var d dto.Metric
			if tc.want == "" {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				if got := committed(t, out); len(got) != 1 || got[0] != "guarded" {
					t.Fatalf("result dir %v, want the committed handoff", got)
				}
			} else {
				if err == nil {
					t.Fatal("send succeeded")
				}
				if refusedFirst := strings.Contains(err.Error(), "destination refused: hello:"); refusedFirst != tc.preface {
					t.Fatalf("send error %v: refused before the transfer %v, want %v", err, refusedFirst, tc.preface)
				}
				wantMsg := map[string]string{"disk_full": ErrDiskFull.Error(), "peer_bytes": ErrPeerBytes.Error()}[tc.want]
				if !strings.Contains(err.Error(), wantMsg) {
					t.Fatalf("send error %v, want it to say %q", err, wantMsg)
				}
				if got := committed(t, out); len(got) != 0 {
					t.Fatalf("result dir %v after a refusal, want nothing (no partial either)", got)
				}
				if err := m.Refused.WithLabelValues(tc.want).Write(&d); err != nil {
					t.Fatal(err)
				}
				if d.GetCounter().GetValue() != 1 {
					t.Fatalf("gdp_handoff_refused_total{reason=%q} = %v, want 1", tc.want, d.GetCounter().GetValue())
				}
			}
			a.mu.Lock()
			left := len(a.staged)
			a.mu.Unlock()
			if left != 0 {
				t.Fatalf("the sender's share still holds %v after its handoff ended", a.staged)
			}
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
		})
	}
}

// fillsAfter reports free bytes for the first n probes, then none.
func fillsAfter(n int64, free uint64) func(string) (uint64, error) {
	var probes atomic.Int64
	return func(string) (uint64, error) {
		if probes.Add(1) > n {
			return 0, nil
		}
		return free, nil
	}
}
