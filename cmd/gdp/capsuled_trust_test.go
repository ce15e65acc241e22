package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestCapsuledTrustedDomains (Session 14): gdp capsuled's trusted_domains
// reach the verifier its endpoint is built with — the one that checks a
// CREATE's requester proof and a bulk reader's certificate — so a member
// of a listed domain proves itself (its own domain's share,
// placement.max_per_domain) and one of a domain not listed does not (the
// unproven pool). Without the key only the own domain is trusted.
// Session 17: the key is reloaded (SIGHUP): the verifier a reload puts in
// force (attachConfig.verifier, given to client.Endpoint.Reload) is read
// from the same list — before, a reload's was the own domain's alone.
func TestCapsuledTrustedDomains(t *testing.T) {
	dir := t.TempDir()
	dom, domainPath, id := skewDomain(t, dir)
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save("capsuled", id); err != nil {
		t.Fatal(err)
	}
	own, err := certs.IssueMember(dom, id.Name, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	memberPath := filepath.Join(dir, "capsuled.member")
	writePEM(t, memberPath, certs.PEMCert, own.Marshal())
	partner, err := certs.NewIdentity(certs.KindDomain, "partner")
	if err != nil {
		t.Fatal(err)
	}
	partnerPath := filepath.Join(dir, "partner.meta")
	writePEM(t, partnerPath, certs.PEMMetadata, partner.Meta.Marshal())
	stranger, err := certs.NewIdentity(certs.KindDomain, "stranger")
	if err != nil {
		t.Fatal(err)
	}
	member, err := certs.NewIdentity(certs.KindClient, "a partner's member")
	if err != nil {
		t.Fatal(err)
	}
	load := func(extra string) (start, reload *certs.Verifier) {
		t.Helper()
		y := fmt.Sprintf("keystore: %s\nidentity: capsuled\nmember_cert: %s\ndomain: %s\n%s", filepath.Join(dir, "keys"), memberPath, domainPath, extra)
		path := filepath.Join(t.TempDir(), "capsuled.yaml")
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadCapsuledConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := loadCreds("capsuled", cfg.files()) // what attach does
		if err != nil {
			t.Fatal(err)
		}
		_, rv, err := cfg.verifier() // what a reload does
		if err != nil {
			t.Fatal(err)
		}
		return creds.verifier, rv
	}
	proves := func(v *certs.Verifier, d *certs.Identity) bool {
		m, err := certs.IssueMember(d, member.Name, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = v.VerifyMember(member.Meta, m, d.Meta)
		return err == nil
	}
	start, reload := load("trusted_domains: [" + partnerPath + "]\n")
	for _, v := range []*certs.Verifier{start, reload} {
		if !proves(v, dom) || !proves(v, partner) || proves(v, stranger) {
			t.Fatalf("trusted_domains [partner] (start %v): own %v, partner %v, stranger %v; want true, true, false", v == start, proves(v, dom), proves(v, partner), proves(v, stranger))
		}
	}
	start, reload = load("")
	for _, v := range []*certs.Verifier{start, reload} {
		if !proves(v, dom) || proves(v, partner) {
			t.Fatalf("no trusted_domains (start %v): own %v, partner %v; want true, false", v == start, proves(v, dom), proves(v, partner))
		}
	}
}
