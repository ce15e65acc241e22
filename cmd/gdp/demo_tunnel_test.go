package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoTunnelStage runs the tunnel stage on its own (its own trust
// domain) and after the certs stage, and checks the narration.
func TestDemoTunnelStage(t *testing.T) {
	for _, withCerts := range []bool{false, true} {
		var out bytes.Buffer
		d := &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}}
		ctx := context.Background()
		if withCerts {
			if err := demoCerts(ctx, d); err != nil {
				t.Fatalf("certs stage: %v\n%s", err, out.String())
			}
		}
		err := demoTunnel(ctx, d)
		d.Close()
		if err != nil {
			t.Fatalf("tunnel stage: %v\n%s", err, out.String())
		}
		s := out.String()
		for _, want := range []string{"quic link up", "raw: 400 of 400 PDUs", "different key: refused", "expired: refused", "2 handshakes refused"} {
			if !strings.Contains(s, want) {
				t.Errorf("narration lacks %q:\n%s", want, s)
			}
		}
	}
}
