package clock

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestNowOffset(t *testing.T) {
	defer SetOffset(SetOffset(0))
	if d := time.Since(Now()); d < -time.Second || d > time.Second {
		t.Fatalf("no offset: Now is %s from time.Now", d)
	}
	SetOffset(-3 * time.Minute)
	if d := time.Since(Now()); d < 3*time.Minute-time.Second || d > 3*time.Minute+time.Second {
		t.Fatalf("offset -3m: Now is %s behind time.Now, want 3m", d)
	}
	// durations between two readings are not disturbed
	a := Now()
	time.Sleep(10 * time.Millisecond)
	if d := Now().Sub(a); d < 10*time.Millisecond || d > time.Minute {
		t.Fatalf("elapsed %s between two readings", d)
	}
}

func TestFromEnv(t *testing.T) {
	defer SetOffset(SetOffset(0))
	for _, tc := range []struct {
		val  string
		want time.Duration
		err  string
		warn bool
	}{
		{"", 0, "", false},
		{"-3m", -3 * time.Minute, "", true},
		{"10m", 10 * time.Minute, "", true},
		{"soon", 0, "not a duration", false},
		{"48h", 0, "beyond", false},
	} {
		SetOffset(0)
		t.Setenv(EnvOffset, tc.val)
		core, logs := observer.New(zapcore.InfoLevel)
		err := FromEnv(zap.New(core))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), EnvOffset) {
				t.Fatalf("%q: err %v, want one naming %s with %q", tc.val, err, EnvOffset, tc.err)
			}
		} else if err != nil {
			t.Fatalf("%q: %v", tc.val, err)
		}
		if Offset() != tc.want {
			t.Fatalf("%q: offset %s, want %s", tc.val, Offset(), tc.want)
		}
		warns := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("test knob").Len()
		if (warns == 1) != tc.warn || warns > 1 {
			t.Fatalf("%q: %d WARN lines about the test knob", tc.val, warns)
		}
	}
}
