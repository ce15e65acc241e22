package capsule

import (
	"errors"
	"fmt"
)

// Evidence proves that a writer equivocated: two heartbeats it signed whose
// trees disagree on their first Size entries. Each side carries the root of
// its tree at Size and a consistency proof from there to its heartbeat, so
// anyone holding the writer key can check it in O(log n) without the logs.
// When a server finds the conflict, Size is the first seqno at which the
// two logs hold different entries.
//
// Two heartbeats of the same epoch must never disagree. A heartbeat of epoch
// e+1 continues from its Base, so it may disagree with epoch e only beyond
// Base (an abandoned branch); a disagreement at or below Base is
// equivocation too. Epochs further apart prove nothing on their own.
type Evidence struct {
	A, B         *Heartbeat
	Size         uint64
	RootA, RootB Hash
	PathA, PathB []Hash // consistency proofs Size -> A.Seqno and Size -> B.Seqno
}

// EquivocationError is returned (wrapping ErrEquivocation) when a batch or
// heartbeat conflicts with what is held; it carries the evidence.
type EquivocationError struct {
	Evidence *Evidence
}

func (e *EquivocationError) Error() string {
	return fmt.Sprintf("%v: heartbeats %d and %d disagree at seqno %d",
		ErrEquivocation, e.Evidence.A.Seqno, e.Evidence.B.Seqno, e.Evidence.Size)
}

func (e *EquivocationError) Unwrap() error { return ErrEquivocation }

// IsBranch reports whether heartbeats a and b, disagreeing at their first
// size entries, are explained by a declared restart: the later epoch
// continues from a base below size.
func IsBranch(a, b *Heartbeat, size uint64) bool {
	if a.Epoch > b.Epoch {
		a, b = b, a
	}
	return b.Epoch > a.Epoch && (b.Epoch != a.Epoch+1 || size > b.Base)
}

// NewEvidence builds the evidence that a's and b's trees differ at size,
// reading a's tree from srcA and b's from srcB. A side whose heartbeat is
// for exactly size entries needs no reads (its source may be nil).
func NewEvidence(a, b *Heartbeat, size uint64, srcA, srcB NodeSource) (*Evidence, error) {
	e := &Evidence{A: a, B: b, Size: size}
	var err error
	if e.RootA, e.PathA, err = prefixOf(a, size, srcA); err != nil {
		return nil, fmt.Errorf("evidence side a: %w", err)
	}
	if e.RootB, e.PathB, err = prefixOf(b, size, srcB); err != nil {
		return nil, fmt.Errorf("evidence side b: %w", err)
	}
	return e, nil
}

// prefixOf returns the root of hb's tree at size and the consistency path
// from there to hb.
func prefixOf(hb *Heartbeat, size uint64, src NodeSource) (Hash, []Hash, error) {
	if size == hb.Seqno {
		return hb.Root, []Hash{}, nil
	}
	root, err := RootAt(src, size)
	if err != nil {
		return Hash{}, nil, err
	}
	path, err := ConsistencyPath(src, size, hb.Seqno)
	return root, path, err
}

// Verify checks the evidence against the capsule's writer key: both
// signatures, both consistency proofs, that the roots differ, and that the
// epochs do not explain the difference as an abandoned branch.
func (e *Evidence) Verify(info Info) error {
	if e.A == nil || e.B == nil {
		return fmt.Errorf("evidence: %w: missing heartbeat", ErrMalformed)
	}
	if err := errors.Join(e.A.Verify(info.Name, info.Writer), e.B.Verify(info.Name, info.Writer)); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	if e.Size == 0 || e.Size > e.A.Seqno || e.Size > e.B.Seqno {
		return fmt.Errorf("evidence: %w: size %d outside both logs (%d, %d)", ErrBadProof, e.Size, e.A.Seqno, e.B.Seqno)
	}
	if err := VerifyConsistency(e.Size, e.A.Seqno, e.RootA, e.A.Root, e.PathA); err != nil {
		return fmt.Errorf("evidence side a: %w", err)
	}
	if err := VerifyConsistency(e.Size, e.B.Seqno, e.RootB, e.B.Root, e.PathB); err != nil {
		return fmt.Errorf("evidence side b: %w", err)
	}
	if e.RootA == e.RootB {
		return fmt.Errorf("evidence: %w: the logs agree at size %d", ErrBadProof, e.Size)
	}
	if IsBranch(e.A, e.B, e.Size) {
		return fmt.Errorf("evidence: %w: epochs %d and %d explain the difference as an abandoned branch", ErrBadProof, e.A.Epoch, e.B.Epoch)
	}
	return nil
}

type evidenceWire struct {
	A     []byte   `cbor:"1,keyasint"`
	B     []byte   `cbor:"2,keyasint"`
	Size  uint64   `cbor:"3,keyasint"`
	RootA []byte   `cbor:"4,keyasint"`
	PathA [][]byte `cbor:"5,keyasint"`
	RootB []byte   `cbor:"6,keyasint"`
	PathB [][]byte `cbor:"7,keyasint"`
}

// Marshal returns the wire form {1: heartbeat a, 2: heartbeat b, 3: size,
// 4: root a, 5: path a, 6: root b, 7: path b}.
func (e *Evidence) Marshal() []byte {
	b, err := codec.Marshal(evidenceWire{A: e.A.Marshal(), B: e.B.Marshal(), Size: e.Size,
		RootA: e.RootA[:], PathA: pathToWire(e.PathA), RootB: e.RootB[:], PathB: pathToWire(e.PathB)})
	if err != nil {
		panic("capsule: evidence: " + err.Error())
	}
	return b
}

// UnmarshalEvidence decodes the canonical wire form (structure only).
func UnmarshalEvidence(b []byte) (*Evidence, error) {
	var w evidenceWire
	if err := decodeCanonical(b, &w); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if len(w.RootA) != HashLen || len(w.RootB) != HashLen || w.PathA == nil || w.PathB == nil {
		return nil, fmt.Errorf("evidence: %w: bad roots or paths", ErrMalformed)
	}
	e := &Evidence{Size: w.Size, RootA: Hash(w.RootA), RootB: Hash(w.RootB)}
	var err error
	if e.A, err = UnmarshalHeartbeat(w.A); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if e.B, err = UnmarshalHeartbeat(w.B); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if e.PathA, err = pathFromWire(w.PathA); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if e.PathB, err = pathFromWire(w.PathB); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	return e, nil
}

// Overlay is a NodeSource for a tree that shares its first Prefix leaves
// with Base and continues with Leaves (entry hashes of Prefix+1, ...): how a
// server sees the tree an incoming batch claims without storing it.
type Overlay struct {
	Base   NodeSource
	Prefix uint64
	Leaves []Hash
}

// Node implements NodeSource.
func (o *Overlay) Node(level uint8, index uint64) (Hash, error) {
	lo, hi := index<<level, (index+1)<<level
	switch {
	case hi <= o.Prefix:
		return o.Base.Node(level, index)
	case hi > o.Prefix+uint64(len(o.Leaves)):
		return Hash{}, fmt.Errorf("node (%d,%d) beyond the overlay", level, index)
	case level == 0:
		return LeafHash(o.Leaves[lo-o.Prefix]), nil
	}
	l, err := o.Node(level-1, 2*index)
	if err != nil {
		return Hash{}, err
	}
	r, err := o.Node(level-1, 2*index+1)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(l, r), nil
}
