package handoffd

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// newTextEnv: a random base and a current image of new text blocks, so the
// codecs' ratios differ widely and only compression (not dedup) helps.
func newTextEnv(t *testing.T, blocks int) *pairEnv {
	t.Helper()
	e := &pairEnv{dir: t.TempDir()}
	rng := rngFor(99)
	base := make([]byte, blocks*BlockSize)
	for i := range base {
		base[i] = byte(rng.Uint32())
	}
	var cur []byte
	para := make([][]byte, 64)
	for i := range para {
		para[i] = textBlock(rng)[:512]
	}
	for len(cur) < len(base) {
		// Paragraphs repeated at long distances: what a bigger window finds.
		cur = append(cur, para[rng.IntN(len(para))]...)
		cur = append(cur, byte(rng.Uint32()), byte(rng.Uint32()))
	}
	cur = cur[:len(base)]
	e.basePath, e.curPath = filepath.Join(e.dir, "base.img"), filepath.Join(e.dir, "cur.img")
	os.WriteFile(e.basePath, base, 0o644)
	os.WriteFile(e.curPath, cur, 0o644)
	e.openCaches(t)
	return e
}

func ratioOf(t *testing.T, mode string) float64 {
	t.Helper()
	m, err := ParseMode(mode)
	if err != nil {
		t.Fatal(err)
	}
	src := make([]byte, 0, 64*BlockSize)
	for i := 0; len(src) < cap(src); i++ {
		src = append(src, textBlock(rngFor(uint64(i)))...)
	}
	out, err := compress(m, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	return float64(len(out)) / float64(len(src))
}

// measureMode compresses the first MiB of data in blobs of blob bytes, as
// the sender would, on one goroutine, and returns the input rate (bytes/s,
// best of three)
// and the output ratio. The adaptation tests size their links and images
// from it, so that what they assert — which mode wins — holds on a fast
// machine, a loaded one and under -race alike.
func measureMode(t *testing.T, mode string, data []byte, blob int) (rate, ratio float64) {
	t.Helper()
	m, err := ParseMode(mode)
	if err != nil {
		t.Fatal(err)
	}
	data = data[:min(len(data), 1<<20)]
	compress(m, nil, data[:min(len(data), 64<<10)]) // encoder set-up
	// The best of three: on a loaded machine the least disturbed run is
	// the closest to what the codec can do.
	for range 3 {
		var out int
		t0 := time.Now()
		for off := 0; off < len(data); off += blob {
			b, err := compress(m, nil, data[off:min(off+blob, len(data))])
			if err != nil {
				t.Fatal(err)
			}
			out += len(b)
		}
		rate = max(rate, float64(len(data))/time.Since(t0).Seconds())
		ratio = float64(out) / float64(len(data))
	}
	return rate, ratio
}

// textEnvOf makes a text environment of about n bytes (whole blocks, at
// least minBlocks).
func textEnvOf(t *testing.T, n float64, minBlocks, maxBlocks int) *pairEnv {
	blocks := min(max(int(n)/BlockSize, minBlocks), maxBlocks)
	return newTextEnv(t, blocks)
}

// TestAdaptSlowLinkPicksDenserMode: on a slow link the adapter leaves the
// initial zstd-1 for a mode that compresses better, and says why. "Slow"
// is measured, not assumed: zstd-1's compression rate here sets the image
// size (about a second of one worker's work) and the link (zstd-1's output
// would need five times its rate), so zstd-1 is network bound on any
// machine and a denser mode is the better choice.
func TestAdaptSlowLinkPicksDenserMode(t *testing.T) {
	const blob = 256 << 10
	probe := newTextEnv(t, 256)
	sample, err := os.ReadFile(probe.curPath)
	if err != nil {
		t.Fatal(err)
	}
	c, r := measureMode(t, "zstd-1", sample, blob)
	e := textEnvOf(t, c, 512, 3000)
	cur, _ := os.ReadFile(e.curPath)
	n := float64(len(cur))
	wire := n * r / (5 * raceSlow) // bytes/s: zstd-1 would take 5 s on the network
	t.Logf("zstd-1 compresses %.1f MB/s at ratio %.3f here; image %.1f MB, link %.2f Mbit/s", c/1e6, r, n/1e6, wire*8/1e6)
	link := NewLink(wire * 8)
	rep, rec, err, rerr := e.run(t, SendConfig{AdaptInterval: 500 * time.Millisecond, BlobSize: blob, Workers: 2, Logger: zaptest.NewLogger(t)},
		func(c net.Conn) net.Conn { return link.Conn(c) })
	if err != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
	if len(rep.Modes) < 2 {
		t.Fatalf("mode timeline %+v: want a switch away from the initial mode on a link zstd-1 cannot fill", rep.Modes)
	}
	if rep.ModeSwitches != len(rep.Modes)-1 {
		t.Fatalf("report counts %d mode switches, its timeline has %d", rep.ModeSwitches, len(rep.Modes)-1)
	}
	last := rep.Modes[len(rep.Modes)-1]
	if ratioOf(t, last.Mode) >= ratioOf(t, "zstd-1") {
		t.Fatalf("switched to %s (%s): not denser than zstd-1", last.Mode, last.Reason)
	}
	if !strings.Contains(last.Reason, "network") {
		t.Fatalf("switch reason %q does not give the rates", last.Reason)
	}
}

// TestAdaptBandwidthChange: the link drops from 20 to 1 Mbit/s mid-transfer;
// the adapter leaves lz4 for xz, at once when the change is seen (the
// periodic decision is off). With one worker xz's compute rate on this text
// (a few MB/s) is below lz4's network rate before the drop and far above it
// after. That premise is measured first: on a machine (or a race build, or
// a moment of heavy load) where one xz worker is too fast or too slow for
// it, the test skips and says so — TestAdapterDecision drives the same
// decision deterministically.
func TestAdaptBandwidthChange(t *testing.T) {
	const blob = 256 << 10
	e := newTextEnv(t, 4000)
	sample, err := os.ReadFile(e.curPath)
	if err != nil {
		t.Fatal(err)
	}
	cx, _ := measureMode(t, "xz", sample, blob)
	_, rl := measureMode(t, "lz4", sample, blob)
	// The adapter rescales its profile by live figures by up to 4× and
	// switches for a 10 % gain: leave a 1.5× margin on each side.
	lz4Before, lz4After := 20e6/8/rl, 1e6/8/rl // input bytes/s lz4 can send
	if cx*1.5 > lz4Before || cx < 1.5*lz4After {
		t.Skipf("one xz worker compresses %.1f MB/s here: the premise needs it between %.1f and %.1f MB/s (lz4 on the link after and before the drop, with margins)",
			cx/1e6, 1.5*lz4After/1e6, lz4Before/1.5/1e6)
	}
	link := NewLink(20e6)
	// The drop comes 700 ms after the first byte on the link, so at least
	// 0.7 s into the adapter's timeline (it starts before the first send)
	// however long the setup took on a loaded machine.
	var drop sync.Once
	rep, rec, err, rerr := e.run(t, SendConfig{AdaptInterval: time.Hour, Modes: []Mode{{Codec: CodecLZ4}, {Codec: CodecXZ}}, Workers: 1,
		BlobSize: blob, Logger: zap.NewNop()}, func(c net.Conn) net.Conn {
		return &onFirstWrite{Conn: link.Conn(c), f: func() {
			drop.Do(func() { time.AfterFunc(700*time.Millisecond, func() { link.SetRate(1e6) }) })
		}}
	})
	if err != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
	found := false
	for _, m := range rep.Modes {
		if m.Mode == "xz" && m.AtSec < 0.7 {
			t.Fatalf("mode timeline %+v: xz chosen before the drop, when lz4 fills the link faster", rep.Modes)
		}
		// Usually the kick of the bandwidth change; on a loaded machine
		// the profile can land after the drop, and the first decision
		// then already sees the slow link.
		if m.Mode == "xz" && m.AtSec > 0.7 && strings.Contains(m.Reason, "network") &&
			(strings.Contains(m.Reason, "bandwidth changed") || strings.Contains(m.Reason, "first profile")) {
			found = true
		}
	}
	if !found {
		t.Fatalf("mode timeline %+v: want a switch to xz after the drop, giving the rates", rep.Modes)
	}
	t.Logf("mode timeline %+v", rep.Modes)
}

// TestAdapterDecision drives the decision directly: fast link -> the cheap
// mode, then the acks slow down -> a kick and a switch to the dense mode.
func TestAdapterDecision(t *testing.T) {
	lz4, xzm := Mode{Codec: CodecLZ4}, Mode{Codec: CodecXZ}
	a := newAdapter([]Mode{lz4, xzm}, 2, time.Hour, zap.NewNop(), time.Now())
	a.profile = map[Mode]modeStats{lz4: {costNs: 1, ratio: 0.6}, xzm: {costNs: 500, ratio: 0.2}}
	t0 := time.Now()
	for i := 0; i <= 10; i++ { // 100 MB/s
		a.ack(t0.Add(time.Duration(i)*100*time.Millisecond), int64(i)*10e6)
	}
	a.decide("")
	if a.current() != lz4 {
		t.Fatalf("at 100 MB/s: %s, want lz4", a.current())
	}
	select {
	case <-a.kick:
	default:
	}
	base := int64(100e6)
	t1 := t0.Add(2 * time.Second)
	for i := 0; i <= 10; i++ { // 0.5 MB/s
		a.ack(t1.Add(time.Duration(i)*100*time.Millisecond), base+int64(i)*50e3)
	}
	select {
	case <-a.kick:
	default:
		t.Fatal("a bandwidth drop from 100 to 0.5 MB/s did not trigger a decision")
	}
	a.decide("")
	tl := a.timeline()
	last := tl[len(tl)-1]
	if a.current() != xzm || !strings.Contains(last.Reason, "bandwidth changed") {
		t.Fatalf("after the drop: %s (%q), want xz for a bandwidth change", a.current(), last.Reason)
	}
}

// TestAdapterHysteresis drives the decision function with fed profiles and
// bandwidths (no live windows, so predictions are the profile's):
//   - A is cheap (200 MB/s of compute on 2 workers) and light (ratio 0.4),
//     B dense (0.3) but compute-bound at 10 MB/s (2 cores / 160 ns a
//     byte, less the computeHeadroom of 1.25);
//   - at 3.3 MB/s B wins by 21 %, at 4.5 MB/s A wins by 12.5 %; the two
//     differ by 1.36×, under the 1.5× bandwidth kick.
//
// Flapping inputs (3.3, 4.5, 3.3, … per evaluation) switched every
// evaluation before the hysteresis; now at most once. A win held for two
// evaluations switches on the second; a bandwidth change switches at once
// once it has lasted bwConfirm (one evaluation that sees it sooner waits).
func TestAdapterHysteresis(t *testing.T) {
	A, B := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecZstd, Level: 3, Delta: true}
	a, clk := newTestAdapter(A, B)
	a.interval = time.Hour
	a.cur = A
	a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.4}, B: {costNs: 160, ratio: 0.3}}
	eval := func(bw float64, why string) Mode {
		a.bw = bw
		a.decide(why)
		return a.current()
	}
	if m := eval(4.5e6, ""); m != A {
		t.Fatalf("first decision at 4.5 MB/s: %s, want %s", m, A)
	}
	for i := range 10 {
		bw := 3.3e6
		if i%2 == 1 {
			bw = 4.5e6
		}
		eval(bw, "periodic")
	}
	if n := a.switches(); n > 1 {
		t.Fatalf("flapping inputs: %d switches %+v, want at most one", n, a.timeline())
	}
	a.cur, a.pendN = A, 0
	a.tl = a.tl[:1]
	// A clear win, held: pending on the first evaluation, switch on the second.
	if m := eval(3.3e6, "periodic"); m != A {
		t.Fatalf("first evaluation of B's win: switched to %s already", m)
	}
	if m := eval(3.3e6, "periodic"); m != B {
		t.Fatalf("second evaluation of B's win: %s, want %s", m, B)
	}
	tl := a.timeline()
	if n := a.switches(); n != 1 || !strings.Contains(tl[1].Reason, "2 evaluations in a row") {
		t.Fatalf("timeline %+v: want one switch saying it was confirmed", tl)
	}
	// A bandwidth change (3.3 -> 10 MB/s, 3×): A at once, on the kick or
	// the tick, when it has lasted a second; not on the first sight.
	if m := eval(10e6, "periodic"); m != B {
		t.Fatalf("a 3x bandwidth rise seen for the first time: %s, want %s until it lasts %s", m, B, bwConfirm)
	}
	clk.add(bwConfirm)
	if m := eval(10e6, "periodic"); m != A {
		t.Fatalf("after a 3x bandwidth rise that lasted %s: %s, want %s at once", bwConfirm, m, A)
	}
	tl = a.timeline()
	if !strings.Contains(tl[len(tl)-1].Reason, "bandwidth changed") {
		t.Fatalf("timeline %+v: want the bandwidth change as the reason", tl)
	}
	// And back down on a kick (10 -> 3.3 MB/s), again at once.
	a.bwOut = clk.t.Add(-bwConfirm) // the acks saw it a second ago
	if m := eval(3.3e6, ""); m != B {
		t.Fatalf("after a 3x bandwidth drop: %s, want %s at once", m, B)
	}
	// A win below the margin never switches, however long it lasts:
	// at 3.9 MB/s A scores 9.75 MB/s against B's 10 (2.6 % more).
	a.cur, a.pendN = A, 0
	a.bwDecided = 3.9e6
	n0 := a.switches()
	for range 5 {
		eval(3.9e6, "periodic")
	}
	if a.current() != A || a.switches() != n0 {
		t.Fatalf("a 2.6%% gain switched to %s: %+v", a.current(), a.timeline())
	}
}

// fakeClock is the adapter's clock in the decision tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTestAdapter(modes ...Mode) (*adapter, *fakeClock) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	a := newAdapter(modes, 2, 3*time.Second, zap.NewNop(), c.t)
	a.now, a.bwSpan = c.now, bwConfirm // a steady rate, as a.bw is set
	return a, c
}

// TestAdapterRulesOutDominated: a mode another beats on both axes (as dense
// or denser, at most 10 % more CPU) is ruled out from measurement: never
// chosen, not re-measured by the partial profiles, measured again by the
// full ones, and back in the running when new data makes it win an axis.
// Here zstd-3+xor is 4 % cheaper than zstd-3 but 11 % larger; on a link
// where compute decides, it would win on its raw score.
func TestAdapterRulesOutDominated(t *testing.T) {
	A, AX, X := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecZstd, Level: 3, Delta: true}, Mode{Codec: CodecXZ}
	a, _ := newTestAdapter(A, AX, X)
	a.cur = X
	a.mergeProfile(map[Mode]modeStats{A: {costNs: 10, ratio: 0.27}, AX: {costNs: 9.6, ratio: 0.30}, X: {costNs: 200, ratio: 0.25}})
	if by, out := a.ruled[AX]; !out || by != A {
		t.Fatalf("ruled out %v: want %s ruled out by %s", a.ruled, AX, A)
	}
	if len(a.ruled) != 1 {
		t.Fatalf("ruled out %v: only %s loses on both axes", a.ruled, AX)
	}
	a.bw = 1e9 // compute decides: AX's 2 cores / 9.6 ns beats A's / 10 ns
	a.decide("")
	if a.current() != A {
		t.Fatalf("chose %s (%+v), want %s: %s is ruled out", a.current(), a.timeline(), A, AX)
	}
	// The next profile (the second) is partial: AX is not measured.
	for _, m := range a.profileSet() {
		if m == AX {
			t.Fatalf("partial profile set %v measures the ruled-out %s", a.profileSet(), AX)
		}
	}
	for range fullProfileEvery - 1 {
		a.mergeProfile(map[Mode]modeStats{A: {costNs: 10, ratio: 0.27}, X: {costNs: 200, ratio: 0.25}})
	}
	full := false
	for _, m := range a.profileSet() {
		full = full || m == AX
	}
	if !full {
		t.Fatalf("profile %d (a full one) set %v: want every mode, %s too", a.profiles+1, a.profileSet(), AX)
	}
	// New data on which XOR helps: AX becomes the denser and comes back.
	a.mergeProfile(map[Mode]modeStats{AX: {costNs: 9.6, ratio: 0.10}})
	if _, out := a.ruled[AX]; out {
		t.Fatalf("%s (ratio now %.2f, denser than %s) still ruled out", AX, a.profile[AX].ratio, A)
	}
}

// TestAdapterJudgesCPUNotWall: a noisy neighbour makes the compress calls
// of the current mode take 40x their CPU time in wall time for three
// windows. zstd-3 is network-bound at 25 Mbit/s with a wide compute margin,
// zstd-1 lighter but larger: judged by wall time zstd-3 looked compute-bound
// and the adapter left it for zstd-1; judged by CPU time (and the share of
// a core smoothed over windows) it stays.
func TestAdapterJudgesCPUNotWall(t *testing.T) {
	A, L := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecZstd, Level: 1}
	a, clk := newTestAdapter(A, L)
	a.mergeProfile(map[Mode]modeStats{A: {costNs: 10, ratio: 0.27}, L: {costNs: 5, ratio: 0.30}})
	a.bw = 25e6 / 8
	a.decide("")
	if a.current() != A {
		t.Fatalf("first decision: %s, want %s", a.current(), A)
	}
	n0 := a.switches()
	for range 3 {
		clk.add(3 * time.Second)
		in := 4 << 20
		cpu := time.Duration(10 * in) // 10 ns a byte, as profiled
		for range 4 {
			a.observe(A, in/4, int(0.27*float64(in/4)), cpu/4, 40*cpu/4)
		}
		a.decide("periodic")
	}
	if a.current() != A || a.switches() != n0 {
		t.Fatalf("a slow neighbour moved the choice: %s %+v", a.current(), a.timeline())
	}
	if c := a.cores(); c >= 2 {
		t.Fatalf("cores %.2f: the share of a core the workers got should have dropped", c)
	}
}

// TestTimedCPU: timed reports the CPU time of the calling thread, not the
// wall time (a sleep costs none).
func TestTimedCPU(t *testing.T) {
	cpu, wall := timed(func() { time.Sleep(100 * time.Millisecond) })
	if wall < 100*time.Millisecond || cpu > 30*time.Millisecond {
		t.Fatalf("a 100 ms sleep: cpu %s wall %s, want ~0 CPU", cpu, wall)
	}
	x := uint64(1)
	cpu, wall = timed(func() {
		for i := 0; i < 50_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	})
	if cpu <= 0 || cpu > wall+5*time.Millisecond || x == 0 {
		t.Fatalf("a busy loop: cpu %s wall %s", cpu, wall)
	}
}

// TestAdapterSwitchCost: a switch must save more than it costs over the
// input that is left. B promises 21 % more than A (10 vs 8.25 MB/s); over
// 10 MB that is 0.2 s, less than the 0.5 s a switch costs: kept, even on a
// bandwidth change; over 100 MB it is 2.1 s: switched.
func TestAdapterSwitchCost(t *testing.T) {
	A, B := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecXZ}
	for _, tc := range []struct {
		rem  float64
		want Mode
	}{{10e6, A}, {100e6, B}} {
		a, _ := newTestAdapter(A, B)
		a.cur = A
		a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.4}, B: {costNs: 160, ratio: 0.3}}
		a.remaining = func() float64 { return tc.rem }
		a.bwDecided, a.bw = 10e6, 3.3e6 // a drop, a second old: decided at once
		a.bwOut = a.now().Add(-bwConfirm)
		a.decide("")
		if a.current() != tc.want {
			t.Fatalf("%.0f MB left: %s %+v, want %s", tc.rem/1e6, a.current(), a.timeline(), tc.want)
		}
		if tc.want == B && !strings.Contains(a.timeline()[1].Reason, "saves") {
			t.Fatalf("reason %q does not say what the switch saves", a.timeline()[1].Reason)
		}
	}
}

// TestAdapterDwell: after a switch the new mode is kept for minDwell
// intervals against periodic decisions, however confirmed; after that a
// confirmed win switches.
func TestAdapterDwell(t *testing.T) {
	A, B := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecXZ}
	a, clk := newTestAdapter(A, B)
	a.cur = A
	a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.4}, B: {costNs: 160, ratio: 0.3}}
	a.bwDecided, a.bw, a.bwOut = 10e6, 3.3e6, clk.t.Add(-bwConfirm)
	a.decide("")
	if a.current() != B {
		t.Fatalf("on the drop: %s, want %s", a.current(), B)
	}
	a.profile[B] = modeStats{costNs: 320, ratio: 0.3} // B now compute-bound at 5 MB/s, A 8.25
	for range 3 {
		clk.add(time.Second)
		a.decide("periodic")
	}
	if a.current() != B {
		t.Fatalf("%s 3 s after the switch (dwell %d x 3 s): %+v", a.current(), minDwell, a.timeline())
	}
	for range confirmEvals {
		clk.add(3 * time.Second)
		a.decide("periodic")
	}
	if a.current() != A {
		t.Fatalf("after the dwell, a confirmed 65 %% win: still %s %+v", a.current(), a.timeline())
	}
}

// TestAdapterReprofiles: the profile is measured again on a recent blob
// every reprofileEvery intervals, not on every blob: new data (random
// blocks after text) moves the modes' ratios.
func TestAdapterReprofiles(t *testing.T) {
	Z := Mode{Codec: CodecZstd, Level: 1}
	a, clk := newTestAdapter(Z, Mode{Codec: CodecLZ4})
	recsOf := func(text bool) []record {
		var rs []record
		rng := rngFor(7)
		for i := range 64 {
			d := textBlock(rngFor(uint64(i)))
			if !text {
				for j := range d {
					d[j] = byte(rng.Uint32())
				}
			}
			rs = append(rs, record{Kind: recData, Data: d})
		}
		return rs
	}
	a.maybeProfile(recsOf(true), nil)
	a.wg.Wait()
	r0 := a.profile[Z].ratio
	if a.profiles != 1 || r0 > 0.6 {
		t.Fatalf("first profile: %d profiles, zstd-1 ratio %.2f on text", a.profiles, r0)
	}
	clk.add(a.interval)
	a.maybeProfile(recsOf(false), nil) // not due yet
	a.wg.Wait()
	if a.profiles != 1 {
		t.Fatalf("profiled again %s after the first: want every %d intervals", a.interval, reprofileEvery)
	}
	clk.add(a.interval)
	a.maybeProfile(recsOf(false), nil)
	a.wg.Wait()
	if r1 := a.profile[Z].ratio; a.profiles != 2 || r1 < r0+0.2 {
		t.Fatalf("re-profile on random blocks: %d profiles, zstd-1 ratio %.2f -> %.2f", a.profiles, r0, r1)
	}
}

// TestAdapterFirstDecisionTakesBest: the initial mode is a placeholder, so
// the first decision takes the best mode even when it promises less than
// the switch margin (zstd-3 4 % over zstd-1 on a 25 Mbit/s link, as on the
// dataset); later, the same 4 % never moves the adapter.
func TestAdapterFirstDecisionTakesBest(t *testing.T) {
	L, A := Mode{Codec: CodecZstd, Level: 1}, Mode{Codec: CodecZstd, Level: 3}
	a, clk := newTestAdapter(L, A)
	a.profile = map[Mode]modeStats{L: {costNs: 5, ratio: 0.282}, A: {costNs: 10, ratio: 0.270}}
	a.bw = 25e6 / 8
	a.decide("")
	if a.current() != A {
		t.Fatalf("first decision: %s %+v, want %s (4 %% better)", a.current(), a.timeline(), A)
	}
	a.cur = L
	n0 := a.switches()
	for range 4 {
		clk.add(3 * time.Second)
		a.decide("periodic")
	}
	if a.current() != L || a.switches() != n0 {
		t.Fatalf("a 4 %% gain switched later: %s %+v", a.current(), a.timeline())
	}
}

// TestAdapterLearnsFromLive: the profile's sample says xz costs 60 ns a
// byte, enough to beat zstd-3 on a 25 Mbit/s link (13.0 against 11.6 MB/s);
// live it takes 200 (8 MB/s of compute on 2 cores). After running it once
// the adapter keeps that CPU correction for it, goes back to zstd-3 and
// stays there. (Scaling every mode by the current mode's live figures, as
// before, flipped back to xz on the same promise every time.) The ratio is
// not learned per mode (learn): TestAdapterRatioOnSameData.
func TestAdapterLearnsFromLive(t *testing.T) {
	A, X := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecXZ}
	a, clk := newTestAdapter(A, X)
	a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.27}, X: {costNs: 60, ratio: 0.24}}
	a.cur, a.bw, a.bwDecided = A, 25e6/8, 25e6/8
	window := func(m Mode, ratio, cost float64) {
		in := 4 << 20
		a.observe(m, in, int(ratio*float64(in)), time.Duration(cost*float64(in)), time.Duration(cost*float64(in)))
	}
	for range 40 {
		clk.add(3 * time.Second)
		if a.current() == A {
			window(A, 0.27, 10)
		} else {
			window(X, 0.24, 200)
		}
		a.decide("periodic")
	}
	if n := a.switches(); n > 2 || a.current() != A {
		t.Fatalf("%d switches, ends in %s: %+v; want at most one trip to %s and back", n, a.current(), a.timeline(), X)
	}
}

// TestAdapterRatioOnSameData: the windows' data moves the ratio far more
// than the modes differ — as on the dataset, one window compresses to 0.6x
// the samples' ratio, another to 1.6x. On a 100 Mbit/s link zstd-1 (compute
// 320 MB/s on 2 cores) is chosen and runs two easy windows; the link drops
// to 5 Mbit/s, every mode is network-bound, and xz, the denser, is taken.
// Then two hard windows, two easy ones, and so on: the adapter stays in xz,
// since a hard window is hard for every mode. (With the current mode judged
// on its last window and zstd-1 on its own easy windows, two hard windows
// made zstd-1 look twice as dense as xz — Session 10's 57 s in zstd-1 at
// 5 Mbit/s.)
func TestAdapterRatioOnSameData(t *testing.T) {
	L, X := Mode{Codec: CodecZstd, Level: 1}, Mode{Codec: CodecXZ}
	a, clk := newTestAdapter(L, X)
	a.profile = map[Mode]modeStats{L: {costNs: 5, ratio: 0.30}, X: {costNs: 100, ratio: 0.25}}
	window := func(k float64) {
		clk.add(3 * time.Second)
		m := a.current()
		in := 2 << 20
		cpu := time.Duration(a.profile[m].costNs * float64(in))
		a.observe(m, in, int(a.profile[m].ratio*k*float64(in)), cpu, cpu)
	}
	a.bw = 100e6 / 8
	a.decide("")
	for range 2 {
		window(0.6)
		a.decide("periodic")
	}
	if a.current() != L {
		t.Fatalf("at 100 Mbit/s: %s %+v, want %s", a.current(), a.timeline(), L)
	}
	a.bw, a.bwOut = 5e6/8, clk.t.Add(-bwConfirm)
	a.decide("")
	if a.current() != X {
		t.Fatalf("after a drop to 5 Mbit/s: %s %+v, want %s", a.current(), a.timeline(), X)
	}
	n0 := a.switches()
	for i := range 24 {
		k := 0.6
		if i%4 < 2 {
			k = 1.6
		}
		window(k)
		a.decide("periodic")
	}
	if a.current() != X || a.switches() != n0 {
		t.Fatalf("windows of hard and easy data: ends in %s after %d switches %+v; want %s throughout", a.current(), a.switches()-n0, a.timeline(), X)
	}
}

// TestAdapterDataFactor: what the windows teach about the data applies to
// every mode. On a 40 Mbit/s link zstd-1 (network 16.7 MB/s) is a little
// ahead of xz (compute 16 MB/s) by the profile; live, the blobs compress to
// twice the samples' ratio, so the link takes half the input of every mode
// and xz (10 MB/s) beats zstd-1 (8.3) by 20 %.
func TestAdapterDataFactor(t *testing.T) {
	L, X := Mode{Codec: CodecZstd, Level: 1}, Mode{Codec: CodecXZ}
	a, clk := newTestAdapter(L, X)
	a.profile = map[Mode]modeStats{L: {costNs: 10, ratio: 0.30}, X: {costNs: 100, ratio: 0.25}}
	a.bw = 40e6 / 8
	a.decide("")
	if a.current() != L {
		t.Fatalf("first decision: %s %+v, want %s", a.current(), a.timeline(), L)
	}
	for range 6 {
		clk.add(3 * time.Second)
		m := a.current()
		in := 4 << 20
		cpu := time.Duration(a.profile[m].costNs * float64(in))
		a.observe(m, in, int(2*a.profile[m].ratio*float64(in)), cpu, cpu)
		a.decide("periodic")
	}
	if a.current() != X || a.dataK < 1.9 {
		t.Fatalf("blobs twice the samples' ratio: %s, data factor %.2f %+v; want %s", a.current(), a.dataK, a.timeline(), X)
	}
}

// TestAdapterProfileStaleRebased: a ruled-out mode is measured again only
// by the full profiles; meanwhile the data got harder (zstd-3's samples
// 0.40 -> 0.80). On the full profile's sample zstd-2 is 5 % larger than
// zstd-3 (0.84 vs 0.80) and 5 % cheaper: it stays ruled out. (Its figure
// of the easy data blended with the new sample made it look 18 % denser
// than zstd-3 — 0.546 vs 0.669 — and it ruled zstd-3 out.)
func TestAdapterProfileStaleRebased(t *testing.T) {
	A, B := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecZstd, Level: 2}
	a, _ := newTestAdapter(A, B)
	a.cur = A
	a.mergeProfile(map[Mode]modeStats{A: {costNs: 10, ratio: 0.40}, B: {costNs: 9.5, ratio: 0.42}})
	if by, out := a.ruled[B]; !out || by != A {
		t.Fatalf("first profile: ruled out %v, want %s by %s", a.ruled, B, A)
	}
	for _, r := range []float64{0.60, 0.70, 0.80} { // partial profiles: B is left out
		a.mergeProfile(map[Mode]modeStats{A: {costNs: 10, ratio: r}})
	}
	a.mergeProfile(map[Mode]modeStats{A: {costNs: 10, ratio: 0.80}, B: {costNs: 9.5, ratio: 0.84}})
	pa, pb := a.profile[A], a.profile[B]
	if _, out := a.ruled[A]; out || pb.ratio < pa.ratio {
		t.Fatalf("full profile on harder data: %s %.3f, %s %.3f, ruled out %v; want %s still the denser and %s ruled out", A, pa.ratio, B, pb.ratio, a.ruled, A, B)
	}
	if by, out := a.ruled[B]; !out || by != A {
		t.Fatalf("ruled out %v, want %s by %s", a.ruled, B, A)
	}
}

// feedAcksDeciding feeds d of acks at rate (bytes/s), one every every, the
// writer busy, with the adapter's loop: a kick decides at once; every 3 s
// a periodic decision.
func feedAcksDeciding(a *adapter, clk *fakeClock, n *int64, d, every time.Duration, rate float64) {
	for end := clk.now().Add(d); clk.now().Before(end); {
		tick := clk.now().Sub(a.start) / (3 * time.Second)
		clk.add(every)
		a.sent(every, 1)
		*n += int64(rate * every.Seconds())
		a.ack(clk.now(), *n)
		select {
		case <-a.kick:
			a.decide("")
		default:
		}
		if clk.now().Sub(a.start)/(3*time.Second) > tick {
			a.decide("periodic")
		}
	}
}

// TestAdapterDropRelinks: 25 -> 5 Mbit/s, an ack every 100 ms. The 2 s
// of acks behind the estimate still say 6 Mbit/s when the drop is
// confirmed, 1.9 s after it; at 6 zstd-1 is the best mode (1.88 MB/s of
// input against xz's compute, 1.80), at 5 xz is (zstd-1 1.56). The adapter
// takes the new link's rate from the acks since the change began, chooses
// xz at once, and the mixed estimate is not held: periodic decisions after
// it keep xz with the link at 5 Mbit/s. (Before, the change was decided on
// the mixed 6 Mbit/s, held for 15 s: zstd-1 stayed.)
func TestAdapterDropRelinks(t *testing.T) {
	L, X := Mode{Codec: CodecZstd, Level: 1}, Mode{Codec: CodecXZ}
	a, clk := newTestAdapter(L, X)
	a.profile = map[Mode]modeStats{L: {costNs: 10, ratio: 0.40, decNs: 1}, X: {costNs: 890, ratio: 0.25, decNs: 1}}
	var n int64
	mbit := func(r float64) float64 { return r * 1e6 / 8 }
	const every = 100 * time.Millisecond
	feedAcksDeciding(a, clk, &n, 6*time.Second, every, mbit(25))
	if a.current() != L || a.bwDecided == 0 {
		t.Fatalf("at 25 Mbit/s: %s %+v, want %s", a.current(), a.timeline(), L)
	}
	drop := clk.now()
	feedAcksDeciding(a, clk, &n, 3*time.Second, every, mbit(5))
	tl := a.timeline()
	last := tl[len(tl)-1]
	if a.current() != X || !strings.Contains(last.Reason, "bandwidth changed") {
		t.Fatalf("3 s after a drop to 5 Mbit/s: %s %+v; want %s for the bandwidth change", a.current(), tl, X)
	}
	if at := a.start.Add(time.Duration(last.AtSec * float64(time.Second))).Sub(drop); at > 2*time.Second {
		t.Fatalf("switched %s after the drop, want within 2 s", at)
	}
	feedAcksDeciding(a, clk, &n, 12*time.Second, every, mbit(5))
	if got := a.link(clk.now()) * 8 / 1e6; a.current() != X || got > 5.2 {
		t.Fatalf("12 s later: %s, link %.2f Mbit/s %+v; want %s on a 5 Mbit/s link", a.current(), got, a.timeline(), X)
	}
}

// TestAdapterBandwidthChangeMargin: a confirmed bandwidth change re-chooses
// with a 3 % margin: after a drop to 5 Mbit/s every mode is network-bound
// and zstd-4, 5 % denser than zstd-3, is taken at once. A periodic decision
// still asks 10 %: the same 5 % does not move it back from zstd-3.
func TestAdapterBandwidthChangeMargin(t *testing.T) {
	A, D := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecZstd, Level: 4}
	a, clk := newTestAdapter(A, D)
	a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.27}, D: {costNs: 25, ratio: 0.257}}
	a.cur, a.bwDecided, a.bw, a.bwOut = A, 25e6/8, 5e6/8, clk.t.Add(-bwConfirm)
	a.decide("")
	if a.current() != D {
		t.Fatalf("on a confirmed drop: %s %+v, want %s (5 %% denser)", a.current(), a.timeline(), D)
	}
	a.cur = A
	n0 := a.switches()
	for range 4 {
		clk.add(3 * time.Second)
		a.decide("periodic")
	}
	if a.current() != A || a.switches() != n0 {
		t.Fatalf("periodic decisions took a 5 %% gain: %s %+v", a.current(), a.timeline())
	}
}

// TestAdapterComputeHeadroom: a mode predicted to just fill the link with
// its compute (xz: 2 cores at 160 ns a byte = 12.5 MB/s against a link
// that takes 12.4 MB/s of its input) is not taken over one with room to
// spare that is a little larger (zstd-3, network-bound at 11.6 MB/s):
// compute counts for 1.25 less.
func TestAdapterComputeHeadroom(t *testing.T) {
	A, X := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecXZ}
	a, _ := newTestAdapter(A, X)
	a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.27}, X: {costNs: 160, ratio: 0.252}}
	a.bw = 25e6 / 8
	a.decide("")
	if a.current() != A {
		t.Fatalf("chose %s %+v, want %s: %s would only just keep up", a.current(), a.timeline(), A, X)
	}
}

// TestAdapterFirstDecisionWaitsForSteadyRate: the first decision waits for
// a network rate measured over bwConfirm of acks; on the first half second
// (the pipeline filling, the writer idle) neither an ack nor the tick
// decides.
func TestAdapterFirstDecisionWaitsForSteadyRate(t *testing.T) {
	L, X := Mode{Codec: CodecLZ4}, Mode{Codec: CodecXZ}
	a := newAdapter([]Mode{L, X}, 2, time.Hour, zap.NewNop(), time.Now())
	a.profile = map[Mode]modeStats{L: {costNs: 1, ratio: 0.6}, X: {costNs: 500, ratio: 0.2}}
	t0 := time.Now()
	for i := 0; i <= 5; i++ { // 0.5 s of acks at 0.5 MB/s
		a.ack(t0.Add(time.Duration(i)*100*time.Millisecond), int64(i)*50e3)
	}
	select {
	case <-a.kick:
		t.Fatal("half a second of acks kicked the first decision")
	default:
	}
	a.decide("periodic")
	if a.bwDecided != 0 || a.current() != L {
		t.Fatalf("decided on half a second of acks: %s at %.2f MB/s", a.current(), a.bwDecided/1e6)
	}
	for i := 6; i <= 10; i++ {
		a.ack(t0.Add(time.Duration(i)*100*time.Millisecond), int64(i)*50e3)
	}
	select {
	case <-a.kick:
	default:
		t.Fatal("a second of acks did not kick the first decision")
	}
	a.decide("")
	if a.current() != X {
		t.Fatalf("first decision at 0.5 MB/s: %s, want %s", a.current(), X)
	}
}

// TestAdapterXORMustPay: a +xor mode whose ratio ties with its plain twin's
// (blocks over a zero base: the XOR changes nothing) is ruled out even when
// its CPU sample came out cheaper; one that is 5 % denser stays.
func TestAdapterXORMustPay(t *testing.T) {
	Z, ZX, Y, YX := Mode{Codec: CodecZstd, Level: 2}, Mode{Codec: CodecZstd, Level: 2, Delta: true}, Mode{Codec: CodecGzip, Level: 6}, Mode{Codec: CodecGzip, Level: 6, Delta: true}
	a, _ := newTestAdapter(Z, ZX, Y, YX)
	a.mergeProfile(map[Mode]modeStats{Z: {costNs: 24, ratio: 0.522}, ZX: {costNs: 20, ratio: 0.521},
		Y: {costNs: 14, ratio: 0.60}, YX: {costNs: 16, ratio: 0.57}})
	if by, out := a.ruled[ZX]; !out || by != Z {
		t.Fatalf("ruled out %v: want %s ruled out by %s", a.ruled, ZX, Z)
	}
	if _, out := a.ruled[Z]; out {
		t.Fatalf("ruled out %v: %s ruled out by its XOR twin", a.ruled, Z)
	}
	if _, out := a.ruled[YX]; out {
		t.Fatalf("ruled out %v: %s is 5 %% denser than %s", a.ruled, YX, Y)
	}
}

// onFirstWrite calls f before its first Write.
type onFirstWrite struct {
	net.Conn
	once sync.Once
	f    func()
}

func (c *onFirstWrite) Write(p []byte) (int, error) {
	c.once.Do(c.f)
	return c.Conn.Write(p)
}

// TestAdapterRulesOutOnOneSample: ruling out compares only modes the
// latest profile measured, on the same sample. On the dataset the ratio of
// one blob is 0.11 and of the next 0.15 while the modes differ by a few
// per cent: a zstd-2 figure left from the first blob (zstd-2 was ruled out,
// so the partial profile skipped it) ruled out the xz just measured on the
// second, and right after the bandwidth drop the adapter left xz for zstd-2.
// Here zstd-2 keeps its verdict (ruled out by zstd-3 on the first sample),
// rules nothing out, and xz, the densest on both samples, is chosen on a
// slow link.
func TestAdapterRulesOutOnOneSample(t *testing.T) {
	Z2, Z3, X := Mode{Codec: CodecZstd, Level: 2}, Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecXZ}
	a, _ := newTestAdapter(Z2, Z3, X)
	a.cur = Z3
	a.mergeProfile(map[Mode]modeStats{Z2: {costNs: 15, ratio: 0.115}, Z3: {costNs: 10, ratio: 0.110}, X: {costNs: 100, ratio: 0.105}})
	if by, out := a.ruled[Z2]; !out || by != Z3 || len(a.ruled) != 1 {
		t.Fatalf("first profile: ruled out %v, want only %s (by %s)", a.ruled, Z2, Z3)
	}
	for _, m := range a.profileSet() {
		if m == Z2 {
			t.Fatalf("partial profile set %v measures the ruled-out %s", a.profileSet(), Z2)
		}
	}
	// The next blob compresses worse in every mode; xz is still the densest.
	a.mergeProfile(map[Mode]modeStats{Z3: {costNs: 10, ratio: 0.160}, X: {costNs: 100, ratio: 0.150}})
	if _, out := a.ruled[X]; out {
		t.Fatalf("second profile: %s ruled out (%v) by a figure of another sample", X, a.ruled)
	}
	if by, out := a.ruled[Z2]; !out || by != Z3 {
		t.Fatalf("second profile: ruled out %v, want %s still out (not measured since)", a.ruled, Z2)
	}
	a.bw = 5e6 / 8
	a.decide("")
	if a.current() != X {
		t.Fatalf("at 5 Mbit/s: %s %+v, want %s", a.current(), a.timeline(), X)
	}
}

// TestAdapterComputeBoundLive: a mode whose compress calls promise plenty
// of compute but whose pipeline leaves the writer waiting is compute-bound
// live, and the adapter leaves it for a lighter mode that fills the link.
// xz (100 ns a byte on 2 cores: 16 MB/s after the headroom) against zstd-3
// (10 ns) on a 5 Mbit/s link: by the samples xz fills the link (2.5 MB/s
// of its input) and wins. Three cases of 3 s windows of xz with its calls
// at their profiled CPU cost:
//   - the pipeline gives 0.5 MB/s and the writer writes 20 % of the time:
//     compute-bound, to zstd-3 (after the dwell and two evaluations);
//   - the pipeline gives 2.5 MB/s and the writer writes 97 %: xz stays;
//   - the same, the writer's time in writes blocked on the link, each
//     from 1 s before a window's end to 2 s into the next: busy, xz stays
//     (counted when a write returns, 2 s of each 3 s window looked idle).
func TestAdapterComputeBoundLive(t *testing.T) {
	Z3, X := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecXZ}
	for _, tc := range []struct {
		name   string
		in     float64       // input bytes a window
		busy   time.Duration // the writer's time in each window
		across bool          // in one write spanning the window
		want   Mode
	}{
		{"writer idle", 1.5e6, 600 * time.Millisecond, false, Z3},
		{"writer busy", 7.5e6, 2900 * time.Millisecond, false, X},
		{"one write across windows", 7.5e6, 0, true, X},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, clk := newTestAdapter(Z3, X)
			a.profile = map[Mode]modeStats{Z3: {costNs: 10, ratio: 0.27}, X: {costNs: 100, ratio: 0.25}}
			a.bw = 5e6 / 8
			a.decide("")
			if a.current() != X {
				t.Fatalf("first decision: %s %+v, want %s", a.current(), a.timeline(), X)
			}
			if tc.across {
				a.writing() // returns 2 s into the next window
			}
			for range 5 {
				if tc.across {
					clk.add(2 * time.Second)
					a.sent(3*time.Second, 1)
					a.writing() // in progress when the window ends
					clk.add(time.Second)
				} else if tc.busy > 0 {
					a.writing()
					clk.add(tc.busy)
					a.sent(tc.busy, 1)
				}
				if !tc.across {
					clk.add(3*time.Second - tc.busy)
				}
				cpu := time.Duration(100 * tc.in)
				a.observe(a.current(), int(tc.in), int(0.25*tc.in), cpu, cpu)
				a.decide("periodic")
			}
			if a.current() != tc.want {
				t.Fatalf("%s: ends in %s %+v, want %s", tc.name, a.current(), a.timeline(), tc.want)
			}
			if tl := a.timeline(); tc.want == Z3 && !strings.Contains(tl[len(tl)-1].Reason, "compute-bound live") {
				t.Fatalf("switch reason %q does not say the mode was compute-bound", tl[len(tl)-1].Reason)
			}
		})
	}
}

// TestDefaultModesPlain: the adapter's default modes are the plain codecs;
// the +xor variants are in AllModes only, and still parse.
func TestDefaultModesPlain(t *testing.T) {
	def := DefaultModes()
	for _, m := range def {
		if m.Delta {
			t.Fatalf("default modes %v include %s", def, m)
		}
	}
	all := AllModes()
	if len(all) != 2*len(def) || !all[len(def)].Delta {
		t.Fatalf("all modes %v: want the defaults, then each with +xor", all)
	}
	if m, err := ParseMode("zstd-3+xor"); err != nil || !m.Delta {
		t.Fatalf("ParseMode(zstd-3+xor) = %v, %v", m, err)
	}
}

// TestAdapterProfilesDecoding: the profile measures what decoding each
// mode's output costs the receiver, on the same sample: both measured
// (above the 0.05 ns floor an unmeasured mode gets), xz's more than zstd's
// (10-20x on a free core; one thread-CPU sample of 256 KiB on a loaded
// machine once gave zstd 8.8 ns and xz 21.9, so no larger ratio is asked).
func TestAdapterProfilesDecoding(t *testing.T) {
	Z, X := Mode{Codec: CodecZstd, Level: 1}, Mode{Codec: CodecXZ}
	a, _ := newTestAdapter(Z, X)
	var rs []record
	for i := range 64 {
		rs = append(rs, record{Kind: recData, Data: textBlock(rngFor(uint64(i)))})
	}
	a.maybeProfile(rs, nil)
	a.wg.Wait()
	z, x := a.profile[Z], a.profile[X]
	t.Logf("decode ns/byte: zstd-1 %.2f, xz %.2f", z.decNs, x.decNs)
	if z.decNs <= 0.05 || x.decNs <= z.decNs {
		t.Fatalf("decode cost zstd-1 %.2f, xz %.2f ns/byte: want both measured, xz's more than zstd's", z.decNs, x.decNs)
	}
}

// TestAdapterReceiverBound: a mode the receiver cannot decode fast enough
// is not chosen for its density. On a 25 Mbit/s link xz (ratio 0.25: 12.5
// MB/s of input through the link, 16 MB/s of compute on 2 cores) beats
// zstd-3 (0.27: 11.6 MB/s) — unless decoding it takes 80 ns a byte on the
// receiver's one core (10 MB/s after the headroom). As on the dataset
// under load, where xz's acks came at 18–19 Mbit/s of a 25 Mbit/s link.
func TestAdapterReceiverBound(t *testing.T) {
	A, X := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecXZ}
	for _, tc := range []struct {
		xzDec float64
		want  Mode
	}{{80, A}, {20, X}} {
		a, _ := newTestAdapter(A, X)
		a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.27, decNs: 3}, X: {costNs: 100, ratio: 0.25, decNs: tc.xzDec}}
		a.bw = 25e6 / 8
		a.decide("")
		if a.current() != tc.want {
			t.Fatalf("xz decoding at %.0f ns/byte: chose %s %+v, want %s", tc.xzDec, a.current(), a.timeline(), tc.want)
		}
	}
}

// feedAcks feeds d of acks every 100 ms at rate (bytes/s), the writer busy
// for the share busy of each step.
func feedAcks(a *adapter, clk *fakeClock, n *int64, d time.Duration, rate, busy float64) {
	for step := time.Duration(0); step < d; step += 100 * time.Millisecond {
		clk.add(100 * time.Millisecond)
		a.sent(time.Duration(busy*float64(100*time.Millisecond)), 1)
		*n += int64(rate / 10)
		a.ack(clk.now(), *n)
	}
}

// TestAdapterHoldsBusyLinkRate: the link's rate is the highest estimate
// of the last 15 s measured while the writer was busy. A dip of busy
// windows (the receiver slowed the acks: 25 -> 19 Mbit/s) does not lower
// it, so the adapter does not move to the dense mode that caused it; an
// idle window's extrapolation (20 Mbit/s of acks with the writer busy half
// the time: ~30) does not raise it; a confirmed change (25 -> 5) replaces
// it at once.
func TestAdapterHoldsBusyLinkRate(t *testing.T) {
	L, X := Mode{Codec: CodecZstd, Level: 1}, Mode{Codec: CodecXZ}
	a, clk := newTestAdapter(L, X)
	// At 25 Mbit/s zstd-1 (network 10.4 MB/s) beats xz (compute 8.9); at
	// 19 Mbit/s xz (8.9) beats zstd-1 (7.9) by 12 %.
	a.profile = map[Mode]modeStats{L: {costNs: 10, ratio: 0.30, decNs: 1}, X: {costNs: 180, ratio: 0.25, decNs: 1}}
	var n int64
	mbit := func(r float64) float64 { return r * 1e6 / 8 }
	feedAcks(a, clk, &n, 2*time.Second, mbit(25), 1)
	a.decide("")
	if a.current() != L {
		t.Fatalf("first decision at 25 Mbit/s: %s %+v, want %s", a.current(), a.timeline(), L)
	}
	for range 4 { // 12 s of busy windows at 19 Mbit/s
		feedAcks(a, clk, &n, 3*time.Second, mbit(19), 1)
		a.decide("periodic")
	}
	if got := a.link(clk.now()) * 8 / 1e6; a.current() != L || got < 24 {
		t.Fatalf("after a dip to 19 Mbit/s: link %.1f Mbit/s, mode %s %+v; want 25 held and %s", got, a.current(), a.timeline(), L)
	}
	feedAcks(a, clk, &n, 2*time.Second, mbit(20), 0.5)
	if got := a.link(clk.now()) * 8 / 1e6; a.bw*8/1e6 < 27 || got > 26 {
		t.Fatalf("an idle window: estimate %.1f, link %.1f Mbit/s; want the extrapolation (~30) not held (25)", a.bw*8/1e6, got)
	}
	feedAcks(a, clk, &n, 5*time.Second, mbit(5), 1)
	a.decide("")
	if got := a.link(clk.now()) * 8 / 1e6; got > 6 {
		t.Fatalf("after a confirmed drop to 5 Mbit/s the link is %.1f Mbit/s %+v", got, a.timeline())
	}
}
