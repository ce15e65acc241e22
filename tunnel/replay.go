package tunnel

// replayWindow remembers which counters of a session were accepted, across
// the newest replayBits of them (RFC 6479's bitmap ring). Frames may arrive
// out of order by up to replayWindowSize counters.
type replayWindow struct {
	top  uint64 // highest counter accepted
	any  bool   // whether anything was accepted yet
	ring [replayWords]uint64
}

const (
	replayWords = 64
	replayBits  = replayWords * 64 // 4096
	// replayWindowSize is how far behind the newest counter a frame may
	// be: one word of the ring is the one being reused.
	replayWindowSize = replayBits - 64 // 4032 ≥ 2048 required
)

// check reports whether counter would be accepted, without recording it.
// Run it before the (costly) AEAD open; commit after it succeeds.
func (w *replayWindow) check(counter uint64) bool {
	if !w.any || counter > w.top {
		return true
	}
	if w.top-counter >= replayWindowSize {
		return false
	}
	return w.ring[(counter/64)%replayWords]&(1<<(counter%64)) == 0
}

// commit records counter as seen; false if it was already (or is too old).
func (w *replayWindow) commit(counter uint64) bool {
	if !w.check(counter) {
		return false
	}
	if w.any && counter/64 > w.top/64 {
		// The window slides into new words: clear them (at most the whole
		// ring). Only then: a counter in top's own word clears nothing —
		// when it did (to-from wrapped below zero, so the whole ring was
		// cleared on almost every in-order frame) every counter behind top
		// was accepted again, and the clearing was a tenth of the
		// forwarding path's CPU.
		from, to := w.top/64+1, counter/64
		if to-from >= replayWords {
			from = to - replayWords + 1
		}
		for i := from; i <= to; i++ {
			w.ring[i%replayWords] = 0
		}
	}
	if !w.any || counter > w.top {
		w.top, w.any = counter, true
	}
	w.ring[(counter/64)%replayWords] |= 1 << (counter % 64)
	return true
}
