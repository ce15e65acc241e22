package gateway

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/caapi/fs"
	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/caapi/seal"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// The open writers, one per capsule written, are bounded: at most
// MaxWriters at once (the least recently used is closed to make room) and
// none unused for IdleClose. Closing flushes the writer and releases its
// capsule's writer lock. A request that found a writer just before it was
// closed sees it closed once it holds its mu and looks again: it never
// writes through a closed writer, and the capsule never has two writers
// open (the old one is closed, its lock released, before the map forgets
// it).

// writerKind is what a capsule's open writer writes: plain records, KV
// operations or files. One capsule has one writer at a time: a request of
// another kind closes the open one (flushing it) and opens its own, which
// continues from the replicas' head.
type writerKind int

const (
	plainWriter writerKind = iota
	kvWriter
	fsWriter
	sealedWriter // w, sealing through sl
)

// capWriter is the open writer of one capsule; mu serializes its use so
// one request's records get consecutive seqnos.
type capWriter struct {
	name pdu.Name

	// Under Server.mu.
	lastUse  time.Time
	users    int  // requests holding or waiting for mu: never evicted while > 0
	evicting bool // chosen to be closed (the bound or idle): not chosen twice

	mu     sync.Mutex
	closed bool // the map no longer holds it: look again
	kind   writerKind
	w      *client.Writer
	kv     *kv.Writer
	fs     *fs.Writer
	sl     *seal.Sealer // with w, for a sealedWriter
	unlock func()
}

func (cw *capWriter) open() bool { return cw.w != nil || cw.kv != nil || cw.fs != nil }

// abortLocked stops a writer just opened, before it wrote anything (a
// plain writer aborted; a KV or files writer closed, which sends nothing
// when nothing is pending).
func (cw *capWriter) abortLocked() {
	if cw.w != nil {
		cw.w.Abort()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if cw.kv != nil {
		_ = cw.kv.Close(ctx)
	}
	if cw.fs != nil {
		_ = cw.fs.Close(ctx)
	}
	cw.w, cw.kv, cw.fs, cw.sl = nil, nil, nil, nil
}

// closeLocked flushes and stops the open writer and releases its lock.
func (cw *capWriter) closeLocked(ctx context.Context) error {
	var err error
	switch {
	case cw.w != nil:
		err = cw.w.Close(ctx)
	case cw.kv != nil:
		err = cw.kv.Close(ctx)
	case cw.fs != nil:
		err = cw.fs.Close(ctx)
	}
	cw.w, cw.kv, cw.fs, cw.sl = nil, nil, nil, nil
	if cw.unlock != nil {
		cw.unlock()
		cw.unlock = nil
	}
	return err
}

// forgetLocked removes cw from the map (s.mu and cw.mu held) and marks it
// closed, so a request waiting on cw.mu looks again.
func (s *Server) forgetLocked(cw *capWriter) {
	cw.closed = true
	if s.writers[cw.name] == cw {
		delete(s.writers, cw.name)
	}
	if cw.evicting {
		cw.evicting = false
		s.evicting--
	}
}

// writerOpened and writerShut keep gdp_gateway_writers: the writers open,
// each holding its capsule's writer lock.
func (s *Server) writerOpened() { s.m.writers.Set(float64(s.openWriters.Add(1))) }
func (s *Server) writerShut()   { s.m.writers.Set(float64(s.openWriters.Add(-1))) }

// writer returns the capsule's plain writer, opened on first use, with its
// mu held; on failure the answer was sent.
func (s *Server) writer(ctx context.Context, w http.ResponseWriter, name pdu.Name) (*capWriter, bool) {
	return s.writerOf(ctx, w, name, plainWriter)
}

// writerOf returns the capsule's writer of kind, with its mu held.
func (s *Server) writerOf(ctx context.Context, w http.ResponseWriter, name pdu.Name, kind writerKind) (*capWriter, bool) {
	return s.writerOfReaders(ctx, w, name, kind, nil)
}

// writerOfReaders is writerOf; a sealedWriter opened on a capsule with
// nothing written yet starts epoch 1 for readers.
func (s *Server) writerOfReaders(ctx context.Context, w http.ResponseWriter, name pdu.Name, kind writerKind, readers []ed25519.PublicKey) (*capWriter, bool) {
	// looksEmpty: the capsule looked empty to the encrypted-or-not check
	// (its first record was not read), so a plain writer opened on it is
	// checked again (recheckSealed).
	looksEmpty := false
	if kind != sealedWriter {
		// Plain records, KV operations or files in an encrypted capsule
		// would be in the clear and break its readers.
		sealed, known, err := s.sealedState(ctx, name)
		if err != nil {
			s.overlayError(w, "open writer", err)
			return nil, false
		}
		if sealed {
			s.refuseSealed(w, name)
			return nil, false
		}
		if kind != fsWriter && known && s.holdsFiles(name) {
			s.refuseFiles(w, name)
			return nil, false
		}
		looksEmpty = !known
	}
	cw := s.lockedWriter(name)
	if cw.open() && cw.kind == kind {
		return cw, true
	}
	if cw.open() {
		err := cw.closeLocked(ctx)
		s.writerShut()
		if err != nil {
			s.log.Warn("closing a writer of another kind", logging.Capsule(name), zap.Error(err))
		}
	}
	fail := func() {
		s.mu.Lock()
		s.forgetLocked(cw)
		s.mu.Unlock()
		s.release(cw)
	}
	in, err := s.up.Caps().Info(ctx, name, name)
	if err != nil {
		fail()
		s.overlayError(w, "open writer", err)
		return nil, false
	}
	id, err := s.writerKey(in.Meta.WriterKey)
	if err != nil {
		fail()
		s.fail(w, http.StatusForbidden, "no_key", fmt.Errorf("capsule %s: %w", name, err))
		return nil, false
	}
	var unlock func()
	if s.lock != nil {
		if unlock, err = s.lock(name); err != nil {
			fail()
			s.fail(w, http.StatusConflict, "writer_conflict", err)
			return nil, false
		}
	}
	caps := s.up.Caps()
	switch kind {
	case plainWriter:
		cw.w, err = caps.NewWriter(ctx, name, id.Key, client.WriterOptions{Cadence: -1})
	case kvWriter:
		cw.kv, err = kv.OpenWriter(ctx, caps, name, id.Key, kv.WriterOptions{Writer: client.WriterOptions{Cadence: -1}})
	case fsWriter:
		cw.fs, err = fs.NewWriter(ctx, caps, name, id.Key, fs.WriterOptions{})
	case sealedWriter:
		cw.w, err = caps.NewWriter(ctx, name, id.Key, client.WriterOptions{Cadence: -1})
		if err == nil {
			if cw.sl, err = s.openSealer(ctx, name, cw.w, id.Key, readers); err != nil {
				cw.w.Abort()
				cw.w = nil
			}
		}
	}
	if looksEmpty {
		// The nearest replica showed no record 1, yet the writer may
		// continue a log its replicas hold (a lagging or lying replica
		// answered, and this gateway's mark of the capsule was dropped
		// or never taken): the first record decides, asked of the
		// replicas themselves, before anything is written. (A KV or
		// files writer that failed to open on sealed records is refused
		// the same way.)
		start, startKnown := uint64(0), false
		if kind == plainWriter && cw.w != nil {
			start, startKnown = cw.w.Progress().Start, true
		}
		replicas := in.Replicas
		if cw.w != nil {
			// The replicas the writer asked (the newest owner-signed
			// placement any of them holds).
			replicas, _ = cw.w.Replicas()
		}
		sealed, rerr := s.recheckSealed(ctx, name, replicas, start, startKnown)
		if rerr != nil && err == nil {
			err = rerr
		}
		if sealed || rerr != nil {
			cw.abortLocked()
		}
		if sealed {
			if unlock != nil {
				unlock()
			}
			fail()
			s.refuseSealed(w, name)
			return nil, false
		}
		if rerr == nil && kind != fsWriter && s.holdsFiles(name) {
			// The recheck found a files capsule's first record.
			cw.abortLocked()
			if unlock != nil {
				unlock()
			}
			fail()
			s.refuseFiles(w, name)
			return nil, false
		}
	}
	if err != nil {
		if unlock != nil {
			unlock()
		}
		fail()
		s.overlayError(w, "open writer", err)
		return nil, false
	}
	cw.kind, cw.unlock = kind, unlock
	s.writerOpened()
	return cw, true
}

// lockedWriter returns the capsule's entry with its mu held (release
// gives it back). An entry found closed once its mu is held was closed
// under the request (idle, the bound, a failure): it looks again.
func (s *Server) lockedWriter(name pdu.Name) *capWriter {
	for {
		s.mu.Lock()
		cw := s.writers[name]
		if cw == nil {
			cw = &capWriter{name: name}
			s.writers[name] = cw
		}
		cw.lastUse = time.Now()
		cw.users++
		victims := s.overBoundLocked()
		s.mu.Unlock()
		for _, v := range victims {
			s.evictWriter(v, "max_writers")
		}
		cw.mu.Lock()
		if !cw.closed {
			return cw
		}
		s.release(cw)
	}
}

// release ends a request's use of cw (its mu held): the writer stays open
// for the next request unless the bound wants it closed.
func (s *Server) release(cw *capWriter) {
	s.mu.Lock()
	cw.users--
	victims := s.overBoundLocked()
	s.mu.Unlock()
	cw.mu.Unlock()
	for _, v := range victims {
		s.evictWriter(v, "max_writers")
	}
}

// overBoundLocked picks the least recently used writers no request is
// using (and not already being closed) to close so that at most
// MaxWriters remain. Writers in use are never picked: while more requests
// than MaxWriters write distinct capsules at once, the excess is closed
// as they finish.
func (s *Server) overBoundLocked() []*capWriter {
	max := s.conf().MaxWriters
	var victims []*capWriter
	for len(s.writers)-s.evicting > max {
		var lru *capWriter
		for _, cw := range s.writers {
			if cw.users > 0 || cw.evicting {
				continue
			}
			if lru == nil || cw.lastUse.Before(lru.lastUse) {
				lru = cw
			}
		}
		if lru == nil {
			break
		}
		lru.evicting = true
		s.evicting++
		victims = append(victims, lru)
	}
	return victims
}

// evictWriter closes cw (marked evicting, no request using it): flushed,
// its lock released, forgotten. Counted under reason when it was open.
func (s *Server) evictWriter(cw *capWriter, reason string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	s.closeWriterLocked(cw, reason)
}

// closeWriterLocked closes and forgets cw (cw.mu held).
func (s *Server) closeWriterLocked(cw *capWriter, reason string) {
	if cw.closed {
		return // a failure forgot it first
	}
	wasOpen := cw.open()
	ctx, cancel := context.WithTimeout(context.Background(), s.conf().RequestTimeout)
	err := cw.closeLocked(ctx)
	cancel()
	s.mu.Lock()
	s.forgetLocked(cw)
	s.mu.Unlock()
	if !wasOpen {
		return
	}
	s.writerShut()
	s.m.writerEvictions.WithLabelValues(reason).Inc()
	if err != nil {
		s.log.Warn("closing an idle or least recently used writer", logging.Capsule(cw.name), logging.Reason(reason), zap.Error(err))
	}
}

// dropWriter forgets a writer that failed (cw.mu held): the next request
// opens a new one (continuing from the replicas' head).
func (s *Server) dropWriter(name pdu.Name, cw *capWriter) {
	s.mu.Lock()
	s.forgetLocked(cw)
	s.mu.Unlock()
	wasOpen := cw.open()
	if cw.w != nil {
		cw.w.Abort()
		cw.w = nil
	}
	cw.kv, cw.fs, cw.sl = nil, nil, nil
	if cw.unlock != nil {
		cw.unlock()
		cw.unlock = nil
	}
	if wasOpen {
		s.writerShut()
	}
}

// closeIdleWriters closes the writers unused for IdleClose; one in use is
// not idle and is skipped.
func (s *Server) closeIdleWriters() {
	idle := s.conf().IdleClose
	now := time.Now()
	s.mu.Lock()
	var old []*capWriter
	for _, cw := range s.writers {
		if cw.users == 0 && !cw.evicting && now.Sub(cw.lastUse) >= idle {
			old = append(old, cw)
		}
	}
	s.mu.Unlock()
	for _, cw := range old {
		if !cw.mu.TryLock() {
			continue // being closed
		}
		// Re-check under the locks: a request may have found it since.
		s.mu.Lock()
		still := s.writers[cw.name] == cw && cw.users == 0 && !cw.evicting && time.Since(cw.lastUse) >= idle
		if still {
			cw.evicting = true
			s.evicting++
		}
		s.mu.Unlock()
		if still {
			s.closeWriterLocked(cw, "idle")
		}
		cw.mu.Unlock()
	}
}

// shrinkWriters closes the least recently used writers beyond MaxWriters
// (after a reload lowered it).
func (s *Server) shrinkWriters() {
	s.mu.Lock()
	victims := s.overBoundLocked()
	s.mu.Unlock()
	for _, v := range victims {
		s.evictWriter(v, "max_writers")
	}
}

// closeAllWriters closes every writer (Close).
func (s *Server) closeAllWriters(ctx context.Context) error {
	s.mu.Lock()
	ws := make([]*capWriter, 0, len(s.writers))
	for _, cw := range s.writers {
		ws = append(ws, cw)
	}
	s.mu.Unlock()
	var errs []error
	for _, cw := range ws {
		cw.mu.Lock()
		if !cw.closed {
			wasOpen := cw.open()
			errs = append(errs, cw.closeLocked(ctx))
			s.mu.Lock()
			s.forgetLocked(cw)
			s.mu.Unlock()
			if wasOpen {
				s.writerShut()
			}
		}
		cw.mu.Unlock()
	}
	return errors.Join(errs...)
}

// refuseFiles answers 409 files_capsule: a record or KV operation after a
// file would make every reader of the tree fail on it (fs.ErrNotFS), for
// good.
func (s *Server) refuseFiles(w http.ResponseWriter, name pdu.Name) {
	s.fail(w, http.StatusConflict, "files_capsule", fmt.Errorf("capsule %s holds files (its first record is a file record): a record or KV operation in it would make its files unreadable; write files with PUT /v1/files/%s/content/PATH, other data to another capsule", name, name))
}
