package tunnel

import (
	"sync"
	"time"
)

// reassembler rebuilds fragmented PDUs of one raw session. It holds at most
// len(slots) incomplete PDUs, each for at most timeout; memory is bounded by
// len(slots) × MaxPDU. Only the endpoint's receive loop touches it.
type reassembler struct {
	chunk   int // payload bytes of every fragment but the last
	timeout time.Duration
	slots   []reasmSlot
	stats   *counters
}

type reasmSlot struct {
	used    bool
	id      uint16
	started time.Time
	have    [2]uint64 // fragment indexes received
	count   int       // fragments received
	total   int       // fragments in the PDU, 0 until the last arrives
	size    int       // PDU length, known with the last fragment
	buf     *[]byte   // MaxPDU bytes from reasmPool
}

var reasmPool = sync.Pool{New: func() any { b := make([]byte, MaxPDU); return &b }}

func newReassembler(chunk, slots int, timeout time.Duration, stats *counters) *reassembler {
	return &reassembler{chunk: chunk, timeout: timeout, slots: make([]reasmSlot, slots), stats: stats}
}

func (s *reasmSlot) release() {
	if s.buf != nil {
		reasmPool.Put(s.buf)
	}
	*s = reasmSlot{}
}

// add takes one fragment. When it completes a PDU, add returns it and its
// slot, which the caller releases once done with the PDU; otherwise nil.
// Every fragment or packet it throws away is counted.
func (r *reassembler) add(id uint16, frag byte, data []byte, now time.Time) (pdu []byte, done *reasmSlot) {
	drop := r.stats.drop
	index, more := int(frag&fragIndexMask), frag&fragMore != 0
	// A fragment's shape must agree with the session's chunk size: every
	// fragment but the last is exactly one chunk, the last at most one.
	if (more && len(data) != r.chunk) || (!more && (len(data) == 0 || len(data) > r.chunk)) ||
		index*r.chunk+len(data) > MaxPDU {
		drop(DropBadFragment)
		return nil, nil
	}
	s := r.slot(id, now)
	bit := &s.have[index/64]
	if *bit&(1<<(index%64)) != 0 {
		drop(DropBadFragment) // duplicate (a replayed frame never gets here)
		return nil, nil
	}
	if !more {
		if s.total != 0 || (s.count > 0 && r.highest(s) >= index) {
			// two last fragments, or fragments beyond the last
			drop(DropBadFragment)
			s.release()
			return nil, nil
		}
		s.total, s.size = index+1, index*r.chunk+len(data)
	} else if s.total != 0 && index >= s.total {
		drop(DropBadFragment)
		s.release()
		return nil, nil
	}
	if s.buf == nil {
		s.buf = reasmPool.Get().(*[]byte)
	}
	copy((*s.buf)[index*r.chunk:], data)
	*bit |= 1 << (index % 64)
	s.count++
	if s.total == 0 || s.count < s.total {
		return nil, nil
	}
	return (*s.buf)[:s.size], s
}

// highest is the largest fragment index held.
func (r *reassembler) highest(s *reasmSlot) int {
	for i := maxFragments - 1; i >= 0; i-- {
		if s.have[i/64]&(1<<(i%64)) != 0 {
			return i
		}
	}
	return -1
}

// slot finds the packet's slot or makes one, expiring old packets and
// evicting the oldest when all slots are busy.
func (r *reassembler) slot(id uint16, now time.Time) *reasmSlot {
	drop := r.stats.drop
	var free, oldest *reasmSlot
	for i := range r.slots {
		s := &r.slots[i]
		if s.used && now.Sub(s.started) > r.timeout {
			drop(DropReassemblyTimeout)
			s.release()
		}
		switch {
		case s.used && s.id == id:
			return s
		case !s.used:
			if free == nil {
				free = s
			}
		case oldest == nil || s.started.Before(oldest.started):
			oldest = s
		}
	}
	if free == nil {
		drop(DropReassemblyEvicted)
		oldest.release()
		free = oldest
	}
	free.used, free.id, free.started = true, id, now
	return free
}
