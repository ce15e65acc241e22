package capsule

import (
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/internal/clock"
)

// TestWriterClockSkew: a writer stamps records and heartbeats with the
// process clock (internal/clock, which the fault suite skews), and its
// times never go backwards when that clock is set back: a record written
// after a 3-minute step back carries the previous record's time, not one
// before it.
func TestWriterClockSkew(t *testing.T) {
	defer clock.SetOffset(clock.SetOffset(0))
	w := NewWriter(testName, testKey)
	first := w.Append([]byte("a"))
	if d := time.Since(time.Unix(0, first.Time)); d < -time.Minute || d > time.Minute {
		t.Fatalf("unskewed record time %s from now", d)
	}
	clock.SetOffset(-3 * time.Minute)
	second := w.Append([]byte("b"))
	if second.Time < first.Time {
		t.Fatalf("the clock set back took the record time back: %d < %d", second.Time, first.Time)
	}
	_, hb := w.Flush()
	if hb.Time < second.Time {
		t.Fatalf("heartbeat time %d before its last record's %d", hb.Time, second.Time)
	}
	// a fresh writer on the skewed clock stamps the skewed time
	w2 := NewWriter(testName, testKey)
	_, hb2 := w2.Flush()
	if d := time.Since(time.Unix(0, hb2.Time)); d < 3*time.Minute-time.Minute || d > 3*time.Minute+time.Minute {
		t.Fatalf("heartbeat on a clock 3 minutes behind is %s behind", d)
	}
}
