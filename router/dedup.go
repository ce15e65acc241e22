package router

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
)

// dedup remembers recently forwarded PDUs by (source, destination, type,
// sequence) so that a copy arriving again — over a routing loop or from a
// multicast fan-out that met itself — is dropped. It is a fixed array of
// slots updated with atomics: no lock, no allocation, bounded memory. It is
// best-effort by design: a slot can be overwritten by another PDU, so a
// duplicate may slip through (TTL still bounds it), but a PDU is dropped only
// when a 44-bit fingerprint of all four fields matches one seen within the
// window.
type dedup struct {
	slots  []atomic.Uint64
	mask   uint64
	window uint64 // in clock ticks
	seed   [3]uint64
}

const (
	dedupTickBits = 20
	dedupTickMask = 1<<dedupTickBits - 1
)

// newDedup returns a table of at least size slots (rounded up to a power of
// two) that suppresses repeats seen within window ticks.
func newDedup(size int, window uint64) *dedup {
	n := 1
	for n < size {
		n <<= 1
	}
	d := &dedup{
		mask:   uint64(n - 1),
		window: window,
		seed:   [3]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64()},
	}
	d.slots = newSlots(n, d)
	return d
}

// locate returns the PDU b's slot and fingerprint (seen).
func (d *dedup) locate(b []byte) (slot, fp uint64) {
	src := binary.LittleEndian.Uint64(b[44:52]) ^ binary.LittleEndian.Uint64(b[52:60])
	dst := binary.LittleEndian.Uint64(b[12:20]) ^ binary.LittleEndian.Uint64(b[20:28])
	seq := uint64(binary.BigEndian.Uint32(b[8:12])) | uint64(b[2])<<32
	h := mix64(src^d.seed[0]) ^ mix64(dst^d.seed[1]) ^ mix64(seq/dedupLine^d.seed[2])
	return (h*dedupLine + seq%dedupLine) & d.mask, h &^ dedupTickMask
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// dedupLine is how many slots share a 64-byte cache line: the PDUs of one
// flow whose sequences differ only in their low 3 bits.
const dedupLine = 8

// seen records the PDU b (a validated header) at tick now and reports
// whether it was already recorded within the window.
//
// A PDU's slot is slot seq mod 8 of a cache line picked by a keyed hash of
// (source, destination, type, seq / 8): a flow's consecutive PDUs share a
// line, so a sequential flow misses the cache (and, on small pages, the
// TLB) once per 8 PDUs instead of on every one. The fingerprint is the
// same hash's top 44 bits (the line index is its low bits), so a PDU is
// still dropped only when all four fields match one seen in the window.
func (d *dedup) seen(b []byte, now uint64) bool {
	if d == nil {
		return false
	}
	i, fp := d.locate(b)
	tick := now & dedupTickMask
	slot := &d.slots[i]
	old := slot.Swap(fp | tick)
	if old&^dedupTickMask != fp || old == 0 {
		return false
	}
	age := (tick - old&dedupTickMask) & dedupTickMask
	return age < d.window
}
