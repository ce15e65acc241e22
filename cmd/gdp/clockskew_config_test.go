package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestGatewayAndHandoffdClockSkew: the gateway's and handoffd's clock_skew
// has the semantics it has in router, resolver and capsuled: how far a
// certificate's NotBefore may lie ahead of this node's clock (default 5m),
// applied where each loads its credentials at start and where a reload
// checks a new membership certificate. A membership whose domain's clock
// runs 3 minutes ahead is taken with the default and with 10m, refused
// with clock_skew 1m; an expired one is refused whatever the skew
// (NotAfter is never stretched).
func TestGatewayAndHandoffdClockSkew(t *testing.T) {
	dir := t.TempDir()
	dom, domainPath, id := skewDomain(t, dir)
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save("client", id); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ahead, err := certs.IssueMember(dom, id.Name, now.Add(3*time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := certs.IssueMember(dom, id.Name, now.Add(-time.Hour), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	memberPath := filepath.Join(dir, "client.member")
	writePEM(t, memberPath, certs.PEMCert, ahead.Marshal())

	for _, tc := range []struct {
		skew string
		want time.Duration
	}{{"", certs.DefaultClockSkew}, {"1m", time.Minute}, {"10m", 10 * time.Minute}} {
		for _, kind := range []string{"gateway", "handoffd"} {
			t.Run(kind+" clock_skew "+tc.skew, func(t *testing.T) {
				y := fmt.Sprintf("keystore: %s\nidentity: client\nmember_cert: %s\ndomain: %s\n", filepath.Join(dir, "keys"), memberPath, domainPath)
				if tc.skew != "" {
					y += "clock_skew: " + tc.skew + "\n"
				}
				path := filepath.Join(t.TempDir(), kind+".yaml")
				if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
					t.Fatal(err)
				}
				var a attachConfig
				var creds *nodeCreds // as each loads them at start
				if kind == "gateway" {
					cfg, err := loadGatewayConfig(path)
					if err != nil {
						t.Fatal(err)
					}
					a = cfg.attachConfig
					creds, err = gatewayCreds(cfg)
					if err != nil {
						t.Fatal(err)
					}
				} else {
					cfg, err := loadHandoffdConfig(path)
					if err != nil {
						t.Fatal(err)
					}
					a = cfg.attachConfig
					creds, err = loadCreds("client", a.files()) // what attach does
					if err != nil {
						t.Fatal(err)
					}
				}
				domain, v, err := a.verifier() // at a reload
				if err != nil {
					t.Fatal(err)
				}
				for what, v := range map[string]*certs.Verifier{"start": creds.verifier, "reload": v} {
					if v.Skew != tc.want {
						t.Errorf("%s: skew %s, want %s", what, v.Skew, tc.want)
					}
					_, _, err := v.VerifyMember(id.Meta, ahead, domain)
					if ok := tc.want >= 3*time.Minute; ok != (err == nil) {
						t.Errorf("%s: membership 3 minutes ahead: %v (skew %s)", what, err, v.Skew)
					}
					if _, _, err := v.VerifyMember(id.Meta, expired, domain); err == nil {
						t.Errorf("%s: an expired membership was taken (skew %s)", what, v.Skew)
					}
				}
			})
		}
	}
}

// TestClockSkewAppliedAtReload: the reload paths themselves (not only the
// helper they call) check a new membership with the config's clock_skew:
// with clock_skew 1m a membership whose NotBefore lies 3 minutes ahead is
// refused by reloadGateway and reloadHandoffd, before anything is put in
// force (the uplink, endpoint and watch are nil here: a reload that took
// the membership would go on to use them).
func TestClockSkewAppliedAtReload(t *testing.T) {
	dir := t.TempDir()
	dom, domainPath, id := skewDomain(t, dir)
	now := time.Now()
	ahead, err := certs.IssueMember(dom, id.Name, now.Add(3*time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	memberPath := filepath.Join(dir, "client.member")
	writePEM(t, memberPath, certs.PEMCert, ahead.Marshal())
	path := filepath.Join(dir, "node.yaml")
	y := fmt.Sprintf("keystore: %s\nidentity: client\nmember_cert: %s\ndomain: %s\nclock_skew: 1m\n", filepath.Join(dir, "keys"), memberPath, domainPath)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for kind, reload := range map[string]func() error{
		"gateway":  func() error { return reloadGateway(path, id, nil, nil, nil, nil) },
		"handoffd": func() error { _, err := reloadHandoffd(path, &attached{id: id}, nil, nil); return err },
	} {
		t.Run(kind, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("the membership was taken and the reload went on (%v)", p)
					}
				}()
				err = reload()
			}()
			if err == nil || !strings.Contains(err.Error(), "membership "+memberPath) {
				t.Fatalf("reload with clock_skew 1m of a membership 3 minutes ahead: %v, want it refused", err)
			}
		})
	}
}

// skewDomain writes a domain's metadata to dir/domain.meta and mints a
// client identity for the clock-skew tests.
func skewDomain(t *testing.T, dir string) (dom *certs.Identity, domainPath string, id *certs.Identity) {
	t.Helper()
	dom, err := certs.NewIdentity(certs.KindDomain, "skew domain")
	if err != nil {
		t.Fatal(err)
	}
	domainPath = filepath.Join(dir, "domain.meta")
	writePEM(t, domainPath, certs.PEMMetadata, dom.Meta.Marshal())
	if id, err = certs.NewIdentity(certs.KindClient, "skew client"); err != nil {
		t.Fatal(err)
	}
	return dom, domainPath, id
}
