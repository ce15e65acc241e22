package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoCapsuleStage runs the certs, router and capsule stages and checks
// the capsule stage's narration.
func TestDemoCapsuleStage(t *testing.T) {
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
	if err := demoCapsule(ctx, d); err != nil {
		t.Fatalf("capsule stage: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"appended 2000 records", "cap3 (edge2) is killed", "on 2 of 3 replicas (w=2, met=true) — still durable",
		"caught up from its peers", "read all 3000 records"} {
		if !strings.Contains(s, want) {
			t.Errorf("narration lacks %q:\n%s", want, s)
		}
	}
	t.Log(s)
}
