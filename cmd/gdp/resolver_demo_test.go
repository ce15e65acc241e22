package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoResolverStage runs the certs stage and the resolver stage and
// checks the narration of the cross-domain lookup.
func TestDemoResolverStage(t *testing.T) {
	var out bytes.Buffer
	d := &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := demoCerts(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := demoResolver(ctx, d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"refuses the same record", "found it on the global DHT", "is in domain A via border-a", "answered from the cache"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("narration lacks %q:\n%s", want, out.String())
		}
	}
}
