// Package timesched runs callbacks at given times: one goroutine, one
// timer and a heap for any number of items, started on first use. The
// in-memory networks (tunnel/memnet, sim/linkem) deliver delayed packets
// through it.
package timesched

import (
	"sync"
	"time"
)

// Scheduler calls fire for each pushed value at (or just after) its time,
// in time order and, for equal times, in push order. fire runs on the
// scheduler's goroutine, outside its lock, and is given the scheduled time
// (not the time it woke), so lateness need not add up along a path. drop
// is called for every value still queued when the scheduler stops (to
// free buffers). The zero Scheduler is not usable: call New.
type Scheduler[T any] struct {
	fire func(at time.Time, v T)
	drop func(v T)

	mu      sync.Mutex
	q       heap[T]
	kick    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	started bool
	stopped bool
}

// New returns a scheduler; its goroutine starts at the first Push.
func New[T any](fire func(at time.Time, v T), drop func(v T)) *Scheduler[T] {
	return &Scheduler[T]{fire: fire, drop: drop, kick: make(chan struct{}, 1),
		done: make(chan struct{}), exited: make(chan struct{})}
}

// Push schedules v at time at. After Stop, v is dropped at once.
func (s *Scheduler[T]) Push(at time.Time, v T) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		if s.drop != nil {
			s.drop(v)
		}
		return
	}
	if !s.started {
		s.started = true
		go s.run()
	}
	s.q.seq++
	s.q.push(item[T]{at: at, seq: s.q.seq, v: v})
	first := s.q.items[0].seq == s.q.seq
	s.mu.Unlock()
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Len is how many values wait.
func (s *Scheduler[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q.items)
}

func (s *Scheduler[T]) run() {
	defer close(s.exited)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []item[T]
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
			s.fire(due[i].at, due[i].v)
			due[i] = item[T]{}
		}
		due = due[:0]
		if wait > 0 {
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

// Stop drops every queued value and waits for the goroutine to end. It is
// safe to call more than once.
func (s *Scheduler[T]) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	started := s.started
	items := s.q.items
	s.q.items = nil
	s.mu.Unlock()
	if s.drop != nil {
		for _, it := range items {
			s.drop(it.v)
		}
	}
	close(s.done)
	if started {
		<-s.exited
	}
}

type item[T any] struct {
	at  time.Time
	seq uint64 // keeps equal times in push order
	v   T
}

// heap is a binary min-heap by (at, seq), written out rather than through
// container/heap so that pushing does not box each item.
type heap[T any] struct {
	items []item[T]
	seq   uint64
}

func (h *heap[T]) less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}

func (h *heap[T]) push(it item[T]) {
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

func (h *heap[T]) pop() item[T] {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items[last] = item[T]{}
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
