package tunnel

import (
	"net"
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
