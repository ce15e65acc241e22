package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/client"
)

// $GDP_KEYSTORE is the default keystore of every daemon and client
// command; a command that fails to find its identity creates nothing and
// says how to create it.
func TestKeystoreEnvAndMissingIdentity(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "nokeys")
	t.Setenv("GDP_KEYSTORE", ks)

	rc, err := loadRouterConfig("")
	if err != nil || rc.Keystore != ks {
		t.Errorf("router keystore %q (%v), want %q", rc.Keystore, err, ks)
	}
	cc, err := loadCapsuledConfig("")
	if err != nil || cc.Keystore != ks {
		t.Errorf("capsuled keystore %q (%v), want %q", cc.Keystore, err, ks)
	}
	var a attachConfig
	a.withDefaults("client")
	if a.Keystore != ks {
		t.Errorf("client keystore %q, want %q", a.Keystore, ks)
	}
	rf, err := loadResolverConfig("")
	if err != nil {
		t.Fatal(err)
	}
	_, err = resolverCreds(rf)
	if err == nil || !strings.Contains(err.Error(), "keystore "+ks+" does not exist") ||
		!strings.Contains(err.Error(), "gdp cert --keystore "+ks+" keygen --kind resolver --alias resolver") {
		t.Errorf("resolver with no keystore: %v", err)
	}
	_, err = cc.attach(t.Context(), client.Options{})
	if err == nil || !strings.Contains(err.Error(), "gdp cert --keystore "+ks+" keygen --kind server --alias capsuled") {
		t.Errorf("capsuled with no keystore: %v", err)
	}
	if _, err := os.Stat(ks); !os.IsNotExist(err) {
		t.Fatalf("a failed command created the keystore %s (%v)", ks, err)
	}

	// The keystore exists, the alias does not: the error says how to make it.
	if err := os.Mkdir(ks, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = loadCreds("client", credFiles{keystore: ks, identity: "alice"})
	if err == nil || !strings.Contains(err.Error(), "not found") ||
		!strings.Contains(err.Error(), "create it with: gdp cert --keystore "+ks+" keygen --kind client --alias alice") {
		t.Errorf("missing alias: %v", err)
	}
}

// gdp cert issue refuses a certificate that would be expired at once,
// unless --force.
func TestCertIssueRefusesExpired(t *testing.T) {
	w := issueWindow{notBefore: "2020-01-01T00:00:00Z", duration: time.Hour, backdate: time.Minute}
	if _, _, err := w.window(); err == nil || !strings.Contains(err.Error(), "would be expired already") {
		t.Fatalf("expired window: %v", err)
	}
	w.force = true
	if _, na, err := w.window(); err != nil || !na.Equal(time.Date(2020, 1, 1, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("--force: %v %v", na, err)
	}
	w = issueWindow{notBefore: "now", duration: time.Hour}
	if _, _, err := w.window(); err != nil {
		t.Fatal(err)
	}
}

// gdp cert inspect and gdp cert list with no keystore create none.
func TestCertCommandsCreateNoKeystore(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "keys")
	old := certKeystoreDir
	defer func() { certKeystoreDir = old }()
	certKeystoreDir = ks
	if m := aliases(); len(m) != 0 {
		t.Fatalf("aliases from a missing keystore: %v", m)
	}
	var list *cobra.Command
	for _, c := range certCmd.Commands() {
		if c.Name() == "list" {
			list = c
		}
	}
	if err := list.RunE(list, nil); err == nil || !strings.Contains(err.Error(), "keygen") {
		t.Fatalf("list of a missing keystore: %v", err)
	}
	if _, err := loadIdentity("alice"); err == nil || !strings.Contains(err.Error(), "keygen") {
		t.Fatalf("loading from a missing keystore: %v", err)
	}
	if _, err := os.Stat(ks); !os.IsNotExist(err) {
		t.Fatalf("a cert command created the keystore (%v)", err)
	}
}
