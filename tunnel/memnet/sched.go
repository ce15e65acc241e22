package memnet

import (
	"container/heap"
	"net/netip"
	"sync"
	"time"
)

// scheduler delivers delayed packets at their time: one goroutine, one
// timer and a heap for the whole network, started on first use.
type scheduler struct {
	mu      sync.Mutex
	q       pktHeap
	kick    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	started bool
	stopped bool
}

type timed struct {
	at  time.Time
	seq uint64 // keeps equal times in send order
	dst netip.AddrPort
	pkt *packet
	n   *Network
}

type pktHeap struct {
	items []timed
	seq   uint64
}

func (h *pktHeap) Len() int { return len(h.items) }
func (h *pktHeap) Less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}
func (h *pktHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *pktHeap) Push(x any)    { h.items = append(h.items, x.(timed)) }
func (h *pktHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = timed{}
	h.items = h.items[:len(h.items)-1]
	return it
}

func (s *scheduler) init() {
	s.kick = make(chan struct{}, 1)
	s.done = make(chan struct{})
	s.exited = make(chan struct{})
}

func (s *scheduler) push(at time.Time, dst netip.AddrPort, pkt *packet, n *Network) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		pkt.free()
		return
	}
	if !s.started {
		s.started = true
		go s.run()
	}
	s.q.seq++
	heap.Push(&s.q, timed{at: at, seq: s.q.seq, dst: dst, pkt: pkt, n: n})
	first := s.q.items[0].seq == s.q.seq
	s.mu.Unlock()
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *scheduler) run() {
	defer close(s.exited)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []timed
	for {
		s.mu.Lock()
		now := time.Now()
		for s.q.Len() > 0 && !s.q.items[0].at.After(now) {
			due = append(due, heap.Pop(&s.q).(timed))
		}
		wait := time.Hour
		if s.q.Len() > 0 {
			wait = s.q.items[0].at.Sub(now)
		}
		s.mu.Unlock()
		for i := range due {
			due[i].n.deliver(due[i].dst, due[i].pkt)
			due[i] = timed{}
		}
		due = due[:0]
		t.Reset(wait)
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.done:
			return
		}
	}
}

func (s *scheduler) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	started := s.started
	for _, it := range s.q.items {
		it.pkt.free()
	}
	s.q.items = nil
	s.mu.Unlock()
	close(s.done)
	if started {
		<-s.exited
	}
}
