package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoSimStage: the simulator stage runs its example and narrates the
// outage and the result (loss, pings lost in the partition).
func TestDemoSimStage(t *testing.T) {
	var out bytes.Buffer
	d := &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := demoSim(ctx, d); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	for _, want := range []string{"outage", "link_down r2-r3", "% dropped (", "pings lost"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("narration lacks %q", want)
		}
	}
}
