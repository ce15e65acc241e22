package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoRouterStage runs the certs stage and the router stage and checks
// what an operator would read.
func TestDemoRouterStage(t *testing.T) {
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
	s := out.String()
	for _, want := range []string{"3 sent, 3 received, 0% loss", "(destination)", " router\n", "refused it (bad_signature)", "no black hole"} {
		if !strings.Contains(s, want) {
			t.Errorf("narration lacks %q:\n%s", want, s)
		}
	}
	if n := strings.Count(s, " router\n"); n != 3 {
		t.Errorf("traceroute shows %d routers, want 3:\n%s", n, s)
	}
	t.Log(s)
}
