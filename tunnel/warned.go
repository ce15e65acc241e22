package tunnel

import (
	"container/heap"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// maxWarnedPeers bounds the memory of peers warned about.
const maxWarnedPeers = 4096

// warnedPeers remembers the peers whose membership expiry was warned
// about, and which expiry: one WARN per peer and membership however many
// links it has. At most maxWarnedPeers are kept; when full, those whose
// membership has expired are forgotten soonest first. A heap by expiry
// beside the map keeps every operation O(log n) under the endpoint's lock
// (it scanned all 4,096 entries per warning once full).
type warnedPeers struct {
	byPeer map[pdu.Name]*warnedEntry
	heap   warnedHeap
}

type warnedEntry struct {
	peer pdu.Name
	exp  time.Time
	i    int // index in the heap
}

// warnedHeap is a min-heap of entries by expiry (container/heap).
type warnedHeap []*warnedEntry

func (h warnedHeap) Len() int           { return len(h) }
func (h warnedHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h warnedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *warnedHeap) Push(x any) {
	en := x.(*warnedEntry)
	en.i = len(*h)
	*h = append(*h, en)
}
func (h *warnedHeap) Pop() any {
	old := *h
	en := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return en
}

// first records that peer's membership ending at exp is being warned
// about, and reports whether it was not already. When the memory is full
// of memberships that have not expired, a new peer is warned about but
// not remembered (it may be warned about again on its next link).
func (w *warnedPeers) first(peer pdu.Name, exp, now time.Time) bool {
	if w.byPeer == nil {
		w.byPeer = map[pdu.Name]*warnedEntry{}
	}
	if en, ok := w.byPeer[peer]; ok {
		if en.exp.Equal(exp) {
			return false
		}
		en.exp = exp // a renewed membership, warned about in turn
		heap.Fix(&w.heap, en.i)
		return true
	}
	for len(w.heap) >= maxWarnedPeers && w.heap[0].exp.Before(now) {
		delete(w.byPeer, heap.Pop(&w.heap).(*warnedEntry).peer)
	}
	if len(w.heap) < maxWarnedPeers {
		en := &warnedEntry{peer: peer, exp: exp}
		heap.Push(&w.heap, en)
		w.byPeer[peer] = en
	}
	return true
}

func (w *warnedPeers) len() int { return len(w.heap) }
