package handoffd

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func rngFor(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 2)) }

// textBlock is compressible, varied content: words from a small vocabulary.
func textBlock(rng *rand.Rand) []byte {
	words := []string{"kernel", "page", "router", "capsule", "name", "the", "of", "handoff", "0x7f3a", "\n", "cloudlet", "int", "return", "{", "}"}
	var b bytes.Buffer
	for b.Len() < BlockSize {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:BlockSize]
}

// makePair writes a base image and a current image derived from it: some
// blocks untouched, some edited slightly (XOR-friendly), some zeroed, some
// copies of other base blocks, some new blocks repeated, new random blocks,
// and growth beyond the base. It returns the paths.
func makePair(t testing.TB, dir string, baseBlocks, extra int, seed uint64) (string, string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	base := make([]byte, baseBlocks*BlockSize)
	for i := 0; i < baseBlocks; i++ {
		switch i % 5 {
		case 0:
			// zero block
		case 1, 2, 3:
			copy(base[i*BlockSize:], textBlock(rng))
		case 4:
			for j := i * BlockSize; j < (i+1)*BlockSize; j++ {
				base[j] = byte(rng.Uint32())
			}
		}
	}
	cur := append([]byte(nil), base...)
	cur = append(cur, make([]byte, extra*BlockSize-100)...) // grown, ragged end
	repeated := textBlock(rng)
	for i := 0; i < baseBlocks+extra-1; i++ {
		off := i * BlockSize
		switch rng.IntN(10) {
		case 0: // small edit
			for k := 0; k < 20; k++ {
				cur[off+rng.IntN(BlockSize)] ^= byte(1 + rng.IntN(255))
			}
		case 1: // copy of another base block
			j := rng.IntN(baseBlocks)
			copy(cur[off:off+BlockSize], base[j*BlockSize:])
		case 2: // zeroed
			clear(cur[off : off+BlockSize])
		case 3: // a repeated new block
			copy(cur[off:off+BlockSize], repeated)
		case 4: // new text
			copy(cur[off:off+BlockSize], textBlock(rng))
		case 5: // new random
			for j := off; j < off+BlockSize; j++ {
				cur[j] = byte(rng.Uint32())
			}
		}
	}
	bp, cp := filepath.Join(dir, "base.img"), filepath.Join(dir, "cur.img")
	if err := os.WriteFile(bp, base, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, cur, 0o644); err != nil {
		t.Fatal(err)
	}
	return bp, cp
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type pairEnv struct {
	dir, basePath, curPath string
	src, dst               *BaseCache
	baseID                 string
}

func newPairEnv(t testing.TB, baseBlocks, extra int) *pairEnv {
	t.Helper()
	e := &pairEnv{dir: t.TempDir()}
	e.basePath, e.curPath = makePair(t, e.dir, baseBlocks, extra, 7)
	e.openCaches(t)
	return e
}

// openCaches opens the source's and the destination's base caches under
// e.dir and adds the base image to both.
func (e *pairEnv) openCaches(t testing.TB) {
	t.Helper()
	var err error
	if e.src, err = OpenBaseCache(filepath.Join(e.dir, "src-cache")); err != nil {
		t.Fatal(err)
	}
	if e.dst, err = OpenBaseCache(filepath.Join(e.dir, "dst-cache")); err != nil {
		t.Fatal(err)
	}
	m, err := e.src.Add(e.basePath, "test base")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dst.Add(e.basePath, "test base"); err != nil {
		t.Fatal(err)
	}
	e.baseID = m.ID
}

type sendResult struct {
	rep *Report
	err error
}

func (e *pairEnv) run(t testing.TB, cfg SendConfig, wrap func(net.Conn) net.Conn) (*Report, *Received, error, error) {
	t.Helper()
	a, b := tcpPair(t)
	if wrap != nil {
		a = wrap(a)
	}
	cfg.Cache = e.src
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch := make(chan sendResult, 1)
	go func() {
		rep, err := Send(ctx, a, &Handoff{Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}}, cfg)
		ch <- sendResult{rep, err}
	}()
	rec, rerr := Receive(ctx, b, ReceiveConfig{Cache: e.dst, Dir: filepath.Join(e.dir, "out"), Logger: cfg.Logger})
	sr := <-ch
	return sr.rep, rec, sr.err, rerr
}

func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		n := 0
		for n < len(x) && n < len(y) && x[n] == y[n] {
			n++
		}
		t.Fatalf("%s and %s differ (sizes %d, %d; first difference at byte %d)", a, b, len(x), len(y), n)
	}
}

// TestPairHandoffEveryMode hands an image pair off in every fixed mode and
// checks the destination's image is the current image, byte for byte, and
// that each kind of block was recognised.
func TestPairHandoffEveryMode(t *testing.T) {
	e := newPairEnv(t, 700, 150)
	for _, m := range AllModes() {
		t.Run(m.String(), func(t *testing.T) {
			rep, rec, err, rerr := e.run(t, SendConfig{Mode: m.String(), BlobSize: 256 << 10}, nil)
			if err != nil || rerr != nil {
				t.Fatalf("send: %v; receive: %v", err, rerr)
			}
			sameFile(t, e.curPath, rec.Images["disk"])
			if rep.Blocks.Zero == 0 || rep.Blocks.Base == 0 || rep.Blocks.Dup == 0 || rep.Blocks.Data == 0 {
				t.Errorf("block kinds %+v: want every kind seen", rep.Blocks)
			}
			if m.Codec != CodecNone && rep.WireBytes >= rep.UniqueBytes {
				t.Errorf("%s: %d bytes on the wire for %d unique bytes", m, rep.WireBytes, rep.UniqueBytes)
			}
			if rec.Dir != rep.Dest {
				t.Errorf("report names %q, receiver committed %q", rep.Dest, rec.Dir)
			}
		})
	}
}

// TestDedupTable checks the one table: the counts of zero, base, dup and data
// blocks are exactly what a direct comparison of the two files says.
func TestDedupTable(t *testing.T) {
	e := newPairEnv(t, 800, 100)
	rep, rec, err, rerr := e.run(t, SendConfig{Mode: "lz4"}, nil)
	if err != nil || rerr != nil {
		t.Fatalf("send: %v; receive: %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
	_, bh, _ := hashPath(e.basePath)
	_, ch, _ := hashPath(e.curPath)
	inBase := map[Hash]bool{}
	for _, h := range bh {
		inBase[h] = true
	}
	sent := map[Hash]bool{}
	var want struct{ Zero, Base, Dup, Data int64 }
	for i, h := range ch {
		if (i < len(bh) && bh[i] == h) || (i >= len(bh) && h == zeroHash) {
			continue // the destination holds it already (beyond the base: zeros)
		}
		switch {
		case h == zeroHash:
			want.Zero++
		case inBase[h]:
			want.Base++
		case sent[h]:
			want.Dup++
		default:
			sent[h] = true
			want.Data++
		}
	}
	if rep.Blocks != want {
		t.Fatalf("blocks %+v, want %+v", rep.Blocks, want)
	}
}

// TestSequentialStages: with Sequential the send stage starts only after
// the scan has ended (the benchmark's baseline for pipelining); pipelined,
// 16 MiB of new random blocks cannot all sit in the bounded queues, so the
// writer must be sending before the scan ends. Both rebuild the same image.
func TestSequentialStages(t *testing.T) {
	e := &pairEnv{dir: t.TempDir()}
	rng := rngFor(17)
	cur := make([]byte, 4096*BlockSize)
	for i := range cur {
		cur[i] = byte(rng.Uint32())
	}
	e.basePath, e.curPath = filepath.Join(e.dir, "base.img"), filepath.Join(e.dir, "cur.img")
	os.WriteFile(e.basePath, make([]byte, 64*BlockSize), 0o644)
	os.WriteFile(e.curPath, cur, 0o644)
	e.openCaches(t)
	for _, seq := range []bool{false, true} {
		os.RemoveAll(filepath.Join(e.dir, "out"))
		rep, rec, err, rerr := e.run(t, SendConfig{Mode: "none", Sequential: seq, BlobSize: 256 << 10}, nil)
		if err != nil || rerr != nil {
			t.Fatalf("sequential %v: send %v, receive %v", seq, err, rerr)
		}
		sameFile(t, e.curPath, rec.Images["disk"])
		scan, dedup, comp, send := rep.Stages[0], rep.Stages[1], rep.Stages[2], rep.Stages[3]
		t.Logf("sequential %v: scan %.3f-%.3f dedup %.3f-%.3f compress %.3f-%.3f send %.3f-%.3f", seq,
			scan.FirstSec, scan.LastSec, dedup.FirstSec, dedup.LastSec, comp.FirstSec, comp.LastSec, send.FirstSec, send.LastSec)
		if seq && (dedup.FirstSec < scan.LastSec || comp.FirstSec < dedup.LastSec || send.FirstSec < comp.LastSec) {
			t.Fatalf("sequential stages overlap: %+v", rep.Stages)
		}
		if !seq && send.FirstSec >= scan.LastSec {
			t.Fatalf("pipelined: the first send (%.3fs) came after the scan ended (%.3fs)", send.FirstSec, scan.LastSec)
		}
	}
}

// TestScanKeepsChunksTogether: the scan randomises the order of its 1 MiB
// chunks, but a chunk's changed blocks reach the dedup stage together and
// in image order, whichever of the two scan workers read it: a file's
// blocks stay neighbours in a blob (on the dataset, blocks shuffled within
// their chunk and interleaved with the other worker's compressed 4 %
// larger). Blobs are compressed in parallel and may leave out of order, so
// the order is checked within each blob.
func TestScanKeepsChunksTogether(t *testing.T) {
	// 200 blocks of each of 16 chunks changed: more than the queues hold,
	// behind a link slower than the scan, so that the queues between the
	// stages fill and the two scan workers wait on the same full queue, as
	// on a real link (with room in the queue a chunk went in whole anyway).
	e := &pairEnv{dir: t.TempDir()}
	e.basePath, e.curPath = filepath.Join(e.dir, "base.img"), filepath.Join(e.dir, "cur.img")
	cur := make([]byte, 16*256*BlockSize)
	rng := rngFor(3)
	for i := range cur {
		cur[i] = byte(rng.Uint32())
	}
	base := make([]byte, len(cur))
	for c := 0; c < 16; c++ { // the last 56 blocks of each chunk unchanged: chunks end inside blobs
		o := (c*256 + 200) * BlockSize
		copy(base[o:o+56*BlockSize], cur[o:])
	}
	if err := os.WriteFile(e.basePath, base, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.curPath, cur, 0o644); err != nil {
		t.Fatal(err)
	}
	e.openCaches(t)
	link := NewLink(80e6)
	var rec *recordConn
	_, got, err, rerr := e.run(t, SendConfig{Mode: "none", Workers: 2, BlobSize: 256 << 10, Logger: zap.NewNop()}, func(c net.Conn) net.Conn {
		rec = &recordConn{Conn: link.Conn(c)}
		return rec
	})
	if err != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", err, rerr)
	}
	sameFile(t, e.curPath, got.Images["disk"])
	br := bufio.NewReader(bytes.NewReader(rec.buf.Bytes()))
	var all []uint64
	nblobs, boundaries := 0, 0
	for {
		typ, p, err := readFrame(br, nil)
		if err != nil {
			break
		}
		if typ != frameBlob {
			continue
		}
		recs, err := decodeBlob(p)
		if err != nil {
			t.Fatal(err)
		}
		nblobs++
		seen := map[uint64]bool{}
		for i, r := range recs {
			b, c := r.Block, r.Block/256
			all = append(all, b)
			if i > 0 && recs[i-1].Block/256 == c {
				if recs[i-1].Block >= b {
					t.Fatalf("blob %d record %d: block %d after block %d of chunk %d: not in image order", nblobs, i, b, recs[i-1].Block, c)
				}
				continue
			}
			if seen[c] {
				t.Fatalf("blob %d record %d: chunk %d comes back after another chunk's blocks", nblobs, i, c)
			}
			seen[c] = true
			if i > 0 {
				boundaries++
			}
		}
	}
	if nblobs < 4 || boundaries < 4 {
		t.Fatalf("%d blobs with %d chunk boundaries inside them: too few to tell", nblobs, boundaries)
	}
	inOrder := true
	for i := 1; i < len(all); i++ {
		inOrder = inOrder && all[i-1] < all[i]
	}
	if inOrder {
		t.Fatalf("chunks in image order: the chunk order is no longer randomised")
	}
}
