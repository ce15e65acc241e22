package store

// Stats are counters for the owner's metrics.
type Stats struct {
	Fsyncs  uint64 // group commits made durable
	Writes  uint64 // batches they covered (appends, creates, evidence)
	Pending int    // batches queued for the next fsync
	// DiskFull counts writes refused by the free-space guard
	// (Options.MinFreeBytes).
	DiskFull uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.commit.mu.Lock()
	p := len(s.commit.queue)
	s.commit.mu.Unlock()
	return Stats{Fsyncs: s.commit.groups.Load(), Writes: s.commit.writes.Load(), Pending: p, DiskFull: s.commit.diskFull.Load()}
}
