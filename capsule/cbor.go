package capsule

import (
	"fmt"

	"github.com/gdpnet/gdpnet/internal/detcbor"
)

// Minimal deterministic-CBOR helpers for the record codec (RFC 8949 §4.2.1:
// shortest-form heads, definite lengths). Only the few shapes a record uses.

const (
	majUint  = 0
	majBytes = 2
	majText  = 3
	majArray = 4
	majMap   = 5
)

// appendHead appends a CBOR head of major type maj with argument v in its
// shortest form.
func appendHead(b []byte, maj byte, v uint64) []byte { return detcbor.AppendHead(b, maj, v) }

// readHead decodes a CBOR head at b[off:], refusing indefinite lengths and
// non-shortest forms. It returns the major type, argument and next offset.
func readHead(b []byte, off int) (maj byte, v uint64, next int, err error) {
	if off >= len(b) {
		return 0, 0, 0, fmt.Errorf("%w: truncated at byte %d", ErrMalformed, off)
	}
	ib := b[off]
	maj, ai := ib>>5, ib&0x1f
	off++
	var n int
	switch {
	case ai < 24:
		return maj, uint64(ai), off, nil
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	default:
		return 0, 0, 0, fmt.Errorf("%w: indefinite or reserved length at byte %d", ErrMalformed, off-1)
	}
	if len(b)-off < n {
		return 0, 0, 0, fmt.Errorf("%w: truncated at byte %d", ErrMalformed, off)
	}
	for i := 0; i < n; i++ {
		v = v<<8 | uint64(b[off+i])
	}
	// Shortest form: the value must not fit a smaller head.
	var min uint64
	switch n {
	case 1:
		min = 24
	case 2:
		min = 0x100
	case 4:
		min = 0x10000
	case 8:
		min = 0x100000000
	}
	if v < min {
		return 0, 0, 0, fmt.Errorf("%w: non-shortest integer at byte %d", ErrMalformed, off-1)
	}
	return maj, v, off + n, nil
}

// expectKey reads map key k (a small unsigned integer) at b[off:].
func expectKey(b []byte, off int, k uint64) (int, error) {
	maj, v, next, err := readHead(b, off)
	if err != nil {
		return 0, err
	}
	if maj != majUint || v != k {
		return 0, fmt.Errorf("%w: want map key %d at byte %d", ErrMalformed, k, off)
	}
	return next, nil
}

// readUint reads an unsigned integer at b[off:].
func readUint(b []byte, off int) (uint64, int, error) {
	maj, v, next, err := readHead(b, off)
	if err != nil {
		return 0, 0, err
	}
	if maj != majUint {
		return 0, 0, fmt.Errorf("%w: want unsigned integer at byte %d", ErrMalformed, off)
	}
	return v, next, nil
}

// readBytes reads a byte string at b[off:] (aliasing b) of at most max bytes.
func readBytes(b []byte, off int, max int) ([]byte, int, error) {
	maj, v, next, err := readHead(b, off)
	if err != nil {
		return nil, 0, err
	}
	if maj != majBytes {
		return nil, 0, fmt.Errorf("%w: want byte string at byte %d", ErrMalformed, off)
	}
	if v > uint64(max) {
		return nil, 0, fmt.Errorf("%w: byte string of %d bytes at byte %d (max %d)", ErrTooLarge, v, off, max)
	}
	if uint64(len(b)-next) < v {
		return nil, 0, fmt.Errorf("%w: truncated byte string at byte %d", ErrMalformed, off)
	}
	return b[next : next+int(v)], next + int(v), nil
}

// readHash reads a 32-byte byte string into h.
func readHash(b []byte, off int, h *[HashLen]byte) (int, error) {
	s, next, err := readBytes(b, off, HashLen)
	if err != nil {
		return 0, err
	}
	if len(s) != HashLen {
		return 0, fmt.Errorf("%w: want %d-byte hash at byte %d, have %d", ErrMalformed, HashLen, off, len(s))
	}
	copy(h[:], s)
	return next, nil
}
