package resolver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/internal/fsutil"
)

// SequenceReserve is how far ahead of the sequences it has handed out a
// Sequencer records its floor: one atomic write covers this much clock
// progress (in nanoseconds, as sequences are), so a busy node writes its
// state file about every ten minutes, not per record.
const SequenceReserve = uint64(10 * time.Minute)

// A Sequencer hands out record sequence numbers that never go back, across
// restarts too: each is the node's clock in Unix nanoseconds, raised above
// the last one handed out and above the floor its state file records. The
// floor is written (atomically and durably, fsutil.WriteFile) before any
// sequence above it is used, so a node restarted with its clock set back
// publishes records that supersede its previous run's at once, instead of
// records the resolver refuses as stale until the old ones expire.
type Sequencer struct {
	mu       sync.Mutex
	path     string // "" keeps the floor in memory only
	last     uint64
	reserved uint64 // the floor on disk: every sequence handed out is <= it
}

// SequenceFileName is the Sequencer's file in a node's state directory.
const SequenceFileName = "sequence"

// OpenSequencer reads the floor from path (a missing file is floor 0; the
// directory must exist) and returns a Sequencer that keeps it there. An
// empty path keeps nothing across restarts.
func OpenSequencer(path string) (*Sequencer, error) {
	q := &Sequencer{path: path}
	if path == "" {
		return q, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return q, nil
	case err != nil:
		return nil, fmt.Errorf("sequence state: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("sequence state %s: not a number (%q): remove the file only if the clock is known to be right", path, clip(string(b), 40))
	}
	q.last, q.reserved = v, v
	return q, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Next returns the next sequence. When it lies beyond the recorded floor,
// a new floor (it plus SequenceReserve) is written first; if that fails the
// error is returned and the sequence is not to be used (the caller tries
// again later).
func (q *Sequencer) Next() (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// above the process's other sequences too (NextSequence: the
	// tombstones this process put), so a record never ties with one
	s := max(NextSequence(), q.last+1)
	if q.path != "" && s > q.reserved {
		floor := s + SequenceReserve
		if err := fsutil.WriteFile(q.path, []byte(strconv.FormatUint(floor, 10)+"\n"), 0o600, true); err != nil {
			return 0, fmt.Errorf("sequence state %s: %w", filepath.Base(q.path), err)
		}
		q.reserved = floor
	}
	q.last = s
	raiseSequence(s)
	return s, nil
}

// Floor is the highest sequence this Sequencer may hand out without
// writing its state file again.
func (q *Sequencer) Floor() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.reserved
}
