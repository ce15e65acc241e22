package capsule

import (
	"fmt"
	"math/bits"
)

// Tree is an append-only RFC 9162 Merkle tree that keeps only its right
// frontier in memory: the roots of the complete subtrees that make up the
// tree, one per set bit of its size, largest first. Appending is O(log n);
// every interior node an append completes is handed to the caller's emit
// function, which is how a store persists the nodes proofs need later.
//
// The zero Tree is the empty tree. A Tree is not safe for concurrent use.
type Tree struct {
	size     uint64
	frontier []Hash
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return t.size }

// Frontier returns a copy of the complete-subtree roots, largest first.
func (t *Tree) Frontier() []Hash { return append([]Hash(nil), t.frontier...) }

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree { return &Tree{size: t.size, frontier: t.Frontier()} }

// Emit receives a completed interior node: level >= 1, covering leaves
// [index<<level, (index+1)<<level).
type Emit func(level uint8, index uint64, h Hash)

// Append adds the leaf for entry hash e. emit may be nil.
func (t *Tree) Append(e Hash, emit Emit) {
	h := LeafHash(e)
	idx := t.size
	level := uint8(0)
	for s := t.size; s&1 == 1; s >>= 1 {
		last := len(t.frontier) - 1
		h = NodeHash(t.frontier[last], h)
		t.frontier = t.frontier[:last]
		level++
		idx >>= 1
		if emit != nil {
			emit(level, idx, h)
		}
	}
	t.frontier = append(t.frontier, h)
	t.size++
}

// Root is the Merkle tree hash of all leaves (EmptyRoot for no leaves).
func (t *Tree) Root() Hash {
	if len(t.frontier) == 0 {
		return EmptyRoot
	}
	r := t.frontier[len(t.frontier)-1]
	for i := len(t.frontier) - 2; i >= 0; i-- {
		r = NodeHash(t.frontier[i], r)
	}
	return r
}

// NodeSource returns stored Merkle nodes. Node(0, i) is the leaf hash of
// entry i; Node(l, i) for l >= 1 is the complete subtree over leaves
// [i<<l, (i+1)<<l). Callers only ask for nodes that are complete in the tree
// size they prove against.
type NodeSource interface {
	Node(level uint8, index uint64) (Hash, error)
}

// LoadTree rebuilds the frontier of a tree of the given size from src in
// O(log n) node reads.
func LoadTree(src NodeSource, size uint64) (*Tree, error) {
	t := &Tree{size: size}
	var start uint64
	for l := 63; l >= 0; l-- {
		if size&(1<<uint(l)) == 0 {
			continue
		}
		h, err := src.Node(uint8(l), start>>uint(l))
		if err != nil {
			return nil, fmt.Errorf("load tree of size %d: node (%d,%d): %w", size, l, start>>uint(l), err)
		}
		t.frontier = append(t.frontier, h)
		start += 1 << uint(l)
	}
	return t, nil
}

// largestPow2Below is the largest power of two strictly less than n (n >= 2).
func largestPow2Below(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }

// subtreeHash is MTH(D[lo:hi]) for a range the RFC recursion produces (lo is
// aligned to the largest power of two not above hi-lo): complete subtrees
// come from src in one read each.
func subtreeHash(src NodeSource, lo, hi uint64) (Hash, error) {
	n := hi - lo
	if n&(n-1) == 0 {
		l := uint8(bits.TrailingZeros64(n))
		return src.Node(l, lo>>l)
	}
	k := largestPow2Below(n)
	left, err := subtreeHash(src, lo, lo+k)
	if err != nil {
		return Hash{}, err
	}
	right, err := subtreeHash(src, lo+k, hi)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(left, right), nil
}

// RootAt computes the root of the tree's first size leaves from src.
func RootAt(src NodeSource, size uint64) (Hash, error) {
	if size == 0 {
		return EmptyRoot, nil
	}
	return subtreeHash(src, 0, size)
}

// MaxProofLen bounds a proof's path: a tree of up to 2^64 leaves needs at
// most 64 hashes for inclusion and 65 for consistency.
const MaxProofLen = 66

// InclusionPath is RFC 9162 §2.1.3.1 PATH(index, D[0:size]), read from src.
func InclusionPath(src NodeSource, index, size uint64) ([]Hash, error) {
	if index >= size {
		return nil, fmt.Errorf("inclusion proof: %w: leaf %d not in a tree of %d", ErrBadProof, index, size)
	}
	path := make([]Hash, 0, bits.Len64(size))
	var walk func(lo, hi uint64) error
	walk = func(lo, hi uint64) error {
		if hi-lo == 1 {
			return nil
		}
		k := largestPow2Below(hi - lo)
		var sib Hash
		var err error
		if index < lo+k {
			if err = walk(lo, lo+k); err != nil {
				return err
			}
			sib, err = subtreeHash(src, lo+k, hi)
		} else {
			if err = walk(lo+k, hi); err != nil {
				return err
			}
			sib, err = subtreeHash(src, lo, lo+k)
		}
		if err != nil {
			return err
		}
		path = append(path, sib)
		return nil
	}
	if err := walk(0, size); err != nil {
		return nil, fmt.Errorf("inclusion proof %d/%d: %w", index, size, err)
	}
	return path, nil
}

// ConsistencyPath is RFC 9162 §2.1.4.1 PROOF(m, D[0:n]), read from src.
func ConsistencyPath(src NodeSource, m, n uint64) ([]Hash, error) {
	if m > n {
		return nil, fmt.Errorf("consistency proof: %w: old size %d > new size %d", ErrBadProof, m, n)
	}
	if m == 0 || m == n {
		return nil, nil
	}
	var path []Hash
	var sub func(m, lo, hi uint64, b bool) error
	sub = func(m, lo, hi uint64, b bool) error {
		if m == hi-lo {
			if b {
				return nil
			}
			h, err := subtreeHash(src, lo, hi)
			if err != nil {
				return err
			}
			path = append(path, h)
			return nil
		}
		k := largestPow2Below(hi - lo)
		var sib Hash
		var err error
		if m <= k {
			if err = sub(m, lo, lo+k, b); err != nil {
				return err
			}
			sib, err = subtreeHash(src, lo+k, hi)
		} else {
			if err = sub(m-k, lo+k, hi, false); err != nil {
				return err
			}
			sib, err = subtreeHash(src, lo, lo+k)
		}
		if err != nil {
			return err
		}
		path = append(path, sib)
		return nil
	}
	if err := sub(m, 0, n, true); err != nil {
		return nil, fmt.Errorf("consistency proof %d->%d: %w", m, n, err)
	}
	return path, nil
}
