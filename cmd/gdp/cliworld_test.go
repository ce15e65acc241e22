package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/capsuledtest"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// cliWorld is what the CLI tests run the built binary against: a
// capsuledtest world (a router on loopback with a static resolver, the
// named capsule servers attached to it in-process), and in dir a keystore
// (dir/keys) holding the client identities the commands use, each one's
// membership certificate as dir/ALIAS.member and the domain's metadata as
// dir/domain.meta. Everything stops when the test ends.
type cliWorld struct {
	dir, bin string
	ids      map[string]*certs.Identity // the servers' and the keystore's
	node     *router.Node
	servers  map[string]*capsuled.Server
	// common is what every `gdp` command of the test is given: the router,
	// the keystore and the client identity "client" with its membership.
	common []string
}

// newCLIWorld starts the servers named and puts "client", "alice",
// "alice-writer" (clients) and the identities of others (of the kind
// given) in the keystore.
func newCLIWorld(t *testing.T, servers []string, others map[string]certs.Kind) *cliWorld {
	t.Helper()
	cw := capsuledtest.New(t)
	w := &cliWorld{dir: t.TempDir(), ids: map[string]*certs.Identity{}, servers: map[string]*capsuled.Server{}}
	w.node = cw.Router("router")
	for _, alias := range servers {
		s := cw.Server(w.node, alias)
		w.ids[alias], w.servers[alias] = s.ID, s.Server()
	}
	w.bin = filepath.Join(w.dir, "gdp")
	linkGdp(t, w.bin)
	ks, err := certs.OpenKeystore(filepath.Join(w.dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]certs.Kind{"client": certs.KindClient, "alice": certs.KindClient, "alice-writer": certs.KindClient}
	for alias, kind := range others {
		kinds[alias] = kind
	}
	for alias, kind := range kinds {
		id, err := certs.NewIdentity(kind, alias)
		if err != nil {
			t.Fatal(err)
		}
		member, err := cw.Dom.Member(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
		w.ids[alias] = id
		writePEM(t, filepath.Join(w.dir, alias+".member"), certs.PEMCert, member.Marshal())
	}
	writePEM(t, filepath.Join(w.dir, "domain.meta"), certs.PEMMetadata, cw.Dom.ID.Meta.Marshal())
	w.common = []string{"--router", w.node.Addr(), "--router-name", w.node.Router.Name().String(), "--keystore", filepath.Join(w.dir, "keys"),
		"--identity", "client", "--member", filepath.Join(w.dir, "client.member"), "--domain", filepath.Join(w.dir, "domain.meta")}
	return w
}

// command is `gdp ARGS...` with the world's common flags after ARGS.
func (w *cliWorld) command(args ...string) *exec.Cmd {
	return exec.Command(w.bin, append(args, w.common...)...)
}
