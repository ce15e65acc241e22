package handoffd

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ModeSwitch is one entry of the mode timeline.
type ModeSwitch struct {
	AtSec  float64 `json:"at_sec"`
	Mode   string  `json:"mode"`
	Reason string  `json:"reason"`
}

// modeStats is a codec's cost and ratio: measured on a sample once
// (profile), then rescaled by what the current mode really does.
type modeStats struct {
	costNs float64 // ns of one core per input byte
	ratio  float64 // output / input
}

type ackPoint struct {
	t time.Time
	n int64
}

// adapter picks the mode maximising min(compute rate, network rate).
type adapter struct {
	log      *zap.Logger
	modes    []Mode
	workers  int
	interval time.Duration
	start    time.Time

	wg       sync.WaitGroup // the profile run
	mu       sync.Mutex
	cur      Mode
	fixed    bool
	profiled bool
	profile  map[Mode]modeStats
	// live window for each mode since the last decision
	winBusy, winIn, winOut map[Mode]float64
	// live ratio/cost learned for the current mode (EWMA)
	acks      []ackPoint
	sendBusy  []ackPoint // (time, ns spent writing), to tell a busy link from an idle one
	bw        float64    // bytes/s, last estimate
	bwDecided float64    // bandwidth at the last decision
	// pendN counts consecutive periodic evaluations in which some mode
	// promised switchMargin more than the current one (the hysteresis).
	pendN int
	tl    []ModeSwitch
	kick  chan struct{}
}

func newAdapter(modes []Mode, workers int, interval time.Duration, log *zap.Logger, start time.Time) *adapter {
	a := &adapter{log: log, modes: modes, workers: workers, interval: interval, start: start,
		cur: modes[0], profile: map[Mode]modeStats{},
		winBusy: map[Mode]float64{}, winIn: map[Mode]float64{}, winOut: map[Mode]float64{},
		kick: make(chan struct{}, 1)}
	// Until the first profile, start from a light general-purpose mode.
	for _, m := range modes {
		if m.Codec == CodecZstd && m.Level == 1 && !m.Delta {
			a.cur = m
		}
	}
	a.tl = append(a.tl, ModeSwitch{Mode: a.cur.String(), Reason: "initial mode, before any measurement"})
	return a
}

func (a *adapter) fix(m Mode) {
	a.mu.Lock()
	a.cur, a.fixed = m, true
	a.tl = []ModeSwitch{{Mode: m.String(), Reason: "fixed by configuration"}}
	a.mu.Unlock()
}

func (a *adapter) current() Mode {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

func (a *adapter) bandwidth() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bw
}

func (a *adapter) timeline() []ModeSwitch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ModeSwitch(nil), a.tl...)
}

// maybeProfile measures every mode once on a sample of the first blob:
// the "offline profile" the live figures then rescale.
func (a *adapter) maybeProfile(raw []byte, recs []record, s *sender) {
	a.mu.Lock()
	if a.profiled || a.fixed {
		a.mu.Unlock()
		return
	}
	a.profiled = true
	a.mu.Unlock()
	const sample = 256 << 10
	plain := raw
	if len(plain) > sample {
		plain = plain[len(plain)-sample:] // the data section: what dominates
	}
	// The XOR variant of the same sample.
	xr := make([]record, 0, len(recs))
	for _, r := range recs {
		im := s.imgs[r.Image]
		if r.Kind == recData && int64(r.Block) < im.nbBase {
			base := make([]byte, BlockSize)
			im.baseF.ReadAt(base, int64(r.Block)*BlockSize)
			x := make([]byte, BlockSize)
			for j := range x {
				x[j] = r.Data[j] ^ base[j]
			}
			r.Kind, r.Data = recXOR, x
		}
		xr = append(xr, r)
	}
	xraw := rawBlob(xr)
	if len(xraw) > sample {
		xraw = xraw[len(xraw)-sample:]
	}
	// Off the critical path: the blob goes on in the current mode meanwhile.
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.runProfile(plain, xraw) }()
}

func (a *adapter) runProfile(plain, xraw []byte) {
	prof := map[Mode]modeStats{}
	for _, m := range a.modes {
		src := plain
		if m.Delta {
			src = xraw
		}
		if len(src) == 0 {
			continue
		}
		compress(m, nil, src[:min(len(src), 64<<10)]) // warm up: encoder set-up is not per-blob cost
		t0 := time.Now()
		out, err := compress(m, nil, src)
		el := time.Since(t0)
		ratio := 1.0
		if err == nil && len(out) < len(src) {
			ratio = float64(len(out)) / float64(len(src))
		}
		cost := float64(el.Nanoseconds()) / float64(len(src))
		prof[m] = modeStats{costNs: math.Max(cost, 0.05), ratio: ratio}
	}
	a.mu.Lock()
	a.profile = prof
	a.mu.Unlock()
	a.trigger()
}

func (a *adapter) trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// observe records one blob compressed in mode m.
func (a *adapter) observe(m Mode, in, out int, took time.Duration) {
	a.mu.Lock()
	a.winBusy[m] += float64(took.Nanoseconds())
	a.winIn[m] += float64(in)
	a.winOut[m] += float64(out)
	a.mu.Unlock()
}

// sent records time spent writing n bytes to the stream.
func (a *adapter) sent(took time.Duration, n int) {
	a.mu.Lock()
	a.sendBusy = append(a.sendBusy, ackPoint{time.Now(), took.Nanoseconds()})
	a.mu.Unlock()
}

const bwWindow = time.Second

// ack records the receiver's cumulative byte count and re-estimates the
// network rate over the last window.
func (a *adapter) ack(t time.Time, n int64) {
	a.mu.Lock()
	a.acks = append(a.acks, ackPoint{t, n})
	cut := 0
	for cut < len(a.acks)-2 && t.Sub(a.acks[cut].t) > bwWindow {
		cut++
	}
	a.acks = a.acks[cut:]
	first := a.acks[0]
	dt := t.Sub(first.t)
	kick := false
	if dt > 200*time.Millisecond && n > first.n {
		rate := float64(n-first.n) / dt.Seconds()
		// A link the sender left idle part of the time looks slower than it
		// is: scale by the share of the window the writer was busy.
		var busy float64
		k := 0
		for k < len(a.sendBusy) && a.sendBusy[k].t.Before(first.t) {
			k++
		}
		a.sendBusy = a.sendBusy[k:]
		for _, p := range a.sendBusy {
			busy += float64(p.n)
		}
		frac := busy / float64(dt.Nanoseconds())
		if frac > 0 && frac < 0.8 {
			// The link sat idle part of the window: what it delivered is a
			// lower bound. Extrapolate (at most 10x) and never lower the
			// estimate on such a window — a slower link shows as a busy
			// writer.
			rate = math.Max(rate/math.Max(frac/0.8, 0.1), a.bw)
		}
		a.bw = rate
		if a.bwDecided > 0 && (rate > a.bwDecided*1.5 || rate < a.bwDecided/1.5) {
			kick = true
		}
		if a.bwDecided == 0 && len(a.profile) > 0 && !a.fixed {
			kick = true // the first estimate: decide now
		}
	}
	a.mu.Unlock()
	if kick {
		a.trigger()
	}
}

// loop decides every interval, and at once when kicked.
func (a *adapter) loop(ctx context.Context) {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.decide("periodic")
		case <-a.kick:
			a.decide("")
		}
	}
}

// predict returns mode m's expected cost and ratio: its profile rescaled by
// how the current mode's live figures compare with its own profile.
func (a *adapter) predict(m Mode) (modeStats, bool) {
	p, ok := a.profile[m]
	if !ok {
		return modeStats{}, false
	}
	kc, kr := 1.0, 1.0
	if pc, ok := a.profile[a.cur]; ok && a.winIn[a.cur] > 256<<10 {
		live := modeStats{costNs: a.winBusy[a.cur] / a.winIn[a.cur], ratio: a.winOut[a.cur] / a.winIn[a.cur]}
		kc = clamp(live.costNs/pc.costNs, 0.25, 4)
		kr = clamp(live.ratio/pc.ratio, 0.5, 2)
		if m == a.cur {
			return live, true
		}
	}
	return modeStats{costNs: p.costNs * kc, ratio: math.Min(p.ratio*kr, 1)}, true
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

// switchMargin is how much more a mode must promise than the current one
// (input bytes/s, so equally a completion time that much shorter) before
// the adapter switches to it.
const switchMargin = 1.1

// confirmEvals is how many consecutive periodic evaluations must promise
// the margin before a switch. Near-equal modes whose predictions swap with
// every window's noise (zstd-3 <-> zstd-3+xor every ~3 s on the dataset)
// then stay put; the first decision and a bandwidth change (> 1.5x since the
// last decision) switch at once.
const confirmEvals = 2

func (a *adapter) decide(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fixed || len(a.profile) == 0 || a.bw <= 0 {
		return
	}
	immediate := true
	switch {
	case a.bwDecided == 0:
		if why == "" {
			why = "first profile"
		}
	case a.bw > a.bwDecided*1.5 || a.bw < a.bwDecided/1.5:
		// Whether the kick or the tick sees it first.
		why = fmt.Sprintf("bandwidth changed %.2f -> %.2f Mbit/s", a.bwDecided*8/1e6, a.bw*8/1e6)
	default:
		immediate = false
		if why == "" {
			why = "re-check" // a kick whose change had gone by the time it ran
		}
	}
	best, bestScore := a.cur, -1.0
	var curScore float64
	var bestComp, bestNet float64
	for _, m := range a.modes {
		p, ok := a.predict(m)
		if !ok {
			continue
		}
		comp := float64(a.workers) * 1e9 / p.costNs // compress-input bytes/s
		net := a.bw / p.ratio
		score := math.Min(comp, net)
		if m == a.cur {
			curScore = score
		}
		if score > bestScore {
			best, bestScore, bestComp, bestNet = m, score, comp, net
		}
	}
	a.bwDecided = a.bw
	a.winBusy, a.winIn, a.winOut = map[Mode]float64{}, map[Mode]float64{}, map[Mode]float64{}
	// Hysteresis: a switch must promise switchMargin more, and, unless this
	// is the first decision or a bandwidth change, in confirmEvals
	// evaluations in a row.
	if best == a.cur || bestScore < curScore*switchMargin {
		a.pendN = 0
		a.log.Debug("handoff mode kept", zap.String("mode", a.cur.String()), zap.String("reason", why),
			zap.String("best", best.String()), zap.Float64("best_mbps", bestScore/1e6), zap.Float64("cur_mbps", curScore/1e6), zap.Float64("bw_mbit", a.bw*8/1e6))
		return
	}
	a.pendN++
	if !immediate && a.pendN < confirmEvals {
		a.log.Debug("handoff mode switch pending", zap.String("mode", a.cur.String()), zap.String("reason", why),
			zap.String("best", best.String()), zap.Float64("best_mbps", bestScore/1e6), zap.Float64("cur_mbps", curScore/1e6),
			zap.Int("evaluations", a.pendN))
		return
	}
	if !immediate {
		why = fmt.Sprintf("%s (%d evaluations in a row)", why, a.pendN)
	}
	a.pendN = 0
	reason := fmt.Sprintf("%s: %s predicts %.1f MB/s (compute %.1f, network %.1f at %.2f Mbit/s) vs %s %.1f MB/s",
		why, best, bestScore/1e6, bestComp/1e6, bestNet/1e6, a.bw*8/1e6, a.cur, curScore/1e6)
	a.log.Info("handoff mode switch", zap.String("mode", best.String()), zap.String("reason", reason))
	a.cur = best
	a.tl = append(a.tl, ModeSwitch{AtSec: time.Since(a.start).Seconds(), Mode: best.String(), Reason: reason})
}

// switches is the number of mode switches so far (the timeline less its
// initial entry).
func (a *adapter) switches() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(len(a.tl)-1, 0)
}
