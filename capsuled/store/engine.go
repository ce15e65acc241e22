package store

import "errors"

// engine is the embedded key-value store under a Store: ordered keys,
// atomic durable batches, point reads and ordered scans. Two
// implementations exist (pebble, bbolt) so BenchmarkStoreEngines can
// measure both under the same workload; pebble is the default (see doc.go).
type engine interface {
	// get returns a copy of the value at key, or errNotFound.
	get(key []byte) ([]byte, error)
	// scan calls fn for each key in [lo, hi) in order until fn returns false.
	// k and v are valid only during the call.
	scan(lo, hi []byte, fn func(k, v []byte) bool) error
	// last returns copies of the greatest key in [lo, hi) and its value, or errNotFound.
	last(lo, hi []byte) ([]byte, []byte, error)
	// commit applies every op of b atomically and makes it durable (fsync)
	// before returning.
	commit(b *writeBatch) error
	close() error
}

var errNotFound = errors.New("not found")

type opKind uint8

const (
	opSet opKind = iota
	opDelete
	opDeleteRange // delete [key, val)
)

type op struct {
	kind     opKind
	key, val []byte
}

// writeBatch collects ops; one group commit merges many of them.
type writeBatch struct {
	ops   []op
	bytes int
}

func (b *writeBatch) set(k, v []byte) {
	b.ops = append(b.ops, op{kind: opSet, key: k, val: v})
	b.bytes += len(k) + len(v)
}

func (b *writeBatch) del(k []byte) { b.ops = append(b.ops, op{kind: opDelete, key: k}) }

func (b *writeBatch) delRange(lo, hi []byte) {
	b.ops = append(b.ops, op{kind: opDeleteRange, key: lo, val: hi})
}

func (b *writeBatch) merge(o *writeBatch) {
	b.ops = append(b.ops, o.ops...)
	b.bytes += o.bytes
}
