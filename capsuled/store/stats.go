package store

// Stats are counters for the owner's metrics.
type Stats struct {
	Fsyncs  uint64 // group commits made durable
	Writes  uint64 // batches they covered (appends, creates, evidence)
	Pending int    // batches queued for the next fsync
	// DiskFull counts writes refused by the free-space guard
	// (Options.MinFreeBytes).
	DiskFull uint64
	// Read-ahead (ReadRawFor): READs served from records read ahead,
	// fills (scans reading ahead) and the entries they kept, the bytes
	// kept now; fills cut short or refused by the bound per requester
	// (ReadAheadBytes) and in all (ReadAheadTotal); streams dropped for a
	// requester's new one (ReadAheadStreams) and for idleness.
	ReadAheadHits, ReadAheadFills, ReadAheadEntries  uint64
	ReadAheadBytes                                   int
	ReadAheadLimitedRequester, ReadAheadLimitedTotal uint64
	ReadAheadEvicted, ReadAheadIdled                 uint64
	// ReadAheadFull counts READs read without a stream because the table
	// held its most (one stream per 4 KiB of ReadAheadTotal).
	ReadAheadFull uint64
	// EntriesRead counts the entries (records and holes) read from the
	// engine for callers: ReadRaw, Read, the read-ahead's fills, lookups
	// of one entry. What a request cost in reads shows in its change
	// (tests: a SYNC refused by its requester's share reads none).
	EntriesRead uint64
	// HeartbeatsRead counts the heartbeats HeartbeatsRaw read from the
	// engine for callers (each one its fn was called with): a SYNC's
	// answer scans no more of them than its bound (tests).
	HeartbeatsRead uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.commit.mu.Lock()
	p := len(s.commit.queue)
	s.commit.mu.Unlock()
	st := Stats{Fsyncs: s.commit.groups.Load(), Writes: s.commit.writes.Load(), Pending: p, DiskFull: s.commit.diskFull.Load(),
		EntriesRead: s.entriesRead.Load(), HeartbeatsRead: s.heartbeatsRead.Load()}
	if ra := s.ahead; ra != nil {
		ra.mu.Lock()
		st.ReadAheadBytes = ra.bytes
		ra.mu.Unlock()
		c := &ra.counter
		st.ReadAheadHits, st.ReadAheadFills, st.ReadAheadEntries = c.hits.Load(), c.fills.Load(), c.filled.Load()
		st.ReadAheadLimitedRequester, st.ReadAheadLimitedTotal = c.byWho.Load(), c.byTotal.Load()
		st.ReadAheadEvicted, st.ReadAheadIdled, st.ReadAheadFull = c.evicted.Load(), c.idled.Load(), c.full.Load()
	}
	return st
}

// Memory is what the engine holds in memory outside the Go heap (pebble
// allocates its memtables and block cache itself; a process's resident
// memory beyond the Go runtime's is mostly these). bbolt reports zeros.
type Memory struct {
	// MemTables: bytes allocated to memtables — the one being written,
	// those waiting for their flush, those an iterator still reads, and
	// one kept for reuse. A memtable's pages become resident as records
	// fill it. pebble starts at a 256 KiB memtable and doubles each one up
	// to 64 MiB, and flushes only once 32 MiB wait: a lightly written
	// server's resident memory grows with its writes until about 64 MiB
	// are written, then holds one 64 MiB memtable being written, one kept
	// for reuse and, while it is flushed, one more (four before writes
	// stall; docs/OPERATIONS.md §5.7 Sizing the disk).
	MemTables int64
	// Unflushed: bytes of the write-ahead log whose records the memtables
	// hold, not yet flushed to tables (replayed at a restart).
	Unflushed int64
	// BlockCache: bytes in the block cache (at most 32 MiB, less what the
	// memtables reserve of it).
	BlockCache int64
}

type memoryEngine interface{ memory() Memory }

// Memory reads the engine's memory outside the Go heap; zeros once the
// store is closed or for an engine that does not report it.
func (s *Store) Memory() Memory {
	if err := s.enter(); err != nil {
		return Memory{}
	}
	defer s.leave()
	if m, ok := s.eng.(memoryEngine); ok {
		return m.memory()
	}
	return Memory{}
}
