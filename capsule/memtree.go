package capsule

import "fmt"

// MemTree is a Tree that also keeps every node in memory, level by level: a
// NodeSource for writers, tests and the proof benchmarks (~64 bytes a leaf).
// Servers keep nodes in their store instead.
type MemTree struct {
	Tree
	levels [][]Hash
}

// Append adds entry hash e.
func (m *MemTree) Append(e Hash) {
	if len(m.levels) == 0 {
		m.levels = append(m.levels, nil)
	}
	m.levels[0] = append(m.levels[0], LeafHash(e))
	m.Tree.Append(e, func(level uint8, index uint64, h Hash) {
		for int(level) >= len(m.levels) {
			m.levels = append(m.levels, nil)
		}
		m.levels[level] = append(m.levels[level], h)
	})
}

// Node implements NodeSource.
func (m *MemTree) Node(level uint8, index uint64) (Hash, error) {
	if int(level) >= len(m.levels) || index >= uint64(len(m.levels[level])) {
		return Hash{}, fmt.Errorf("node (%d,%d): not in a tree of %d leaves", level, index, m.size)
	}
	return m.levels[level][index], nil
}
