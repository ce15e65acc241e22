package tunnel

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// stallConn blocks every write while stalled (a socket the writer cannot
// get rid of frames on).
type stallConn struct {
	net.PacketConn
	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
}

func (s *stallConn) WriteTo(b []byte, a net.Addr) (int, error) {
	s.mu.Lock()
	for s.stalled {
		s.cond.Wait()
	}
	s.mu.Unlock()
	return s.PacketConn.WriteTo(b, a)
}

func (s *stallConn) set(stalled bool) {
	s.mu.Lock()
	s.stalled = stalled
	s.cond.Broadcast()
	s.mu.Unlock()
}

// TestRawTrySend: TrySend never waits — with the frame queue full it
// returns ErrBusy and queues nothing (a fragmented PDU neither: all of its
// frames or none); what it did queue is delivered once the socket drains.
func TestRawTrySend(t *testing.T) {
	stall := &stallConn{PacketConn: loopbackUDP(t)}
	stall.cond = sync.NewCond(&stall.mu)
	a := newTestNode(t, false, func(c *Config) { c.Raw = stall; c.SendQueue = 1 })
	b := newTestNode(t, true, nil)
	t.Cleanup(func() { stall.set(false) }) // before the endpoints close
	la, _ := pair(t, a, b, KindRaw)
	l := la.(*link)
	q := &l.raw.re.q
	stall.set(true)
	queued := 0
	small := []byte("small pdu")
	for {
		err := l.TrySend(small)
		if errors.Is(err, ErrBusy) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if queued++; queued > 10*maxFragments {
			t.Fatal("TrySend never reported a full queue")
		}
	}
	if queued < maxFragments-1 {
		t.Fatalf("only %d PDUs queued before ErrBusy, want ≥ %d", queued, maxFragments-1)
	}
	// A fragmented PDU with one buffer free, fewer than it needs: ErrBusy,
	// nothing queued — the buffer it took is free again (the writer,
	// stalled, recycles nothing meanwhile).
	q.unget(&frameBuf{})
	big := bytes.Repeat([]byte{7}, 3*l.raw.frame)
	if err := l.TrySend(big); !errors.Is(err, ErrBusy) {
		t.Fatalf("TrySend of a fragmented PDU into a full queue: %v", err)
	}
	q.mu.Lock()
	free := len(q.free)
	q.mu.Unlock()
	if free != 1 {
		t.Fatalf("a refused TrySend left %d buffers free, want the 1 it found", free)
	}
	stall.set(false)
	b.sink.wait(t, queued, 10*time.Second)
	// Drained: TrySend works again, fragments included.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := l.TrySend(big)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("TrySend after the queue drained: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	b.sink.wait(t, queued+1, 10*time.Second)
	b.sink.mu.Lock()
	last := b.sink.got[len(b.sink.got)-1]
	b.sink.mu.Unlock()
	if !bytes.Equal(last, big) {
		t.Fatalf("reassembled %d bytes, want the %d sent", len(last), len(big))
	}
}

// TestSendQueueHold: frames put while a receive batch holds the queue do
// not wake the writer; the batch's end reports them (the receive loop
// sends them itself, TestRawBatchEndFlush); a sender that must wait for a
// buffer wakes the writer itself (no deadlock while held).
func TestSendQueueHold(t *testing.T) {
	var q sendQueue
	q.init(2)
	q.hold()
	if q.release() {
		t.Fatal("release reported frames pending on an empty queue")
	}
	q.hold()
	q.put(q.get(10))
	select {
	case <-q.wake:
		t.Fatal("put woke the writer during a held batch")
	default:
	}
	if !q.release() {
		t.Fatal("release did not report the frame queued during the batch")
	}
	// Held, and every buffer queued: a waiting get must wake the writer.
	q.hold()
	q.put(q.get(10))
	if q.tryGet(10) != nil {
		t.Fatal("tryGet returned a buffer from a full queue")
	}
	got := make(chan *frameBuf)
	go func() { got <- q.get(10) }()
	select {
	case <-q.wake:
	case <-time.After(5 * time.Second):
		t.Fatal("a get waiting on a full, held queue did not wake the writer")
	}
	q.recycle(q.take(nil))
	select {
	case fb := <-got:
		if fb == nil {
			t.Fatal("nil buffer")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("get never returned after the writer recycled")
	}
	q.release()
}
