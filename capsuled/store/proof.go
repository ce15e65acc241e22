package store

import (
	"fmt"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// nodeSource is the store's NodeSource for a capsule: interior nodes come
// from the node cache or the engine, leaves from the stored entries.
func (s *Store) nodeSource(cs *capsuleState) capsule.NodeSource {
	return storeNodes{s: s, c: cs.info.Name, gen: cs.gen.Load()}
}

type nodeCacheKey struct {
	c     pdu.Name
	gen   uint64
	level uint8
	index uint64
}

type storeNodes struct {
	s   *Store
	c   pdu.Name
	gen uint64
}

// StoredNodeLevel is the lowest level of the Merkle interior nodes a store
// writes: a node below it covers at most 2^(StoredNodeLevel-1) entries and
// is computed from them when a proof needs it (one scan of a few
// neighbouring entries). Writing every node cost one more key per record
// (an interior node per leaf); this way it is one per 2^StoredNodeLevel
// records. A store written before (every level) is read the same way: its
// low nodes are simply not looked at.
const StoredNodeLevel = 4

func (n storeNodes) Node(level uint8, index uint64) (capsule.Hash, error) {
	if level == 0 {
		h, err := n.s.entryHash(n.c, index+1)
		if err != nil {
			return capsule.Hash{}, err
		}
		return capsule.LeafHash(h), nil
	}
	k := nodeCacheKey{n.c, n.gen, level, index}
	if h, ok := n.s.nodes.Get(k); ok {
		return h, nil
	}
	var h capsule.Hash
	if level < StoredNodeLevel {
		var err error
		if h, err = n.s.computeNode(n.c, level, index); err != nil {
			return capsule.Hash{}, err
		}
	} else {
		v, err := n.s.eng.get(nodeKey(n.c, level, index))
		if err != nil || len(v) != capsule.HashLen {
			return capsule.Hash{}, fmt.Errorf("node (%d,%d) of %s: %v", level, index, n.c, err)
		}
		h = capsule.Hash(v)
	}
	n.s.nodes.Add(k, h)
	return h, nil
}

// computeNode is interior node (level, index) of capsule c computed from
// the 2^level entries it covers, read in one scan.
func (s *Store) computeNode(c pdu.Name, level uint8, index uint64) (capsule.Hash, error) {
	width := uint64(1) << level
	first := index<<level + 1 // seqnos are leaf indexes + 1
	hs := make([]capsule.Hash, 0, width)
	var ierr error
	err := s.eng.scan(key(tEntry, c, first), key(tEntry, c, first+width), func(_, v []byte) bool {
		e, err := capsule.UnmarshalRecord(v)
		if err != nil {
			ierr = err
			return false
		}
		hs = append(hs, capsule.LeafHash(e.Hash()))
		return true
	})
	if err == nil {
		err = ierr
	}
	if err == nil && uint64(len(hs)) != width {
		err = fmt.Errorf("%d of its %d entries held", len(hs), width)
	}
	if err != nil {
		return capsule.Hash{}, fmt.Errorf("node (%d,%d) of %s: %w", level, index, c, err)
	}
	for len(hs) > 1 {
		for i := range len(hs) / 2 {
			hs[i] = capsule.NodeHash(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0], nil
}

// InclusionProof proves entry seqno in the tree of size entries (a size a
// heartbeat the reader holds covers).
func (s *Store) InclusionProof(c pdu.Name, seqno, size uint64) (*capsule.InclusionProof, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.checkRange(c, seqno, size); err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	cs, err := s.state(c)
	if err != nil {
		return nil, err
	}
	p, err := capsule.InclusionPath(s.nodeSource(cs), seqno-1, size)
	if err != nil {
		return nil, err
	}
	return &capsule.InclusionProof{Index: seqno - 1, Size: size, Path: p}, nil
}

// ConsistencyProof proves the tree of m entries a prefix of the tree of n.
func (s *Store) ConsistencyProof(c pdu.Name, m, n uint64) (*capsule.ConsistencyProof, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if m == 0 {
		if err := s.checkRange(c, 1, n); n > 0 && err != nil {
			return nil, fmt.Errorf("consistency proof: %w", err)
		}
	} else if err := s.checkRange(c, m, n); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	cs, err := s.state(c)
	if err != nil {
		return nil, err
	}
	p, err := capsule.ConsistencyPath(s.nodeSource(cs), m, n)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = []capsule.Hash{}
	}
	return &capsule.ConsistencyProof{Old: m, New: n, Path: p}, nil
}
