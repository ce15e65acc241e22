package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestCertRenew: gdp cert renew re-issues the certificates of a keystore
// past half their life (same kind, issuer, subject and lifetime, signed by
// the issuer's key in the keystore), leaves the others alone, changes
// nothing with --dry-run, and names the issuer and fails when the keystore
// does not hold its key.
func TestCertRenew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks, err := certs.OpenKeystore(dir)
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "acme")
	r1, _ := certs.NewIdentity(certs.KindRouter, "edge1")
	r2, _ := certs.NewIdentity(certs.KindRouter, "edge2")
	srv, _ := certs.NewIdentity(certs.KindServer, "store1")
	for alias, id := range map[string]*certs.Identity{"acme": dom, "edge1": r1, "edge2": r2, "store1": srv} {
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	mk := func(c *certs.Cert, err error) *certs.Cert {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	put := func(name string, c *certs.Cert) string {
		t.Helper()
		p := filepath.Join(dir, name)
		writePEM(t, p, certs.PEMCert, c.Marshal())
		return p
	}
	// edge1: 2 h into a 3 h life (renew); edge2: 1 h into 72 h (keep);
	// store1's RtCert: 20 h into 24 h (renew).
	old1 := put("edge1.member", mk(certs.IssueMember(dom, r1.Name, now.Add(-2*time.Hour), now.Add(time.Hour))))
	old2 := put("edge2.member", mk(certs.IssueMember(dom, r2.Name, now.Add(-time.Hour), now.Add(71*time.Hour))))
	oldRt := put("store1-edge1.rtcert", mk(certs.IssueRtCert(srv, r1.Name, now.Add(-20*time.Hour), now.Add(4*time.Hour))))
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before1, before2, beforeRt := read(old1), read(old2), read(oldRt)

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		rootCmd.SetOut(&out)
		rootCmd.SetErr(&out)
		rootCmd.SetArgs(append([]string{"cert", "--keystore", dir, "renew", "--dir="}, args...))
		err := rootCmd.ExecuteContext(context.Background())
		rootCmd.SetArgs(nil)
		return out.String(), err
	}
	out, err := run("--dry-run")
	if err != nil || !strings.Contains(out, "would renew member") || !strings.Contains(out, "would renew rtcert") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if !bytes.Equal(read(old1), before1) || !bytes.Equal(read(oldRt), beforeRt) {
		t.Fatal("--dry-run changed a file")
	}

	out, err = run("--dry-run=false")
	if err != nil || !strings.Contains(out, "2 renewed, 1 not yet at half-life, 0 need another signer") {
		t.Fatalf("renew: %v\n%s", err, out)
	}
	if !bytes.Equal(read(old2), before2) {
		t.Fatal("renew replaced a certificate not yet at half-life")
	}
	check := func(p string, kind certs.CertKind, issuer, subject certs.Name, key *certs.Identity, life time.Duration) {
		t.Helper()
		c, err := certs.ReadCertFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != kind || c.Issuer != issuer || c.Subject != subject || !c.VerifySignature(key.Meta.Key) {
			t.Fatalf("%s renewed as %s %s -> %s", p, c.Kind, c.Issuer, c.Subject)
		}
		if got := c.NotAfter.Sub(c.NotBefore); got.Round(time.Second) != life {
			t.Fatalf("%s: lifetime %s, want %s", p, got, life)
		}
		if d := c.NotBefore.Sub(now.Add(-time.Minute)); d < -5*time.Second || d > time.Minute {
			t.Fatalf("%s: not before %s, want about %s", p, c.NotBefore, now.Add(-time.Minute))
		}
	}
	check(old1, certs.KindMember, dom.Name, r1.Name, dom, 3*time.Hour)
	check(oldRt, certs.KindRtCert, srv.Name, r1.Name, srv, 24*time.Hour)

	// A keystore without the domain key: renew names the domain and fails.
	for _, f := range []string{"acme.key", "acme.meta"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	put("edge1.member", mk(certs.IssueMember(dom, r1.Name, now.Add(-2*time.Hour), now.Add(time.Hour))))
	out, err = run("--dry-run=false")
	if err == nil || !strings.Contains(out, dom.Name.String()+" must sign it") || !strings.Contains(out, "1 need another signer") {
		t.Fatalf("renew without the issuer key: %v\n%s", err, out)
	}

	// Session 18: certificates where OPERATIONS §1.1 writes them (the
	// working directory, not the keystore). Renew finding none is an
	// error naming where it looked — before, "0 renewed" and exit 0, so a
	// timer renewed nothing while every membership ran out — and --dir
	// finds them.
	dir = filepath.Join(t.TempDir(), "keys")
	ks2, err := certs.OpenKeystore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks2.Save("acme", dom); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	inWork := filepath.Join(work, "edge1.member")
	writePEM(t, inWork, certs.PEMCert, mk(certs.IssueMember(dom, r1.Name, now.Add(-2*time.Hour), now.Add(time.Hour))).Marshal())
	before := read(inWork)
	out, err = run("--dry-run=false")
	if err == nil || !strings.Contains(err.Error(), "no certificate file in "+dir) || !strings.Contains(err.Error(), "--dir") {
		t.Fatalf("renew with no certificate in the keystore: %v\n%s; want an error naming it and --dir", err, out)
	}
	out, err = run("--dry-run=false", "--dir", work)
	if err != nil || !strings.Contains(out, "1 renewed, 0 not yet at half-life") || bytes.Equal(read(inWork), before) {
		t.Fatalf("renew --dir %s: %v\n%s", work, err, out)
	}
	check(inWork, certs.KindMember, dom.Name, r1.Name, dom, 3*time.Hour)
}
