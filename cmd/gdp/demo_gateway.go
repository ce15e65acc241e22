package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/caapi/seal"
	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

func init() {
	addDemoStage(70, "Gateway: a local app on HTTP/JSON — KV read as of an earlier point, an old file version, an encrypted capsule a replica cannot read, a subscription that survives the uplink router being killed", demoGateway)
}

// darkConn is a UDP socket that can go dark: every packet either way is
// lost, as when a machine dies without a word.
type darkConn struct {
	net.PacketConn
	dark atomic.Bool
}

// SetReadBuffer and SetWriteBuffer pass through, so quic-go sizes its
// buffers as on a real socket.
func (c *darkConn) SetReadBuffer(n int) error {
	if u, ok := c.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return u.SetReadBuffer(n)
	}
	return nil
}

func (c *darkConn) SetWriteBuffer(n int) error {
	if u, ok := c.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return u.SetWriteBuffer(n)
	}
	return nil
}

func (c *darkConn) WriteTo(p []byte, a net.Addr) (int, error) {
	if c.dark.Load() {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, a)
}

func (c *darkConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.dark.Load() {
			return n, a, err
		}
	}
}

// Shared keys read: "certs.pki".
func demoGateway(ctx context.Context, d *demoEnv) error {
	d.Showed("an app on HTTP/JSON: KV and file history, sealed records, a subscription surviving its router's death")
	p, ok := d.Shared["certs.pki"].(*demoPKI)
	if !ok {
		return errors.New("needs the certificates stage (certs.pki)")
	}
	fast := router.TunnelConfig{KeepAlive: config.Duration(300 * time.Millisecond), IdleTimeout: config.Duration(1500 * time.Millisecond)}
	res := resolver.NewStatic(&resolver.Verifier{Certs: p.Verifier})
	d.Defer(func() { _ = res.Close() })
	startRouter := func(alias string, peers ...*router.Node) (*router.Node, *darkConn, error) {
		id, m, err := p.NewNode(certs.KindRouter, alias, 24*time.Hour)
		if err != nil {
			return nil, nil, err
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		dc := &darkConn{PacketConn: pc}
		cfg := router.Config{Admin: "off", Tunnel: fast}
		for _, pr := range peers {
			cfg.Peers = append(cfg.Peers, router.PeerConfig{Name: pr.Router.Name(), Addr: pr.Addr()})
		}
		n, err := router.StartNode(cfg, router.Deps{Identity: id, Member: m, Domain: p.Domain.Meta, Verifier: p.Verifier,
			Resolver: res, Logger: zap.NewNop()}, dc, nil)
		if err != nil {
			return nil, nil, err
		}
		d.Defer(func() { _ = n.Close() })
		return n, dc, nil
	}
	core, _, err := startRouter("gw-core")
	if err != nil {
		return err
	}
	gw1, dark1, err := startRouter("gw-edge1", core)
	if err != nil {
		return err
	}
	gw2, _, err := startRouter("gw-edge2", core)
	if err != nil {
		return err
	}
	attach := func(alias string, kind certs.Kind, n *router.Node) (*certs.Identity, *client.Client, error) {
		id, m, err := p.NewNode(kind, alias, 24*time.Hour)
		if err != nil {
			return nil, nil, err
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: m, Domain: p.Domain.Meta, Verifier: p.Verifier,
			Conn: pc, KeepAlive: fast.KeepAlive.Std(), IdleTimeout: fast.IdleTimeout.Std(), Options: client.Options{InboxSize: 8192}})
		if err != nil {
			return nil, nil, err
		}
		d.Defer(func() { _ = ep.Close() })
		c, err := ep.AttachAny(ctx, []client.RouterAddr{{Addr: n.Addr(), Name: n.Router.Name()}}, client.AttachOptions{})
		if err != nil {
			return nil, nil, err
		}
		d.Defer(func() { _ = c.Close() })
		return id, c, nil
	}
	var servers []string
	var replica *capsuled.Server // gw-cap1, whose store the encrypted capsule is read from
	var replicaID *certs.Identity
	for _, alias := range []string{"gw-cap1", "gw-cap2"} {
		id, c, err := attach(alias, certs.KindServer, core)
		if err != nil {
			return err
		}
		srv, err := capsuled.New(ctx, capsuled.Config{Dir: filepath.Join(d.Dir, alias), SyncInterval: 300 * time.Millisecond},
			capsuled.Deps{Identity: id, Client: c, Logger: zap.NewNop(), Registry: prometheus.NewRegistry()})
		if err != nil {
			return err
		}
		d.Defer(func() { _ = srv.Close() })
		servers = append(servers, id.Name.String())
		if replica == nil {
			replica, replicaID = srv, id
		}
	}
	d.Say("routers gw-edge1 and gw-edge2, both peered with gw-core; capsule servers gw-cap1 and gw-cap2 at gw-core")

	// The gateway: the user's identity, a keystore with alice's key, the
	// two edge routers in order of preference.
	uid, umember, err := p.NewNode(certs.KindClient, "laptop-user", 24*time.Hour)
	if err != nil {
		return err
	}
	ks, err := certs.OpenKeystore(filepath.Join(d.Dir, "laptop-keys"))
	if err != nil {
		return err
	}
	alice, err := certs.NewIdentity(certs.KindClient, "alice")
	if err != nil {
		return err
	}
	if err := ks.Save("alice", alice); err != nil {
		return err
	}
	up, err := gateway.DialUplink(ctx, gateway.UplinkConfig{Identity: uid, Member: umember, Domain: p.Domain.Meta, Verifier: p.Verifier,
		Listen: "127.0.0.1:0", KeepAlive: fast.KeepAlive.Std(), IdleTimeout: fast.IdleTimeout.Std(),
		Routers: []client.RouterAddr{{Addr: gw1.Addr(), Name: gw1.Router.Name()}, {Addr: gw2.Addr(), Name: gw2.Router.Name()}}})
	if err != nil {
		return err
	}
	d.Defer(func() { _ = up.Close() })
	gsrv, err := gateway.New(gateway.Config{DefaultOwner: "alice"}, gateway.Deps{Uplink: up, Keys: ks})
	if err != nil {
		return err
	}
	d.Defer(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = gsrv.Close(cctx)
	})
	sock := filepath.Join(d.Dir, "gateway.sock")
	ln, err := gateway.ListenUnix(sock)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: gsrv.Handler(false)}
	go func() { _ = hs.Serve(ln) }()
	d.Defer(func() { _ = hs.Close() })
	st, _ := os.Stat(sock)
	d.Say("gdp gateway attached to %s as the user; apps connect to %s (mode %04o)", "gw-edge1", filepath.Base(sock), st.Mode().Perm())
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial}}
	call := func(method, path, ctype string, body []byte, out any) error {
		req, err := http.NewRequestWithContext(ctx, method, "http://gdp"+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if s, ok := out.(*[]byte); ok {
			*s = b
			return nil
		}
		return json.Unmarshal(b, out)
	}
	create := func(desc string) (string, error) {
		var out struct{ Capsule string }
		body, _ := json.Marshal(map[string]any{"servers": servers, "description": desc})
		err := call("POST", "/v1/capsules", "application/json", body, &out)
		return out.Capsule, err
	}

	// KV with time travel.
	kvc, err := create("settings")
	if err != nil {
		return err
	}
	var w1, w2 struct{ Seqno uint64 }
	if err := call("PUT", "/v1/kv/"+kvc+"/keys/theme", "application/json", []byte(`{"value":"light"}`), &w1); err != nil {
		return err
	}
	if err := call("PUT", "/v1/kv/"+kvc+"/keys/theme", "application/json", []byte(`{"value":"dark"}`), &w2); err != nil {
		return err
	}
	var now, then struct{ Value string }
	if err := call("GET", "/v1/kv/"+kvc+"/keys/theme", "", nil, &now); err != nil {
		return err
	}
	if err := call("GET", fmt.Sprintf("/v1/kv/%s/keys/theme?seqno=%d", kvc, w1.Seqno), "", nil, &then); err != nil {
		return err
	}
	if now.Value != "dark" || then.Value != "light" {
		return fmt.Errorf("kv: theme %q now and %q as of seqno %d", now.Value, then.Value, w1.Seqno)
	}
	d.Say("PUT /v1/kv/…/keys/theme light, then dark: now %q; GET …?seqno=%d (as of the first put) %q", now.Value, w1.Seqno, then.Value)

	// A file with an old version.
	fc, err := create("documents")
	if err != nil {
		return err
	}
	var v1 struct{ Seqno uint64 }
	if err := call("PUT", "/v1/files/"+fc+"/content/plan.txt", "application/octet-stream", []byte("draft 1\n"), &v1); err != nil {
		return err
	}
	if err := call("PUT", "/v1/files/"+fc+"/content/plan.txt", "application/octet-stream", []byte("draft 2\n"), &struct{}{}); err != nil {
		return err
	}
	var old []byte
	if err := call("GET", fmt.Sprintf("/v1/files/%s/content/plan.txt?seqno=%d", fc, v1.Seqno), "", nil, &old); err != nil {
		return err
	}
	if string(old) != "draft 1\n" {
		return fmt.Errorf("file: old version reads %q", old)
	}
	d.Say("PUT /v1/files/…/content/plan.txt twice; GET …?seqno=%d returns the first version %q, verified chunk by chunk", v1.Seqno, old)

	// An encrypted capsule: the gateway seals, the replica stores
	// ciphertext it cannot open.
	if err := demoSealed(ctx, d, call, servers, replica, replicaID); err != nil {
		return err
	}

	// A subscription across the uplink router's death.
	rc, err := create("sensor")
	if err != nil {
		return err
	}
	name, _ := pdu.ParseName(rc)
	_, wc, err := attach("gw-sensor", certs.KindClient, core)
	if err != nil {
		return err
	}
	if s, err := wc.Session(); err != nil {
		return err
	} else if _, err := wc.Advertise(ctx, wc.Self(), s); err != nil {
		return err
	}
	wcc := client.NewCapsuleClient(wc, client.CapsuleOptions{})
	d.Defer(func() { _ = wcc.Close() })
	wr, err := wcc.NewWriter(ctx, name, alice.Key, client.WriterOptions{Cadence: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	wctx, stopWriter := context.WithCancel(ctx)
	var written atomic.Uint64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 1; wctx.Err() == nil; i++ {
			s, err := wr.Append(wctx, []byte(fmt.Sprintf("reading %d", i)))
			if err != nil {
				return
			}
			written.Store(s)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { stopWriter(); <-writerDone; wr.Abort() }()
	wsd := websocket.Dialer{NetDialContext: dial}
	conn, _, err := wsd.DialContext(ctx, "ws://gdp/v1/capsules/"+rc+"/subscribe?from=1", nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	// ReadJSON does not watch ctx: Ctrl-C closes the connection under it.
	unwatch := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer unwatch()
	var next uint64 = 1
	readTo := func(until uint64, within time.Duration) error {
		_ = conn.SetReadDeadline(time.Now().Add(within))
		for next <= until {
			var m struct {
				Type  string
				Seqno uint64
			}
			if err := conn.ReadJSON(&m); err != nil {
				return fmt.Errorf("subscription at seqno %d: %w", next, err)
			}
			if m.Type != "record" {
				continue
			}
			if m.Seqno != next {
				return fmt.Errorf("subscription: got seqno %d, want %d", m.Seqno, next)
			}
			next++
		}
		return nil
	}
	if err := readTo(50, 15*time.Second); err != nil {
		return err
	}
	d.Say("a sensor at gw-core appends a record every 10 ms; the app follows it over a WebSocket: records 1–50 arrived")
	killed := time.Now()
	dark1.dark.Store(true)
	d.Say("gw-edge1 goes dark (every packet to and from it lost, as a machine that died)")
	for up.Status().Reattached == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Since(killed) > 10*time.Second {
			return errors.New("the gateway did not re-attach")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(killed)
	if up.Status().Router != gw2.Router.Name() {
		return errors.New("the gateway re-attached elsewhere than gw-edge2")
	}
	d.Say("the gateway noticed and re-attached to gw-edge2 %s after the kill; its names followed it", took.Round(10*time.Millisecond))
	d.Figure("re-attached after the router died", "in %s", took.Round(10*time.Millisecond))
	target := written.Load() + 50
	if err := readTo(target, 20*time.Second); err != nil {
		return err
	}
	d.Say("the subscription carried on: records 1–%d, every seqno exactly once, %s after the kill", next-1, time.Since(killed).Round(10*time.Millisecond))
	d.Figure("subscription records, each once", "1–%d", next-1)
	return nil
}

// demoSealed creates an encrypted capsule through the gateway, appends and
// reads back a secret, and shows that the replica holding it has
// ciphertext only: the plaintext is nowhere in its stored record and the
// replica's own key opens nothing.
func demoSealed(ctx context.Context, d *demoEnv, call func(method, path, ctype string, body []byte, out any) error,
	servers []string, replica *capsuled.Server, replicaID *certs.Identity) error {
	var created struct{ Capsule string }
	body, _ := json.Marshal(map[string]any{"servers": servers, "description": "diary", "sealed": true})
	if err := call("POST", "/v1/capsules", "application/json", body, &created); err != nil {
		return err
	}
	const secret = "meet at the old mill at noon"
	var app struct{ First uint64 }
	if err := call("POST", "/v1/sealed/"+created.Capsule+"/records", "application/json", []byte(`{"data":"`+secret+`"}`), &app); err != nil {
		return err
	}
	var back struct {
		Data  string
		Epoch uint64
	}
	if err := call("GET", fmt.Sprintf("/v1/sealed/%s/records/%d", created.Capsule, app.First), "", nil, &back); err != nil {
		return err
	}
	if back.Data != secret {
		return fmt.Errorf("sealed: read back %q", back.Data)
	}
	d.Say("POST /v1/capsules {\"sealed\": true}, POST /v1/sealed/…/records %q; GET /v1/sealed/…/records/%d opens it again (epoch %d)", secret, app.First, back.Epoch)
	name, err := pdu.ParseName(created.Capsule)
	if err != nil {
		return err
	}
	st := replica.Store()
	var recs []capsule.Record
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if recs, err = st.Read(name, app.First, app.First); err == nil && len(recs) == 1 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sealed: gw-cap1 does not hold record %d: %v", app.First, err)
		}
	}
	if bytes.Contains(recs[0].Data, []byte(secret)) || bytes.Contains(recs[0].Data, []byte("old mill")) {
		return errors.New("sealed: the replica's stored record holds the plaintext")
	}
	_, err = seal.NewOpener(storeReader{st, name}, replicaID.Key).Open(ctx, recs[0])
	if !errors.Is(err, seal.ErrNoKey) {
		return fmt.Errorf("sealed: the replica's key on its own copy: %v, want no content key", err)
	}
	d.Say("gw-cap1's store holds record %d as %d bytes of ciphertext (%x…), the plaintext nowhere in it; opened with gw-cap1's own key: %v",
		app.First, len(recs[0].Data), recs[0].Data[len(recs[0].Data)-8:], seal.ErrNoKey)
	return nil
}

// storeReader reads a capsule from a server's own store: the replica's
// view, as a seal.RecordReader.
type storeReader struct {
	st   *store.Store
	name pdu.Name
}

func (r storeReader) Info() capsule.Info {
	in, _, _ := r.st.Info(r.name)
	return in
}

func (r storeReader) Read(_ context.Context, from, to uint64) ([]capsule.Record, error) {
	return r.st.Read(r.name, from, to)
}
