package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoGatewayStage runs the certs stage and the gateway stage and
// checks the gateway stage's narration.
func TestDemoGatewayStage(t *testing.T) {
	var out bytes.Buffer
	d := &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}}
	defer d.Close()
	ctx := context.Background()
	if err := demoCerts(ctx, d); err != nil {
		t.Fatalf("certs stage: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := demoGateway(ctx, d); err != nil {
		t.Fatalf("gateway stage: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"(mode 0600)", `now "dark"`, `"light"`, `the first version "draft 1\n"`, "re-attached to gw-edge2", "every seqno exactly once",
		"bytes of ciphertext", "the plaintext nowhere in it", "opened with gw-cap1's own key: seal: no content key"} {
		if !strings.Contains(s, want) {
			t.Errorf("narration lacks %q:\n%s", want, s)
		}
	}
	t.Log(s)
}
