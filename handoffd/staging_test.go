package handoffd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
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

// TestReceiverStagesStateAndSpillInShare: besides the declared images,
// the device state and the blocks a rewrite spills are staged bytes too:
// each is asked of the sender's share (Reserve) and checked against
// min_free_bytes before it is written, one byte either side of the bound.
func TestReceiverStagesStateAndSpillInShare(t *testing.T) {
	e := newPairEnv(t, 64, 8)
	const size = 64 * BlockSize
	const minFree = 1 << 20
	block := func(b byte) []byte { return bytes.Repeat([]byte{b}, BlockSize) }
	blob := func(data []byte) []byte {
		recs := []record{{Kind: recData, Block: 0, Hash: hashBlock(data), Data: data}}
		p, _, err := encodeBlob(Mode{Codec: CodecNone}, len(recs), rawBlob(recs))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	type frame struct {
		typ byte
		p   []byte
	}
	// Block 0 written twice: the second write moves the first content to
	// the spill file (a later duplicate may name it): one block staged.
	spill := []frame{{frameBlob, blob(block(1))}, {frameBlob, blob(block(2))}}
	state := func(n int) []frame { return []frame{{frameState, make([]byte, 1000)}, {frameState, make([]byte, n)}} }
	for _, tc := range []struct {
		name    string
		share   int64 // 0: no Reserve
		free    uint64
		frames  []frame
		wantErr error
	}{
		{name: "spill within the share", share: size + BlockSize, frames: spill},
		{name: "spill one byte over the share", share: size + BlockSize - 1, frames: spill, wantErr: ErrPeerBytes},
		{name: "state within the share", share: size + 1000, frames: state(0)},
		{name: "state one byte over the share", share: size + 1000, frames: state(1), wantErr: ErrPeerBytes},
		{name: "state leaves min_free_bytes", free: minFree + 1000, frames: state(0)},
		{name: "state one byte into min_free_bytes", free: minFree + 999, frames: state(0)[:1], wantErr: ErrDiskFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tcpPair(t)
			cfg := ReceiveConfig{Cache: e.dst, Dir: filepath.Join(t.TempDir(), "out"), Logger: zap.NewNop(), IdleTimeout: 5 * time.Second}
			var staged int64
			if tc.share > 0 {
				cfg.Reserve = func(n int64) error {
					if staged+n > tc.share {
						return ErrPeerBytes
					}
					staged += n
					return nil
				}
			}
			if tc.free > 0 {
				var probes atomic.Int64
				cfg.MinFreeBytes = minFree
				cfg.FreeBytes = func(string) (uint64, error) {
					if probes.Add(1) == 1 {
						return 1 << 40, nil // the hello's images fit
					}
					return tc.free, nil
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := Receive(context.Background(), b, cfg)
				b.Close()
				done <- err
			}()
			h := hello{Version: 1, ID: "staged", VM: true, Images: []helloImage{{Name: "disk", Base: e.baseID, Size: size}}, Bases: []string{e.baseID}}
			if err := writeJSON(a, frameHello, h); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(a)
			if typ, p, err := readFrame(br, nil); err != nil || typ != frameReady || !strings.Contains(string(p), `"ok":true`) {
				t.Fatalf("ready: %d %s %v", typ, p, err)
			}
			for _, f := range tc.frames {
				if err := writeFrame(a, f.typ, f.p); err != nil {
					break // the receiver refused and closed
				}
				if f.typ == frameBlob {
					if typ, _, err := readFrame(br, nil); err != nil || typ != frameAck {
						break
					}
				}
			}
			a.(*net.TCPConn).CloseWrite()
			err := <-done
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("receive: %v, want %v", err, tc.wantErr)
				}
				return
			}
			// Every frame was taken: the stream's end is all that failed it.
			if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatalf("receive: %v, want only the end of the stream", err)
			}
			if tc.share > 0 && staged != tc.share {
				t.Fatalf("%d bytes asked of the share, want %d (images, then what the frames staged)", staged, tc.share)
			}
		})
	}
}
