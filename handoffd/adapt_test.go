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
	var err error
	if e.src, err = OpenBaseCache(filepath.Join(e.dir, "src-cache")); err != nil {
		t.Fatal(err)
	}
	if e.dst, err = OpenBaseCache(filepath.Join(e.dir, "dst-cache")); err != nil {
		t.Fatal(err)
	}
	m, err := e.src.Add(e.basePath, "")
	if err != nil {
		t.Fatal(err)
	}
	e.dst.Add(e.basePath, "")
	e.baseID = m.ID
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

// TestAdaptSlowLinkPicksDenserMode: on a slow link the adapter leaves the
// initial zstd-1 for a mode that compresses better, and says why.
func TestAdaptSlowLinkPicksDenserMode(t *testing.T) {
	e := newTextEnv(t, 3000)
	link := NewLink(4e6)
	rep, rec, err, rerr := e.run(t, SendConfig{AdaptInterval: 500 * time.Millisecond, BlobSize: 256 << 10, Logger: zaptest.NewLogger(t)},
		func(c net.Conn) net.Conn { return link.Conn(c) })
	if err != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
	if len(rep.Modes) < 2 {
		t.Fatalf("mode timeline %+v: want a switch away from the initial mode on a 4 Mbit/s link", rep.Modes)
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
// the adapter leaves lz4 for xz at once, naming the bandwidth change (the
// periodic decision is off). With one worker xz's compute rate on this text
// (a few MB/s) is below lz4's network rate before the drop and far above it
// after.
func TestAdaptBandwidthChange(t *testing.T) {
	e := newTextEnv(t, 4000)
	link := NewLink(20e6)
	go func() {
		time.Sleep(700 * time.Millisecond)
		link.SetRate(1e6)
	}()
	rep, rec, err, rerr := e.run(t, SendConfig{AdaptInterval: time.Hour, Modes: []Mode{{Codec: CodecLZ4}, {Codec: CodecXZ}}, Workers: 1,
		BlobSize: 256 << 10, Logger: zap.NewNop()}, func(c net.Conn) net.Conn { return link.Conn(c) })
	if err != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
	if len(rep.Modes) > 1 && rep.Modes[1].Mode == "xz" && rep.Modes[1].AtSec < 0.7 {
		// A machine whose single xz worker outruns lz4 over 20 Mbit/s picks xz
		// from its first profile, before the drop: right, but the drop then
		// has nothing to change. TestAdapterDecision drives that path
		// deterministically.
		t.Skipf("xz chosen by the first profile before the drop (%s): this machine is too fast for the 20 Mbit/s setting", rep.Modes[1].Reason)
	}
	found := false
	for _, m := range rep.Modes {
		if strings.Contains(m.Reason, "bandwidth changed") && m.Mode == "xz" && m.AtSec > 0.7 {
			found = true
		}
	}
	if !found {
		t.Fatalf("mode timeline %+v: want a switch to xz after the drop naming the bandwidth change", rep.Modes)
	}
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
