package handoffd

import (
	"context"
	"fmt"
	"math"
	"sort"
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

// modeStats is a codec's cost and ratio: measured on samples (the
// profile), then rescaled by what the current mode really does.
type modeStats struct {
	costNs float64 // CPU ns of one core per input byte
	ratio  float64 // output / input
	// decNs is the receiver's CPU ns per input byte to decode the mode's
	// output (and, for a +xor mode, to read and XOR the base block),
	// measured in the profile on the same sample: the receiver decodes
	// the blobs one after another, on one core (xz: ~50 ns a byte, 20
	// MB/s, against zstd's 2–3 ns).
	decNs float64
}

type bwPoint struct {
	t    time.Time
	rate float64
}

type ackPoint struct {
	t time.Time
	n int64
}

// Adapter tuning. The profile is re-measured every reprofileEvery intervals
// on a sample of a recent blob, only for the modes still in the running;
// every fullProfileEvery-th profile measures every mode again, so one ruled
// out on earlier data (the disk) can come back on later data (the memory).
const (
	firstSample      = 256 << 10 // bytes of block data the first profile measures
	reprofileSample  = 256 << 10 // and each later one
	reprofileEvery   = 2         // intervals between profiles
	fullProfileEvery = 4         // every n-th profile measures every mode
	profileWeight    = 0.3       // a new sample's weight in the profile
	// domSlack: a mode is ruled out when another is at least as dense and
	// costs at most domSlack times its CPU (it loses on both axes, within
	// what the switch margin could not tell apart anyway).
	domSlack = 1.1
	// xorGain: a +xor mode stays in the running only when its plain twin's
	// ratio is more than this times its own.
	xorGain = 1.02
	// shareWeight is the weight of a window in the share of a core the
	// compress workers get (CPU / wall time of their compress calls).
	shareWeight = 0.3
)

// adapter picks the mode maximising min(compute rate, network rate).
type adapter struct {
	log      *zap.Logger
	modes    []Mode
	workers  int
	interval time.Duration
	start    time.Time
	now      func() time.Time
	// remaining, when set, estimates the compress input still to come
	// (bytes; <= 0 when unknown): a switch must save more than switchCost
	// over it.
	remaining  func() float64
	switchCost time.Duration

	wg      sync.WaitGroup // the profile runs
	mu      sync.Mutex
	cur     Mode
	fixed   bool
	profile map[Mode]modeStats
	corr    map[Mode]float64 // live / profile CPU cost of each mode that has run (learn)
	// dataK is how the blobs' ratio compares with the profile's, whichever
	// mode compressed them: the smoothed live / profile ratio of the
	// windows (0 until measured). Every mode's ratio is predicted as its
	// profile's times dataK (learn).
	dataK    float64
	ruled    map[Mode]Mode // a ruled-out mode -> the mode that beats it on both axes
	profiles int           // profiles merged so far
	profAt   map[Mode]int  // the profile (1, 2, …) that last measured each mode
	// level follows the data's ratio from profile to profile (the product
	// of how the modes measured in consecutive profiles moved), lvlAt its
	// value when each mode was last measured (mergeProfile).
	level    float64
	lvlAt    map[Mode]float64
	running  bool // a profile is being measured
	lastProf time.Time
	// live window for each mode since the last decision: CPU ns, input and
	// output bytes; and the compress calls' CPU and wall ns over all modes.
	winCPU, winIn, winOut map[Mode]float64
	winCPUAll, winWallAll float64
	winStart              time.Time // when the window began (the last decision)
	winSend               float64   // ns the writer spent writing in the window
	writeAt               time.Time // when the write in progress began (zero: none)
	// winSys, when the last window was compute-bound (the writer idled,
	// waiting for blobs), is the CPU ns per compress-input byte the whole
	// pipeline took in it: the cores the workers had, over the input it
	// achieved. 0 otherwise.
	winSys   float64
	winIdle  float64 // the share of that window the writer waited
	share    float64 // EWMA of winCPUAll / winWallAll; 0 until measured
	acks     []ackPoint
	sendBusy []ackPoint // (time, ns spent writing), to tell a busy link from an idle one
	bw       float64    // bytes/s, last estimate
	// bwHist holds the estimates of the last bwHold measured while the
	// writer was busy (never an idle window's extrapolation); their
	// highest is the link's rate the decisions use (link).
	bwHist      []bwPoint
	bwDecided   float64       // bandwidth at the last decision
	bwSpan      time.Duration // the span of acks behind bw
	bwOut       time.Time     // since when the estimate is 1.5x away from bwDecided
	bwConfirmed bool          // and has been for bwConfirm
	// pendN counts consecutive periodic evaluations in which some mode
	// promised switchMargin more than the current one (the hysteresis).
	pendN      int
	lastSwitch time.Time
	tl         []ModeSwitch
	kick       chan struct{}
}

func newAdapter(modes []Mode, workers int, interval time.Duration, log *zap.Logger, start time.Time) *adapter {
	a := &adapter{log: log, modes: modes, workers: workers, interval: interval, start: start, now: time.Now,
		switchCost: defaultSwitchCost, cur: modes[0], profile: map[Mode]modeStats{}, corr: map[Mode]float64{}, ruled: map[Mode]Mode{}, profAt: map[Mode]int{}, lvlAt: map[Mode]float64{},
		winCPU: map[Mode]float64{}, winIn: map[Mode]float64{}, winOut: map[Mode]float64{},
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

// profileSet is what the next profile measures: every mode on the first
// and every fullProfileEvery-th profile, otherwise the modes not ruled out
// (and the current one, which the live figures are compared with).
func (a *adapter) profileSet() []Mode {
	full := a.profiles%fullProfileEvery == 0
	var set []Mode
	for _, m := range a.modes {
		if _, out := a.ruled[m]; full || !out || m == a.cur {
			set = append(set, m)
		}
	}
	return set
}

// maybeProfile measures the modes on a sample of this blob's block data
// when a profile is due: at the first blob with data, then every
// reprofileEvery intervals (one at a time, off the critical path).
func (a *adapter) maybeProfile(recs []record, s *sender) {
	a.mu.Lock()
	if a.fixed || a.running || (a.profiles > 0 && a.now().Sub(a.lastProf) < reprofileEvery*a.interval) {
		a.mu.Unlock()
		return
	}
	set := a.profileSet()
	sample := reprofileSample
	if a.profiles == 0 {
		sample = firstSample
	}
	a.running = true
	a.lastProf = a.now()
	a.mu.Unlock()
	delta := false
	for _, m := range set {
		delta = delta || m.Delta
	}
	plain, xored, xorCost := profileSamples(recs, s, sample, delta)
	if len(plain) == 0 { // a blob of references only: try the next one
		a.mu.Lock()
		a.running, a.lastProf = false, time.Time{}
		a.mu.Unlock()
		return
	}
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.runProfile(set, plain, xored, xorCost) }()
}

// profileSamples gathers the data of the blob's last data records, up to
// sample bytes, and, when delta, the same blocks XORed with the base block
// at their offset, with the CPU ns per byte that preparation took (a +xor
// mode pays it on top of its codec).
func profileSamples(recs []record, s *sender, sample int, delta bool) (plain, xored []byte, xorCost float64) {
	var pick []record
	for i := len(recs) - 1; i >= 0 && len(pick)*BlockSize < sample; i-- {
		if recs[i].Kind == recData && len(recs[i].Data) == BlockSize {
			pick = append(pick, recs[i])
		}
	}
	for _, r := range pick {
		plain = append(plain, r.Data...)
	}
	if !delta || len(pick) == 0 {
		return plain, nil, 0
	}
	cpu, _ := timed(func() {
		base := make([]byte, BlockSize)
		for _, r := range pick {
			im := s.imgs[r.Image]
			if int64(r.Block) >= im.nbBase {
				xored = append(xored, r.Data...)
				continue
			}
			clear(base)
			im.baseF.ReadAt(base, int64(r.Block)*BlockSize)
			for j := range base {
				xored = append(xored, r.Data[j]^base[j])
			}
		}
	})
	return plain, xored, float64(cpu.Nanoseconds()) / float64(len(xored))
}

func (a *adapter) runProfile(set []Mode, plain, xored []byte, xorCost float64) {
	prof := map[Mode]modeStats{}
	for _, m := range set {
		src, extra := plain, 0.0
		if m.Delta {
			src, extra = xored, xorCost
		}
		if len(src) == 0 {
			continue
		}
		a.mu.Lock()
		_, known := a.profile[m]
		a.mu.Unlock()
		if !known {
			compress(m, nil, src[:min(len(src), 64<<10)]) // warm up: encoder set-up is not per-blob cost
		}
		var out []byte
		var err error
		cpu, _ := timed(func() { out, err = compress(m, nil, src) })
		ratio := 1.0
		if err == nil && len(out) < len(src) {
			ratio = float64(len(out)) / float64(len(src))
		}
		cost := float64(cpu.Nanoseconds())/float64(len(src)) + extra
		// The receiver's side: decoding the same output (a blob that would
		// grow is sent as it is: nothing to decode), and for a +xor mode
		// the base block read and XORed again.
		dec := extra
		if err == nil && len(out) < len(src) {
			dcpu, _ := timed(func() { _, err = decompress(m.Codec, out, len(src)) })
			if err == nil {
				dec += float64(dcpu.Nanoseconds()) / float64(len(src))
			}
		}
		prof[m] = modeStats{costNs: math.Max(cost, 0.05), ratio: ratio, decNs: math.Max(dec, 0.05)}
	}
	a.mu.Lock()
	first := a.profiles == 0
	a.mergeProfile(prof)
	a.running = false
	a.mu.Unlock()
	if first {
		a.trigger()
	}
}

// mergeProfile folds a profile's measurements into the profile (a new
// sample weighs profileWeight) and rules out the modes that lose on both
// axes. A mode the previous profiles skipped (ruled out) has a ratio of
// older data: before it is blended it is brought to the data's level of
// the previous profile — scaled by how the ratios of the modes measured in
// consecutive profiles moved since it was last measured (level) — so that
// it is blended on the same footing as they are. (Blended as it was, a
// zstd-2 figure from easy data, 0.228 against 0.365 for zstd-4 on the same
// sample, ruled out zstd-4, zstd-3 and xz at 5 Mbit/s and the adapter
// took zstd-2 for a 60 % gain it did not have.) Callers hold a.mu.
func (a *adapter) mergeProfile(prof map[Mode]modeStats) {
	a.profiles++
	prev := a.level
	if prev <= 0 {
		prev = 1
	}
	var shift float64 // sum of log(new / old) over the modes measured in the previous profile too
	n := 0
	for m, p := range prof {
		if old, ok := a.profile[m]; ok {
			if a.profAt[m] != a.profiles-1 && a.lvlAt[m] > 0 {
				old.ratio = math.Min(old.ratio*prev/a.lvlAt[m], 1)
			}
			p = modeStats{costNs: old.costNs*(1-profileWeight) + p.costNs*profileWeight,
				ratio: old.ratio*(1-profileWeight) + p.ratio*profileWeight,
				decNs: old.decNs*(1-profileWeight) + p.decNs*profileWeight}
			if a.profAt[m] == a.profiles-1 && old.ratio > 0 && p.ratio > 0 {
				shift += math.Log(p.ratio / old.ratio)
				n++
			}
		}
		a.profile[m] = p
	}
	a.level = prev
	if n > 0 {
		a.level = prev * math.Exp(shift/float64(n))
	}
	for m := range prof {
		a.profAt[m], a.lvlAt[m] = a.profiles, a.level
	}
	a.ruleOut()
}

// ruleOut marks every profiled mode that another mode beats on both axes:
// at least as dense and at most domSlack times its CPU cost. Densest first,
// and only a mode still in the running can rule another out. Only modes
// the latest profile measured are compared: their figures include the same
// sample. A mode it did not measure (ruled out before, so left out of a
// partial profile) keeps its verdict until a profile measures it again: its
// figures are of older data, and the data's ratio moves far more than the
// modes differ (0.11 on one blob, 0.15 on the next; an xz measured on the
// new blob was ruled out by a zstd-2 figure from the old one, and the
// adapter left xz for zstd-2 just after a bandwidth drop). Callers hold a.mu.
func (a *adapter) ruleOut() {
	var ms []Mode
	ruled := map[Mode]Mode{}
	for _, m := range a.modes {
		if _, ok := a.profile[m]; !ok {
			continue
		}
		if a.profAt[m] != a.profiles {
			if by, was := a.ruled[m]; was {
				ruled[m] = by
			}
			continue
		}
		ms = append(ms, m)
	}
	sort.SliceStable(ms, func(i, j int) bool {
		pi, pj := a.profile[ms[i]], a.profile[ms[j]]
		if pi.ratio != pj.ratio {
			return pi.ratio < pj.ratio
		}
		return pi.costNs < pj.costNs
	})
	var kept []Mode
	for _, m := range ms {
		p := a.profile[m]
		out := false
		// A +xor mode must buy xorGain over its plain twin: on blocks
		// whose base block is zero (new data over free space, most of the
		// dataset) the XOR changes nothing, the two ratios tie and the
		// CPU samples' noise picked either, then paid for base reads.
		if twin := (Mode{Codec: m.Codec, Level: m.Level}); m.Delta {
			if pt, ok := a.profile[twin]; ok && pt.ratio <= p.ratio*xorGain {
				ruled[m], out = twin, true
				if prev, was := a.ruled[m]; !was || prev != twin {
					a.log.Info("handoff mode ruled out", zap.String("mode", m.String()), zap.String("reason",
						fmt.Sprintf("the XOR buys less than %.0f %% over %s (ratio %.3f vs %.3f)", (1-1/xorGain)*100, twin, p.ratio, pt.ratio)))
				}
				continue
			}
		}
		for _, k := range kept {
			if pk := a.profile[k]; pk.ratio <= p.ratio && pk.costNs <= p.costNs*domSlack {
				ruled[m], out = k, true
				if prev, was := a.ruled[m]; !was || prev != k {
					a.log.Info("handoff mode ruled out", zap.String("mode", m.String()), zap.String("reason",
						fmt.Sprintf("%s is as dense (ratio %.3f vs %.3f) and no costlier (%.2f vs %.2f CPU ns/byte)", k, pk.ratio, p.ratio, pk.costNs, p.costNs)))
				}
				break
			}
		}
		if !out {
			kept = append(kept, m)
		}
	}
	a.ruled = ruled
}

func (a *adapter) trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// observe records one blob compressed in mode m: in and out bytes, the CPU
// time of the compress call and its wall time.
func (a *adapter) observe(m Mode, in, out int, cpu, wall time.Duration) {
	a.mu.Lock()
	a.winCPU[m] += float64(cpu.Nanoseconds())
	a.winIn[m] += float64(in)
	a.winOut[m] += float64(out)
	a.winCPUAll += float64(cpu.Nanoseconds())
	a.winWallAll += float64(wall.Nanoseconds())
	a.mu.Unlock()
}

// sent records time spent writing n bytes to the stream.
func (a *adapter) sent(took time.Duration, n int) {
	a.mu.Lock()
	a.sendBusy = append(a.sendBusy, ackPoint{a.now(), took.Nanoseconds()})
	if !a.writeAt.IsZero() {
		a.winSend += float64(a.now().Sub(later(a.writeAt, a.winStart)).Nanoseconds())
		a.writeAt = time.Time{}
	}
	a.mu.Unlock()
}

// writing records that the writer starts writing a frame: a write blocked
// on the link across a window's end counts in both windows (a 300 KB
// frame takes half a second at 5 Mbit/s; counted only when it returned,
// a busy window could look idle).
func (a *adapter) writing() {
	a.mu.Lock()
	a.writeAt = a.now()
	a.mu.Unlock()
}

func later(t, u time.Time) time.Time {
	if t.After(u) {
		return t
	}
	return u
}

// bwWindow is the span of acks the network rate is measured over, and
// bwConfirm how long an estimate must stay more than 1.5x away from the
// one the last decision saw before it counts as a bandwidth change (and
// decides at once): one window of acks bunched behind a busy receiver is
// not a slower link.
const (
	bwWindow  = 2 * time.Second
	bwConfirm = time.Second
)

// bwMoved says whether rate is more than 1.5x away from the rate of the
// last decision. Callers hold a.mu.
func (a *adapter) bwMoved(rate float64) bool {
	return a.bwDecided > 0 && (rate > a.bwDecided*1.5 || rate < a.bwDecided/1.5)
}

// bwChangeAt follows how long the estimate has been away from the last
// decision's: it returns whether that has lasted bwConfirm at t. Callers
// hold a.mu.
func (a *adapter) bwChangeAt(t time.Time) bool {
	if !a.bwMoved(a.bw) {
		a.bwOut, a.bwConfirmed = time.Time{}, false
		return false
	}
	if a.bwOut.IsZero() {
		a.bwOut = t
	}
	if t.Sub(a.bwOut) >= bwConfirm {
		a.bwConfirmed = true
	}
	return a.bwConfirmed
}

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
		if frac >= writerBusyAck {
			a.holdBW(t, rate) // the writer was busy: a measured rate, not a bound
		}
		if frac > 0 && frac < writerBusyAck {
			// The link sat idle part of the window: what it delivered is a
			// lower bound. Extrapolate (at most 10x) and never lower the
			// estimate on such a window — a slower link shows as a busy
			// writer.
			rate = math.Max(rate/math.Max(frac/0.8, 0.1), a.bw)
		}
		a.bw, a.bwSpan = rate, dt
		if a.bwChangeAt(t) {
			kick = true
		}
		if a.bwDecided == 0 && dt >= bwConfirm && len(a.profile) > 0 && !a.fixed {
			kick = true // the first estimate over a steady window: decide now
		}
	}
	a.mu.Unlock()
	if kick {
		a.trigger()
	}
}

// relink starts the estimate again on a confirmed bandwidth change: from
// the acks since the change's onset (bwOut), which measured the new link
// alone, not the bwWindow of acks behind a.bw, part of which measured the
// old one (at 25 -> 5 Mbit/s the window said 7-10 Mbit/s when the change
// was confirmed, and the hold kept that for bwHold: a stale fast link that
// favours a light mode). A drop takes the lower of the two estimates, a
// rise the higher (a writer left idle makes the new acks a lower bound).
// The hold starts again from the new rate (the next estimates' window,
// bwWindow, is past the onset by then: the change was confirmed bwConfirm
// after it). Callers hold a.mu.
func (a *adapter) relink(now time.Time) {
	onset := a.bwOut
	if onset.IsZero() {
		onset = now
	}
	var first, last ackPoint
	for _, p := range a.acks {
		if p.t.Before(onset) {
			continue
		}
		if first.t.IsZero() {
			first = p
		}
		last = p
	}
	if dt := last.t.Sub(first.t); dt > 200*time.Millisecond && last.n > first.n {
		fresh := float64(last.n-first.n) / dt.Seconds()
		if a.bw < a.bwDecided {
			a.bw = math.Min(a.bw, fresh)
		} else {
			a.bw = math.Max(a.bw, fresh)
		}
		a.bwSpan = dt
	}
	a.bwHist = []bwPoint{{now, a.bw}} // a new link: the hold starts again from it
}

// writerBusyAck: an ack window in which the writer spent at least this
// share of the time writing measured the link (or whatever else set the
// pace: the receiver); below it the rate is a lower bound, extrapolated.
const writerBusyAck = 0.8

// bwHold is how long the link's rate keeps the highest estimate measured
// while the writer was busy. The acks slow down when something other than
// the link sets the pace — a mode whose decoding the receiver cannot keep
// up with, the machine's other jobs — and the writer is then blocked as on
// a slow link: xz's windows on the dataset showed 18–19 Mbit/s of a 25
// Mbit/s link, and taken for the link that favours the densest mode, the
// very one that slowed the acks. A change of more than 1.5x, confirmed
// (bwConfirm), is a new link and starts the hold again. Only busy windows
// count: an idle window's extrapolation over-estimates by design (held,
// 7.4 Mbit/s stayed the estimate of a 5 Mbit/s link for 15 s).
const bwHold = 15 * time.Second

// holdBW records an estimate of a busy window. Callers hold a.mu.
func (a *adapter) holdBW(t time.Time, rate float64) {
	cut := 0
	for cut < len(a.bwHist) && t.Sub(a.bwHist[cut].t) > bwHold {
		cut++
	}
	a.bwHist = append(a.bwHist[cut:], bwPoint{t, rate})
}

// link is the link's rate the decisions use: the highest busy-window
// estimate of the last bwHold, else the last estimate. Callers hold a.mu.
func (a *adapter) link(now time.Time) float64 {
	held := 0.0
	for _, p := range a.bwHist {
		if now.Sub(p.t) <= bwHold {
			held = math.Max(held, p.rate)
		}
	}
	if held > 0 {
		return held
	}
	return a.bw
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

// minWindow is the input a mode's live window needs before it counts.
const minWindow = 256 << 10

// writerBusy: a window in which the writer spent less than this share of
// the time writing was compute-bound: the link waited for blobs.
const writerBusy = 0.85

// measureWindow judges the window that ends at now. When the writer idled
// (it spent less than writerBusy of the window writing) while more input
// than the window's was still to come, the pipeline set the pace, not the
// link, and the current mode's live cost is what the pipeline took: the
// cores the workers had over the input it achieved. The compress calls' CPU
// alone misses the scan, the receiver and every other job on the cores: on
// the dataset xz's calls said 16 MB/s on 1.7 cores while the whole pipeline
// gave the link less than it takes (a mode's live rate weighs above its
// sample). Callers hold a.mu.
func (a *adapter) measureWindow(now time.Time) {
	a.winSys, a.winIdle = 0, 0
	wall := float64(now.Sub(a.winStart).Nanoseconds())
	if a.winStart.IsZero() || wall <= 0 || a.winIn[a.cur] < minWindow {
		return
	}
	var in float64
	for _, v := range a.winIn {
		in += v
	}
	send := a.winSend
	if !a.writeAt.IsZero() {
		send += float64(now.Sub(later(a.writeAt, a.winStart)).Nanoseconds())
	}
	busy := send / wall
	if send == 0 || busy >= writerBusy {
		return // not a write seen (no evidence either way), or the link set the pace
	}
	if a.remaining != nil && a.remaining() < in {
		return // the end of the round: the pipeline drains, its pace says nothing
	}
	a.winSys, a.winIdle = a.cores()*wall/in, 1-busy
}

// liveCost is mode m's CPU ns per input byte over the window: its compress
// calls' CPU, or for the current mode in a compute-bound window what the
// whole pipeline took (measureWindow), when more. Callers hold a.mu.
func (a *adapter) liveCost(m Mode) float64 {
	c := a.winCPU[m] / a.winIn[m]
	if m == a.cur && a.winSys > c {
		c = a.winSys
	}
	return c
}

// learn folds each mode's live window (modes that compressed at least
// minWindow since the last decision) into its CPU correction: how its live
// cost compares with its profile (the profile is of a small sample; the
// blobs are larger and not the same blocks). The ratio is not learned per
// mode: windows carry different data (one window of the dataset compresses
// to 0.15, the next to 0.4), far more apart than the modes are on the same
// data (zstd-3 and zstd-4: 5 %), so a mode's own live ratio says what its
// window held, not what the mode does. Only the profile compares the modes
// on the same blocks; what the windows teach is how the blobs compare with
// the samples, the same for every mode: dataK. (Per-mode ratios from each
// mode's last windows made the adapter leave a mode on one hard window and
// take the one whose last windows had been easy: zstd-1 at 5 Mbit/s for
// 57 s after the drop, Session 10's new1.) Callers hold a.mu.
func (a *adapter) learn() {
	var out, want float64 // the window's output, and its profile's promise
	for m, in := range a.winIn {
		p, ok := a.profile[m]
		if !ok || in < minWindow {
			continue
		}
		f := clamp(a.liveCost(m)/p.costNs, 0.25, 16)
		if old, ok := a.corr[m]; ok {
			f = (old + f) / 2
		}
		a.corr[m] = f
		out += a.winOut[m]
		want += in * p.ratio
	}
	if want > 0 {
		k := clamp(out/want, 0.5, 2)
		if a.dataK > 0 {
			k = (a.dataK + k) / 2
		}
		a.dataK = k
	}
}

// predict returns mode m's expected CPU cost and ratio. The cost: the
// current mode's live cost; for another mode its profile times its own
// correction when it has run, else times the current mode's (so a
// sample-sized bias common to all modes does not favour the mode in use);
// a mode whose profile promised less CPU than it took live keeps that
// correction. The ratio, of every mode the current one included: its
// profile's times dataK, so that the modes are compared on the same data.
func (a *adapter) predict(m Mode) (modeStats, bool) {
	p, ok := a.profile[m]
	if !ok {
		return modeStats{}, false
	}
	k := a.dataK
	if k <= 0 {
		k = 1
	}
	ratio := math.Min(p.ratio*k, 1)
	if m == a.cur && a.winIn[m] >= minWindow {
		return modeStats{costNs: a.liveCost(m), ratio: ratio, decNs: p.decNs}, true
	}
	c, ok := a.corr[m]
	if !ok {
		if c, ok = a.corr[a.cur]; !ok {
			c = 1
		}
	}
	return modeStats{costNs: p.costNs * c, ratio: ratio, decNs: p.decNs}, true
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

// switchMargin is how much more a mode must promise than the current one
// (input bytes/s, so equally a completion time that much shorter) before
// the adapter switches to it.
const switchMargin = 1.1

// bwChangeMargin is the margin on a confirmed bandwidth change: the mode in
// use was chosen for another link, and the choice for the new one rests on
// the profile, whose modes were measured on the same sample. At 25 -> 5
// Mbit/s every mode is network-bound and the densest that keeps the link
// full wins by what it saves in bytes: zstd-4 over zstd-3 5 % on the
// dataset, less than switchMargin.
const bwChangeMargin = 1.03

// confirmEvals is how many consecutive periodic evaluations must promise
// the margin before a switch. Near-equal modes whose predictions swap with
// every window's noise (zstd-3 <-> zstd-3+xor every ~3 s on the dataset)
// then stay put; the first decision and a bandwidth change (> 1.5x since the
// last decision) switch at once.
const confirmEvals = 2

// minDwell is how many intervals a mode is kept after a switch before a
// periodic decision may leave it (a bandwidth change may at once): its own
// live window has to fill first.
const minDwell = 2

// computeHeadroom: a mode's compute rate counts for this much less, so that
// the knee between compute- and network-bound is taken with room to spare
// (on a shared machine the share of a core moves; a mode predicted to just
// fill the link leaves it idle whenever it drops).
const computeHeadroom = 1.25

// defaultSwitchCost is what a switch must save over the remaining input at
// least: the blobs already queued go out in the old mode, and the new
// mode's prediction rests on a sample until its own window fills.
const defaultSwitchCost = 500 * time.Millisecond

// cores is the compute the compress workers get: workers times the share of
// a core each got over the recent windows (1 until measured).
func (a *adapter) cores() float64 {
	if a.share <= 0 {
		return float64(a.workers)
	}
	return float64(a.workers) * a.share
}

// coreShare is the share of a core a compress worker gets (1 until
// measured); the receiver's decoder, one goroutine, is assumed to get the
// same (on one machine, as in the benchmark, it does).
func (a *adapter) coreShare() float64 {
	if a.share <= 0 {
		return 1
	}
	return a.share
}

func (a *adapter) decide(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fixed || len(a.profile) == 0 || a.bw <= 0 {
		return
	}
	if a.bwDecided == 0 && a.bwSpan < bwConfirm {
		// The first decision waits for a rate measured over bwConfirm: in
		// the first acks the pipeline is still filling, the writer idles
		// and the idle-share extrapolation can overshoot the link tenfold
		// (the adapter then took the link for fast, chose zstd-1 for its
		// compute and the margin kept it there).
		return
	}
	now := a.now()
	if a.winWallAll > 0 { // the window's share of a core, smoothed
		s := clamp(a.winCPUAll/a.winWallAll, 0.1, 1)
		if a.share <= 0 {
			a.share = s
		} else {
			a.share = a.share*(1-shareWeight) + s*shareWeight
		}
	}
	a.measureWindow(now)
	a.learn()
	immediate, first := true, a.bwDecided == 0
	switch {
	case first:
		if why == "" {
			why = "first profile"
		}
	case a.bwChangeAt(now):
		// Whether the kick or the tick sees it first.
		was := a.bw
		a.relink(now)
		why = fmt.Sprintf("bandwidth changed %.2f -> %.2f Mbit/s (%.2f over the last %.1fs of acks)", a.bwDecided*8/1e6, a.bw*8/1e6, was*8/1e6, bwWindow.Seconds())
	default:
		immediate = false
		if why == "" {
			why = "re-check" // a kick whose change had gone by the time it ran
		}
	}
	best, bestScore := a.cur, -1.0
	var curScore float64
	var bestComp, bestNet, bestRecv float64
	link := a.link(now)
	for _, m := range a.modes {
		if _, out := a.ruled[m]; out && m != a.cur {
			continue // loses on both axes by measurement
		}
		p, ok := a.predict(m)
		if !ok {
			continue
		}
		comp := a.cores() * 1e9 / p.costNs / computeHeadroom // compress-input bytes/s
		net := link / p.ratio
		recv := math.Inf(1) // the receiver's decoding, on one core
		if p.decNs > 0 {
			recv = a.coreShare() * 1e9 / p.decNs / computeHeadroom
		}
		score := math.Min(comp, math.Min(net, recv))
		if m == a.cur {
			curScore = score
		}
		if score > bestScore {
			best, bestScore, bestComp, bestNet, bestRecv = m, score, comp, net, recv
		}
	}
	if immediate || !a.bwMoved(a.bw) {
		// A change not yet confirmed stays measured against the rate of
		// the decision before it.
		a.bwDecided, a.bwOut, a.bwConfirmed = a.bw, time.Time{}, false
	}
	a.winCPU, a.winIn, a.winOut = map[Mode]float64{}, map[Mode]float64{}, map[Mode]float64{}
	a.winCPUAll, a.winWallAll, a.winSend, a.winStart = 0, 0, 0, now
	keep := func(what string) {
		a.pendN = 0
		a.log.Debug("handoff mode kept", zap.String("mode", a.cur.String()), zap.String("reason", why+": "+what),
			zap.String("best", best.String()), zap.Float64("best_mbps", bestScore/1e6), zap.Float64("cur_mbps", curScore/1e6),
			zap.Float64("bw_mbit", a.bw*8/1e6), zap.Float64("link_mbit", link*8/1e6), zap.Float64("cores", a.cores()), zap.Float64("writer_idle", a.winIdle))
	}
	if best == a.cur || bestScore <= 0 {
		keep("best")
		return
	}
	// Hysteresis: a switch must promise switchMargin more (except from the
	// initial mode, a placeholder chosen before any measurement), save more than
	// a switch costs over what is left, and, unless this is the first
	// decision or a bandwidth change, hold for confirmEvals evaluations in
	// a row and come minDwell intervals after the last switch. A current
	// mode that was ruled out is kept until another promises the margin:
	// its dominator is within 10 % of it by definition.
	margin := switchMargin
	if immediate {
		margin = bwChangeMargin
	}
	if !first && bestScore < curScore*margin {
		keep("no mode promises the margin")
		return
	}
	saved := ""
	if a.remaining != nil && curScore > 0 {
		if rem := a.remaining(); rem > 0 {
			gain := rem/curScore - rem/bestScore // seconds
			if gain < a.switchCost.Seconds() {
				keep(fmt.Sprintf("a switch would save %.2fs of the remaining %.1f MB, less than its cost", gain, rem/1e6))
				return
			}
			saved = fmt.Sprintf(", saves ~%.1fs of the remaining %.1f MB", gain, rem/1e6)
		}
	}
	if !immediate && !a.lastSwitch.IsZero() && now.Sub(a.lastSwitch) < minDwell*a.interval {
		keep("too soon after the last switch")
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
	bound := ""
	if a.winSys > 0 {
		bound = fmt.Sprintf(" (compute-bound live: the writer waited %.0f %% of the window)", a.winIdle*100)
	}
	reason := fmt.Sprintf("%s: %s predicts %.1f MB/s (compute %.1f on %.2f cores, network %.1f at %.2f Mbit/s, receiver %.1f) vs %s %.1f MB/s%s%s",
		why, best, bestScore/1e6, bestComp/1e6, a.cores(), bestNet/1e6, link*8/1e6, bestRecv/1e6, a.cur, curScore/1e6, bound, saved)
	a.log.Info("handoff mode switch", zap.String("mode", best.String()), zap.String("reason", reason))
	a.cur = best
	a.lastSwitch = now
	a.tl = append(a.tl, ModeSwitch{AtSec: now.Sub(a.start).Seconds(), Mode: best.String(), Reason: reason})
}

// switches is the number of mode switches so far (the timeline less its
// initial entry).
func (a *adapter) switches() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(len(a.tl)-1, 0)
}
