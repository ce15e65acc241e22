package tunnel

import (
	"errors"
	"net"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/ipv4"

	"github.com/gdpnet/gdpnet/internal/udpoffload"
)

// GSO limits: segments per super-buffer and its total size.
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65000
)

// batchWriter turns queued frames into sendmmsg messages. Its message array
// and control buffers are allocated once.
type batchWriter struct {
	r          *rawEndpoint
	msgs       []ipv4.Message
	oobs       [][]byte
	lastTooBig time.Time
}

func newBatchWriter(r *rawEndpoint) *batchWriter {
	w := &batchWriter{r: r, msgs: make([]ipv4.Message, batchSize), oobs: make([][]byte, batchSize)}
	for i := range w.msgs {
		w.msgs[i].Buffers = make([][]byte, 0, gsoMaxSegments)
		w.oobs[i] = make([]byte, udpoffload.SegmentCmsgLen)
	}
	return w
}

func (w *batchWriter) write(batch []*frameBuf) {
	r := w.r
	st := &r.e.stats
	if r.bc == nil {
		for _, fb := range batch {
			st.sendCalls.Add(1)
			if _, err := r.pc.WriteTo(fb.b[:fb.n], fb.addr); err == nil {
				st.framesSent.Add(1)
			}
		}
		return
	}
	for len(batch) > 0 {
		// build up to batchSize messages; with GSO each takes a run of
		// frames to one address whose sizes are equal (the last may be
		// shorter)
		nm, used := 0, 0
		for nm < len(w.msgs) && used < len(batch) {
			m := &w.msgs[nm]
			first := batch[used]
			m.Buffers = append(m.Buffers[:0], first.b[:first.n])
			m.Addr, m.OOB = first.addr, nil
			used++
			total := first.n
			for r.gso && used < len(batch) && len(m.Buffers) < gsoMaxSegments {
				fb := batch[used]
				if fb.n > first.n || fb.addr != first.addr || total+fb.n > gsoMaxBytes {
					break
				}
				m.Buffers = append(m.Buffers, fb.b[:fb.n])
				total += fb.n
				used++
				if fb.n < first.n {
					break // a shorter frame ends a GSO run
				}
			}
			if len(m.Buffers) > 1 {
				m.OOB = udpoffload.PutSegmentCmsg(w.oobs[nm], first.n)
			}
			nm++
		}
		w.send(w.msgs[:nm])
		batch = batch[used:]
	}
}

// send writes messages, skipping any the kernel refuses.
func (w *batchWriter) send(msgs []ipv4.Message) {
	r := w.r
	for len(msgs) > 0 {
		n, err := r.bc.WriteBatch(msgs, 0)
		r.e.stats.sendCalls.Add(1)
		if err != nil {
			if r.isClosing() {
				return
			}
			if errors.Is(err, syscall.EMSGSIZE) {
				w.tooBig(len(msgs[0].Buffers))
				msgs = msgs[1:]
				continue
			}
			if msgs[0].OOB != nil && r.gso {
				// the path does not take GSO (no checksum offload): stop
				// using it and send this message's frames one by one
				r.gso = false
				r.e.log.Info("raw: UDP GSO refused, sending frames singly", zap.Error(err))
				w.sendSingly(&msgs[0])
			} else {
				r.e.log.Debug("raw send", zap.Error(err))
			}
			msgs = msgs[1:]
			continue
		}
		for i := range msgs[:n] {
			r.e.stats.framesSent.Add(uint64(len(msgs[i].Buffers)))
		}
		msgs = msgs[n:]
	}
}

// tooBig counts frames the kernel refused as larger than the path MTU and
// tells the operator, at most once a minute.
func (w *batchWriter) tooBig(frames int) {
	w.r.e.stats.drops[DropPathMTU].Add(uint64(frames))
	if now := time.Now(); now.Sub(w.lastTooBig) > time.Minute {
		w.lastTooBig = now
		w.r.e.log.Warn("raw frames larger than the path MTU are being dropped: lower RawMTU (docs/OPERATIONS.md §2)",
			zap.Int("mtu", w.r.mtu))
	}
}

func (w *batchWriter) sendSingly(m *ipv4.Message) {
	for _, b := range m.Buffers {
		w.r.e.stats.sendCalls.Add(1)
		if _, err := w.r.pc.WriteTo(b, m.Addr.(*net.UDPAddr)); err == nil {
			w.r.e.stats.framesSent.Add(1)
		}
	}
}
