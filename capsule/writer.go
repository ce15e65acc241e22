package capsule

import (
	"crypto/ed25519"
	"time"

	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// Writer builds a capsule's records and signs heartbeats over them. It keeps
// the head and the tree frontier only, O(log n) memory. It is not safe for
// concurrent use: a capsule has a single writer.
type Writer struct {
	name  pdu.Name
	key   ed25519.PrivateKey
	tree  Tree
	seqno uint64
	head  Hash
	last  int64
	epoch uint64
	base  uint64
	prevT int64 // time of the last heartbeat

	pending []Record
	holes   []uint64

	// Now is the clock; nil means clock.Now.
	Now func() time.Time
}

// NewWriter starts an empty log for capsule name, signing with key.
func NewWriter(name pdu.Name, key ed25519.PrivateKey) *Writer {
	return &Writer{name: name, key: key}
}

// RestartWriter resumes from a head recovered from the replicas after the
// writer lost its state: it opens a new epoch based at that head, so
// anything a replica holds beyond it becomes an abandoned branch.
func RestartWriter(name pdu.Name, key ed25519.PrivateKey, h Head) *Writer {
	w := &Writer{name: name, key: key, seqno: h.Seqno, head: h.Hash, last: h.Time, base: h.Seqno}
	if h.Tree != nil {
		w.tree = *h.Tree.Clone()
	}
	if h.Heartbeat != nil {
		w.epoch = h.Heartbeat.Epoch + 1
		w.prevT = h.Heartbeat.Time
	} else {
		w.epoch = 1
	}
	return w
}

func (w *Writer) now() int64 {
	t := clock.Now
	if w.Now != nil {
		t = w.Now
	}
	n := t().UnixNano()
	if n < w.last {
		n = w.last // times never go backwards
	}
	if n < w.prevT {
		n = w.prevT
	}
	return n
}

// Seqno is the newest seqno written (records and holes).
func (w *Writer) Seqno() uint64 { return w.seqno }

// Append adds a record holding data and returns it. It is sent with the
// next heartbeat.
func (w *Writer) Append(data []byte) Record {
	w.seqno++
	t := w.now()
	r := NewRecord(w.name, w.seqno, t, w.head, data)
	w.last = t
	w.head = r.Hash()
	w.tree.Append(w.head, nil)
	w.pending = append(w.pending, r)
	return r
}

// Hole declares the next seqno a hole that will never be filled.
func (w *Writer) Hole() uint64 {
	w.seqno++
	h := NewHole(w.name, w.seqno, w.head)
	w.head = h.Hash()
	w.tree.Append(w.head, nil)
	w.holes = append(w.holes, w.seqno)
	return w.seqno
}

// Flush signs a heartbeat over everything written so far and returns it
// with the records written since the last Flush.
func (w *Writer) Flush() ([]Record, *Heartbeat) {
	hb := &Heartbeat{Capsule: w.name, Seqno: w.seqno, Root: w.tree.Root(), Time: w.now(),
		Holes: w.holes, Epoch: w.epoch, Base: w.base}
	hb.Sign(w.key)
	w.prevT = hb.Time
	recs := w.pending
	w.pending, w.holes = nil, nil
	return recs, hb
}

// Head returns the writer's head (for tests and for handing over).
func (w *Writer) Head() Head {
	return Head{Seqno: w.seqno, Hash: w.head, Time: w.last, Tree: w.tree.Clone()}
}
