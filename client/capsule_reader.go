package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// ReaderOptions tunes a Reader.
type ReaderOptions struct {
	// Server is the replica to read from. Default: the capsule's name, so
	// the routers pick the nearest replica.
	Server pdu.Name
	// Quorum, when > 0, asks that many replicas of the placement for their
	// heads first and reads from the one with the newest (verified)
	// heartbeat: with Quorum + W > N the reader sees every write that was
	// acknowledged as durable. Default 0: the nearest replica, whose
	// heartbeat time tells how fresh it is.
	Quorum int
}

// Reader reads one capsule and verifies everything it gets: every page of
// entries against a writer-signed heartbeat (hash chain plus an inclusion
// proof of the page's last entry), and every newer heartbeat against the
// newest one it has seen (a consistency proof), so two replicas cannot show
// it two different logs without the fork being detected.
type Reader struct {
	cc   *CapsuleClient
	info capsule.Info
	dst  pdu.Name

	opened *CapsuleInfo // what the replica opened from answered

	mu sync.Mutex
	// f holds the newest verified heartbeat and decides every move: the
	// checks of heartbeat progression live in capsule.Follower only.
	f     *capsule.Follower
	stale bool
	// fork is the evidence that the writer forked the capsule (nil when
	// none is known): entries before fork.Size stay readable, the ones
	// from there on are disputed.
	fork *capsule.Evidence
	// hbWire is the wire form of hbOf, a heartbeat verifyPage verified
	// and the Follower took: a page carrying the same bytes while hbOf
	// is still the newest held needs neither decoding nor a signature
	// check (a reader of many pages under one heartbeat).
	hbWire []byte
	hbOf   *capsule.Heartbeat
}

// NewReader opens capsule c: it fetches and checks the metadata (it must
// hash to c) for the writer key.
func (cc *CapsuleClient) NewReader(ctx context.Context, c pdu.Name, opts ReaderOptions) (*Reader, error) {
	dst := opts.Server
	if dst.IsZero() {
		dst = c
	}
	in, err := cc.Info(ctx, c, dst)
	if err != nil {
		return nil, fmt.Errorf("reader: %w", err)
	}
	r := &Reader{cc: cc, info: capsule.Info{Name: c, Writer: in.Meta.WriterKey}, dst: dst, opened: in}
	r.f = capsule.NewFollower(r.info)
	if in.Heartbeat != nil {
		if err := r.f.Reset(in.Heartbeat); err != nil {
			return nil, fmt.Errorf("reader: %w", err)
		}
	}
	r.noteFork(in.Evidence)
	if opts.Quorum > 0 {
		if err := r.quorum(ctx, in, opts.Quorum, opts.Server.IsZero()); err != nil {
			return nil, err
		}
	}
	// A head an earlier reader verified, newer than the one this replica
	// shows (it lags, or rolled back), stays the newest known: later
	// answers must be consistent with it (heads.go). Another epoch's is
	// left alone: the follower decides a writer's restart from answers.
	if rem := cc.heads.get(c); rem != nil {
		if own := r.f.Heartbeat(); own == nil || (rem.Epoch == own.Epoch && rem.Seqno >= own.Seqno) {
			if err := r.Observe(rem); err != nil {
				return nil, fmt.Errorf("reader: %w", err)
			}
		}
	}
	cc.heads.put(c, r.f.Heartbeat())
	return r, nil
}

// quorum asks replicas of the placement for their heads until n answered,
// adopts the newest heartbeat and, when move is set, reads from its holder.
func (r *Reader) quorum(ctx context.Context, first *CapsuleInfo, n int, move bool) error {
	c := r.info.Name
	best, answered := first, 1
	for _, s := range first.Replicas {
		if answered >= n {
			break
		}
		if s == first.Server {
			continue
		}
		in, err := r.cc.Info(ctx, c, s)
		if err != nil {
			continue
		}
		answered++
		r.noteFork(in.Evidence)
		if in.Heartbeat != nil && (best.Heartbeat == nil || in.Heartbeat.Seqno > best.Heartbeat.Seqno) {
			best = in
		}
	}
	if answered < n {
		return fmt.Errorf("reader for %s: %w: %d of the %d replicas asked answered", c, ErrNoAnswer, answered, n)
	}
	if err := r.Observe(best.Heartbeat); err != nil {
		return err
	}
	if move {
		r.SetServer(best.Server)
	}
	return nil
}

// Info is the capsule's name and writer key.
func (r *Reader) Info() capsule.Info { return r.info }

// Opened is the verified METADATA answer the reader was opened with.
func (r *Reader) Opened() *CapsuleInfo { return r.opened }

// noteFork keeps verified evidence of a writer fork; the earliest fork
// point wins.
func (r *Reader) noteFork(ev *capsule.Evidence) {
	if ev == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fork == nil || ev.Size < r.fork.Size {
		r.fork = ev
	}
}

// Fork returns the evidence that the writer forked the capsule, or nil.
// Entries before Fork().Size are readable and verified as usual; reading
// from Fork().Size on fails with a *capsule.EquivocationError.
func (r *Reader) Fork() *capsule.Evidence {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fork
}

// forkError is the error for reading at or beyond the fork point.
func (r *Reader) forkError(ev *capsule.Evidence) error {
	return fmt.Errorf("read %s: the writer forked the capsule at seqno %d; entries from %d on are disputed (%d to %d stay readable): %w",
		r.info.Name, ev.Size, ev.Size, 1, ev.Size-1, &capsule.EquivocationError{Evidence: ev})
}

// Heartbeat is the newest verified heartbeat seen (nil before any).
func (r *Reader) Heartbeat() *capsule.Heartbeat {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Heartbeat()
}

// Observe adopts a heartbeat seen elsewhere (another reader, another
// replica) as the newest known, after checking its signature when it is
// newer than the one held. Later answers must then be consistent with it.
func (r *Reader) Observe(hb *capsule.Heartbeat) error {
	if hb == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.f.Adopt(hb)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, capsule.ErrBranch):
		return r.f.Reset(hb) // the writer restarted: follow it
	case errors.Is(err, capsule.ErrEquivocation):
		return fmt.Errorf("read %s: %w", r.info.Name, err)
	}
	return err
}

// SetServer sends later requests to server (a replica's name, or the
// capsule's name for the nearest one); what the reader has verified so
// far stays, so the new replica must agree with it.
func (r *Reader) SetServer(server pdu.Name) {
	r.mu.Lock()
	r.dst = server
	r.mu.Unlock()
}

// Stale reports whether a replica answered with a heartbeat older than one
// already seen (its answer verified, but it is behind).
func (r *Reader) Stale() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stale
}

// Read returns the entries [from, to] (to 0: up to the head), records and
// holes, verified page by page.
func (r *Reader) Read(ctx context.Context, from, to uint64) ([]capsule.Record, error) {
	var out []capsule.Record
	err := r.Scan(ctx, from, to, func(e capsule.Record) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Scan calls fn for each verified entry in [from, to] (to 0: the head at
// the first answer).
//
// On a capsule whose writer forked (Fork), entries before the fork point
// are returned as usual and the scan then fails with the fork: nothing
// from the fork point on is returned.
func (r *Reader) Scan(ctx context.Context, from, to uint64, fn func(capsule.Record) error) error {
	if from == 0 {
		from = 1
	}
	ev := r.Fork()
	if ev != nil {
		if from >= ev.Size {
			return r.forkError(ev)
		}
		err := r.scan(ctx, from, ev.Size-1, fn)
		if err == nil && (to == 0 || to >= ev.Size) {
			err = r.forkError(ev)
		}
		return err
	}
	return r.scan(ctx, from, to, fn)
}

func (r *Reader) scan(ctx context.Context, from, to uint64, fn func(capsule.Record) error) error {
	for {
		resp, err := r.request(ctx, &wire.Message{Op: wire.OpRead, Capsule: r.info.Name[:], From: from, To: to})
		if err != nil {
			return err
		}
		entries, err := r.verifyPage(resp)
		if err != nil {
			return err
		}
		if len(entries) > 0 && entries[0].Seqno != from {
			return fmt.Errorf("read %s: %w: page starts at %d, asked %d", r.info.Name, capsule.ErrBadProof, entries[0].Seqno, from)
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if to == 0 {
			to = resp.Head
		}
		if len(entries) == 0 {
			if from <= min(to, resp.Head) {
				return fmt.Errorf("read %s: %w: empty page for [%d, %d] from a replica at %d", r.info.Name, capsule.ErrBadProof, from, to, resp.Head)
			}
			return nil // the replica holds nothing more in range
		}
		from = entries[len(entries)-1].Seqno + 1
		if from > to {
			return nil
		}
	}
}

// Prove asks for the inclusion proof of entry e in the tree of the newest
// heartbeat held (or the replica's head when none is held) and checks it:
// a record obtained elsewhere (a cache, a peer, an old read) is then known
// to be in the log the writer signed.
func (r *Reader) Prove(ctx context.Context, e capsule.Record) error {
	c := r.info.Name
	m := &wire.Message{Op: wire.OpProof, Capsule: c[:], From: e.Seqno}
	if hb := r.Heartbeat(); hb != nil {
		m.Size = hb.Seqno
	}
	r.mu.Lock()
	dst := r.dst
	r.mu.Unlock()
	rep, err := r.cc.callOK(ctx, dst, m, true)
	if err != nil {
		return fmt.Errorf("prove %s entry %d: %w", c, e.Seqno, err)
	}
	hb := r.Heartbeat()
	if hb == nil || hb.Seqno != rep.Msg.Size {
		got, err := capsule.UnmarshalHeartbeat(rep.Msg.Heartbeat)
		if err != nil {
			return fmt.Errorf("prove %s entry %d: %w", c, e.Seqno, err)
		}
		if err := got.Verify(c, r.info.Writer); err != nil {
			return fmt.Errorf("prove %s entry %d: %w", c, e.Seqno, err)
		}
		hb = got
	}
	p, err := capsule.UnmarshalInclusionProof(rep.Msg.Proof)
	if err != nil {
		return fmt.Errorf("prove %s entry %d: %w", c, e.Seqno, err)
	}
	if p.Index != e.Seqno-1 || p.Size != hb.Seqno {
		return fmt.Errorf("prove %s entry %d: %w: proof for leaf %d of %d", c, e.Seqno, capsule.ErrBadProof, p.Index, p.Size)
	}
	if _, err := e.Verify(wire.MaxRecordData); err != nil {
		return fmt.Errorf("prove %s: %w", c, err)
	}
	if err := p.Verify(e.Hash(), hb.Root); err != nil {
		return fmt.Errorf("prove %s entry %d: %w", c, e.Seqno, err)
	}
	return nil
}

// Age is how old the newest heartbeat held is: how stale the reader's view
// may be (a writer with WriterOptions.HeartbeatEvery keeps it small even
// when idle).
func (r *Reader) Age() time.Duration {
	hb := r.Heartbeat()
	if hb == nil {
		return 0
	}
	return clock.Now().Sub(time.Unix(0, hb.Time)) // the writer's clock, read on this node's
}

// ReadAt returns the first record written at or after t.
func (r *Reader) ReadAt(ctx context.Context, t time.Time) (capsule.Record, error) {
	return r.one(ctx, &wire.Message{Op: wire.OpRead, Capsule: r.info.Name[:], Time: uint64(t.UnixNano()), Limit: 1})
}

// ReadHash returns the entry whose hash is h.
func (r *Reader) ReadHash(ctx context.Context, h capsule.Hash) (capsule.Record, error) {
	rec, err := r.one(ctx, &wire.Message{Op: wire.OpRead, Capsule: r.info.Name[:], Hash: h[:], Limit: 1})
	if err == nil && rec.Hash() != h {
		return capsule.Record{}, fmt.Errorf("read %s by hash: %w: got entry %d with another hash", r.info.Name, capsule.ErrBadProof, rec.Seqno)
	}
	return rec, err
}

func (r *Reader) one(ctx context.Context, m *wire.Message) (capsule.Record, error) {
	resp, err := r.request(ctx, m)
	if err != nil {
		return capsule.Record{}, err
	}
	entries, err := r.verifyPage(resp)
	if err != nil {
		return capsule.Record{}, err
	}
	if len(entries) == 0 {
		return capsule.Record{}, fmt.Errorf("read %s: %w", r.info.Name, &wire.StatusError{Op: wire.OpRead, Status: wire.StatusNotFound})
	}
	if ev := r.Fork(); ev != nil && entries[0].Seqno >= ev.Size {
		return capsule.Record{}, r.forkError(ev)
	}
	return entries[0], nil
}

// request sends m with the size of the newest heartbeat held, so the
// server adds a consistency proof when it is ahead.
func (r *Reader) request(ctx context.Context, m *wire.Message) (*wire.Message, error) {
	if hb := r.Heartbeat(); hb != nil {
		m.Size = hb.Seqno
	}
	r.mu.Lock()
	dst := r.dst
	r.mu.Unlock()
	rep, err := r.cc.callOK(ctx, dst, m, true)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.info.Name, err)
	}
	return rep.Msg, nil
}

// verifyPage checks a READ answer or EVENT push and returns its entries.
func (r *Reader) verifyPage(m *wire.Message) ([]capsule.Record, error) {
	c := r.info.Name
	if m.CapsuleName() != c {
		return nil, fmt.Errorf("read %s: %w: answer names %s", c, capsule.ErrWrongCapsule, m.CapsuleName())
	}
	if len(m.Heartbeat) == 0 {
		if len(m.Records) > 0 {
			return nil, fmt.Errorf("read %s: %w: entries without a heartbeat", c, capsule.ErrBadProof)
		}
		return nil, nil
	}
	r.mu.Lock()
	hb := r.f.Heartbeat()
	same := hb != nil && hb == r.hbOf && bytes.Equal(m.Heartbeat, r.hbWire)
	r.mu.Unlock()
	if !same {
		var err error
		if hb, err = capsule.UnmarshalHeartbeat(m.Heartbeat); err != nil {
			return nil, fmt.Errorf("read %s: %w", c, err)
		}
		if err := hb.Verify(c, r.info.Writer); err != nil {
			return nil, fmt.Errorf("read %s: %w", c, err)
		}
		if err := r.observe(hb, m.Consistency); err != nil {
			return nil, err
		}
		r.mu.Lock()
		if r.f.Heartbeat() == hb {
			r.hbWire, r.hbOf = append([]byte(nil), m.Heartbeat...), hb
		}
		r.mu.Unlock()
	}
	if len(m.Records) == 0 {
		return nil, nil
	}
	entries := make([]capsule.Record, len(m.Records))
	var err error
	for i, b := range m.Records {
		if entries[i], err = capsule.UnmarshalRecord(b); err != nil {
			return nil, fmt.Errorf("read %s: %w", c, err)
		}
	}
	proof, err := capsule.UnmarshalInclusionProof(m.Proof)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c, err)
	}
	// hb's signature was checked above, or when it was first held
	// (hbOf): one ed25519 verification per heartbeat, not per page.
	if err := capsule.VerifyRangeUnder(r.info, hb, entries, proof, wire.MaxRecordData); err != nil {
		return nil, fmt.Errorf("read %s: %w", c, err)
	}
	return entries, nil
}

// errProofBase: a consistency proof starts from another heartbeat than the
// newest held (a subscription push computed for a page the subscriber
// dropped). It is a bad proof; a subscription re-synchronises on it.
var errProofBase = fmt.Errorf("%w: from another heartbeat than the one held", capsule.ErrBadProof)

// observe checks hb (with the consistency proof the answer carried)
// against the newest heartbeat held, through the Follower, and keeps the
// newer: an older one marks the replica stale, a declared restart is
// followed, a proof between other sizes is errProofBase (a subscription
// re-synchronises), and a proof of the right sizes that fails means the two
// heartbeats are two logs: writer equivocation.
func (r *Reader) observe(hb *capsule.Heartbeat, consistency []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.f.Heartbeat()
	var p *capsule.ConsistencyProof
	if len(consistency) > 0 {
		cp, err := capsule.UnmarshalConsistencyProof(consistency)
		if err != nil {
			return fmt.Errorf("read %s: heartbeat %d: %w", r.info.Name, hb.Seqno, capsule.ErrBadProof)
		}
		p = cp
	}
	err := r.f.Advance(hb, p)
	switch {
	case err == nil:
		if r.cc != nil {
			r.cc.heads.put(r.info.Name, r.f.Heartbeat())
		}
		return nil
	case errors.Is(err, capsule.ErrStale):
		if hb.Seqno < old.Seqno {
			r.stale = true
		}
		return nil
	case errors.Is(err, capsule.ErrBranch):
		return r.f.Reset(hb)
	case errors.Is(err, capsule.ErrEquivocation):
		return fmt.Errorf("read %s: %w", r.info.Name, err)
	case errors.Is(err, capsule.ErrNoConsistency):
		return fmt.Errorf("read %s: heartbeat %d after %d: %w (%v)", r.info.Name, hb.Seqno, old.Seqno, errProofBase, err)
	case p != nil && errors.Is(err, capsule.ErrBadProof):
		return fmt.Errorf("read %s: %w: heartbeat %d does not extend %d (%v)", r.info.Name, capsule.ErrEquivocation, hb.Seqno, old.Seqno, err)
	}
	return fmt.Errorf("read %s: %w", r.info.Name, err)
}
