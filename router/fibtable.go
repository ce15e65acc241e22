package router

import (
	"encoding/binary"

	"github.com/gdpnet/gdpnet/pdu"
)

// fibTable is one shard's open-addressing hash table (linear probing,
// backward-shift deletion). A slot is one cache line holding the whole
// name and the hop slice header, so a lookup usually costs one cache miss;
// Go's map would cost two or three at a million names. The probe start
// mixes the name with a per-FIB random seed, so names ground to collide
// cannot build long probe chains.
type fibTable struct {
	slots []fibSlot // length a power of two
	n     int       // used slots
	seed  uint64
}

type fibSlot struct {
	key  pdu.Name
	hops []Hop // nil: empty slot (installed names always have a hop)
	_    [8]byte
}

const fibMinSlots = 16

// newFibTable returns an empty table; its slots are allocated by the first
// set, so a FIB whose names fall in few shards (a small router, or one of
// ten thousand in a simulation) holds 256 empty headers, not 256 KiB.
func newFibTable(seed uint64) fibTable {
	return fibTable{seed: seed}
}

func (t *fibTable) home(n *pdu.Name) uint64 {
	return mix64(binary.LittleEndian.Uint64(n[:8])^t.seed) & uint64(len(t.slots)-1)
}

// get returns n's hops, or nil.
func (t *fibTable) get(n *pdu.Name) []Hop {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(n); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.hops == nil {
			return nil
		}
		if s.key == *n {
			return s.hops
		}
	}
}

// set stores hops (non-empty) for n.
func (t *fibTable) set(n *pdu.Name, hops []Hop) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(n); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.hops == nil {
			s.key, s.hops = *n, hops
			t.n++
			return
		}
		if s.key == *n {
			s.hops = hops
			return
		}
	}
}

// del removes n; it reports whether n was present.
func (t *fibTable) del(n *pdu.Name) bool {
	if t.n == 0 {
		return false
	}
	mask := uint64(len(t.slots) - 1)
	i := t.home(n)
	for {
		s := &t.slots[i]
		if s.hops == nil {
			return false
		}
		if s.key == *n {
			break
		}
		i = (i + 1) & mask
	}
	// Shift later members of the probe run back so no lookup stops early.
	for j := (i + 1) & mask; t.slots[j].hops != nil; j = (j + 1) & mask {
		k := t.home(&t.slots[j].key)
		// Move j into the hole at i unless its home lies cyclically in (i, j].
		if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = fibSlot{}
	t.n--
	if len(t.slots) > fibMinSlots && t.n*8 < len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
	return true
}

func (t *fibTable) grow() { t.resize(max(fibMinSlots, len(t.slots)*2)) }

func (t *fibTable) resize(size int) {
	old := t.slots
	t.slots, t.n = make([]fibSlot, size), 0
	for i := range old {
		if old[i].hops != nil {
			t.set(&old[i].key, old[i].hops)
		}
	}
}

// each calls fn for every name until it returns false.
func (t *fibTable) each(fn func(n pdu.Name, hops []Hop) bool) bool {
	for i := range t.slots {
		if s := &t.slots[i]; s.hops != nil && !fn(s.key, s.hops) {
			return false
		}
	}
	return true
}
