package capsule

import "fmt"

// InclusionProof proves that entry Index+1 (leaf Index) is in the tree of
// Size leaves: RFC 9162 §2.1.3, wire form {1: index, 2: size, 3: [hashes]}.
type InclusionProof struct {
	Index uint64
	Size  uint64
	Path  []Hash
}

// ConsistencyProof proves that the tree of Old leaves is a prefix of the
// tree of New leaves: RFC 9162 §2.1.4, wire form {1: old, 2: new, 3: [hashes]}.
type ConsistencyProof struct {
	Old  uint64
	New  uint64
	Path []Hash
}

type proofWire struct {
	A    uint64   `cbor:"1,keyasint"`
	B    uint64   `cbor:"2,keyasint"`
	Path [][]byte `cbor:"3,keyasint"`
}

func pathToWire(p []Hash) [][]byte {
	w := make([][]byte, len(p))
	for i := range p {
		w[i] = p[i][:]
	}
	return w
}

func pathFromWire(w [][]byte) ([]Hash, error) {
	if len(w) > MaxProofLen {
		return nil, fmt.Errorf("%w: path of %d hashes (max %d)", ErrMalformed, len(w), MaxProofLen)
	}
	p := make([]Hash, len(w))
	for i, h := range w {
		if len(h) != HashLen {
			return nil, fmt.Errorf("%w: path hash %d has %d bytes", ErrMalformed, i, len(h))
		}
		p[i] = Hash(h)
	}
	return p, nil
}

func marshalProof(a, b uint64, p []Hash) []byte {
	out, err := codec.Marshal(proofWire{A: a, B: b, Path: pathToWire(p)})
	if err != nil {
		panic("capsule: proof: " + err.Error())
	}
	return out
}

func unmarshalProof(b []byte) (uint64, uint64, []Hash, error) {
	var w proofWire
	if err := decodeCanonical(b, &w); err != nil {
		return 0, 0, nil, err
	}
	if w.Path == nil {
		return 0, 0, nil, fmt.Errorf("%w: missing path", ErrMalformed)
	}
	p, err := pathFromWire(w.Path)
	return w.A, w.B, p, err
}

// Marshal returns the wire form.
func (p *InclusionProof) Marshal() []byte { return marshalProof(p.Index, p.Size, p.Path) }

// UnmarshalInclusionProof decodes the canonical wire form.
func UnmarshalInclusionProof(b []byte) (*InclusionProof, error) {
	i, n, path, err := unmarshalProof(b)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	if i >= n {
		return nil, fmt.Errorf("inclusion proof: %w: leaf %d not in a tree of %d", ErrMalformed, i, n)
	}
	return &InclusionProof{Index: i, Size: n, Path: path}, nil
}

// Verify checks the proof for entry hash e against root.
func (p *InclusionProof) Verify(e Hash, root Hash) error {
	return VerifyInclusion(e, p.Index, p.Size, p.Path, root)
}

// Marshal returns the wire form.
func (p *ConsistencyProof) Marshal() []byte { return marshalProof(p.Old, p.New, p.Path) }

// UnmarshalConsistencyProof decodes the canonical wire form.
func UnmarshalConsistencyProof(b []byte) (*ConsistencyProof, error) {
	m, n, path, err := unmarshalProof(b)
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	if m > n {
		return nil, fmt.Errorf("consistency proof: %w: old size %d > new size %d", ErrMalformed, m, n)
	}
	return &ConsistencyProof{Old: m, New: n, Path: path}, nil
}

// Verify checks the proof between two roots.
func (p *ConsistencyProof) Verify(oldRoot, newRoot Hash) error {
	return VerifyConsistency(p.Old, p.New, oldRoot, newRoot, p.Path)
}
