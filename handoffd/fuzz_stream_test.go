package handoffd

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/fuzzseed"
)

// recordConn keeps a copy of every byte written.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// streamConn plays a recorded sender stream to a receiver and throws its
// answers away.
type streamConn struct {
	io.Reader
}

func (streamConn) Write(p []byte) (int, error) { return len(p), nil }

// FuzzReceiveStream feeds the receiver of a handoff (the agent's side:
// frames, hello, blobs, round ends, device state, end) a fuzzed sender
// stream, seeded with a genuine one recorded from a real handoff of an
// image pair. Nothing may panic; whatever commits is byte for byte the
// image the genuine sender sent.
func FuzzReceiveStream(f *testing.F) {
	e := newPairEnv(f, 24, 8)
	var rec *recordConn
	_, got, err, rerr := e.run(f, SendConfig{Mode: "lz4", BlobSize: 64 << 10, Logger: zap.NewNop()}, func(c net.Conn) net.Conn {
		rec = &recordConn{Conn: c}
		return rec
	})
	if err != nil || rerr != nil {
		f.Fatalf("genuine handoff: %v, %v", err, rerr)
	}
	want, err := os.ReadFile(got.Images["disk"])
	if err != nil {
		f.Fatal(err)
	}
	genuine := rec.buf.Bytes()
	fuzzseed.Add(f, genuine)
	fuzzseed.Add(f, genuine[:len(genuine)/2])
	out := f.TempDir()
	f.Fuzz(func(t *testing.T, stream []byte) {
		dir := filepath.Join(out, "run")
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := Receive(ctx, streamConn{bytes.NewReader(stream)}, ReceiveConfig{Cache: e.dst, Dir: dir, Logger: zap.NewNop(), IdleTimeout: time.Second})
		if err != nil {
			if r != nil {
				t.Fatalf("error %v with a result", err)
			}
			// nothing committed, no partial directory left
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("refused stream left %d entries in the result dir: %v", len(ents), err)
			}
			return
		}
		if len(r.Images) == 0 {
			t.Fatal("committed without images")
		}
		for name, path := range r.Images {
			img, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(img, want) {
				t.Fatalf("committed image %s that is not the sender's (%v)", name, err)
			}
		}
	})
}
