package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// WriterOptions tunes a Writer. Zero values take the defaults in the
// comments.
type WriterOptions struct {
	// Replicas are the servers holding the capsule. Default: the replica
	// set the nearest replica reports.
	Replicas []pdu.Name
	// W is how many replicas must hold a batch for it to be durable.
	// Default: the capsule's placement (a majority when unknown).
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
	// Timeout bounds one attempt of an APPEND. Default 2s.
	Timeout time.Duration
	// Attempts is how many times a batch is sent to the replicas that have
	// not acknowledged it (idempotent re-sends). Default 4.
	Attempts int
}

// Durability is what an append got: how many replicas hold it durably.
type Durability struct {
	Seqno   uint64     // the last seqno of the batch
	Acks    int        // replicas that acknowledged after their fsync
	N, W    int        // replica count and the durability asked for
	Met     bool       // Acks >= W
	Holders []pdu.Name // who acknowledged
	Lagging []pdu.Name // replicas that answered they are catching up
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
	cc   *CapsuleClient
	name pdu.Name
	opts WriterOptions

	mu      sync.Mutex
	w       *capsule.Writer
	pending int // bytes of records waiting
	count   int
	last    Durability
	err     error           // a permanent failure: the writer stops
	queue   []*wire.Message // signed batches no replica has acknowledged yet, oldest first

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
	if len(opts.Replicas) == 0 {
		opts.Replicas = info.Replicas
	}
	if len(opts.Replicas) == 0 {
		opts.Replicas = []pdu.Name{info.Server}
	}
	if opts.W <= 0 {
		opts.W = info.W
	}
	if opts.W <= 0 || opts.W > len(opts.Replicas) {
		opts.W = len(opts.Replicas)/2 + 1
	}
	if opts.MaxBatchBytes <= 0 || opts.MaxBatchBytes > wire.Budget-capsule.MaxHoles {
		opts.MaxBatchBytes = wire.Budget - 2048
	}
	if opts.MaxBatchRecords <= 0 || opts.MaxBatchRecords > wire.MaxRecords {
		opts.MaxBatchRecords = 1024
	}
	if opts.Cadence == 0 {
		opts.Cadence = 50 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	// The newest head any replica holds.
	head := info.Head
	for _, r := range opts.Replicas {
		if r == info.Server {
			continue
		}
		if ri, err := cc.Info(ctx, c, r); err == nil && ri.Head.Seqno > head.Seqno {
			head = ri.Head
		}
	}
	wr := &Writer{cc: cc, name: c, opts: opts, stop: make(chan struct{})}
	if head.Heartbeat == nil {
		wr.w = capsule.NewWriter(c, key)
	} else {
		wr.w = capsule.RestartWriter(c, key, head)
	}
	if opts.Cadence > 0 {
		wr.wg.Add(1)
		go wr.cadence()
	}
	return wr, nil
}

// Name is the capsule written.
func (wr *Writer) Name() pdu.Name { return wr.name }

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

// Append adds one record and returns its seqno. It is sent with the next
// batch: when the batch is full (then Append waits for it), on the cadence,
// or on Flush.
func (wr *Writer) Append(ctx context.Context, data []byte) (uint64, error) {
	if len(data) > wire.MaxRecordData {
		return 0, fmt.Errorf("append to %s: %w: %d bytes of data (max %d)", wr.name, capsule.ErrTooLarge, len(data), wire.MaxRecordData)
	}
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.err != nil {
		return 0, wr.err
	}
	size := len(data) + 160
	if wr.count > 0 && (wr.pending+size > wr.opts.MaxBatchBytes || wr.count >= wr.opts.MaxBatchRecords) {
		if _, err := wr.flushLocked(ctx); err != nil {
			return 0, err
		}
	}
	r := wr.w.Append(append([]byte(nil), data...))
	wr.pending += size
	wr.count++
	return r.Seqno, nil
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
	select {
	case <-wr.stop:
	default:
		close(wr.stop)
	}
	wr.wg.Wait()
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if (wr.count == 0 && len(wr.queue) == 0) || wr.err != nil {
		return wr.err
	}
	_, err := wr.flushLocked(ctx)
	return err
}

func (wr *Writer) cadence() {
	defer wr.wg.Done()
	t := time.NewTicker(wr.opts.Cadence)
	defer t.Stop()
	for {
		select {
		case <-wr.stop:
			return
		case <-t.C:
		}
		wr.mu.Lock()
		if (wr.count > 0 || len(wr.queue) > 0) && wr.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(wr.opts.Attempts)*wr.opts.Timeout)
			_, _ = wr.flushLocked(ctx) // the error stays in wr.err / wr.last
			cancel()
		}
		wr.mu.Unlock()
	}
}

// flushLocked signs a heartbeat over the pending records and sends the
// batch until W replicas acknowledge or the attempts run out. Batches no
// replica acknowledged stay queued and go first next time, unchanged, so
// the replicas never see a gap the writer made. A refusal that re-sending
// cannot cure (a bad batch, a forked log) stops the writer.
func (wr *Writer) flushLocked(ctx context.Context) (Durability, error) {
	if wr.count > 0 || len(wr.queue) == 0 {
		recs, hb := wr.w.Flush()
		wr.pending, wr.count = 0, 0
		m := &wire.Message{Op: wire.OpAppend, Capsule: wr.name[:], Heartbeat: hb.Marshal()}
		for _, r := range recs {
			m.Records = append(m.Records, r.Marshal())
		}
		wr.queue = append(wr.queue, m)
	}
	var d Durability
	for len(wr.queue) > 0 {
		m := wr.queue[0]
		var err error
		d, err = wr.cc.appendBatch(ctx, wr.name, m, wr.opts)
		if hb, herr := capsule.UnmarshalHeartbeat(m.Heartbeat); herr == nil {
			d.Seqno = hb.Seqno
		}
		wr.last = d
		if err != nil {
			if !errors.Is(err, ErrNoReplica) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				wr.err = err
			}
			return d, err
		}
		wr.queue = wr.queue[1:]
	}
	return d, nil
}

// appendBatch sends m to the replicas and counts acknowledgements.
func (cc *CapsuleClient) appendBatch(ctx context.Context, c pdu.Name, m *wire.Message, opts WriterOptions) (Durability, error) {
	d := Durability{N: len(opts.Replicas), W: opts.W}
	id, ch, err := cc.pend.Add(4 * len(opts.Replicas))
	if err != nil {
		return d, err
	}
	defer cc.pend.Done(id)
	m.ID = id
	b, err := m.Marshal()
	if err != nil {
		return d, fmt.Errorf("append to %s: %w", c, err)
	}
	acked := map[pdu.Name]bool{}
	lagging := map[pdu.Name]bool{}
	silent := 0 // attempts in which some replica said nothing at all
	for range opts.Attempts {
		if opts.Multicast {
			_, err = cc.c.SendFrom(cc.c.Name(), c, pdu.FlagMulticast, b)
		} else {
			for _, r := range opts.Replicas {
				if !acked[r] {
					if _, err = cc.c.SendFrom(cc.c.Name(), r, 0, b); err != nil {
						break
					}
				}
			}
		}
		if err != nil {
			return d, fmt.Errorf("append to %s: %w", c, err)
		}
		clear(lagging)
		actx, cancel := context.WithTimeout(ctx, opts.Timeout)
		for len(acked) < opts.W && len(acked)+len(lagging) < len(opts.Replicas) {
			rep, err := wire.Wait(actx, ch)
			if err != nil {
				break
			}
			switch st := rep.Msg.Status; {
			case st.Success():
				acked[rep.From] = true
				delete(lagging, rep.From)
			case st == wire.StatusGap || st == wire.StatusUnavailable || st == wire.StatusNotFound || st == wire.StatusInternal:
				if !acked[rep.From] {
					lagging[rep.From] = true
				}
			default:
				cancel()
				d = durability(d, acked, lagging)
				err := rep.Msg.Err()
				if len(rep.Msg.Evidence) > 0 {
					if ev, perr := capsule.UnmarshalEvidence(rep.Msg.Evidence); perr == nil {
						err = fmt.Errorf("%w (%w)", &capsule.EquivocationError{Evidence: ev}, err)
					}
				}
				return d, fmt.Errorf("append to %s: replica %s: %w", c, rep.From, err)
			}
		}
		cancel()
		if len(acked) >= opts.W {
			break
		}
		if ctx.Err() != nil {
			break
		}
		if len(acked)+len(lagging) < len(opts.Replicas) {
			silent++
		}
		if len(acked) > 0 && silent >= 2 {
			// Held durably somewhere, and the silent replicas stayed silent
			// through a re-send: report what we got rather than stall the
			// writer; they catch up by anti-entropy when they return.
			break
		}
		if len(acked)+len(lagging) == len(opts.Replicas) {
			// Everyone answered; the lagging ones are catching up. Give
			// them a moment before the re-send.
			select {
			case <-time.After(opts.Timeout / 8):
			case <-ctx.Done():
			}
		}
	}
	d = durability(d, acked, lagging)
	if d.Acks == 0 {
		return d, fmt.Errorf("append to %s: %w (%d replicas)", c, ErrNoReplica, d.N)
	}
	return d, nil
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
