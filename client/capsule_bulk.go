package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// ErrNoBulk: bulk reads are not available from this replica (no server
// name to dial, the server does not serve them, or a recent dial failed);
// read with Scan instead.
var ErrNoBulk = errors.New("client: no bulk reads from this replica")

// bulkRetry is how long a replica whose bulk dial failed is read with
// READ PDUs only before a dial is tried again.
const bulkRetry = 30 * time.Second

// bulkConns are a CapsuleClient's QUIC connections over names to capsule
// servers, for bulk reads (one per server, streams multiplexed on it).
type bulkConns struct {
	mu     sync.Mutex
	conns  map[pdu.Name]*NameConn
	failed map[pdu.Name]time.Time
	dialMu sync.Mutex // one dial at a time
}

func (b *bulkConns) get(ctx context.Context, c *Client, server pdu.Name) (*NameConn, error) {
	b.mu.Lock()
	if b.conns == nil {
		b.conns, b.failed = map[pdu.Name]*NameConn{}, map[pdu.Name]time.Time{}
	}
	nc := b.conns[server]
	failedAt, failed := b.failed[server]
	b.mu.Unlock()
	if nc != nil && nc.Context().Err() == nil {
		return nc, nil
	}
	if failed && time.Since(failedAt) < bulkRetry {
		return nil, fmt.Errorf("%w: a dial to %s failed %s ago", ErrNoBulk, server, time.Since(failedAt).Round(time.Second))
	}
	b.dialMu.Lock()
	defer b.dialMu.Unlock()
	b.mu.Lock()
	nc = b.conns[server]
	b.mu.Unlock()
	if nc != nil && nc.Context().Err() == nil {
		return nc, nil
	}
	nc, err := DialName(ctx, c, server, &QUICConfig{ALPN: wire.BulkALPN, HandshakeTimeout: 3 * time.Second})
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			b.failed[server] = time.Now()
		}
		return nil, fmt.Errorf("%w: %w", ErrNoBulk, err)
	}
	delete(b.failed, server)
	b.conns[server] = nc
	return nc, nil
}

// bulkFirstPage bounds the wait for a bulk stream's first page.
const bulkFirstPage = 5 * time.Second

// drop forgets nc (a connection that did not answer) and closes it.
func (b *bulkConns) drop(server pdu.Name, nc *NameConn) {
	b.mu.Lock()
	if b.conns[server] == nc {
		delete(b.conns, server)
	}
	b.mu.Unlock()
	_ = nc.CloseWithError(0, "no answer")
}

func (b *bulkConns) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s, nc := range b.conns {
		_ = nc.CloseWithError(0, "")
		delete(b.conns, s)
	}
}

// ScanBulk is Scan over one bulk read stream (PROTOCOL.md §8.8): the
// replica sends the pages of [from, to] one after the other without a
// request per page, and each is verified exactly as a READ answer is
// (hash chain, inclusion proof, writer-signed heartbeat, consistency with
// the newest heartbeat held) before fn sees its entries. It needs a reader
// pinned to a server (ReaderOptions.Server or SetServer); else, or when
// the server serves no bulk reads, it fails with ErrNoBulk before fn is
// called. to 0: up to the head.
func (r *Reader) ScanBulk(ctx context.Context, from, to uint64, fn func(capsule.Record) error) error {
	c := r.info.Name
	if from == 0 {
		from = 1
	}
	if ev := r.Fork(); ev != nil {
		return r.Scan(ctx, from, to, fn)
	}
	r.mu.Lock()
	dst := r.dst
	r.mu.Unlock()
	if dst == c {
		return fmt.Errorf("read %s: %w: the reader is not pinned to a server", c, ErrNoBulk)
	}
	nc, err := r.cc.bulk.get(ctx, r.cc.c, dst)
	if err != nil {
		return fmt.Errorf("read %s: %w", c, err)
	}
	st, err := nc.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w: %w", c, ErrNoBulk, err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0); st.CancelWrite(0) })
	defer stop()
	defer st.CancelRead(0)
	m := &wire.Message{Op: wire.OpRead, Capsule: c[:], From: from, To: to}
	if hb := r.Heartbeat(); hb != nil {
		m.Size = hb.Seqno
	}
	if err := wire.WriteFrame(st, m); err != nil {
		return fmt.Errorf("read %s: %w: %w", c, ErrNoBulk, err)
	}
	_ = st.Close() // the request is all we send
	// A connection to a replica that restarted is dead without a word
	// until its idle timeout: no first page within bulkFirstPage, and it
	// is dropped (the next read dials afresh) and this range read with
	// READs.
	firstTimer := time.AfterFunc(bulkFirstPage, func() { st.CancelRead(1) })
	next := from
	for {
		resp, err := wire.ReadFrame(st)
		if next == from && !firstTimer.Stop() && err != nil {
			r.cc.bulk.drop(dst, nc)
			return fmt.Errorf("read %s: %w: no answer on the bulk stream within %s", c, ErrNoBulk, bulkFirstPage)
		}
		if errors.Is(err, io.EOF) && next > from {
			return fmt.Errorf("read %s: bulk stream ended at %d before the range did", c, next)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if next == from {
				return fmt.Errorf("read %s: %w: %w", c, ErrNoBulk, err)
			}
			return fmt.Errorf("read %s: bulk stream: %w", c, err)
		}
		if resp.Op != wire.OpRead || !resp.IsResponse() {
			return fmt.Errorf("read %s: %w: a %s answer on a bulk stream", c, capsule.ErrBadProof, resp.Op)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("read %s: %w", c, err)
		}
		entries, err := r.verifyPage(resp)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			if to != 0 && next <= min(to, resp.Head) {
				return fmt.Errorf("read %s: %w: empty page for [%d, %d] from a replica at %d", c, capsule.ErrBadProof, next, to, resp.Head)
			}
			return nil
		}
		if entries[0].Seqno != next {
			return fmt.Errorf("read %s: %w: page starts at %d, want %d", c, capsule.ErrBadProof, entries[0].Seqno, next)
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		next = entries[len(entries)-1].Seqno + 1
		if !resp.More || (to != 0 && next > to) {
			return nil
		}
	}
}
