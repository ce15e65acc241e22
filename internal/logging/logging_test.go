package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type buf struct{ bytes.Buffer }

func (b *buf) Sync() error { return nil }

func lines(t *testing.T, b *buf) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// An expected error logged at ERROR carries no stack trace; a duration is a
// string with its unit.
func TestLoggerNoStacktraceDurationString(t *testing.T) {
	var b buf
	l, err := newLogger(Config{}, &b)
	if err != nil {
		t.Fatal(err)
	}
	l.Error("tunnel to the router closed", zap.Error(errors.New("boom")), zap.Duration("timeout", 1500*time.Millisecond))
	ls := lines(t, &b)
	if len(ls) != 1 {
		t.Fatalf("%d lines", len(ls))
	}
	if _, ok := ls[0]["stacktrace"]; ok {
		t.Errorf("an ERROR line carries a stack trace: %v", ls[0])
	}
	if ls[0]["timeout"] != "1.5s" {
		t.Errorf("timeout = %#v, want \"1.5s\"", ls[0]["timeout"])
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Level: "verbose"}, {Level: "fatal"}, {Format: "xml"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v): no error", c)
		}
	}
	for _, c := range []Config{{}, {Level: "debug", Format: "console"}, {Level: "warn", Format: "json"}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// go-libp2p's loggers (slog through gologshim) end up in the daemon's
// core, in its format.
func TestRouteLibraries(t *testing.T) {
	var b buf
	l, err := newLogger(Config{Level: "debug"}, &b)
	if err != nil {
		t.Fatal(err)
	}
	RouteLibraries(l)
	gologshim.Logger("gdptest").Error("a libp2p error", "peer", "p1")
	found := false
	for _, m := range lines(t, &b) {
		if m["msg"] == "a libp2p error" && m["level"] == zapcore.ErrorLevel.String() {
			found = true
		}
	}
	if !found {
		t.Fatalf("libp2p line not routed through zap; got %q", b.String())
	}
}
