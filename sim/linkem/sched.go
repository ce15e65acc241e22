package linkem

import (
	"sync"
	"time"
)

// scheduler moves packets at their time: one goroutine, one timer and a
// heap for the whole network, started on first use. A packet's next hop
// is shaped from its scheduled time, not from when the goroutine woke, so
// scheduling lateness does not add up along a path.
type scheduler struct {
	mu      sync.Mutex
	q       evHeap
	kick    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	started bool
	stopped bool
}

type event struct {
	at        time.Time
	seq       uint64
	node, dst *Node
	pkt       *packet
	n         *Network
}

// evHeap is a binary min-heap by (at, seq), written out so that pushing
// does not box each item.
type evHeap struct {
	items []event
	seq   uint64
}

func (h *evHeap) less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}

func (h *evHeap) push(e event) {
	h.items = append(h.items, e)
	for i := len(h.items) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *evHeap) pop() event {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items[last] = event{}
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

func (s *scheduler) push(at time.Time, node, dst *Node, pkt *packet, n *Network) {
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
	s.q.push(event{at: at, seq: s.q.seq, node: node, dst: dst, pkt: pkt, n: n})
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
	var due []event
	for {
		s.mu.Lock()
		now := time.Now()
		for len(s.q.items) > 0 && !s.q.items[0].at.After(now) {
			due = append(due, s.q.pop())
		}
		wait := time.Hour
		if len(s.q.items) > 0 {
			wait = s.q.items[0].at.Sub(now)
		}
		s.mu.Unlock()
		for i := range due {
			e := &due[i]
			e.n.arrive(e.node, e.dst, e.pkt, e.at)
			due[i] = event{}
		}
		due = due[:0]
		if wait == time.Hour || wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-s.kick:
			case <-s.done:
				return
			}
		} else {
			select {
			case <-s.done:
				return
			default:
			}
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
	for _, e := range s.q.items {
		e.pkt.free()
	}
	s.q.items = nil
	s.mu.Unlock()
	close(s.done)
	if started {
		<-s.exited
	}
}
