package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/resolver"
)

// e2eDomain is a trust domain written to a directory for real processes:
// a keystore (dir/keys) holding an identity per alias, each one's
// membership as dir/ALIAS.member, and the domain's metadata as
// dir/domain.meta.
type e2eDomain struct {
	dir               string // where the memberships are (dir/ALIAS.member)
	dom               *certs.Identity
	ks                *certs.Keystore
	ksDir, domainPath string
	ids               map[string]*certs.Identity
	members           map[string]*certs.Cert
}

// newE2EDomain mints the domain and the identities of kinds (alias →
// kind). Memberships are valid from back ago for a day: issued ahead, as a
// deployment's are, so a node whose clock is skewed by less than back
// meets the clock windows rather than a certificate younger than its skew.
func newE2EDomain(t *testing.T, dir, desc string, back time.Duration, kinds map[string]certs.Kind) *e2eDomain {
	t.Helper()
	d := &e2eDomain{dir: dir, ksDir: filepath.Join(dir, "keys"), domainPath: filepath.Join(dir, "domain.meta"),
		ids: map[string]*certs.Identity{}, members: map[string]*certs.Cert{}}
	var err error
	if d.ks, err = certs.OpenKeystore(d.ksDir); err != nil {
		t.Fatal(err)
	}
	if d.dom, err = certs.NewIdentity(certs.KindDomain, desc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.domainPath, certs.Armor(certs.PEMMetadata, d.dom.Meta.Marshal()), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for alias, kind := range kinds {
		id, err := certs.NewIdentity(kind, alias)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
		m, err := certs.IssueMember(d.dom, id.Name, now.Add(-back), now.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, alias+".member"), certs.Armor(certs.PEMCert, m.Marshal()), 0o644); err != nil {
			t.Fatal(err)
		}
		d.ids[alias], d.members[alias] = id, m
	}
	return d
}

// writeConf writes a daemon's YAML as dir/NAME.yaml and returns its path.
func writeConf(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// killAtEnd kills (-9) every process in *all when the test ends and, if
// it failed, logs the tail of each one's log.
//
// (procSet below is the usual way in: it calls killAtEnd.)
func killAtEnd(t *testing.T, all *[]*proc) {
	t.Cleanup(func() {
		for _, p := range *all {
			p.kill9()
		}
		if t.Failed() {
			for _, p := range *all {
				b, _ := os.ReadFile(p.log)
				t.Logf("--- log of %s (last 3000 bytes):\n%s", p.name, tail(b, 3000))
			}
		}
	})
}

// resolverConf is a `gdp resolver` config after creds: its API on a free
// loopback port (returned) and the DHT's first node on another, logging
// at level.
func resolverConf(t *testing.T, creds, level string) (conf, api string) {
	t.Helper()
	api = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	return creds + fmt.Sprintf(`api: %q
log: {level: %s}
resolver:
  mode: dht
  listen: [/ip4/127.0.0.1/udp/%d/quic-v1]
  min_puts: 1
  handshake_timeout: 5s
  cache: {negative_ttl: 300ms}
`, api, level, freePort(t, "udp")), api
}

// waitResolver waits until the resolver's API at api answers with its
// DHT addresses, and returns its status.
func waitResolver(t *testing.T, api string, within time.Duration) resolver.Status {
	t.Helper()
	var st resolver.Status
	waitFor(t, "the resolver's API", within, func() bool {
		return getJSON("http://"+api+"/status", &st) && len(st.Addrs) > 0
	})
	return st
}

// creds is the part of a daemon's YAML that says who it is: the domain's
// keystore, the alias's identity and membership, and the domain file.
func (d *e2eDomain) creds(alias string) string {
	return fmt.Sprintf("keystore: %s\nidentity: %s\nmember_cert: %s\ndomain: %s\n", d.ksDir, alias,
		filepath.Join(d.dir, alias+".member"), d.domainPath)
}

// procSet starts real gdp processes, each logging to dir/NAME.log; every
// one is killed (kill -9) when the test ends, and their logs' tails shown
// if it failed.
type procSet struct {
	t   *testing.T
	dir string
	all []*proc
}

func newProcSet(t *testing.T, dir string) *procSet {
	ps := &procSet{t: t, dir: dir}
	killAtEnd(t, &ps.all)
	return ps
}

// start runs `gdp ARGS...` as the process called name.
func (ps *procSet) start(name string, args ...string) *proc {
	p := &proc{name: name, args: args, log: filepath.Join(ps.dir, name+".log")}
	ps.all = append(ps.all, p)
	p.start(ps.t)
	return p
}
