package tunnel

import (
	"net"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/ipv4"
)

// failingBatch is a socket whose every send fails with err.
type failingBatch struct{ err error }

func (f failingBatch) ReadBatch([]ipv4.Message, int) (int, error) { return 0, f.err }
func (f failingBatch) WriteBatch([]ipv4.Message, int) (int, error) {
	return 0, f.err
}

func TestPathMTUErrorsCountedAndLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	e := &Endpoint{log: zap.New(core)}
	r := &rawEndpoint{e: e, bc: failingBatch{&net.OpError{Op: "write", Err: syscall.EMSGSIZE}}, mtu: 1452, gso: true, closing: make(chan struct{})}
	w := newBatchWriter(r)
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	var batch []*frameBuf
	for range 3 {
		batch = append(batch, &frameBuf{b: make([]byte, 1400), n: 1400, addr: addr})
	}
	w.write(batch) // one GSO message of three frames
	w.write(batch[:1])
	if got := e.stats.drops[DropPathMTU].Load(); got != 4 {
		t.Fatalf("counted %d path_mtu drops, want 4", got)
	}
	if !r.gso {
		t.Error("an MTU error switched GSO off")
	}
	if n := logs.FilterMessageSnippet("lower RawMTU").Len(); n != 1 {
		t.Errorf("%d warnings, want 1 (rate limited)", n)
	}
}

// recordingBatch is a socket that records the frames of every send.
type recordingBatch struct {
	mu     sync.Mutex
	calls  int
	frames int
}

func (r *recordingBatch) ReadBatch([]ipv4.Message, int) (int, error) { return 0, net.ErrClosed }
func (r *recordingBatch) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for i := range ms {
		r.frames += len(ms[i].Buffers)
	}
	return len(ms), nil
}

// TestRawBatchEndFlush: the frames queued while a receive batch is
// delivered (a router forwarding) are sent by the receive loop when the
// batch ends — in one sendmmsg, before endBatch returns, with the writer
// goroutine neither needed nor woken.
func TestRawBatchEndFlush(t *testing.T) {
	rec := &recordingBatch{}
	r := &rawEndpoint{e: &Endpoint{log: zap.NewNop()}, bc: rec, mtu: 1452, gso: true, closing: make(chan struct{})}
	r.q.init(64)
	r.w = newBatchWriter(r)
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	r.q.hold()
	for range 5 {
		fb := r.q.get(232)
		fb.n, fb.addr = 232, addr
		r.q.put(fb)
	}
	r.endBatch()
	rec.mu.Lock()
	calls, frames := rec.calls, rec.frames
	rec.mu.Unlock()
	if frames != 5 || calls != 1 {
		t.Fatalf("endBatch sent %d frames in %d calls, want 5 in 1", frames, calls)
	}
	select {
	case <-r.q.wake:
		t.Fatal("endBatch woke the writer for frames it sent itself")
	default:
	}
	if got := r.e.stats.framesSent.Load(); got != 5 {
		t.Fatalf("framesSent %d, want 5", got)
	}
	if n := r.q.pendingCount(); n != 0 {
		t.Fatalf("%d frames still queued", n)
	}
}
