package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/router"
)

func TestPrintRouterStatus(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printRouterStatus(&b, router.Summary{Started: now.Add(-time.Hour), MemberExpiry: now.Add(-time.Minute)}, now)
	out := b.String()
	if !strings.Contains(out, "member    EXPIRED at 2026-12-05T11:59:00Z") || !strings.Contains(out, "renew") {
		t.Errorf("expired membership not said:\n%s", out)
	}
	if !strings.Contains(out, "up since  2026-12-05T11:00:00Z (1h0m0s)") {
		t.Errorf("up since:\n%s", out)
	}
	b.Reset()
	printRouterStatus(&b, router.Summary{MemberExpiry: now.Add(48 * time.Hour)}, now)
	out = b.String()
	if strings.Contains(out, "0001-01-01") || !strings.Contains(out, "up since  unknown") {
		t.Errorf("zero start time:\n%s", out)
	}
	if !strings.Contains(out, "member    until 2026-12-07T12:00:00Z (in 48h0m0s)") {
		t.Errorf("valid membership:\n%s", out)
	}
}
