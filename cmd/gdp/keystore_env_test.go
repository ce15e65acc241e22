package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
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

// TestLoadCredsChecksMembership: a node's membership file must be its own,
// signed by its domain, or the daemon (and every client command) refuses to
// start naming the file — before Session 18 a capsule server given another
// node's membership started and failed at its router with "tls: bad
// certificate", naming neither. An expired membership is taken (the
// daemon warns and reloads the renewed file).
func TestLoadCredsChecksMembership(t *testing.T) {
	dir := t.TempDir()
	ksDir := filepath.Join(dir, "keys")
	ks, err := certs.OpenKeystore(ksDir)
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "acme")
	other, _ := certs.NewIdentity(certs.KindDomain, "someone else's")
	alice, _ := certs.NewIdentity(certs.KindClient, "alice")
	bob, _ := certs.NewIdentity(certs.KindClient, "bob")
	if err := ks.Save("alice", alice); err != nil {
		t.Fatal(err)
	}
	domPath := filepath.Join(dir, "acme.meta")
	writePEM(t, domPath, certs.PEMMetadata, dom.Meta.Marshal())
	now := time.Now()
	for _, tc := range []struct {
		name     string
		by       *certs.Identity
		subject  certs.Name
		from, to time.Time
		wantErr  string
	}{
		{"its own", dom, alice.Name, now.Add(-time.Minute), now.Add(time.Hour), ""},
		{"expired", dom, alice.Name, now.Add(-2 * time.Hour), now.Add(-time.Hour), ""},
		{"another node's", dom, bob.Name, now.Add(-time.Minute), now.Add(time.Hour), "wrong subject"},
		{"another domain's", other, alice.Name, now.Add(-time.Minute), now.Add(time.Hour), "untrusted domain"},
	} {
		c, err := certs.IssueMember(tc.by, tc.subject, tc.from, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		mp := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".member")
		writePEM(t, mp, certs.PEMCert, c.Marshal())
		_, err = loadCreds("client", credFiles{keystore: ksDir, identity: "alice", member: mp, domain: domPath})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s membership: %v, want taken", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), mp)):
			t.Errorf("%s membership: %v, want refused naming %s and %q", tc.name, err, mp, tc.wantErr)
		}
	}
}
