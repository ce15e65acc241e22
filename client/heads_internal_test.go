package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestReopenedReaderKeepsNewestHead: a reader verified a capsule's head at
// seqno 3; the program drops it (the gateway past max_readers) and opens
// another, whose replica now shows seqno 2 (it lags, or was rolled back).
// The new reader keeps 3 as the newest head (the replica's answers must be
// consistent with it; it is stale), not 2. A head of an epoch the writer
// left is not forced on a reader of the new one.
func TestReopenedReaderKeepsNewestHead(t *testing.T) {
	tw := newTrustWorld(t)
	type shownHead struct {
		hb   *capsule.Heartbeat
		head capsule.Head
	}
	w := capsule.NewWriter(tw.name, tw.writer.Key)
	w.Append([]byte("a"))
	w.Append([]byte("b"))
	_, hb2 := w.Flush()
	at2 := &shownHead{hb2, w.Head()}
	w.Append([]byte("c"))
	_, hb3 := w.Flush()
	at3 := &shownHead{hb3, w.Head()}
	var shown atomic.Pointer[shownHead]
	shown.Store(at3)
	srv := tw.servers[0].Name
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		if m.Op != wire.OpMetadata || m.IsResponse() {
			return nil
		}
		rep := m.Reply(wire.StatusOK)
		rep.Capsule = tw.name[:]
		rep.Metadata = tw.meta.Marshal()
		sh := shown.Load()
		rep.Heartbeat = sh.hb.Marshal()
		rep.Head, rep.Hash, rep.Time = sh.hb.Seqno, sh.head.Hash[:], uint64(sh.head.Time)
		for _, f := range sh.head.Tree.Frontier() {
			rep.Frontier = append(rep.Frontier, f[:])
		}
		return []answer{{from: srv, msg: rep}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	open := func() *Reader {
		t.Helper()
		r, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{Server: srv})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := open().Heartbeat().Seqno; got != 3 {
		t.Fatalf("first reader's head %d, want 3", got)
	}
	shown.Store(at2) // the replica now lags
	if got := open().Heartbeat().Seqno; got != 3 {
		t.Fatalf("a reader opened after the first was dropped takes head %d from a lagging replica, want 3 (verified before)", got)
	}
	// An older head put after (a reader that still holds one) does not
	// replace the newer.
	tw.cc.heads.put(tw.name, hb2)
	if got := tw.cc.heads.get(tw.name).Seqno; got != 3 {
		t.Fatalf("remembered head %d after an older one was put, want 3", got)
	}
	// A replica showing a heartbeat of the same size but another log: the
	// remembered head makes it evidence, not a new truth.
	fork := capsule.NewWriter(tw.name, tw.writer.Key)
	for _, d := range []string{"x", "y", "z"} {
		fork.Append([]byte(d))
	}
	_, forked := fork.Flush()
	shown.Store(&shownHead{forked, fork.Head()})
	if _, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{Server: srv}); !errors.As(err, new(*capsule.EquivocationError)) {
		t.Fatalf("a reader opened on a forked head of the remembered size: %v, want equivocation", err)
	}
}
