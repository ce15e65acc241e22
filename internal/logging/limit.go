package logging

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultLimitInterval is how often a rate-limited line may repeat for one
// key (docs/OPERATIONS.md "Log volume").
const DefaultLimitInterval = 10 * time.Second

// DefaultLimitKeys bounds the keys a Limiter tracks; events of further keys
// share one line per message and interval.
const DefaultLimitKeys = 256

// Limiter bounds the lines written for events a remote party can cause at
// line rate (a refused advertisement, a malformed request, a failed
// handshake). The first event of a key is logged; later ones at most once
// per interval, with a "suppressed" field counting the events not logged
// since the key's last line. The metrics still count every event: the log
// says what went wrong, the counters say how often.
//
// A key is the message with what distinguishes one episode from another
// (usually the reason and, for an authenticated peer, its name). Keys are
// bounded: once max are tracked, a new key's events share one overflow key
// per message (whose lines carry no per-key detail beyond their fields),
// so a member using many names cannot grow the state or the line rate
// beyond max+messages lines per interval.
type Limiter struct {
	interval time.Duration
	burst    int // lines per key and interval (1 unless NewBurstLimiter)
	max      int
	now      func() time.Time

	mu        sync.Mutex
	keys      map[limitKey]*limitState
	overflow  map[string]*limitState // by message
	lastSweep time.Time
}

type limitKey struct{ msg, key string }

type limitState struct {
	last       time.Time // the start of the key's current window: its first line in it
	seen       time.Time // the key's last event
	lines      int       // lines logged in the current window
	suppressed uint64
}

// NewLimiter returns a Limiter allowing one line per key and interval,
// tracking at most max keys. Zero values take DefaultLimitInterval and
// DefaultLimitKeys; now nil means time.Now.
func NewLimiter(interval time.Duration, max int, now func() time.Time) *Limiter {
	if interval <= 0 {
		interval = DefaultLimitInterval
	}
	if max <= 0 {
		max = DefaultLimitKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{interval: interval, burst: 1, max: max, now: now,
		keys: map[limitKey]*limitState{}, overflow: map[string]*limitState{}}
}

// NewBurstLimiter is NewLimiter allowing up to burst lines per key and
// interval (burst < 1 means 1): for events that are normal a few times in
// a row (a peer's link up and down across a restart) but not in a loop
// (a peer reconnecting as fast as it can). Once a key's burst is spent,
// its next line comes when the interval since the window's first line has
// passed, with the suppressed count.
func NewBurstLimiter(interval time.Duration, burst, max int, now func() time.Time) *Limiter {
	l := NewLimiter(interval, max, now)
	l.burst = max1(burst)
	return l
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// allow reports whether an event of (msg, key) may be logged now and, if
// so, how many events of it were suppressed since its last line.
func (l *Limiter) allow(msg, key string) (bool, uint64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[limitKey{msg, key}]
	if st == nil {
		if len(l.keys) >= l.max {
			l.sweep(now)
		}
		if len(l.keys) < l.max {
			l.keys[limitKey{msg, key}] = &limitState{last: now, seen: now, lines: 1}
			return true, 0
		}
		if st = l.overflow[msg]; st == nil {
			l.overflow[msg] = &limitState{last: now, seen: now, lines: 1}
			return true, 0
		}
	}
	st.seen = now
	if now.Sub(st.last) < l.interval {
		if st.lines < max1(l.burst) {
			st.lines++
			return true, 0
		}
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.lines, st.suppressed = now, 1, 0
	return true, n
}

// sweep forgets the keys quiet for a whole interval: their next event
// would be logged anyway, and only their suppressed count (the counters
// have it) is lost, so names a member used once do not hold the table.
// It runs at most once per interval so that a full table of busy keys
// costs no scan per event.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < l.interval {
		return
	}
	l.lastSweep = now
	for k, st := range l.keys {
		if now.Sub(st.seen) >= l.interval {
			delete(l.keys, k)
		}
	}
}

// Info logs msg at info level on log if (msg, key) is within its budget,
// adding the "suppressed" field. A nil Limiter logs every event.
func (l *Limiter) Info(log *zap.Logger, key, msg string, fields ...zap.Field) {
	l.write(log, zapcore.InfoLevel, key, msg, fields)
}

// Warn is Info at warn level.
func (l *Limiter) Warn(log *zap.Logger, key, msg string, fields ...zap.Field) {
	l.write(log, zapcore.WarnLevel, key, msg, fields)
}

func (l *Limiter) write(log *zap.Logger, lvl zapcore.Level, key, msg string, fields []zap.Field) {
	if !log.Core().Enabled(lvl) {
		return
	}
	var n uint64
	if l != nil { // nil (a test's bare struct) limits nothing
		var ok bool
		if ok, n = l.allow(msg, key); !ok {
			return
		}
	}
	if ce := log.WithOptions(zap.AddCallerSkip(2)).Check(lvl, msg); ce != nil {
		ce.Write(append(fields, Suppressed(n))...)
	}
}

// Suppressed is how many events of a rate-limited line were not logged
// since its previous line.
func Suppressed(n uint64) zap.Field { return zap.Uint64("suppressed", n) }
