// Package clock is the daemons' wall clock: time.Now plus an offset that
// only a fault-injection test sets (the fault suite skews a node by
// minutes; Go reads the clock through the vDSO, so libfaketime cannot).
//
// Every decision that depends on wall time (certificate validity, signed
// timestamps and sequences, replay and DELETE windows, lease and record
// expiry) reads Now instead of time.Now. With no offset (always, outside
// the fault suite) Now is time.Now. The offset is deliberately not a YAML
// field an operator could set by accident: it comes from the environment
// variable GDP_FAULT_CLOCK_OFFSET, read once at a daemon's start, which
// logs a WARN line saying it is a test knob.
//
// Now keeps time.Now's monotonic reading (time.Time.Add does), so
// durations measured between two Now calls are not disturbed.
package clock

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// EnvOffset is the environment variable a daemon reads its clock offset
// from: a Go duration, e.g. "-3m" (the node's clock runs 3 minutes behind)
// or "10m". For the fault suite only.
const EnvOffset = "GDP_FAULT_CLOCK_OFFSET"

// MaxOffset bounds the offset EnvOffset may set.
const MaxOffset = 24 * time.Hour

var offset atomic.Int64 // nanoseconds

// Now is the process's wall clock: time.Now plus the offset.
func Now() time.Time {
	if d := offset.Load(); d != 0 {
		return time.Now().Add(time.Duration(d))
	}
	return time.Now()
}

// Offset returns the offset Now adds to time.Now.
func Offset() time.Duration { return time.Duration(offset.Load()) }

// SetOffset sets the offset and returns the previous one (tests restore it).
func SetOffset(d time.Duration) time.Duration {
	return time.Duration(offset.Swap(int64(d)))
}

// FromEnv sets the offset from EnvOffset, if set, and logs a WARN line
// saying so. An unset or empty variable leaves the clock alone; a value
// that is not a duration, or beyond ±MaxOffset, is an error (the daemon
// refuses to start rather than run with a clock it was not meant to).
func FromEnv(log *zap.Logger) error {
	v := os.Getenv(EnvOffset)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%s=%q: not a duration: %w", EnvOffset, v, err)
	}
	if d > MaxOffset || d < -MaxOffset {
		return fmt.Errorf("%s=%q: beyond ±%s", EnvOffset, v, MaxOffset)
	}
	SetOffset(d)
	log.Warn("clock offset set by a fault-injection test knob: this node's wall clock is skewed; never set it in production",
		zap.String("env", EnvOffset), zap.Duration("offset", d), zap.Time("skewed_now", Now()))
	return nil
}
