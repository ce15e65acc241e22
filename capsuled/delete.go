package capsuled

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/internal/vfsutil"
	"github.com/gdpnet/gdpnet/pdu"
)

// DeleteWindow is how far a DELETE's signed time may be from this server's
// clock (docs/PROTOCOL.md §8.3): a captured DELETE cannot be replayed
// later, and within the window each capsule accepts a given time once.
const DeleteWindow = 5 * time.Minute

// deletes remembers, per capsule, the newest DELETE time accepted within
// the window, so the same signed DELETE is not accepted twice — except as
// what it is when it comes again with the same time: the client's re-send
// of a request whose answer is late because the first copy is still being
// carried out (a withdrawal and a store delete on a slow machine). Such a
// copy waits for the first one's outcome and gets the same answer; a copy
// after it finished, or an older time, is a replay and is refused.
type deletes struct {
	mu   sync.Mutex
	last map[pdu.Name]*deleteRun
}

// deleteRun is one accepted DELETE: its signed time and, once done, its
// outcome.
type deleteRun struct {
	t    uint64
	done chan struct{}
	err  error // set before done is closed
}

// admit decides on a DELETE signed at t for c: first is true for a new
// one (the caller runs it and calls finish); for a copy of the accepted
// one it returns that run; for a replay, nil.
func (d *deletes) admit(c pdu.Name, t uint64, now time.Time) (run *deleteRun, first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last = map[pdu.Name]*deleteRun{}
	}
	for n, r := range d.last {
		if now.Sub(time.Unix(0, int64(r.t))) > 2*DeleteWindow {
			delete(d.last, n)
		}
	}
	if r := d.last[c]; r != nil && t <= r.t {
		select {
		case <-r.done:
			// Carried out: a later copy finds the capsule gone (and gets
			// NOT_FOUND, which a deleting client takes as done) unless it
			// was placed again — then this is a replay.
			return nil, false
		default:
		}
		if t == r.t {
			return r, false
		}
		return nil, false
	}
	r := &deleteRun{t: t, done: make(chan struct{})}
	d.last[c] = r
	return r, true
}

// finish records a run's outcome for its copies.
func (r *deleteRun) finish(err error) {
	r.err = err
	close(r.done)
}

// handleDelete removes a placement and the capsule's data from this
// server when the capsule's owner signed the request for this server
// within DeleteWindow: the route is withdrawn, the placement file and every
// entry are deleted. A writer or reader then gets NO_ROUTE here.
func (s *Server) handleDelete(ctx context.Context, r request) *wire.Message {
	m := r.msg
	c := m.CapsuleName()
	var meta *certs.Metadata
	if p := s.places.get(c); p != nil {
		meta = p.meta
	} else if _, mb, err := s.st.Info(c); err == nil {
		meta, _ = certs.ParseMetadata(mb)
	}
	if meta == nil {
		resp := m.Reply(wire.StatusNotFound)
		resp.Error = fmt.Sprintf("unknown capsule %s", c)
		return resp
	}
	if len(m.Signature) == 0 || !ed25519.Verify(meta.Key, wire.DeleteSigned(c, s.name, m.Time), m.Signature) {
		s.met.dropped.WithLabelValues("delete_unsigned").Inc()
		return fail(m, fmt.Errorf("delete %s: %w: not signed by the capsule's owner key for this server", c, errForbidden))
	}
	now := clock.Now()
	at := time.Unix(0, int64(m.Time))
	if d := now.Sub(at); d > DeleteWindow || d < -DeleteWindow {
		s.met.dropped.WithLabelValues("delete_clock").Inc()
		return fail(m, fmt.Errorf("delete %s: %w: signed at %s, more than %s from this server's clock (a replay, or clock skew)",
			c, errForbidden, at.UTC().Format(time.RFC3339), DeleteWindow))
	}
	run, first := s.dels.admit(c, m.Time, now)
	switch {
	case run == nil:
		return fail(m, fmt.Errorf("delete %s: %w: this signed delete was already used (a replay)", c, errForbidden))
	case !first:
		// A re-send of the DELETE being (or just) carried out.
		select {
		case <-run.done:
		case <-ctx.Done():
			return fail(m, fmt.Errorf("delete %s: %w", c, ctx.Err()))
		}
		if run.err != nil {
			return fail(m, run.err)
		}
		return m.Reply(wire.StatusOK)
	}
	err := s.deleteCapsule(ctx, c)
	run.finish(err)
	if err != nil {
		return fail(m, err)
	}
	s.log.Info("capsule deleted", logging.Capsule(c), logging.Src(r.from))
	return m.Reply(wire.StatusOK)
}

// deleteCapsule withdraws c's route and removes its placement and data.
func (s *Server) deleteCapsule(ctx context.Context, c pdu.Name) error {
	if _, err := s.cli.Withdraw(ctx, c); err != nil {
		s.log.Warn("withdrawing a deleted capsule", logging.Capsule(c), zap.Error(err))
	}
	if err := s.places.remove(c); err != nil {
		return fmt.Errorf("delete %s: %w", c, err)
	}
	if err := s.st.Delete(ctx, c); err != nil && !errors.Is(err, store.ErrUnknownCapsule) {
		return fmt.Errorf("delete %s: %w", c, err)
	}
	s.met.adcertExpiry.DeleteLabelValues(c.String())
	s.sync.unfed(c)
	return nil
}

// remove forgets c's placement, durably.
func (ps *placements) remove(c pdu.Name) error {
	ps.wmu.Lock()
	defer ps.wmu.Unlock()
	path := filepath.Join(ps.dir, c.String()+".place")
	// On the placements' file system (as put writes), and the directory
	// synced: a power cut must not bring back a placement whose data the
	// DELETE went on to remove.
	if err := ps.fs.Remove(path); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("placement: %w", err)
		}
	} else if err := vfsutil.SyncDir(ps.fs, ps.dir); err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	ps.mu.Lock()
	if p := ps.m[c]; p != nil {
		ps.unindex(p)
	}
	delete(ps.m, c)
	ps.mu.Unlock()
	return nil
}
