package store

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
)

type pebbleEngine struct {
	db *pebble.DB
	// scanBlockBytes sums the sstable block bytes scans loaded (from the
	// block cache or the disk): what a read cost the engine.
	scanBlockBytes atomic.Uint64
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// Pebble sizing (docs/OPERATIONS.md §5.7, Sizing the disk). pebble preallocates every WAL
// file to 110 % of the memtable size and keeps up to
// MemTableStopWritesThreshold+1 obsolete WAL files for reuse, so with the
// stock file handling the memtable size sets a floor on the disk a store
// takes whatever it holds (64 MiB memtables: ~450 MB, six 72 MB WAL files,
// for 30 MB of records), and small memtables (8 MiB) made three replicas
// on one machine flush and compact most of the time. Here neither happens:
// WAL files are written without preallocation (walFS) and deleted once
// obsolete instead of recycled (deleteCleaner), so a WAL takes only the
// bytes written to it and large memtables cost memory, not disk.
const (
	pebbleMemTable      = 64 << 20
	pebbleMemTables     = 4 // memtables (flushing or not) before writes stall
	pebbleL0Compaction  = 4 // L0 files that start a compaction into Lbase
	pebbleL0StopWrites  = 16
	pebbleBlockCache    = 32 << 20
	pebbleLBaseMaxBytes = 64 << 20
)

// deleteCleaner deletes obsolete files, as pebble's default cleaner does,
// and turns off WAL recycling: pebble recycles obsolete WAL files unless
// the cleaner needs their contents, which it tells by implementing an
// unexported marker interface that only ArchiveCleaner carries. The
// embedded archive marker brings that method (depth 2); Clean resolves to
// DeleteCleaner's (depth 1), so obsolete files are removed, never archived.
// TestPebbleWALNotRecycled checks that no obsolete WAL stays on disk.
type deleteCleaner struct {
	pebble.DeleteCleaner
	archiveMarker
}

type archiveMarker struct{ pebble.ArchiveCleaner }

func (deleteCleaner) String() string { return "delete-no-recycle" }

// walFS passes everything through to fs except preallocation, which it
// skips: pebble calls Preallocate only for WAL files (110 % of the memtable
// size up front), and on ext4 or xfs writing into fallocated space costs
// the same metadata update at fdatasync as extending the file.
type walFS struct{ vfs.FS }

func (f walFS) Create(name string) (vfs.File, error) {
	file, err := f.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return noPrealloc{file}, nil
}

type noPrealloc struct{ vfs.File }

func (noPrealloc) Preallocate(int64, int64) error { return nil }

func openPebble(dir string, fs vfs.FS, memTable int) (engine, error) {
	if fs == nil {
		fs = vfs.Default
	}
	if memTable <= 0 {
		memTable = pebbleMemTable
	}
	opts := &pebble.Options{
		FS:                          walFS{fs},
		Cleaner:                     deleteCleaner{},
		Logger:                      quietLogger{},
		MemTableSize:                uint64(memTable),
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
	e.scanBlockBytes.Add(it.Stats().InternalStats.BlockBytes)
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

// memory reads pebble's memory outside the Go heap (Store.Memory).
func (e *pebbleEngine) memory() Memory {
	m := e.db.Metrics()
	return Memory{MemTables: int64(m.MemTable.Size + m.MemTable.ZombieSize), Unflushed: int64(m.WAL.Size), BlockCache: m.BlockCache.Size}
}
