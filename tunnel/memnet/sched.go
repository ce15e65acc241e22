package memnet

import (
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

// pktHeap is a binary min-heap by (at, seq), written out rather than
// through container/heap so that pushing does not box each item.
type pktHeap struct {
	items []timed
	seq   uint64
}

func (h *pktHeap) Len() int { return len(h.items) }

func (h *pktHeap) less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}

func (h *pktHeap) push(it timed) {
	h.items = append(h.items, it)
	for i := len(h.items) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *pktHeap) pop() timed {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items[last] = timed{}
	h.items = h.items[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(l, m) {
			m = l
		}
		if r < last && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
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
	s.q.push(timed{at: at, seq: s.q.seq, dst: dst, pkt: pkt, n: n})
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
			due = append(due, s.q.pop())
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
