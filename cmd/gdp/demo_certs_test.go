package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestDemoCertsStage runs the certs demo stage alone and checks what it
// narrates and what it leaves for later stages.
func TestDemoCertsStage(t *testing.T) {
	var out bytes.Buffer
	d := &demoEnv{Dir: t.TempDir(), Out: &out, Shared: map[string]any{}}
	if err := demoCerts(context.Background(), d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{`refused at link "rtcert" (bad signature)`, `refused at link "adcert" (bad signature)`, `(expired)`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("narration lacks %q:\n%s", want, out.String())
		}
	}
	p, ok := d.Shared["certs.pki"].(*demoPKI)
	if !ok {
		t.Fatal("certs.pki not shared")
	}
	if _, err := p.Verifier.VerifyRoute(p.Chain, p.Capsule.Name(), p.Router.Name); err != nil {
		t.Fatalf("shared chain: %v", err)
	}
	if _, ok := d.Shared["certs.chain"].(*certs.Chain); !ok {
		t.Error("certs.chain not shared")
	}
	// The helpers later stages use produce chains the shared verifier accepts.
	r2, m2, err := p.NewNode(certs.KindRouter, "edge2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.SelfChain(p.Server, r2, m2, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verifier.VerifyRoute(c, p.Server.Name, r2.Name); err != nil {
		t.Fatalf("self chain via edge2: %v", err)
	}
	if id, err := p.KS.Load("edge2"); err != nil || id.Name != r2.Name {
		t.Fatalf("edge2 not in the keystore: %v", err)
	}
}
