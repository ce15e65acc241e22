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

func (n storeNodes) Node(level uint8, index uint64) (capsule.Hash, error) {
	k := nodeCacheKey{n.c, n.gen, level, index}
	if h, ok := n.s.nodes.Get(k); ok {
		return h, nil // a leaf only when a read of its entry kept it (ReadRaw)
	}
	if level == 0 {
		h, err := n.s.entryHash(n.c, index+1)
		if err != nil {
			return capsule.Hash{}, err
		}
		return capsule.LeafHash(h), nil
	}
	v, err := n.s.eng.get(nodeKey(n.c, level, index))
	if err != nil || len(v) != capsule.HashLen {
		return capsule.Hash{}, fmt.Errorf("node (%d,%d) of %s: %v", level, index, n.c, err)
	}
	h := capsule.Hash(v)
	n.s.nodes.Add(k, h)
	return h, nil
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
