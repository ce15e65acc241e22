package handoffd

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// freezer is a loopback TCP relay between a sender and an agent whose two
// directions can be frozen: bytes read are held, nothing is written, the
// sockets stay open — what a sender sees of a destination host that
// vanished (powered off, cable cut) at the application layer, and, with
// one direction only, of an agent that is alive but starved.
type freezer struct {
	ln          net.Listener
	toAgent     atomic.Bool // sender→agent frozen
	toSender    atomic.Bool // agent→sender frozen
	wg          sync.WaitGroup
	mu          sync.Mutex
	conns       []net.Conn
	senderBytes atomic.Int64 // agent→sender bytes delivered
	closed      atomic.Bool
}

func newFreezer(t *testing.T, agent string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a, err := net.Dial("tcp", agent)
			if err != nil {
				c.Close()
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, a)
			f.mu.Unlock()
			f.wg.Add(2)
			go func() { defer f.wg.Done(); f.pipe(a, c, &f.toAgent, nil) }()
			go func() { defer f.wg.Done(); f.pipe(c, a, &f.toSender, &f.senderBytes) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.close()
		f.wg.Wait()
	})
	return f
}

func (f *freezer) pipe(dst io.Writer, src io.Reader, frozen *atomic.Bool, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		for frozen.Load() && !f.closed.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			if n != nil {
				n.Add(int64(k))
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

// close ends every relayed connection (the agent's handoff then ends too).
func (f *freezer) close() {
	f.closed.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// TestSenderNoticesSilentAgentTCP: over plain TCP, a sender whose
// destination goes silent mid-handoff (the relay holds every byte both
// ways, sockets open) fails with ErrAgentSilent about IdleTimeout after
// the agent's last keepalive, not at a TCP timeout minutes later; an agent
// that is alive but hears nothing for three IdleTimeouts (only the
// sender→agent direction held) keeps the handoff alive by its keepalives,
// and it commits once the bytes flow again.
func TestSenderNoticesSilentAgentTCP(t *testing.T) {
	e := newPairEnv(t, 64, 8)
	const idle = time.Second
	for _, tc := range []struct {
		name string
		gone bool // both directions held (and never released); else sender→agent only, for 3 s
	}{{"destination gone", true}, {"agent alive, hearing nothing", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			a := &Agent{Cache: e.dst, Dir: filepath.Join(t.TempDir(), "out")}
			actx, acancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- a.Serve(actx, TCPListener(ln)) }()
			f := newFreezer(t, ln.Addr().String())
			defer func() {
				f.close()
				acancel()
				<-served
			}()
			c, err := net.Dial("tcp", f.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// 2 Mbit/s: the ~300 KB take over a second, so the hold comes
			// mid-transfer.
			conn := NewLink(2e6).Conn(c)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			res := make(chan error, 1)
			go func() {
				_, err := Send(ctx, conn, &Handoff{ID: "silent", Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}},
					SendConfig{Cache: e.src, Mode: "none", Logger: zap.NewNop(), IdleTimeout: idle, BlobSize: 16 << 10})
				res <- err
			}()
			// The ready (after a keepalive) reached the sender: it sends.
			for f.senderBytes.Load() < 21 {
				time.Sleep(2 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			f.toAgent.Store(true)
			if tc.gone {
				f.toSender.Store(true)
			}
			held := time.Now()
			if !tc.gone {
				time.Sleep(3 * idle)
				f.toAgent.Store(false)
			}
			err = <-res
			took := time.Since(held)
			if tc.gone {
				if !errors.Is(err, ErrAgentSilent) {
					t.Fatalf("send: %v, want ErrAgentSilent", err)
				}
				// The last keepalive came at most idle/5 before the hold.
				if took < idle-idle/5 || took > 3*idle {
					t.Fatalf("the sender gave up %s after the destination went silent, want about %s", took, idle)
				}
				t.Logf("sender gave up %s after the destination went silent: %v", took.Round(time.Millisecond), err)
				return
			}
			if err != nil {
				t.Fatalf("send to a live agent held %s: %v", 3*idle, err)
			}
		})
	}
}
