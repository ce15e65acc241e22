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
