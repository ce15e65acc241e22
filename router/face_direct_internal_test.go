package router

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// fakeRaw is a raw tunnel link whose TrySend reports busy the first busy
// times; it records what went out, in order, and by which call.
type fakeRaw struct {
	mu     sync.Mutex
	busy   int
	out    []string
	direct int
	done   chan struct{}
}

func (f *fakeRaw) Peer() pdu.Name        { return pdu.Name{1} }
func (f *fakeRaw) Kind() tunnel.Kind     { return tunnel.KindRaw }
func (f *fakeRaw) Done() <-chan struct{} { return f.done }
func (f *fakeRaw) Close() error          { return nil }

func (f *fakeRaw) Send(p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out = append(f.out, string(p))
	return nil
}

func (f *fakeRaw) TrySend(p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busy > 0 {
		f.busy--
		return tunnel.ErrBusy
	}
	f.out = append(f.out, string(p))
	f.direct++
	return nil
}

func (f *fakeRaw) sent() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.out...), f.direct
}

// TestDirectFaceFallsBackInOrder: a raw face sends directly (no queue hop);
// when the tunnel's frame queue is full the PDU waits in the face's queue
// instead of being dropped, later PDUs follow it there (none overtakes it),
// and once the queue is empty sends are direct again.
func TestDirectFaceFallsBackInOrder(t *testing.T) {
	fr := &fakeRaw{busy: 1, done: make(chan struct{})}
	f := &Face{link: fr, direct: directSender(fr), out: make(chan egress, 16), shares: newQueueShares(16, 0), stop: make(chan struct{})}
	if f.direct == nil {
		t.Fatal("a raw tunnel link is not sent to directly")
	}
	for _, p := range []string{"one", "two"} {
		if err := f.send(nil, []byte(p)); err != nil {
			t.Fatalf("send %q: %v (a busy tunnel queue must not drop)", p, err)
		}
	}
	if out, _ := fr.sent(); len(out) != 0 {
		t.Fatalf("%v went out before the queued PDU", out)
	}
	go f.writer()
	defer close(f.stop)
	deadline := time.Now().Add(5 * time.Second)
	for f.queued.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the face queue never drained")
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.send(nil, []byte("three")); err != nil {
		t.Fatal(err)
	}
	out, direct := fr.sent()
	if got := bytes.Join(toBytes(out), []byte(",")); string(got) != "one,two,three" || direct != 1 {
		t.Fatalf("sent %s with %d direct, want one,two,three with 1 (three) direct", got, direct)
	}
	if f.txPDUs.Load() != 3 {
		t.Fatalf("txPDUs %d", f.txPDUs.Load())
	}
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}
