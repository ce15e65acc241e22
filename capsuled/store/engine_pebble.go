package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
)

type pebbleEngine struct {
	db *pebble.DB
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// Pebble sizing (docs/OPERATIONS.md §5.7). Every WAL file is preallocated
// to 110 % of the memtable size and up to MemTableStopWritesThreshold+1
// obsolete ones are kept for recycling, so the memtable size sets a floor
// on the disk a store takes whatever it holds: with 64 MiB memtables an
// almost empty store took ~450 MB (six 72 MB WAL files) for 30 MB of
// records. 8 MiB memtables keep that overhead near 45 MB. Smaller ones (4
// MiB, L0 compaction at 2 files) halved it again but made three replicas
// on one machine compact continuously (43 % of CPU, replicated appends at
// 0.54× of the 64 MiB configuration); 8 MiB with compaction at 4 L0 files
// is 0.76× with 2.6× the raw record bytes on disk (OPERATIONS §5.7).
const (
	pebbleMemTable      = 8 << 20
	pebbleMemTables     = 4 // memtables (flushing or not) before writes stall
	pebbleL0Compaction  = 4 // L0 files that start a compaction into Lbase
	pebbleL0StopWrites  = 16
	pebbleBlockCache    = 32 << 20
	pebbleLBaseMaxBytes = 64 << 20
)

func openPebble(dir string, fs vfs.FS) (engine, error) {
	opts := &pebble.Options{
		FS:                          fs,
		Logger:                      quietLogger{},
		MemTableSize:                pebbleMemTable,
		MemTableStopWritesThreshold: pebbleMemTables,
		L0CompactionThreshold:       pebbleL0Compaction,
		L0StopWritesThreshold:       pebbleL0StopWrites,
		LBaseMaxBytes:               pebbleLBaseMaxBytes,
		MaxConcurrentCompactions:    func() int { return 1 },
		Cache:                       pebble.NewCache(pebbleBlockCache),
	}
	// Bloom filters on every level: proofs and hash lookups are point reads.
	opts.Levels = make([]pebble.LevelOptions, 7)
	for i := range opts.Levels {
		opts.Levels[i] = pebble.LevelOptions{FilterPolicy: bloom.FilterPolicy(10)}
	}
	defer opts.Cache.Unref()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble at %s: %w", dir, err)
	}
	return &pebbleEngine{db: db}, nil
}

func (e *pebbleEngine) get(key []byte) ([]byte, error) {
	v, c, err := e.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, c.Close()
}

func (e *pebbleEngine) scan(lo, hi []byte, fn func(k, v []byte) bool) error {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func (e *pebbleEngine) last(lo, hi []byte) ([]byte, []byte, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, nil, err
	}
	var k, v []byte
	if it.Last() {
		k, v = append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, nil, err
	}
	if k == nil {
		return nil, nil, errNotFound
	}
	return k, v, nil
}

func (e *pebbleEngine) commit(b *writeBatch) error {
	pb := e.db.NewBatchWithSize(b.bytes + 16*len(b.ops))
	defer pb.Close()
	for _, o := range b.ops {
		var err error
		switch o.kind {
		case opSet:
			err = pb.Set(o.key, o.val, nil)
		case opDelete:
			err = pb.Delete(o.key, nil)
		case opDeleteRange:
			err = pb.DeleteRange(o.key, o.val, nil)
		}
		if err != nil {
			return err
		}
	}
	return pb.Commit(pebble.Sync)
}

func (e *pebbleEngine) close() error { return e.db.Close() }
