//go:build linux

package tunnel

import (
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// groBatch is a socket that receives one GRO message of frames datagrams
// of seg bytes, then reports itself closed, and records every send.
type groBatch struct {
	frames, seg int
	r           *rawEndpoint
	reads       int
	handled     func() int // frames handled so far
	mu          sync.Mutex
	sends       [][2]int // per WriteBatch: frames handled before it, frames sent
}

func (g *groBatch) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	if g.reads++; g.reads > 1 {
		close(g.r.closing)
		return 0, net.ErrClosed
	}
	m := &ms[0]
	m.N = g.frames * g.seg
	m.Addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&m.OOB[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(m.OOB[unix.CmsgLen(0):], uint32(g.seg))
	m.NN = unix.CmsgSpace(4)
	return 1, nil
}

func (g *groBatch) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	n := 0
	for i := range ms {
		n += len(ms[i].Buffers)
	}
	g.mu.Lock()
	g.sends = append(g.sends, [2]int{g.handled(), n})
	g.mu.Unlock()
	return len(ms), nil
}

// TestRawReceiveLoopFlushesEvery64: a router's receive loop sends what it
// forwarded every flushEvery (64) frames of a received batch, not only at
// the batch's end — the next hop starts on the first frames of a batch of
// 1,024 while this loop works through the rest.
func TestRawReceiveLoopFlushesEvery64(t *testing.T) {
	g := &groBatch{frames: 200, seg: 100}
	r := &rawEndpoint{e: &Endpoint{log: zap.NewNop()}, bc: g, mtu: 1452, gro: true, closing: make(chan struct{})}
	g.r = r
	r.q.init(1024)
	r.w = newBatchWriter(r)
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	var handled []int
	g.handled = func() int { return len(handled) }
	r.handleFrame = func(b []byte, _ net.Addr, _ *[12]byte) {
		handled = append(handled, len(b))
		fb := r.q.get(100) // forward it
		fb.n, fb.addr = 100, addr
		r.q.put(fb)
	}
	r.wg.Add(1)
	r.readLoop()
	if len(handled) != 200 || slices.ContainsFunc(handled, func(n int) bool { return n != 100 }) {
		t.Fatalf("handled %d frames (sizes %v), want 200 of 100 bytes", len(handled), handled[:min(5, len(handled))])
	}
	// [frames handled when the send was made, frames sent]
	if want := [][2]int{{64, 64}, {128, 64}, {192, 64}, {200, 8}}; !slices.Equal(g.sends, want) {
		t.Fatalf("the receive loop sent (after n frames handled, frames) %v, want %v", g.sends, want)
	}
}
