package linkem

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Config shapes one direction of a link. The zero value is a perfect link:
// no delay, no loss, unlimited bandwidth, MTU 65,507.
type Config struct {
	// Delay is the one-way propagation delay.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter); packets
	// may arrive reordered, as on a real path.
	Jitter time.Duration
	// Loss is the probability (0..1) that a packet is lost (Bernoulli).
	// Ignored when GE is set.
	Loss float64
	// GE, when set, replaces Loss with a Gilbert–Elliott two-state
	// channel.
	GE *GilbertElliott
	// Bandwidth in bits per second; 0 means unlimited. Packets are
	// serialised one after another at this rate, counting Overhead bytes
	// of headers per packet.
	Bandwidth int64
	// Overhead is the header bytes a packet costs on the wire beyond its
	// payload. Default 28 (IPv4 + UDP).
	Overhead int
	// QueueLimit is the longest a packet may wait for the wire before it
	// is tail-dropped (the buffer, in time). Default 50 ms.
	QueueLimit time.Duration
	// MTU is the largest payload the link carries; larger packets are
	// dropped (as with DF set). Default 65,507.
	MTU int
	// Down drops everything.
	Down bool
}

// GilbertElliott is a two-state loss channel: in the good state a packet
// is lost with probability LossGood, in the bad state with LossBad; after
// each packet the channel moves good→bad with probability P and bad→good
// with probability R. The stationary loss rate is
// (R·LossGood + P·LossBad)/(P+R) and the mean bad-state run is 1/R packets.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// Rate is the channel's stationary loss probability.
func (g GilbertElliott) Rate() float64 {
	if g.P+g.R == 0 {
		return g.LossGood
	}
	return (g.R*g.LossGood + g.P*g.LossBad) / (g.P + g.R)
}

const (
	// MaxMTU is the largest UDP payload over IPv4.
	MaxMTU            = 65507
	defaultQueueLimit = 50 * time.Millisecond
	defaultOverhead   = 28
)

// Validate says what is wrong with c, naming the field.
func (c Config) Validate() error {
	switch {
	case c.Delay < 0:
		return fmt.Errorf("delay %s is negative", c.Delay)
	case c.Jitter < 0:
		return fmt.Errorf("jitter %s is negative", c.Jitter)
	case c.Loss < 0 || c.Loss > 1:
		return fmt.Errorf("loss %g is not a probability (0..1)", c.Loss)
	case c.Bandwidth < 0:
		return fmt.Errorf("bandwidth %d is negative", c.Bandwidth)
	case c.MTU < 0 || c.MTU > MaxMTU:
		return fmt.Errorf("mtu %d is outside 0..%d", c.MTU, MaxMTU)
	case c.QueueLimit < 0:
		return fmt.Errorf("queue %s is negative", c.QueueLimit)
	case c.Overhead < 0:
		return fmt.Errorf("overhead %d is negative", c.Overhead)
	}
	if g := c.GE; g != nil {
		for _, f := range []struct {
			name string
			v    float64
		}{{"p", g.P}, {"r", g.R}, {"loss_good", g.LossGood}, {"loss_bad", g.LossBad}} {
			if f.v < 0 || f.v > 1 {
				return fmt.Errorf("gilbert.%s %g is not a probability (0..1)", f.name, f.v)
			}
		}
	}
	return nil
}

func (c Config) mtu() int {
	if c.MTU <= 0 || c.MTU > MaxMTU {
		return MaxMTU
	}
	return c.MTU
}

func (c Config) queueLimit() time.Duration {
	if c.QueueLimit <= 0 {
		return defaultQueueLimit
	}
	return c.QueueLimit
}

func (c Config) overhead() int {
	if c.Overhead <= 0 {
		return defaultOverhead
	}
	return c.Overhead
}

// Verdict is what a Shaper did with a packet.
type Verdict uint8

// Verdicts; every one but Deliver is a drop reason.
const (
	Deliver Verdict = iota
	DropDown
	DropTooBig
	DropQueue
	DropLoss
	numVerdicts
)

var verdictNames = [...]string{"delivered", "down", "too_big", "queue_full", "lost"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", v)
}

// Shaper is one direction of one link. It is safe for concurrent use.
type Shaper struct {
	mu       sync.Mutex
	cfg      Config
	nextFree time.Time // when the wire is free again
	bad      bool      // Gilbert–Elliott state
	rng      *rand.Rand
}

// NewShaper makes a shaper; seed fixes its random choices (loss, jitter),
// so an experiment with a seed repeats.
func NewShaper(cfg Config, seed uint64) *Shaper {
	return &Shaper{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Config is the shaper's current configuration.
func (s *Shaper) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Set replaces the configuration; packets already admitted keep their
// times.
func (s *Shaper) Set(cfg Config) {
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
}

// SetDown takes the direction down or up, keeping the rest.
func (s *Shaper) SetDown(down bool) {
	s.mu.Lock()
	s.cfg.Down = down
	s.mu.Unlock()
}

// stateless reports whether Admit's answer for a packet does not depend
// on the packets admitted before it in time (no bandwidth limit, so no
// wire to wait for): then a packet may be admitted ahead of its time.
func (s *Shaper) stateless() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Bandwidth == 0
}

// Admit offers a packet of size payload bytes at now: it returns when the
// packet reaches the far end, or the reason it is dropped.
func (s *Shaper) Admit(now time.Time, size int) (time.Time, Verdict) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.cfg
	if c.Down {
		return time.Time{}, DropDown
	}
	if size > c.mtu() {
		return time.Time{}, DropTooBig
	}
	at := now
	if c.Bandwidth > 0 {
		start := s.nextFree
		if start.Before(now) {
			start = now
		}
		if start.Sub(now) > c.queueLimit() {
			return time.Time{}, DropQueue
		}
		tx := time.Duration(int64(size+c.overhead()) * 8 * int64(time.Second) / c.Bandwidth)
		s.nextFree = start.Add(tx)
		at = s.nextFree
	}
	if s.lose() {
		// The packet used the wire before it was lost (corrupted on the
		// way), so it keeps its slot.
		return time.Time{}, DropLoss
	}
	at = at.Add(c.Delay)
	if c.Jitter > 0 {
		at = at.Add(time.Duration(s.rng.Int64N(int64(c.Jitter))))
	}
	return at, Deliver
}

// lose decides one packet's fate and advances the Gilbert–Elliott state.
func (s *Shaper) lose() bool {
	g := s.cfg.GE
	if g == nil {
		return s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss
	}
	p := g.LossGood
	if s.bad {
		p = g.LossBad
	}
	lost := p > 0 && s.rng.Float64() < p
	if s.bad {
		if s.rng.Float64() < g.R {
			s.bad = false
		}
	} else if s.rng.Float64() < g.P {
		s.bad = true
	}
	return lost
}
