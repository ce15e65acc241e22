package handoffd

import (
	"bytes"
	"context"
	"errors"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// corruptConn flips one byte of the stream at offset at.
type corruptConn struct {
	net.Conn
	at, n int64
}

func (c *corruptConn) Write(p []byte) (int, error) {
	if c.n <= c.at && c.at < c.n+int64(len(p)) {
		q := append([]byte(nil), p...)
		q[c.at-c.n] ^= 0x40
		p = q
	}
	c.n += int64(len(p))
	return c.Conn.Write(p)
}

// cutConn closes the connection after n bytes.
type cutConn struct {
	net.Conn
	left atomic.Int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.left.Add(-int64(len(p))) < 0 {
		c.Conn.Close()
		return 0, errors.New("cut")
	}
	return c.Conn.Write(p)
}

func committed(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestCorruptStreamRefused: a byte flipped in the blob stream never yields a
// wrong image. Almost every flip makes the receiver refuse the handoff,
// leaving nothing in its result directory, and the sender reports the
// refusal; a flip the decoders absorb (a byte the output does not depend on,
// seen once in a few hundred runs for zstd+xor) must still commit exactly the
// sender's image, which every block hash and the whole-image digest prove.
// Offsets hit blob headers, compressed data and the end.
func TestCorruptStreamRefused(t *testing.T) {
	e := newPairEnv(t, 600, 50)
	for _, mode := range []string{"none", "zstd-1+xor"} {
		rep, _, err, rerr := e.run(t, SendConfig{Mode: mode, BlobSize: 128 << 10, Logger: zap.NewNop(), Seed: 5}, nil)
		if err != nil || rerr != nil {
			t.Fatal(err, rerr)
		}
		w := rep.WireBytes
		refused := 0
		for _, at := range []int64{300, w / 4, w / 2, w - 40} {
			os.RemoveAll(filepath.Join(e.dir, "out"))
			os.MkdirAll(filepath.Join(e.dir, "out", "clean-run"), 0o755) // one entry: only this may be there
			_, rec, err, rerr := e.run(t, SendConfig{Mode: mode, BlobSize: 128 << 10, Logger: zap.NewNop(), Seed: 5}, func(c net.Conn) net.Conn {
				return &corruptConn{Conn: c, at: at}
			})
			if rerr == nil && err == nil && rec != nil {
				t.Logf("%s, byte %d flipped: absorbed by the decoder; the committed image must be the sender's", mode, at)
				sameFile(t, e.curPath, rec.Images["disk"])
				continue
			}
			if rerr == nil || err == nil || rec != nil {
				t.Fatalf("%s, byte %d flipped: receive err %v, send err %v: want both to fail", mode, at, rerr, err)
			}
			refused++
			if got := committed(t, filepath.Join(e.dir, "out")); len(got) != 1 {
				t.Fatalf("%s, byte %d flipped: result dir holds %v", mode, at, got)
			}
		}
		if refused < 3 {
			t.Fatalf("%s: only %d of 4 flips refused", mode, refused)
		}
	}
}

// TestInterruptedThenRetry: the stream cut mid-transfer leaves nothing at the
// destination; a retry over a new connection commits the full image.
func TestInterruptedThenRetry(t *testing.T) {
	e := newPairEnv(t, 800, 100)
	_, rec, err, rerr := e.run(t, SendConfig{Mode: "lz4", BlobSize: 128 << 10, Logger: zap.NewNop()}, func(c net.Conn) net.Conn {
		cc := &cutConn{Conn: c}
		cc.left.Store(400 << 10)
		return cc
	})
	if err == nil || rerr == nil || rec != nil {
		t.Fatalf("cut stream: send %v, receive %v: want both to fail", err, rerr)
	}
	if got := committed(t, filepath.Join(e.dir, "out")); len(got) != 0 {
		t.Fatalf("cut stream left %v", got)
	}
	_, rec, err, rerr = e.run(t, SendConfig{Mode: "lz4"}, nil)
	if err != nil || rerr != nil {
		t.Fatalf("retry: send %v, receive %v", err, rerr)
	}
	sameFile(t, e.curPath, rec.Images["disk"])
}

// TestMissingBaseRefused: a destination without the base says so before any
// data moves.
func TestMissingBaseRefused(t *testing.T) {
	e := newPairEnv(t, 100, 10)
	if err := e.dst.Remove(e.baseID); err != nil {
		t.Fatal(err)
	}
	rep, _, err, rerr := e.run(t, SendConfig{Mode: "lz4"}, nil)
	if err == nil || !strings.Contains(err.Error(), "refused") || !errors.Is(rerr, ErrNoBase) {
		t.Fatalf("send %v (report %v), receive %v: want a refusal naming the missing base", err, rep, rerr)
	}
}

// TestBaseCache: add, ls, verify, a corrupted image found by verify, rm.
func TestBaseCache(t *testing.T) {
	dir := t.TempDir()
	bp, _ := makePair(t, dir, 64, 1, 3)
	c, err := OpenBaseCache(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Add(bp, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if m2, err := c.Add(bp, "again"); err != nil || m2.ID != m.ID {
		t.Fatalf("re-add: %v %v", m2, err)
	}
	ls, err := c.List()
	if err != nil || len(ls) != 1 || ls[0].ID != m.ID || ls[0].Size != 64*BlockSize {
		t.Fatalf("ls: %+v %v", ls, err)
	}
	if err := c.Verify(m.ID[:12]); err != nil {
		t.Fatalf("verify a good base: %v", err)
	}
	b, err := c.Get(m.ID)
	if err != nil || len(b.Hashes) != 64 {
		t.Fatalf("get: %v", err)
	}
	// One byte changed in the cached image: verify must say so.
	f, err := os.OpenFile(filepath.Join(c.Dir, m.ID, "image"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 5*BlockSize+17)
	f.Close()
	if err := c.Verify(m.ID); err == nil {
		t.Fatal("verify of a corrupted base passed")
	}
	if err := c.Remove(m.ID[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(m.ID); !errors.Is(err, ErrNoBase) {
		t.Fatalf("get after rm: %v", err)
	}
	if _, err := c.Get("../../etc"); err == nil {
		t.Fatal("get of a path-like id passed")
	}
}

// TestCorruptBaseAtDestination: the destination's base copy silently
// corrupted -> the rebuilt block's hash check refuses the handoff.
func TestCorruptBaseAtDestination(t *testing.T) {
	e := newPairEnv(t, 600, 20)
	f, err := os.OpenFile(filepath.Join(e.dst.Dir, e.baseID, "image"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt every block: whichever the sender refers to, the check sees it.
	for b := int64(0); b < 600; b++ {
		f.WriteAt([]byte{0xa5}, b*BlockSize+100)
	}
	f.Close()
	_, rec, err, rerr := e.run(t, SendConfig{Mode: "zstd-1+xor", Logger: zap.NewNop()}, nil)
	if err == nil || rerr == nil || rec != nil {
		t.Fatalf("send %v, receive %v: want a refusal", err, rerr)
	}
	if !strings.Contains(rerr.Error(), "rebuilt block hash") {
		t.Fatalf("receive error %v: want the rebuilt block's hash check to refuse it", rerr)
	}
}

// TestCorruptUnreferencedBaseBlock: a destination base block the handoff
// never mentions (unchanged in the image) is corrupted: only the whole-image
// digest can see it, and it refuses the handoff.
func TestCorruptUnreferencedBaseBlock(t *testing.T) {
	e := newPairEnv(t, 600, 20)
	_, bh, _ := hashPath(e.basePath)
	_, ch, _ := hashPath(e.curPath)
	victim := -1
	for i := range bh {
		if bh[i] == ch[i] && bh[i] != zeroHash {
			victim = i
			break
		}
	}
	if victim < 0 {
		t.Fatal("no unchanged block")
	}
	f, err := os.OpenFile(filepath.Join(e.dst.Dir, e.baseID, "image"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0x5a, 0x5a}, int64(victim)*BlockSize+9)
	f.Close()
	_, rec, err, rerr := e.run(t, SendConfig{Mode: "lz4", Logger: zap.NewNop()}, nil)
	if err == nil || rerr == nil || rec != nil || !strings.Contains(rerr.Error(), "digest") {
		t.Fatalf("send %v, receive %v: want a digest refusal", err, rerr)
	}
}

func FuzzDecodeBlob(f *testing.F) {
	for _, m := range []string{"none", "lz4", "zstd-1", "gzip-1", "xz"} {
		mode, _ := ParseMode(m)
		recs := []record{{Kind: recZero, Hash: zeroHash}, {Kind: recData, Block: 3, Data: bytes.Repeat([]byte{7}, BlockSize)}}
		raw := rawBlob(recs)
		p, _, _ := encodeBlob(mode, len(recs), raw)
		fuzzseed.Add(f, p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		recs, err := decodeBlob(p)
		if err != nil {
			return
		}
		for _, r := range recs {
			if (r.Kind == recData || r.Kind == recXOR) && len(r.Data) != BlockSize {
				t.Fatalf("record with %d data bytes", len(r.Data))
			}
		}
		// Round trip in the codec it came in.
		m := Mode{Codec: Codec(p[0]), Level: int(p[1])}
		if m.validate() != nil {
			return
		}
		q, used, err := encodeBlob(m, len(recs), rawBlob(recs))
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeBlob(q)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("round trip in %s: %v", used, err)
		}
	})
}

func TestParseMode(t *testing.T) {
	for _, m := range AllModes() {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	for _, bad := range []string{"", "zstd-9", "gzip-0", "lz4-2", "brotli", "zstd-x"} {
		if _, err := ParseMode(bad); err == nil {
			t.Errorf("ParseMode(%q) passed", bad)
		}
	}
}

var _ = context.Background
var _ = time.Second

// TestAgentRemovesStalePartials: a partial directory left by an agent that
// died (kill -9 leaves it) is removed when the agent starts, before any
// handoff is accepted; committed results stay.
func TestAgentRemovesStalePartials(t *testing.T) {
	dir := t.TempDir()
	cache, _ := OpenBaseCache(filepath.Join(dir, "cache"))
	out := filepath.Join(dir, "out")
	os.MkdirAll(filepath.Join(out, ".partial-abc-123"), 0o755)
	os.WriteFile(filepath.Join(out, ".partial-abc-123", "disk"), []byte("half"), 0o644)
	os.MkdirAll(filepath.Join(out, "done"), 0o755)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{Cache: cache, Dir: out}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, TCPListener(ln)) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(out, ".partial-abc-123")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stale partial directory still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "done")); err != nil {
		t.Fatalf("a committed result was removed: %v", err)
	}
}

// TestAgentRefusesUnlistedSender: with Senders set, a handoff from any other
// peer is refused before a byte of it is stored, and counted; a listed
// sender's handoff commits.
func TestAgentRefusesUnlistedSender(t *testing.T) {
	e := newPairEnv(t, 64, 8)
	out := filepath.Join(e.dir, "agent-out")
	for _, tc := range []struct {
		senders []string
		ok      bool
	}{{[]string{"192.0.2.1"}, false}, {[]string{"192.0.2.1", "127.0.0.1"}, true}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m := NewMetrics(prometheus.NewRegistry())
		a := &Agent{Cache: e.dst, Dir: out, Metrics: m, Config: AgentConfig{Senders: tc.senders}}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		done := make(chan error, 1)
		go func() { done <- a.Serve(ctx, TCPListener(ln)) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = Send(ctx, c, &Handoff{Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}},
			SendConfig{Cache: e.src, Mode: "lz4", Logger: zap.NewNop()})
		c.Close()
		if tc.ok != (err == nil) {
			t.Fatalf("senders %v: send err %v, want ok=%v", tc.senders, err, tc.ok)
		}
		var d dto.Metric
		if err := m.Refused.WithLabelValues("not_allowed").Write(&d); err != nil {
			t.Fatal(err)
		}
		got := d.GetCounter().GetValue()
		if !tc.ok && (got != 1 || len(committed(t, out)) != 0) {
			t.Fatalf("senders %v: refusals %v, result dir %v", tc.senders, got, committed(t, out))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if len(committed(t, out)) != 1 {
		t.Fatalf("result dir %v, want the listed sender's handoff", committed(t, out))
	}
}

// TestAgentReload: new senders and limits (SIGHUP) govern the next handoffs.
func TestAgentReload(t *testing.T) {
	a := &Agent{Dir: t.TempDir(), Config: AgentConfig{Senders: []string{"x"}}}
	if err := a.init(); err != nil {
		t.Fatal(err)
	}
	if reason, ok := a.admit("y"); ok || reason != "not_allowed" {
		t.Fatalf("unlisted y admitted (%q)", reason)
	}
	a.Reload(AgentConfig{Senders: []string{"y"}, MaxConcurrent: 2, MaxPerPeer: 2})
	for range 2 {
		if reason, ok := a.admit("y"); !ok {
			t.Fatalf("y refused after the reload listed it: %s", reason)
		}
	}
	if reason, ok := a.admit("x"); ok || reason != "not_allowed" {
		t.Fatalf("x admitted after the reload removed it (%q)", reason)
	}
	if reason, ok := a.admit("y"); ok || reason != "busy" {
		t.Fatalf("third handoff with max_concurrent 2: %q %v", reason, ok)
	}
}
