package kv

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
)

// Value is a key's value at some point of the log.
type Value struct {
	Key   string
	Value []byte
	// Seqno and Time are those of the record that set the value (or, in
	// History, deleted the key).
	Seqno   uint64
	Time    time.Time
	Deleted bool // History only: this version deletes the key
	// At is the seqno the read resolved to: the answer is the state after
	// that record.
	At uint64
}

// At names a point of the log: a seqno, a time (the newest record written
// at or before it), or Latest (the index's head).
type At struct {
	seqno uint64
	time  time.Time
}

// Latest is the newest state the index holds.
var Latest = At{}

// AtSeqno is the state right after record n.
func AtSeqno(n uint64) At { return At{seqno: n} }

// AtTime is the state after the newest record written at or before t.
func AtTime(t time.Time) At { return At{time: t} }

func (a At) String() string {
	switch {
	case a.seqno != 0:
		return fmt.Sprintf("seqno %d", a.seqno)
	case !a.time.IsZero():
		return "time " + a.time.UTC().Format(time.RFC3339Nano)
	}
	return "latest"
}

type version struct {
	seq  uint64
	time int64
	val  []byte
	del  bool
}

// Index is a verified, time-travelling index of one KV capsule: every
// version of every key it has seen, and the seqno→time map of the records.
// It only takes entries that continue the hash chain it holds, from a
// verified page (ApplyPage) or from the client's verified reads. Safe for
// concurrent use.
type Index struct {
	info capsule.Info

	mu       sync.RWMutex
	keys     map[string][]version
	sorted   []string // keys in byte order, as of the last merge
	unsorted []string // keys added since
	seqs     []uint64 // data records (and the checkpoint base), ascending
	times    []int64  // their times, non-decreasing
	head     uint64
	headHash capsule.Hash
	// base > 0: the index started from a checkpoint of the state at base;
	// versions before it are unknown until the older log is merged.
	base       uint64
	basePrev   capsule.Hash // hash of entry base (the checkpoint's first record's prev)
	baseDigest []byte
	ckpt       uint64    // first seqno of the newest complete checkpoint seen
	asm        *assembly // checkpoint being read
	dropped    uint64    // records that are not KV records, skipped
	changed    chan struct{}
}

// assembly collects the parts of a checkpoint as they arrive.
type assembly struct {
	first, base uint64
	baseTime    uint64
	parts, next uint64
	digest      []byte
	d           *digester
	lastKey     []byte
}

// NewIndex returns an empty index of the capsule info names.
func NewIndex(info capsule.Info) *Index {
	return &Index{info: info, keys: map[string][]version{}, changed: make(chan struct{})}
}

// Head is the newest seqno applied.
func (ix *Index) Head() uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.head
}

// Base is the seqno of the checkpoint the index started from (0: it holds
// the whole log).
func (ix *Index) Base() uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.base
}

// Checkpoint is the first seqno of the newest complete checkpoint seen (0:
// none).
func (ix *Index) Checkpoint() uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.ckpt
}

// Dropped counts records skipped because they are not KV records (written
// by the capsule's writer, so verified, but not ours to interpret).
func (ix *Index) Dropped() uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.dropped
}

// Page is a page of entries as a server sends it: the wire forms of the
// entries, of the heartbeat that covers them and of the inclusion proof of
// the last entry in that heartbeat's tree.
type Page struct {
	Heartbeat []byte
	Records   [][]byte
	Proof     []byte
}

// ApplyPage verifies p (the heartbeat's signature by the capsule's writer,
// every entry, the hash chain and the inclusion proof) and applies its
// entries. It refuses a page that does not continue the log the index
// holds. On any error the index is unchanged.
func (ix *Index) ApplyPage(p Page) error {
	hb, err := capsule.UnmarshalHeartbeat(p.Heartbeat)
	if err != nil {
		return fmt.Errorf("kv page: %w", err)
	}
	entries := make([]capsule.Record, len(p.Records))
	for i, b := range p.Records {
		if entries[i], err = capsule.UnmarshalRecord(b); err != nil {
			return fmt.Errorf("kv page: %w", err)
		}
	}
	proof, err := capsule.UnmarshalInclusionProof(p.Proof)
	if err != nil {
		return fmt.Errorf("kv page: %w", err)
	}
	if err := capsule.VerifyRange(ix.info, hb, entries, proof, wire.MaxRecordData); err != nil {
		return fmt.Errorf("kv page: %w", err)
	}
	return ix.apply(entries, true)
}

// apply indexes verified entries that continue the log. With atomic, an
// error leaves the index as it was; otherwise the entries before the bad
// one stay applied.
func (ix *Index) apply(entries []capsule.Record, atomic bool) error {
	if len(entries) == 0 {
		return nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.continues(entries[0]); err != nil {
		return err
	}
	var u *undo
	if atomic {
		u = ix.saveUndo()
	}
	for i := range entries {
		if err := ix.applyOne(&entries[i], u); err != nil {
			switch {
			case u != nil:
				ix.rollback(u)
			case i > 0:
				ix.headHash = entries[i-1].Hash()
				ix.notify()
			}
			return err
		}
	}
	ix.headHash = entries[len(entries)-1].Hash()
	ix.notify()
	return nil
}

// undo is what rolls an index back to before a page.
type undo struct {
	head, ckpt, dropped uint64
	headHash            capsule.Hash
	asm                 *assembly
	nUnsorted, nSeqs    int
	touched             []string // keys given a version, in order
}

func (ix *Index) saveUndo() *undo {
	u := &undo{head: ix.head, ckpt: ix.ckpt, dropped: ix.dropped, headHash: ix.headHash,
		nUnsorted: len(ix.unsorted), nSeqs: len(ix.seqs)}
	if ix.asm != nil {
		u.asm = ix.asm.clone()
	}
	return u
}

func (ix *Index) rollback(u *undo) {
	for i := len(u.touched) - 1; i >= 0; i-- {
		k := u.touched[i]
		vs := ix.keys[k]
		if len(vs) == 1 {
			delete(ix.keys, k)
		} else {
			ix.keys[k] = vs[:len(vs)-1]
		}
	}
	ix.unsorted = ix.unsorted[:u.nUnsorted]
	ix.seqs, ix.times = ix.seqs[:u.nSeqs], ix.times[:u.nSeqs]
	ix.head, ix.ckpt, ix.dropped, ix.headHash, ix.asm = u.head, u.ckpt, u.dropped, u.headHash, u.asm
}

// continues checks that e is the entry after the index's head.
func (ix *Index) continues(e capsule.Record) error {
	if e.Capsule != ix.info.Name {
		return fmt.Errorf("kv: %w: entry of %s", capsule.ErrWrongCapsule, e.Capsule)
	}
	if e.Seqno != ix.head+1 {
		return fmt.Errorf("%w: entry %d after head %d", ErrChain, e.Seqno, ix.head)
	}
	if e.Prev != ix.headHash {
		return fmt.Errorf("%w: entry %d does not link to the indexed entry %d", ErrChain, e.Seqno, ix.head)
	}
	return nil
}

func (ix *Index) notify() {
	close(ix.changed)
	ix.changed = make(chan struct{})
}

// applyOne indexes one entry; the caller checked continuity.
func (ix *Index) applyOne(e *capsule.Record, u *undo) error {
	if e.Hole {
		ix.head = e.Seqno
		return nil
	}
	if len(e.Data) == 0 {
		// Nothing for the index (an encrypted capsule's key record, which
		// Store.Transform empties).
		ix.addTime(e.Seqno, e.Time)
		ix.head = e.Seqno
		return nil
	}
	o, err := UnmarshalOp(e.Data)
	if err != nil {
		ix.dropped++
		ix.asm = nil
		ix.addTime(e.Seqno, e.Time)
		ix.head = e.Seqno
		return nil
	}
	if o.Kind == OpCheckpoint {
		if err := ix.followPart(*e, o); err != nil {
			return err
		}
	} else {
		ix.asm = nil
		k := string(o.Key)
		vs, known := ix.keys[k]
		switch {
		case o.Kind == OpPut:
			if !known {
				ix.unsorted = append(ix.unsorted, k)
			}
			ix.keys[k] = append(vs, version{seq: e.Seqno, time: e.Time, val: o.Value})
			if u != nil {
				u.touched = append(u.touched, k)
			}
		case known && !vs[len(vs)-1].del:
			ix.keys[k] = append(vs, version{seq: e.Seqno, time: e.Time, del: true})
			if u != nil {
				u.touched = append(u.touched, k)
			}
		}
	}
	if o.Ckpt > ix.ckpt && o.Ckpt <= e.Seqno {
		ix.ckpt = o.Ckpt
	}
	ix.addTime(e.Seqno, e.Time)
	ix.head = e.Seqno
	return nil
}

func (ix *Index) addTime(seq uint64, t int64) {
	ix.seqs = append(ix.seqs, seq)
	ix.times = append(ix.times, t)
}

// followPart follows a checkpoint part: a first part starts an assembly,
// a next part extends it, anything else ends it (a checkpoint the writer
// abandoned part way is no checkpoint). On the last part it checks the
// entries against the digest, and the digest against the state the index
// holds at the checkpoint's base.
func (ix *Index) followPart(e capsule.Record, o *Op) error {
	a, err := nextPart(ix.asm, e, o)
	if err != nil {
		return err
	}
	ix.asm = a
	if a == nil || a.next < a.parts {
		return nil
	}
	ix.asm = nil
	if a.base >= ix.base && a.base <= ix.head {
		if got := ix.digestAt(a.base); !bytes.Equal(got, a.digest) {
			return fmt.Errorf("%w: checkpoint at %d differs from the state the log holds at %d", ErrBadCheckpoint, a.first, a.base)
		}
	}
	ix.ckpt = max(ix.ckpt, a.first)
	return nil
}

// nextPart advances assembly a (nil: none) by part o of entry e. A
// complete assembly has next == parts and its digest checked.
func nextPart(a *assembly, e capsule.Record, o *Op) (*assembly, error) {
	switch {
	case o.Part == 0 && o.Base+1 == e.Seqno:
		a = &assembly{first: e.Seqno, base: o.Base, baseTime: o.BaseTime, parts: o.Parts, digest: o.Digest, d: newDigester()}
	case a != nil && o.Part == a.next && e.Seqno == a.first+o.Part && o.Base == a.base && o.BaseTime == a.baseTime &&
		o.Parts == a.parts && bytes.Equal(o.Digest, a.digest):
	default:
		return nil, nil
	}
	for _, en := range o.Entries {
		if a.lastKey != nil && bytes.Compare(a.lastKey, en.Key) >= 0 {
			return nil, fmt.Errorf("%w: entry %d: keys out of order", ErrBadCheckpoint, e.Seqno)
		}
		a.lastKey = en.Key
		a.d.add(en.Key, en.Value, en.Seqno, int64(en.Time))
	}
	a.next++
	if a.next == a.parts && !bytes.Equal(a.d.sum(), a.digest) {
		return nil, fmt.Errorf("%w: checkpoint at %d: entries do not hash to its digest", ErrBadCheckpoint, a.first)
	}
	return a, nil
}

func (a *assembly) clone() *assembly {
	c := *a
	c.d = a.d.clone()
	return &c
}

// digestAt is the state digest at seqno s (s within the index).
func (ix *Index) digestAt(s uint64) []byte {
	d := newDigester()
	for _, k := range ix.sortedKeys() {
		if v, ok := versionAt(ix.keys[k], s); ok && !v.del {
			d.add([]byte(k), v.val, v.seq, v.time)
		}
	}
	return d.sum()
}

// sortedKeys merges the keys added since the last call into the sorted
// list and returns it. The caller holds mu (for writing, or reading with
// nothing unsorted).
func (ix *Index) sortedKeys() []string {
	if len(ix.unsorted) > 0 {
		slices.Sort(ix.unsorted)
		merged := make([]string, 0, len(ix.sorted)+len(ix.unsorted))
		i, j := 0, 0
		for i < len(ix.sorted) || j < len(ix.unsorted) {
			if j == len(ix.unsorted) || (i < len(ix.sorted) && ix.sorted[i] < ix.unsorted[j]) {
				merged = append(merged, ix.sorted[i])
				i++
			} else {
				merged = append(merged, ix.unsorted[j])
				j++
			}
		}
		ix.sorted, ix.unsorted = merged, nil
	}
	return ix.sorted
}

// versionAt is the last version at or before seqno s.
func versionAt(vs []version, s uint64) (version, bool) {
	i := sort.Search(len(vs), func(i int) bool { return vs[i].seq > s }) - 1
	if i < 0 {
		return version{}, false
	}
	return vs[i], true
}

// resolve turns at into a seqno the index can answer for. The caller holds
// mu.
func (ix *Index) resolve(at At) (uint64, error) {
	switch {
	case at.seqno != 0:
		if at.seqno > ix.head {
			return 0, fmt.Errorf("%w: seqno %d is beyond the index's head %d", ErrNotIndexed, at.seqno, ix.head)
		}
		if at.seqno < ix.base {
			return 0, fmt.Errorf("%w: seqno %d is before checkpoint base %d", ErrNotIndexed, at.seqno, ix.base)
		}
		return at.seqno, nil
	case !at.time.IsZero():
		t := at.time.UnixNano()
		i := sort.Search(len(ix.times), func(i int) bool { return ix.times[i] > t }) - 1
		if i < 0 {
			if ix.base > 0 {
				return 0, fmt.Errorf("%w: %s is before checkpoint base %d", ErrNotIndexed, at, ix.base)
			}
			return 0, nil // before the first record: nothing existed
		}
		return ix.seqs[i], nil
	}
	return ix.head, nil
}

func (ix *Index) value(k string, v version, at uint64) Value {
	return Value{Key: k, Value: v.val, Seqno: v.seq, Time: time.Unix(0, v.time), Deleted: v.del, At: at}
}

// GetAt returns key's value at at. It fails with ErrNotFound when the key
// has no value there, and ErrNotIndexed when at lies outside the index.
func (ix *Index) GetAt(key string, at At) (Value, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s, err := ix.resolve(at)
	if err != nil {
		return Value{}, err
	}
	v, ok := versionAt(ix.keys[key], s)
	if !ok || v.del {
		return Value{At: s}, fmt.Errorf("get %q at %s: %w", key, at, ErrNotFound)
	}
	return ix.value(key, v, s), nil
}

// ListAt returns the keys starting with prefix that have a value at at,
// in byte order, with their values.
func (ix *Index) ListAt(prefix string, at At) ([]Value, error) {
	ix.mu.Lock() // sortedKeys may merge
	defer ix.mu.Unlock()
	s, err := ix.resolve(at)
	if err != nil {
		return nil, err
	}
	keys := ix.sortedKeys()
	var out []Value
	for i := sort.SearchStrings(keys, prefix); i < len(keys) && strings.HasPrefix(keys[i], prefix); i++ {
		if v, ok := versionAt(ix.keys[keys[i]], s); ok && !v.del {
			out = append(out, ix.value(keys[i], v, s))
		}
	}
	return out, nil
}

// History returns every version of key the index holds, oldest first:
// puts and deletes. With a Base, versions before it are not all known.
func (ix *Index) History(key string) []Value {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	vs := ix.keys[key]
	out := make([]Value, len(vs))
	for i, v := range vs {
		out[i] = ix.value(key, v, v.seq)
	}
	return out
}

// wait returns a channel closed at the next change.
func (ix *Index) wait() <-chan struct{} {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.changed
}

// loadCheckpoint starts an empty index from a complete checkpoint: parts
// are its verified entries, in order. The index then holds the state at the
// checkpoint's base and every version after it.
func (ix *Index) loadCheckpoint(parts []capsule.Record) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.head != 0 || len(parts) == 0 {
		return fmt.Errorf("%w: load into a non-empty index", ErrBadCheckpoint)
	}
	var a *assembly
	var ents []Entry
	for i, e := range parts {
		if e.Hole {
			return fmt.Errorf("%w: entry %d is a hole", ErrBadCheckpoint, e.Seqno)
		}
		o, err := UnmarshalOp(e.Data)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrBadCheckpoint, e.Seqno, err)
		}
		if o.Kind != OpCheckpoint || (i == 0 && o.Part != 0) {
			return fmt.Errorf("%w: entry %d is not part %d of a checkpoint", ErrBadCheckpoint, e.Seqno, i)
		}
		if a, err = nextPart(a, e, o); err != nil {
			return err
		}
		if a == nil {
			return fmt.Errorf("%w: entry %d does not continue the checkpoint at %d", ErrBadCheckpoint, e.Seqno, parts[0].Seqno)
		}
		ents = append(ents, o.Entries...)
	}
	if a.next != a.parts {
		return fmt.Errorf("%w: checkpoint at %d has %d of its %d parts", ErrBadCheckpoint, a.first, a.next, a.parts)
	}
	for _, en := range ents {
		k := string(en.Key)
		ix.keys[k] = []version{{seq: en.Seqno, time: int64(en.Time), val: en.Value}}
		ix.sorted = append(ix.sorted, k)
	}
	ix.base, ix.basePrev, ix.baseDigest = a.base, parts[0].Prev, a.digest
	ix.addTime(a.base, int64(a.baseTime))
	for _, e := range parts {
		ix.addTime(e.Seqno, e.Time)
	}
	last := parts[len(parts)-1]
	ix.head, ix.headHash, ix.ckpt = last.Seqno, last.Hash(), a.first
	ix.notify()
	return nil
}

// mergeOlder completes an index that started from a checkpoint with old,
// an index of the log from seqno 1 to the checkpoint's base: old must end
// in the entry the checkpoint links to and lead to exactly the
// checkpointed state.
func (ix *Index) mergeOlder(old *Index) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.base == 0 {
		return nil
	}
	if old.head != ix.base || old.headHash != ix.basePrev {
		return fmt.Errorf("%w: the log before the checkpoint ends at %d and does not link to it (base %d)", ErrBadCheckpoint, old.head, ix.base)
	}
	if !bytes.Equal(old.digestAt(ix.base), ix.baseDigest) {
		return fmt.Errorf("%w: the log up to %d leads to another state than the checkpoint after it", ErrBadCheckpoint, ix.base)
	}
	keys := old.keys
	for k, vs := range ix.keys {
		i := sort.Search(len(vs), func(i int) bool { return vs[i].seq > ix.base })
		keys[k] = append(keys[k], vs[i:]...)
	}
	ix.keys = keys
	ix.sorted, ix.unsorted = nil, make([]string, 0, len(keys))
	for k := range keys {
		ix.unsorted = append(ix.unsorted, k)
	}
	ix.seqs = append(old.seqs, ix.seqs[1:]...)
	ix.times = append(old.times, ix.times[1:]...)
	ix.dropped += old.dropped
	ix.ckpt = max(ix.ckpt, old.ckpt)
	ix.base, ix.baseDigest = 0, nil
	return nil
}
