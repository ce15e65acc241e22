package handoffd

import (
	"net"
	"os"
	"path/filepath"
	"strings"
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
	go func() {
		time.Sleep(700 * time.Millisecond)
		link.SetRate(1e6)
	}()
	rep, rec, err, rerr := e.run(t, SendConfig{AdaptInterval: time.Hour, Modes: []Mode{{Codec: CodecLZ4}, {Codec: CodecXZ}}, Workers: 1,
		BlobSize: blob, Logger: zap.NewNop()}, func(c net.Conn) net.Conn { return link.Conn(c) })
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
//     B dense (0.3) but compute-bound at 10 MB/s;
//   - at 3.3 MB/s B wins by 21 %, at 4.5 MB/s A wins by 12.5 %; the two
//     differ by 1.36×, under the 1.5× bandwidth kick.
//
// Flapping inputs (3.3, 4.5, 3.3, … per evaluation) switched every
// evaluation before the hysteresis; now at most once. A win held for two
// evaluations switches on the second; a bandwidth change switches at once.
func TestAdapterHysteresis(t *testing.T) {
	A, B := Mode{Codec: CodecZstd, Level: 3}, Mode{Codec: CodecZstd, Level: 3, Delta: true}
	a := newAdapter([]Mode{A, B}, 2, time.Hour, zap.NewNop(), time.Now())
	a.cur = A
	a.profile = map[Mode]modeStats{A: {costNs: 10, ratio: 0.4}, B: {costNs: 200, ratio: 0.3}}
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
	// A bandwidth change (3.3 -> 10 MB/s, 3×): A at once, on the kick or the tick.
	if m := eval(10e6, "periodic"); m != A {
		t.Fatalf("after a 3x bandwidth rise: %s, want %s at once", m, A)
	}
	tl = a.timeline()
	if !strings.Contains(tl[len(tl)-1].Reason, "bandwidth changed") {
		t.Fatalf("timeline %+v: want the bandwidth change as the reason", tl)
	}
	// And back down on a kick (10 -> 3.3 MB/s), again at once.
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
