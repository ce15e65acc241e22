package handoffd

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// sinkReceiver answers a sender like a receiver that applies nothing: it
// reads every frame, acks every blob and commits at the end, so that a
// benchmark measures the sender's own work.
func sinkReceiver(c io.ReadWriter) error {
	br, bw := bufio.NewReaderSize(c, 64<<10), bufio.NewWriter(c)
	var buf []byte
	var n, blobs int64
	for {
		typ, p, err := readFrame(br, buf)
		if err != nil {
			return err
		}
		buf = p
		n += int64(len(p)) + 5
		switch typ {
		case frameHello:
			writeJSON(bw, frameReady, result{OK: true})
		case frameBlob:
			blobs++
			var a [16]byte
			binary.BigEndian.PutUint64(a[:], uint64(n))
			binary.BigEndian.PutUint64(a[8:], uint64(blobs))
			writeFrame(bw, frameAck, a[:])
		case frameEnd:
			writeJSON(bw, frameResult, result{OK: true, Dir: "sink"})
		case frameGo:
			return bw.Flush()
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScanNone: the lightest mode's input rate — a 128 MiB image, a
// quarter of its blocks changed (new text), the rest as in the base, sent
// in mode none to a receiver that applies nothing. It reports the image
// bytes per CPU second of the whole process (mb/cpu-s), the figure a loaded
// machine does not distort, beside the usual wall-clock rate.
func BenchmarkScanNone(b *testing.B) {
	const blocks = 32768 // 128 MiB
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	base := make([]byte, blocks*BlockSize)
	for i := 0; i < len(base); i += 8 {
		binary.LittleEndian.PutUint64(base[i:], rng.Uint64())
	}
	cur := append([]byte(nil), base...)
	for blk := 0; blk < blocks; blk++ {
		if rng.IntN(4) == 0 {
			copy(cur[blk*BlockSize:], textBlock(rng))
		}
	}
	bp, cp := filepath.Join(dir, "base.img"), filepath.Join(dir, "cur.img")
	os.WriteFile(bp, base, 0o644)
	os.WriteFile(cp, cur, 0o644)
	cache, err := OpenBaseCache(filepath.Join(dir, "cache"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := cache.Add(bp, "")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(cur)))
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		a, z := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- sinkReceiver(z) }()
		_, err := Send(context.Background(), a, &Handoff{Images: []Image{{Name: "disk", Base: m.ID, Path: cp}}},
			SendConfig{Cache: cache, Mode: "none", Logger: zap.NewNop()})
		a.Close()
		<-done
		z.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - c0
	b.ReportMetric(float64(len(cur))*float64(b.N)/1e6/cpu.Seconds(), "mb/cpu-s")
}

// TestScanRevertedBlock: the scan's fast path skips hashing a block equal to
// the base block the destination holds at its offset; a block that was sent
// in round 1 and then returned to the base's content in round 2 is not in
// that case (the destination holds the sent block) and must be sent again —
// the VM vector's second round does exactly that (block 1: zero, then base
// block 1), and the receiver checks every image digest.
func TestScanRevertedBlock(t *testing.T) {
	v := recordVector(t, "revert", "none", true)
	var kinds []byte
	for _, f := range v.Frames {
		for _, r := range f.Recs {
			if r.Block == 1 {
				kinds = append(kinds, r.Kind)
			}
		}
	}
	if len(kinds) != 2 || kinds[0] != recZero || kinds[1] != recBase {
		t.Fatalf("block 1 sent as kinds %v, want zero in round 1 then base in round 2", kinds)
	}
}
