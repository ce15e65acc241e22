package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/dashboard"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

func init() {
	addDemoStage(30, "Routers: three routers in a line, a server advertising a capsule, a client reaching it by name", demoRouter)
}

// Shared keys set by this stage:
//
//	"router.resolver" *resolver.Static  the location records the routers publish
//	"router.edge1"    *router.Node      edge router (upstream: core); the certs stage's router
//	"router.core"     *router.Node      core router
//	"router.edge2"    *router.Node      edge router (upstream: core), where store1 attaches
//	"router.server"   *client.Client    store1, attached to edge2, advertising the demo capsule
//	"router.client"   *client.Client    reader, attached to edge1
func demoRouter(ctx context.Context, d *demoEnv) error {
	p, ok := d.Shared["certs.pki"].(*demoPKI)
	if !ok {
		return errors.New("needs the certificates stage (certs.pki)")
	}
	d.Showed("a capsule reached by name across three routers; a forged advertisement refused")
	res := resolver.NewStatic(&resolver.Verifier{Certs: p.Verifier})
	d.Defer(func() { _ = res.Close() })
	d.Shared["router.resolver"] = res

	admins := map[*router.Node]string{} // admin API addresses, with --keep
	start := func(id *certs.Identity, member *certs.Cert, cfg router.Config) (*router.Node, error) {
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		cfg.Admin = "off"
		n, err := router.StartNode(cfg, router.Deps{
			Identity: id, Member: member, Domain: p.Domain.Meta, Verifier: p.Verifier, Resolver: res, Logger: zap.NewNop(),
		}, conn, nil)
		if err != nil {
			return nil, err
		}
		d.Defer(func() { _ = n.Close() })
		if d.Keep {
			addr, err := demoServeAdmin(d, n)
			if err != nil {
				return nil, err
			}
			admins[n] = addr
		}
		return n, nil
	}
	coreID, coreMember, err := p.NewNode(certs.KindRouter, "core", 24*time.Hour)
	if err != nil {
		return err
	}
	core, err := start(coreID, coreMember, router.Config{})
	if err != nil {
		return err
	}
	no := false
	up := coreID.Name
	edgeCfg := router.Config{Peers: []router.PeerConfig{{Name: up, Addr: core.Addr()}}, Upstream: &up, DialOnDemand: &no}
	edge1, err := start(p.Router, p.Member, edgeCfg)
	if err != nil {
		return err
	}
	e2ID, e2Member, err := p.NewNode(certs.KindRouter, "edge2", 24*time.Hour)
	if err != nil {
		return err
	}
	edge2, err := start(e2ID, e2Member, edgeCfg)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); len(core.Router.Peers()) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("edge routers did not connect to core")
		}
	}
	d.Shared["router.edge1"], d.Shared["router.core"], d.Shared["router.edge2"] = edge1, core, edge2
	d.Say("routers on loopback, in a line: edge1 — core — edge2")
	for _, r := range []struct {
		alias string
		n     *router.Node
	}{{"edge1", edge1}, {"core ", core}, {"edge2", edge2}} {
		d.Say("  %s %s at %s", r.alias, r.n.Router.Name(), r.n.Addr())
	}
	d.Say("edge1 and edge2 sit behind NAT in spirit: each keeps a QUIC tunnel up to core, its upstream")

	attach := func(id *certs.Identity, n *router.Node) (*client.Client, error) {
		now := time.Now()
		m, err := certs.IssueMember(p.Domain, id.Name, now.Add(-time.Minute), now.Add(24*time.Hour))
		if err != nil {
			return nil, err
		}
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: m, Domain: p.Domain.Meta, Verifier: p.Verifier, Conn: conn})
		if err != nil {
			return nil, err
		}
		d.Defer(func() { _ = ep.Close() })
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return ep.Attach(actx, n.Addr(), n.Router.Name())
	}

	server, err := attach(p.Server, edge2)
	if err != nil {
		return err
	}
	capName := p.Capsule.Name()
	res2, err := server.Advertise(ctx, server.Self(), client.CapsuleRoute(p.Capsule, p.AdCert))
	if err != nil {
		return err
	}
	d.Say("store1 attached to edge2 and advertised the capsule %s: %s, route expires %s",
		capName, res2[1].Status, res2[1].ExpiryTime().Format(time.RFC3339))
	d.Say("edge2 verified the whole chain (capsule owner → store1 → edge2 → domain) and published a location record")

	readerID, _, err := p.NewNode(certs.KindClient, "reader", time.Hour)
	if err != nil {
		return err
	}
	reader, err := attach(readerID, edge1)
	if err != nil {
		return err
	}
	if _, err := reader.Advertise(ctx, reader.Self()); err != nil {
		return err
	}
	// Routers publish location records right after they answer an
	// advertisement; wait for them so the first lookup is not a miss that
	// would be negatively cached.
	for _, n := range []pdu.Name{capName, reader.Name()} {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := res.Lookup(ctx, n); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("location record for %s never published", n)
			}
		}
	}
	d.Shared["router.server"], d.Shared["router.client"] = server, reader
	d.Say("a reader attached to edge1 pings the capsule by name (gdp ping):")
	out := &indent{w: d.Out, prefix: "    "}
	st, err := pingLoop(ctx, reader, capName, 3, 100*time.Millisecond, 2*time.Second, 56, out)
	if err != nil {
		return err
	}
	if st.received != 3 {
		return fmt.Errorf("ping: %d of 3 answered", st.received)
	}
	d.Figure("ping by name: answered/sent", "%d of %d", st.received, st.sent)
	d.Figure("ping round trip, average", "%s", ms(st.sum/time.Duration(st.received)))
	d.Say("and traces the path (gdp traceroute): each router where the TTL runs out names itself")
	if err := traceroute(ctx, reader, capName, 8, 2*time.Second, out); err != nil {
		return err
	}
	if _, err := reader.Send(capName, []byte("hello, capsule")); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	m, err := server.Receive(rctx)
	cancel()
	if err != nil || string(m.Payload) != "hello, capsule" {
		return fmt.Errorf("data by name did not arrive: %v", err)
	}
	d.Say("a DATA PDU addressed to the capsule's name reached store1 across three routers")

	// A rogue member of the domain tries to attract the capsule's traffic.
	rogueID, _, err := p.NewNode(certs.KindServer, "rogue", time.Hour)
	if err != nil {
		return err
	}
	rogue, err := attach(rogueID, edge1)
	if err != nil {
		return err
	}
	now := time.Now()
	forged, err := certs.IssueAdCert(rogueID.Key, capName, rogueID.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		return err
	}
	_, err = rogue.Advertise(ctx, client.CapsuleRoute(p.Capsule, forged))
	var refused *client.RefusedError
	if !errors.As(err, &refused) || refused.Refused[0].Status != advert.StatusBadSignature {
		return fmt.Errorf("forged advertisement: got %v, want refused (bad_signature)", err)
	}
	d.Say("a rogue server advertised the capsule with an AdCert it signed itself: edge1 refused it (%s)", refused.Refused[0].Status)
	d.Figure("forged advertisement refused", "%s", refused.Refused[0].Status)
	if _, err := reader.Ping(ctx, capName, 8, 2*time.Second); err != nil {
		return fmt.Errorf("after the forged advertisement: %w", err)
	}
	d.Say("no black hole: the capsule still answers from store1")
	if d.Keep {
		if err := demoKeepRouters(d, p, admins, edge1, core, edge2, capName); err != nil {
			return err
		}
	}
	return nil
}

// demoServeAdmin serves n's admin API, /metrics and web dashboard on an
// ephemeral loopback port until the demo ends, as gdp router does on its
// admin address, and returns the address.
func demoServeAdmin(d *demoEnv, n *router.Node) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("admin API: %w", err)
	}
	mux := http.NewServeMux()
	dashboard.Mount(mux, routerDashboard(n.Router, nil, n.Router.Gatherer()))
	mux.Handle("/", n.Router.AdminHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	d.Defer(func() { _ = srv.Close(); <-done })
	return ln.Addr().String(), nil
}

// demoKeepRouters prepares the kept overlay for the operator's gdp
// commands: a client identity "explorer" in the demo keystore with its
// membership and the domain's metadata as files, a connection config for
// gdp capsule, an inventory for gdp doctor --remote, and the commands.
func demoKeepRouters(d *demoEnv, p *demoPKI, admins map[*router.Node]string, edge1, core, edge2 *router.Node, capName pdu.Name) error {
	_, member, err := p.NewNode(certs.KindClient, "explorer", 24*time.Hour)
	if err != nil {
		return err
	}
	memberPath, domainPath := filepath.Join(d.Dir, "explorer.member"), filepath.Join(d.Dir, "domain.meta")
	if err := os.WriteFile(memberPath, certs.Armor(certs.PEMCert, member.Marshal()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(domainPath, certs.Armor(certs.PEMMetadata, p.Domain.Meta.Marshal()), 0o644); err != nil {
		return err
	}
	conf := filepath.Join(d.Dir, "explorer.yaml")
	yaml := fmt.Sprintf(`# gdp capsule --config %[1]s: the demo's client "explorer", attached to edge1
router: %[2]s
admin: %[3]s
keystore: %[4]s
identity: explorer
member_cert: %[5]s
domain: %[6]s
`, conf, edge1.Addr(), admins[edge1], p.KS.Dir(), memberPath, domainPath)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		return err
	}
	sites := filepath.Join(d.Dir, "sites.yaml")
	inv := fmt.Sprintf(`# gdp doctor --remote %[1]s: the demo's three routers as three sites
probe:
  keystore: %[2]s
  identity: explorer
  member_cert: %[3]s
  domain: %[4]s
sites:
  - name: edge1
    router: %[5]s
    admin: %[6]s
    peers: [core]
  - name: core
    router: %[7]s
    admin: %[8]s
    peers: [edge1, edge2]
  - name: edge2
    router: %[9]s
    admin: %[10]s
    peers: [core]
`, sites, p.KS.Dir(), memberPath, domainPath, edge1.Addr(), admins[edge1], core.Addr(), admins[core], edge2.Addr(), admins[edge2])
	if err := os.WriteFile(sites, []byte(inv), 0o644); err != nil {
		return err
	}
	gdp := demoSelf()
	d.Explore("edge1's name, domain, faces and peers (admin API)", fmt.Sprintf("%s router status --admin %s", gdp, admins[edge1]))
	d.Explore("edge2's FIB: the capsule advertised by store1, the names learned", fmt.Sprintf("%s router routes --admin %s", gdp, admins[edge2]))
	d.Explore("ping the router stage's capsule by name, as the client explorer attached to edge1",
		fmt.Sprintf("%s ping --router %s --admin %s --keystore %s --identity explorer --member %s --domain %s -c 3 %s",
			gdp, edge1.Addr(), admins[edge1], p.KS.Dir(), memberPath, domainPath, capName))
	d.Explore("check the three routers as a live deployment: admin APIs, clocks, tunnels, peers",
		fmt.Sprintf("%s doctor --remote %s", gdp, sites))
	d.Explore("edge1's web dashboard (open in a browser)", fmt.Sprintf("http://%s/", admins[edge1]))
	d.Explore("edge1's Prometheus metrics", fmt.Sprintf("curl -s http://%s/metrics | grep ^gdp_", admins[edge1]))
	d.Shared["router.explorer"] = conf
	return nil
}

// demoSelf is how the operator runs this gdp binary: "gdp" when that is
// what $PATH finds, else its path.
func demoSelf() string {
	exe, err := os.Executable()
	if err != nil {
		return "gdp"
	}
	if found, err := exec.LookPath("gdp"); err == nil {
		if a, b := demoRealpath(found), demoRealpath(exe); a == b {
			return "gdp"
		}
	}
	return exe
}

func demoRealpath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// indent prefixes every line written through it.
type indent struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (i *indent) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if !i.mid {
			if _, err := io.WriteString(i.w, i.prefix); err != nil {
				return 0, err
			}
		}
		line := b
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			line = b[:j+1]
		}
		if _, err := i.w.Write(line); err != nil {
			return 0, err
		}
		i.mid = line[len(line)-1] != '\n'
		b = b[len(line):]
	}
	return n, nil
}
