package client

import (
	"sync"
	"time"
)

// rttEstimator keeps the smoothed round-trip time and its variation of the
// answers to one writer's batches, the way TCP does (RFC 6298): a new
// sample R moves rttvar by a quarter of |srtt - R| and srtt by an eighth of
// R - srtt. The retransmission timeout is srtt + 4·rttvar, bounded. Only
// batches sent once give samples (Karn's rule): an answer to a re-sent
// batch cannot say which send it answers.
type rttEstimator struct {
	mu           sync.Mutex
	srtt, rttvar time.Duration
	samples      int
}

// minRTO is the least timeout a writer waits for acknowledgements before
// re-sending: below it, scheduling noise alone would cause re-sends.
const minRTO = 50 * time.Millisecond

func (e *rttEstimator) sample(r time.Duration) {
	if r <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.samples == 0 {
		e.srtt, e.rttvar = r, r/2
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.samples++
}

// rto is srtt + 4·rttvar within [minRTO, most]; most before any sample.
func (e *rttEstimator) rto(most time.Duration) time.Duration {
	if e == nil {
		return most
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.samples == 0 {
		return most
	}
	return min(max(e.srtt+4*e.rttvar, minRTO), most)
}
