package gateway

import (
	"context"
	"time"

	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/pdu"
)

// The KV stores the gateway reads through (one per KV capsule read, each
// following its capsule with a subscription) are bounded like the
// writers: at most MaxKVStores kept between requests, the least recently
// used closed first, and none kept unused for IdleClose. A store in use
// by a request is never closed under it.

// kvEntry is one cached store; lastUse and users are under Server.mu.
type kvEntry struct {
	name    pdu.Name
	st      *kv.Store
	lastUse time.Time
	users   int
}

// capMarks are the small facts the gateway keeps per capsule, bounded
// with the readers (MaxReaders, least recently used dropped): whether it
// is encrypted, once known, and the newest KV seqno this gateway wrote
// (reads wait until the index holds it: read-your-writes).
type capMarks struct {
	sealed, sealedKnown bool
	// files: its first record is a files-capsule record (known with
	// sealedKnown, when that record was read).
	files  bool
	kvLast uint64
}

// noteKV remembers the newest seqno this gateway wrote to a KV capsule.
func (s *Server) noteKV(name pdu.Name, seq uint64) {
	s.mu.Lock()
	m, _ := s.marks.Peek(name)
	if seq > m.kvLast {
		m.kvLast = seq
		s.marks.Add(name, m)
	}
	s.mu.Unlock()
}

// kvStore returns the capsule's verified KV store (opened on first use,
// kept current by its subscription), synced to what this gateway wrote;
// done gives it back.
func (s *Server) kvStore(ctx context.Context, name pdu.Name) (st *kv.Store, done func(), err error) {
	s.mu.Lock()
	e := s.kvs[name]
	if e != nil && e.st.Err() == nil {
		e.users++
		e.lastUse = time.Now()
		m, _ := s.marks.Get(name)
		s.mu.Unlock()
		return s.kvSynced(ctx, e, m.kvLast)
	}
	s.mu.Unlock()
	st, err = kv.Open(s.ctx, s.up.Caps(), name, kv.Options{Logger: s.log})
	if err != nil {
		return nil, nil, err
	}
	var drop []*kv.Store
	s.mu.Lock()
	if old := s.kvs[name]; old != nil {
		// A failed store, or one a concurrent request opened: replaced,
		// closed now or by its last user.
		delete(s.kvs, name)
		if old.users == 0 {
			drop = append(drop, old.st)
		}
	}
	e = &kvEntry{name: name, st: st, lastUse: time.Now(), users: 1}
	s.kvs[name] = e
	drop = append(drop, s.kvOverLocked()...)
	m, _ := s.marks.Get(name)
	s.mu.Unlock()
	closeStores(drop)
	return s.kvSynced(ctx, e, m.kvLast)
}

func (s *Server) kvSynced(ctx context.Context, e *kvEntry, last uint64) (*kv.Store, func(), error) {
	done := func() { s.kvRelease(e) }
	if last > 0 {
		if err := e.st.Sync(ctx, last); err != nil {
			done()
			return nil, nil, err
		}
	}
	return e.st, done, nil
}

// kvRelease ends a request's use of e; a store replaced while in use is
// closed by its last user.
func (s *Server) kvRelease(e *kvEntry) {
	var drop []*kv.Store
	s.mu.Lock()
	e.users--
	if e.users == 0 && s.kvs[e.name] != e {
		drop = append(drop, e.st)
	}
	drop = append(drop, s.kvOverLocked()...)
	s.mu.Unlock()
	closeStores(drop)
}

// kvOverLocked forgets the least recently used stores no request is using
// until at most MaxKVStores remain, and returns them to close (outside
// s.mu: closing waits for the follower).
func (s *Server) kvOverLocked() []*kv.Store {
	max := s.conf().MaxKVStores
	var drop []*kv.Store
	for len(s.kvs) > max {
		var lru *kvEntry
		for _, e := range s.kvs {
			if e.users == 0 && (lru == nil || e.lastUse.Before(lru.lastUse)) {
				lru = e
			}
		}
		if lru == nil {
			break // all in use: closed as they are given back
		}
		delete(s.kvs, lru.name)
		drop = append(drop, lru.st)
		s.m.kvEvictions.WithLabelValues("max_kv_stores").Inc()
	}
	s.m.kvStores.Set(float64(len(s.kvs)))
	return drop
}

// closeIdleKVs closes the stores unused for IdleClose.
func (s *Server) closeIdleKVs() {
	idle := s.conf().IdleClose
	var drop []*kv.Store
	s.mu.Lock()
	for n, e := range s.kvs {
		if e.users == 0 && time.Since(e.lastUse) >= idle {
			delete(s.kvs, n)
			drop = append(drop, e.st)
			s.m.kvEvictions.WithLabelValues("idle").Inc()
		}
	}
	s.m.kvStores.Set(float64(len(s.kvs)))
	s.mu.Unlock()
	closeStores(drop)
}

// shrinkKVs closes the stores beyond MaxKVStores (after a reload).
func (s *Server) shrinkKVs() {
	s.mu.Lock()
	drop := s.kvOverLocked()
	s.mu.Unlock()
	closeStores(drop)
}

func closeStores(sts []*kv.Store) {
	for _, st := range sts {
		_ = st.Close()
	}
}
