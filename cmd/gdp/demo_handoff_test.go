package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoHandoffStage runs the certs, router and handoff stages and checks
// the handoff stage's narration: committed, the report printed, the image
// checked.
func TestDemoHandoffStage(t *testing.T) {
	var out bytes.Buffer
	d := &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}}
	defer d.Close()
	ctx := context.Background()
	if err := demoCerts(ctx, d); err != nil {
		t.Fatalf("certs stage: %v\n%s", err, out.String())
	}
	if err := demoRouter(ctx, d); err != nil {
		t.Fatalf("router stage: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := demoHandoff(ctx, d); err != nil {
		t.Fatalf("handoff stage: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"hands off an image pair", "committed at", "on the wire (ratio", "blocks:", "byte for byte"} {
		if !strings.Contains(s, want) {
			t.Errorf("narration lacks %q:\n%s", want, s)
		}
	}
	t.Log(s)
}
