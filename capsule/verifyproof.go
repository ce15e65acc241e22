package capsule

import "fmt"

// VerifyInclusion checks that entry hash e is leaf index of the tree of the
// given size with root, following RFC 9162 §2.1.3.2 step by step.
func VerifyInclusion(e Hash, index, size uint64, path []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("%w: leaf %d not in a tree of %d", ErrBadProof, index, size)
	}
	if len(path) > MaxProofLen {
		return fmt.Errorf("%w: path of %d hashes", ErrBadProof, len(path))
	}
	fn, sn := index, size-1
	r := LeafHash(e)
	for _, p := range path {
		if sn == 0 {
			return fmt.Errorf("%w: inclusion path too long", ErrBadProof)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: inclusion path too short", ErrBadProof)
	}
	if r != root {
		return fmt.Errorf("%w: inclusion of leaf %d/%d gives a different root", ErrBadProof, index, size)
	}
	return nil
}

// VerifyConsistency checks that the tree of size m with root oldRoot is a
// prefix of the tree of size n with root newRoot, following RFC 9162
// §2.1.4.2. Equal sizes need equal roots and an empty path; size 0 is a
// prefix of everything.
func VerifyConsistency(m, n uint64, oldRoot, newRoot Hash, path []Hash) error {
	switch {
	case m > n:
		return fmt.Errorf("%w: old size %d > new size %d", ErrBadProof, m, n)
	case len(path) > MaxProofLen:
		return fmt.Errorf("%w: path of %d hashes", ErrBadProof, len(path))
	case m == 0:
		if len(path) != 0 || oldRoot != EmptyRoot {
			return fmt.Errorf("%w: the empty tree needs an empty path and the empty root", ErrBadProof)
		}
		return nil
	case m == n:
		if len(path) != 0 || oldRoot != newRoot {
			return fmt.Errorf("%w: equal sizes need equal roots and an empty path", ErrBadProof)
		}
		return nil
	case len(path) == 0:
		return fmt.Errorf("%w: empty consistency path", ErrBadProof)
	}
	if m&(m-1) == 0 {
		path = append([]Hash{oldRoot}, path...)
	}
	fn, sn := m-1, n-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return fmt.Errorf("%w: consistency path too long", ErrBadProof)
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: consistency path too short", ErrBadProof)
	}
	if fr != oldRoot || sr != newRoot {
		return fmt.Errorf("%w: %d->%d consistency gives different roots", ErrBadProof, m, n)
	}
	return nil
}
