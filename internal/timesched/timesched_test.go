package timesched

import (
	"sync"
	"testing"
	"time"
)

func TestHeapOrder(t *testing.T) {
	var h heap[int]
	base := time.Now()
	for i := range 1000 {
		h.seq++
		h.push(item[int]{at: base.Add(time.Duration((i*7919)%1000) * time.Microsecond), seq: h.seq})
	}
	prev := item[int]{at: base.Add(-time.Hour)}
	for len(h.items) > 0 {
		it := h.pop()
		if it.at.Before(prev.at) || (it.at.Equal(prev.at) && it.seq < prev.seq) {
			t.Fatalf("popped %v after %v", it.at, prev.at)
		}
		prev = it
	}
}

// TestFiresInOrderAtTheirTime: values pushed out of order fire in time
// order, equal times in push order, none early, each given its scheduled
// time; Stop drops what is left and later pushes.
func TestFiresInOrderAtTheirTime(t *testing.T) {
	var mu sync.Mutex
	var got []int
	var late []time.Duration
	var dropped []int
	s := New(func(at time.Time, v int) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if now.Before(at) {
			t.Errorf("value %d fired %v early", v, at.Sub(now))
		}
		got = append(got, v)
		late = append(late, now.Sub(at))
	}, func(v int) { dropped = append(dropped, v) })
	base := time.Now().Add(50 * time.Millisecond)
	// value = rank in the expected order; 3 and 4 share a time.
	order := []struct {
		v  int
		ms int
	}{{5, 40}, {1, 10}, {3, 20}, {0, 0}, {4, 20}, {2, 15}}
	for _, o := range order {
		s.Push(base.Add(time.Duration(o.ms)*time.Millisecond), o.v)
	}
	s.Push(base.Add(time.Hour), 99)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Stop()
	s.Push(time.Now(), 100)
	mu.Lock()
	defer mu.Unlock()
	for i, v := range got {
		if v != i {
			t.Fatalf("fired %v, want 0..5 in order", got)
		}
	}
	if len(got) != 6 {
		t.Fatalf("fired %v, want 0..5", got)
	}
	if len(dropped) != 2 || dropped[0] != 99 || dropped[1] != 100 {
		t.Fatalf("dropped %v, want the queued 99 and the late 100", dropped)
	}
	if s.Len() != 0 {
		t.Fatalf("%d left after Stop", s.Len())
	}
	t.Logf("lateness %v", late)
}
