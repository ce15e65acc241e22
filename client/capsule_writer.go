package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// WriterOptions tunes a Writer. Zero values take the defaults in the
// comments.
type WriterOptions struct {
	// Replicas are the servers holding the capsule. Default: the replica
	// set of the owner-signed placement record (capsule.Placement) the
	// replicas hold, verified against the capsule's owner key; a server's
	// unsigned word is never taken. Either way, only receipts signed by a
	// replica the owner issued an AdCert to count toward W.
	Replicas []pdu.Name
	// W is how many replicas must hold a batch for it to be durable.
	// Default: the W of the owner-signed placement record (a majority of
	// Replicas when they are given).
	W int
	// Multicast sends each APPEND once, to the capsule's name with the
	// MULTICAST flag, instead of once to each replica's own name.
	Multicast bool
	// MaxBatchBytes bounds the records of one APPEND. Default (and most)
	// wire.Budget less room for the heartbeat.
	MaxBatchBytes int
	// MaxBatchRecords bounds the records of one APPEND. Default 1024.
	MaxBatchRecords int
	// Cadence flushes pending records (one heartbeat for them all) this
	// often. Default 50ms; negative: only when a batch is full or on Flush.
	Cadence time.Duration
	// Timeout bounds one attempt of an APPEND: the wait for
	// acknowledgements before a re-send. Default 2s. The writer measures
	// the replicas' round-trip time and waits srtt + 4·rttvar (at least
	// 50 ms, at most Timeout) before re-sending; each re-send without an
	// answer doubles the wait, up to Timeout.
	Timeout time.Duration
	// Attempts is how many times at least a batch is sent to the replicas
	// that have not acknowledged it (idempotent re-sends) before the
	// writer gives up on it. Default 4. A writer keeps re-sending until
	// the deadline of the call's context (Append, Flush, Close) when it
	// has one, and otherwise for Attempts × Timeout: slow replicas, not
	// only dead ones, get the whole deadline to answer.
	Attempts int
	// HeartbeatEvery sends a fresh heartbeat alone when nothing was written
	// for that long, so readers can tell an idle capsule from a stale
	// replica (Reader.Age). Default 0: no idle heartbeats.
	HeartbeatEvery time.Duration
	// MaxInFlight is how many full batches may be on their way at once
	// while Append goes on (replicas apply them in order). Default 4; 1
	// sends one batch at a time. Flush waits for all of them.
	MaxInFlight int
}

// withBatchDefaults applies the defaults and bounds of MaxBatchBytes and
// MaxBatchRecords.
func (o WriterOptions) withBatchDefaults() WriterOptions {
	if o.MaxBatchBytes <= 0 || o.MaxBatchBytes > wire.Budget-capsule.MaxHoles {
		o.MaxBatchBytes = wire.Budget - 2048
	}
	if o.MaxBatchRecords <= 0 || o.MaxBatchRecords > wire.MaxRecords {
		o.MaxBatchRecords = 1024
	}
	return o
}

// recordCost is what one record of dataLen bytes counts against
// MaxBatchBytes: its data and about 160 bytes of record header and framing.
func recordCost(dataLen int) int { return dataLen + 160 }

// batchFull is the Writer's rule: a batch of count records costing pending
// bytes is sent before a record costing size joins it.
func (o WriterOptions) batchFull(count, pending, size int) bool {
	return count > 0 && (pending+size > o.MaxBatchBytes || count >= o.MaxBatchRecords)
}

// BatchRecords is how many records of dataLen bytes a Writer with opts
// (zero values: the defaults) puts under one heartbeat: the Writer's own
// batching rule, for benchmarks and capacity planning.
func BatchRecords(opts WriterOptions, dataLen int) int {
	opts = opts.withBatchDefaults()
	n, pending, size := 0, 0, recordCost(dataLen)
	for !opts.batchFull(n, pending, size) {
		n++
		pending += size
	}
	return n
}

// Durability is what an append got: how many replicas hold it durably.
type Durability struct {
	Seqno   uint64     // the last seqno of the batch
	Acks    int        // replicas that acknowledged after their fsync
	N, W    int        // replica count and the durability asked for
	Met     bool       // Acks >= W
	Holders []pdu.Name // who acknowledged
	Lagging []pdu.Name // replicas that answered they are catching up
	// Receipts are the holders' signed receipts, the proof of durability:
	// each verified under the key of a server that holds the owner's
	// AdCert for the capsule (one per holder, in Holders' order).
	Receipts []*capsule.Receipt
}

func (d Durability) String() string {
	return fmt.Sprintf("seqno %d on %d of %d replicas (w=%d, met=%t)", d.Seqno, d.Acks, d.N, d.W, d.Met)
}

// Writer appends records to one capsule. It batches records under one
// heartbeat, flushes on a cadence, sends each batch to every replica and
// re-sends it, unchanged, to those that did not acknowledge in time
// (servers acknowledge a batch they already hold again). Safe for
// concurrent use.
type Writer struct {
	cc    *CapsuleClient
	name  pdu.Name
	opts  WriterOptions
	trust *writerTrust

	mu      sync.Mutex
	w       *capsule.Writer
	pending int // bytes of records waiting
	count   int
	last    Durability
	err     error        // a permanent failure: the writer stops
	queue   []*batchSend // signed batches sent but not yet settled, oldest first

	sentAt time.Time // when the last batch was sealed
	rtt    rttEstimator

	start   uint64 // the head resumed from
	stored  uint64 // every record up to here was acknowledged by a replica
	durable uint64 // every record up to here was acknowledged by W replicas
	allMet  bool   // no settled batch fell short of W so far

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewWriter opens a writer for capsule c with the writer key. It asks the
// replicas for their heads and continues from the newest (a new epoch, as
// a writer that lost its state does); an empty capsule starts at seqno 1.
func (cc *CapsuleClient) NewWriter(ctx context.Context, c pdu.Name, key ed25519.PrivateKey, opts WriterOptions) (*Writer, error) {
	info, err := cc.Info(ctx, c, c)
	if err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	if !info.Meta.WriterKey.Equal(key.Public()) {
		return nil, fmt.Errorf("writer for %s: %w: key is not the capsule's writer key", c, capsule.ErrBadSignature)
	}
	trust := newWriterTrust(info.Meta)
	trust.learn(info)
	rec := info.Placement
	explicit := len(opts.Replicas) > 0
	if !explicit {
		if rec == nil {
			return nil, fmt.Errorf("writer for %s: %w (asked %s)", c, ErrNoPlacement, info.Server)
		}
		opts.Replicas = rec.Replicas
	}
	// The newest head any replica holds, and the newest placement record:
	// the nearest replica may hold an older one.
	infos := []*CapsuleInfo{info}
	for _, r := range opts.Replicas {
		if r == info.Server {
			continue
		}
		ri, err := cc.Info(ctx, c, r)
		if err != nil {
			continue
		}
		trust.learn(ri)
		infos = append(infos, ri)
		if ri.Placement != nil && (rec == nil || ri.Placement.Issued.After(rec.Issued)) {
			rec = ri.Placement
		}
	}
	if !explicit {
		opts.Replicas = rec.Replicas
	}
	if opts.W <= 0 && rec != nil && !explicit {
		opts.W = rec.W
	}
	if opts.W <= 0 || opts.W > len(opts.Replicas) {
		opts.W = len(opts.Replicas)/2 + 1
	}
	opts = opts.withBatchDefaults()
	if opts.Cadence == 0 {
		opts.Cadence = 50 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	head := info.Head
	for _, ri := range infos {
		if ri.Head.Seqno > head.Seqno {
			head = ri.Head
		}
	}
	trust.setReplicas(opts.Replicas)
	wr := &Writer{cc: cc, name: c, opts: opts, trust: trust, stop: make(chan struct{}), stored: head.Seqno, durable: head.Seqno, allMet: true}
	if head.Heartbeat == nil {
		wr.w = capsule.NewWriter(c, key)
	} else {
		wr.w = capsule.RestartWriter(c, key, head)
	}
	wr.sentAt = time.Now()
	wr.start = head.Seqno
	if opts.Cadence > 0 || opts.HeartbeatEvery > 0 {
		wr.wg.Add(1)
		go wr.cadence()
	}
	return wr, nil
}

// Name is the capsule written.
func (wr *Writer) Name() pdu.Name { return wr.name }

// Replicas are the servers the writer sends to, and W how many of them
// must hold a batch.
func (wr *Writer) Replicas() ([]pdu.Name, int) {
	return append([]pdu.Name(nil), wr.opts.Replicas...), wr.opts.W
}

// Seqno is the newest seqno assigned.
func (wr *Writer) Seqno() uint64 {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return wr.w.Seqno()
}

// Durability is the outcome of the last batch sent.
func (wr *Writer) Durability() Durability {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return wr.last
}

// Progress is what a writer knows the replicas hold: every entry up to
// Stored was acknowledged by at least one replica, every entry up to
// Durable by W of them (both start at the head the writer resumed from).
type Progress struct {
	Start   uint64 // the head the writer resumed from
	Stored  uint64
	Durable uint64
}

// Progress reports how far the writer's batches were acknowledged, so a
// caller that stops early can say which records are stored and where to
// resume.
func (wr *Writer) Progress() Progress {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return Progress{Start: wr.start, Stored: wr.stored, Durable: wr.durable}
}

// Drain waits (bounded by ctx) for the answers to the batches already
// sent, without sending the records still pending, and reports the
// progress then: what an interrupted writer can still learn.
func (wr *Writer) Drain(ctx context.Context) Progress {
	wr.mu.Lock()
	_, _ = wr.settleLocked(ctx, 0)
	wr.mu.Unlock()
	return wr.Progress()
}

// Abort stops the writer without sending what is pending: the records not
// yet sent are dropped. Use Drain first to learn what was stored.
func (wr *Writer) Abort() {
	wr.stopCadence()
	wr.mu.Lock()
	defer wr.mu.Unlock()
	for _, bs := range wr.queue {
		wr.cc.pend.Done(bs.id)
	}
	wr.queue, wr.pending, wr.count = nil, 0, 0
	if wr.err == nil {
		wr.err = errAborted
	}
}

var errAborted = errors.New("client: writer aborted")

// stopCadence closes wr.stop once (Abort and Close may both run) and waits
// for the cadence goroutine to end.
func (wr *Writer) stopCadence() {
	select {
	case <-wr.stop:
	default:
		close(wr.stop)
	}
	wr.wg.Wait()
}

// Append adds one record and returns its seqno. It is sent with the next
// batch: when the batch is full (then Append waits for it), on the cadence,
// or on Flush.
func (wr *Writer) Append(ctx context.Context, data []byte) (uint64, error) {
	r, err := wr.AppendRecord(ctx, data)
	return r.Seqno, err
}

// AppendRecord is Append returning the whole record built (seqno, time,
// hash chain link), for layers that index their own writes (caapi/kv).
// The record's Data is the writer's copy: do not modify it.
func (wr *Writer) AppendRecord(ctx context.Context, data []byte) (capsule.Record, error) {
	if len(data) > wire.MaxRecordData {
		return capsule.Record{}, fmt.Errorf("append to %s: %w: %d bytes of data (max %d)", wr.name, capsule.ErrTooLarge, len(data), wire.MaxRecordData)
	}
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.err != nil {
		return capsule.Record{}, wr.err
	}
	size := recordCost(len(data))
	if wr.opts.batchFull(wr.count, wr.pending, size) {
		if _, err := wr.sendLocked(ctx, wr.opts.MaxInFlight-1); err != nil {
			return capsule.Record{}, err
		}
	}
	r := wr.w.Append(append([]byte(nil), data...))
	wr.pending += size
	wr.count++
	return r, nil
}

// Flush sends everything pending under one heartbeat and reports the
// durability it got. With nothing pending it sends a fresh heartbeat.
func (wr *Writer) Flush(ctx context.Context) (Durability, error) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.err != nil {
		return wr.last, wr.err
	}
	return wr.flushLocked(ctx)
}

// Close flushes what is pending (bounded by ctx) and stops the cadence.
func (wr *Writer) Close(ctx context.Context) error {
	wr.stopCadence()
	wr.mu.Lock()
	defer wr.mu.Unlock()
	defer func() {
		for _, bs := range wr.queue {
			wr.cc.pend.Done(bs.id)
		}
	}()
	if (wr.count == 0 && len(wr.queue) == 0) || wr.err != nil {
		return wr.err
	}
	_, err := wr.flushLocked(ctx)
	return err
}

func (wr *Writer) cadence() {
	defer wr.wg.Done()
	every := wr.opts.Cadence
	if every <= 0 || (wr.opts.HeartbeatEvery > 0 && wr.opts.HeartbeatEvery < every) {
		every = wr.opts.HeartbeatEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-wr.stop:
			return
		case <-t.C:
		}
		wr.mu.Lock()
		due := wr.opts.Cadence > 0 && (wr.count > 0 || len(wr.queue) > 0)
		idle := wr.opts.HeartbeatEvery > 0 && wr.count == 0 && len(wr.queue) == 0 && time.Since(wr.sentAt) >= wr.opts.HeartbeatEvery
		if (due || idle) && wr.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(wr.opts.Attempts)*wr.opts.Timeout)
			_, _ = wr.flushLocked(ctx) // the error stays in wr.err / wr.last
			cancel()
		}
		wr.mu.Unlock()
	}
}

// flushLocked sends everything pending and waits until every batch in
// flight is settled.
func (wr *Writer) flushLocked(ctx context.Context) (Durability, error) {
	return wr.sendLocked(ctx, 0)
}

// sendLocked signs a heartbeat over the pending records (or, with nothing
// pending or queued, a fresh heartbeat alone), sends the batch to the
// replicas, and then settles the oldest batches until at most keep remain
// in flight. Settling a batch waits until W replicas acknowledge it or the
// attempts run out. A batch no replica acknowledged stays queued, ahead of
// every later one, and is re-sent unchanged: the replicas never see a gap
// the writer made. A refusal that re-sending cannot cure (a bad batch, a
// forked log) stops the writer.
func (wr *Writer) sendLocked(ctx context.Context, keep int) (Durability, error) {
	if wr.count > 0 || len(wr.queue) == 0 {
		recs, hb := wr.w.Flush()
		wr.pending, wr.count, wr.sentAt = 0, 0, time.Now()
		m := &wire.Message{Op: wire.OpAppend, Capsule: wr.name[:], Heartbeat: hb.Marshal()}
		for _, r := range recs {
			m.Records = append(m.Records, r.Marshal())
		}
		bs, err := wr.cc.startBatch(ctx, wr.name, m, hb.Seqno, wr.opts)
		if err != nil {
			return wr.last, err
		}
		bs.hb, bs.trust = hb, wr.trust
		bs.rtt = &wr.rtt
		wr.queue = append(wr.queue, bs)
	}
	return wr.settleLocked(ctx, keep)
}

// settleLocked settles the oldest batches in flight until at most keep
// remain, and advances the progress.
func (wr *Writer) settleLocked(ctx context.Context, keep int) (Durability, error) {
	d := wr.last
	for len(wr.queue) > keep {
		bs := wr.queue[0]
		var err error
		d, err = wr.cc.settle(ctx, wr.name, bs, wr.opts)
		wr.last = d
		if err != nil {
			if !errors.Is(err, ErrNoReplica) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				wr.err = err
			}
			return d, err
		}
		wr.stored = bs.seqno
		if wr.allMet = wr.allMet && d.Met; wr.allMet {
			wr.durable = bs.seqno
		}
		wr.cc.pend.Done(bs.id)
		wr.queue = wr.queue[1:]
	}
	return d, nil
}

// batchSend is one APPEND on its way: its bytes, the request id its
// answers carry, and who answered so far.
type batchSend struct {
	b       []byte
	id      uint64
	ch      <-chan wire.Reply
	seqno   uint64
	sends   int // times sent
	acked   map[pdu.Name]bool
	lagging map[pdu.Name]bool
	silent  time.Duration // time spent waiting in attempts in which some replica said nothing at all

	hb       *capsule.Heartbeat // the batch's heartbeat, what receipts name
	trust    *writerTrust
	receipts map[pdu.Name]*capsule.Receipt

	lastSend time.Time     // when it was last sent
	rtt      *rttEstimator // the writer's, fed by answers to batches sent once
	// conflict: replicas that refused the batch because their log holds
	// another writer's entries (the head they hold).
	conflict map[pdu.Name]uint64
	// refused: the last refusal a replica answered with (503: a full disk,
	// an overloaded server, a storage share), for the error when no
	// replica acknowledged: "no replica acknowledged" alone leaves the
	// operator guessing (Session 18).
	refused error
}

// startBatch registers m's id and sends it to the replicas.
func (cc *CapsuleClient) startBatch(ctx context.Context, c pdu.Name, m *wire.Message, seqno uint64, opts WriterOptions) (*batchSend, error) {
	id, ch, err := cc.pend.Add(wire.OpAppend, 4*len(opts.Replicas)*opts.Attempts, opts.Replicas...)
	if err != nil {
		return nil, err
	}
	m.ID = id
	b, err := m.Marshal()
	if err != nil {
		cc.pend.Done(id)
		return nil, fmt.Errorf("append to %s: %w", c, err)
	}
	bs := &batchSend{b: b, id: id, ch: ch, seqno: seqno, acked: map[pdu.Name]bool{}, lagging: map[pdu.Name]bool{},
		conflict: map[pdu.Name]uint64{}}
	// A send cut short by ctx (Session 20) leaves the batch queued, as one
	// sent and unanswered: its records are signed into the log, and
	// settle (or the next flush) sends it again.
	if err := cc.sendBatch(ctx, c, bs, opts); err != nil && ctx.Err() == nil {
		cc.pend.Done(id)
		return nil, err
	}
	return bs, nil
}

// sendBatch sends bs to every replica that has not acknowledged it (or
// once, multicast, to the capsule's name).
func (cc *CapsuleClient) sendBatch(ctx context.Context, c pdu.Name, bs *batchSend, opts WriterOptions) error {
	bs.sends++
	bs.lastSend = time.Now()
	if opts.Multicast {
		if err := cc.sendPDU(ctx, bs.id, c, pdu.FlagMulticast, bs.b); err != nil {
			return fmt.Errorf("append to %s: %w", c, err)
		}
		return nil
	}
	for _, r := range opts.Replicas {
		if _, lost := bs.conflict[r]; !bs.acked[r] && !lost {
			if err := cc.sendPDU(ctx, bs.id, r, 0, bs.b); err != nil {
				return fmt.Errorf("append to %s: %w", c, err)
			}
			if bs.sends > 1 {
				cc.Resends.Add(1)
			}
		}
	}
	return nil
}

// settle waits for bs's acknowledgements, re-sending it to the replicas
// that did not acknowledge in time, until W acknowledged, the deadline
// passes (ctx's, else Attempts × Timeout from now) after at least Attempts
// sends, or the batch is held somewhere and the silent replicas stayed
// silent through a re-send. Each wait is the measured RTO, doubled after
// every attempt that brought no acknowledgement, up to opts.Timeout.
func (cc *CapsuleClient) settle(ctx context.Context, c pdu.Name, bs *batchSend, opts WriterOptions) (Durability, error) {
	d := Durability{N: len(opts.Replicas), W: opts.W, Seqno: bs.seqno}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Duration(opts.Attempts) * opts.Timeout)
	}
	rto := bs.rtt.rto(opts.Timeout)
	for attempt := 0; ; attempt++ {
		if attempt > 0 || bs.sends == 0 {
			if err := cc.sendBatch(ctx, c, bs, opts); err != nil {
				if ctx.Err() == nil {
					return durability(d, bs.acked, bs.lagging), err
				}
				break // out of time while sending: what was acknowledged
			}
		}
		clear(bs.lagging)
		before, waitStart := len(bs.acked), time.Now()
		actx, cancel := context.WithTimeout(ctx, rto)
		for len(bs.acked) < opts.W && len(bs.acked)+len(bs.lagging)+len(bs.conflict) < len(opts.Replicas) {
			rep, err := wire.Wait(actx, bs.ch)
			if err != nil {
				break
			}
			if rep.NAK != pdu.CodeNone {
				if !slices.Contains(opts.Replicas, rep.From) {
					// A multicast to the capsule's name reached no replica.
					cancel()
					return durability(d, bs.acked, bs.lagging), fmt.Errorf("append to %s: %w (%w)", c, ErrNoReplica, nakError(wire.OpAppend, rep.From, rep))
				}
				if !bs.acked[rep.From] {
					bs.lagging[rep.From] = true // unreachable now: no need to wait for it
				}
				continue
			}
			switch st := rep.Msg.Status; {
			case st.Success():
				if !bs.countReceipt(rep) {
					cc.BadReceipts.Add(1)
					continue
				}
				if bs.sends == 1 && bs.rtt != nil && !bs.acked[rep.From] {
					bs.rtt.sample(time.Since(bs.lastSend))
				}
				bs.acked[rep.From] = true
				delete(bs.lagging, rep.From)
			case st == wire.StatusWriterConflict:
				if !bs.acked[rep.From] {
					delete(bs.lagging, rep.From)
					bs.conflict[rep.From] = rep.Msg.Head
				}
				if len(opts.Replicas)-len(bs.conflict) < opts.W {
					cancel()
					return durability(d, bs.acked, bs.lagging), writerConflict(c, bs)
				}
			case st == wire.StatusGap || st == wire.StatusUnavailable || st == wire.StatusNotFound || st == wire.StatusInternal:
				if !bs.acked[rep.From] {
					bs.lagging[rep.From] = true
				}
				if st == wire.StatusUnavailable || st == wire.StatusInternal {
					bs.refused = fmt.Errorf("replica %s: %w", rep.From, rep.Msg.Err())
				}
			default:
				cancel()
				err := rep.Msg.Err()
				if len(rep.Msg.Evidence) > 0 {
					if ev, perr := capsule.UnmarshalEvidence(rep.Msg.Evidence); perr == nil {
						err = fmt.Errorf("%w (%w)", &capsule.EquivocationError{Evidence: ev}, err)
					}
				}
				return durability(d, bs.acked, bs.lagging), fmt.Errorf("append to %s: replica %s: %w", c, rep.From, err)
			}
		}
		cancel()
		if len(bs.acked) >= opts.W || ctx.Err() != nil {
			break
		}
		if len(bs.acked)+len(bs.lagging) < len(opts.Replicas) {
			bs.silent += time.Since(waitStart)
		}
		if len(bs.acked) > 0 && bs.silent >= 2*opts.Timeout {
			// Held durably somewhere, and the silent replicas stayed
			// silent through re-sends for twice the longest attempt:
			// report what we got rather than stall the writer; they catch
			// up by anti-entropy. (Time, not attempts: with a short
			// measured RTO a slow replica would be given up too soon.)
			break
		}
		if attempt+1 >= opts.Attempts && !time.Now().Before(deadline) {
			break
		}
		if len(bs.acked)+len(bs.lagging) == len(opts.Replicas) {
			// Everyone answered; the lagging ones are catching up. Give
			// them a moment before the re-send.
			select {
			case <-time.After(max(rto/8, minRTO)):
			case <-ctx.Done():
			}
		} else if len(bs.acked) == before {
			// Nobody new acknowledged: the replicas are slower than
			// measured, or gone. Back off.
			rto = min(2*rto, opts.Timeout)
		}
	}
	d = durability(d, bs.acked, bs.lagging)
	for _, h := range d.Holders {
		d.Receipts = append(d.Receipts, bs.receipts[h])
	}
	if len(bs.conflict) > 0 && d.Acks < opts.W {
		return d, writerConflict(c, bs)
	}
	if d.Acks == 0 {
		bs.silent = 0
		last := ""
		if bs.refused != nil {
			last = "; the last answer: " + bs.refused.Error()
		}
		if err := ctx.Err(); err != nil {
			// Stopped (Ctrl-C, a deadline) before any answer came: say so
			// first, not that the replicas refused.
			return d, fmt.Errorf("append to %s: batch ending at seqno %d not acknowledged yet: %w (%w%s)", c, bs.seqno, err, ErrNoReplica, last)
		}
		return d, fmt.Errorf("append to %s: %w (%d replicas%s)", c, ErrNoReplica, d.N, last)
	}
	return d, nil
}

// ErrWriterConflict: replicas refused a batch because their log holds
// another writer's entries: a second writer with the same key is active
// (or was, since this writer started). This writer stops; nothing it sent
// from this batch on counts.
var ErrWriterConflict = errors.New("another writer is active")

func writerConflict(c pdu.Name, bs *batchSend) error {
	var who []string
	for r, head := range bs.conflict {
		who = append(who, fmt.Sprintf("%s (head %d)", r, head))
	}
	slices.Sort(who)
	return fmt.Errorf("append to %s: %w: the batch ending at seqno %d was refused by %s, whose log holds another writer's entries (two writers with one key?); stop the other writer, then append again",
		c, ErrWriterConflict, bs.seqno, strings.Join(who, ", "))
}

func durability(d Durability, acked, lagging map[pdu.Name]bool) Durability {
	d.Holders, d.Lagging = nil, nil
	for n := range acked {
		d.Holders = append(d.Holders, n)
	}
	for n := range lagging {
		d.Lagging = append(d.Lagging, n)
	}
	d.Acks = len(acked)
	d.Met = d.Acks >= d.W
	return d
}

// countReceipt reports whether rep, a success answer to bs, carries a
// receipt that proves durability: signed for bs's heartbeat by the replica
// it comes from, under the key of a server the capsule's owner issued an
// AdCert to. Without a trust (a writer built by hand) every success counts.
func (bs *batchSend) countReceipt(rep wire.Reply) bool {
	if bs.trust == nil {
		return true
	}
	rc, err := bs.trust.receipt(rep, bs.hb)
	if err != nil {
		return false
	}
	if bs.receipts == nil {
		bs.receipts = map[pdu.Name]*capsule.Receipt{}
	}
	bs.receipts[rep.From] = rc
	return true
}

// writerTrust is what a writer checks receipts against: the capsule's
// metadata (its owner key), the replica set, and the keys of the replicas
// that proved the owner placed the capsule on them (metadata hashing to
// the server's name and the owner's AdCert for it).
type writerTrust struct {
	meta     *certs.Metadata
	mu       sync.Mutex
	replicas map[pdu.Name]bool
	keys     map[pdu.Name]trustedKey
	now      func() time.Time
}

type trustedKey struct {
	key   ed25519.PublicKey
	until time.Time // the AdCert's NotAfter
}

func newWriterTrust(meta *certs.Metadata) *writerTrust {
	return &writerTrust{meta: meta, keys: map[pdu.Name]trustedKey{}, now: time.Now}
}

func (t *writerTrust) setReplicas(rs []pdu.Name) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.replicas = make(map[pdu.Name]bool, len(rs))
	for _, r := range rs {
		t.replicas[r] = true
	}
}

// learn keeps the server key a METADATA answer proved.
func (t *writerTrust) learn(in *CapsuleInfo) {
	if in.ServerKey == nil || in.ServerAdCert == nil {
		return
	}
	t.mu.Lock()
	t.keys[in.Server] = trustedKey{key: in.ServerKey, until: in.ServerAdCert.NotAfter}
	t.mu.Unlock()
}

// receipt verifies the receipt on rep for heartbeat hb: rep comes from a
// replica of the set, whose key is known (or proved by the AdCert and
// metadata rep carries), and the receipt is that replica's signature over
// (capsule, hb's seqno and hash, replica name).
func (t *writerTrust) receipt(rep wire.Reply, hb *capsule.Heartbeat) (*capsule.Receipt, error) {
	from, now := rep.From, t.now()
	t.mu.Lock()
	inSet := t.replicas[from]
	k, ok := t.keys[from]
	t.mu.Unlock()
	if !inSet {
		return nil, fmt.Errorf("%w: %s is not a replica of the placement", capsule.ErrBadReceipt, from)
	}
	if !ok || !now.Before(k.until) {
		key, ad, err := serverKey(t.meta, from, rep.Msg.AdCert, rep.Msg.Server, now)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", capsule.ErrBadReceipt, from, err)
		}
		k = trustedKey{key: key, until: ad.NotAfter}
		t.mu.Lock()
		t.keys[from] = k
		t.mu.Unlock()
	}
	if len(rep.Msg.Receipt) == 0 {
		return nil, fmt.Errorf("%w: %s sent none", capsule.ErrBadReceipt, from)
	}
	rc, err := capsule.UnmarshalReceipt(rep.Msg.Receipt)
	if err != nil {
		return nil, err
	}
	if err := rc.Verify(hb, from, k.key); err != nil {
		return nil, err
	}
	return rc, nil
}
