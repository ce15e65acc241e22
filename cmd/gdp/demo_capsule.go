package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

func init() {
	addDemoStage(50, "Capsules: a replicated capsule written at one site, read and verified at another, with a replica killed in between", demoCapsule)
}

// demoReplica is one capsule server of the demo.
type demoReplica struct {
	alias string
	id    *certs.Identity
	at    *router.Node
	dir   string
	ep    *client.Endpoint
	srv   *capsuled.Server
}

// Shared keys read: "certs.pki", "router.edge1", "router.core", "router.edge2".
// Shared keys set: "capsule.name" pdu.Name, the replicated demo capsule.
func demoCapsule(ctx context.Context, d *demoEnv) error {
	d.Showed("3000 records written at one site (a replica killed midway), read and verified at another")
	p, ok := d.Shared["certs.pki"].(*demoPKI)
	if !ok {
		return errors.New("needs the certificates stage (certs.pki)")
	}
	edge1, ok1 := d.Shared["router.edge1"].(*router.Node)
	core, ok2 := d.Shared["router.core"].(*router.Node)
	edge2, ok3 := d.Shared["router.edge2"].(*router.Node)
	if !ok1 || !ok2 || !ok3 {
		return errors.New("needs the router stage (router.edge1, router.core, router.edge2)")
	}
	attach := func(id *certs.Identity, n *router.Node, inbox int) (*client.Client, *client.Endpoint, error) {
		now := time.Now()
		m, err := certs.IssueMember(p.Domain, id.Name, now.Add(-time.Minute), now.Add(24*time.Hour))
		if err != nil {
			return nil, nil, err
		}
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: m, Domain: p.Domain.Meta, Verifier: p.Verifier,
			Conn: conn, Options: client.Options{InboxSize: inbox}})
		if err != nil {
			return nil, nil, err
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := ep.Attach(actx, n.Addr(), n.Router.Name())
		if err != nil {
			_ = ep.Close()
			return nil, nil, err
		}
		return c, ep, nil
	}
	start := func(r *demoReplica) error {
		c, ep, err := attach(r.id, r.at, 8192)
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv, err := capsuled.New(sctx, capsuled.Config{Dir: r.dir, SyncInterval: 300 * time.Millisecond},
			capsuled.Deps{Identity: r.id, Client: c, Logger: zap.NewNop()})
		if err != nil {
			_ = ep.Close()
			return err
		}
		r.ep, r.srv = ep, srv
		return nil
	}
	stop := func(r *demoReplica) {
		if r.srv != nil {
			_ = r.srv.Close()
			_ = r.ep.Close()
			r.srv = nil
		}
	}

	replicas := []*demoReplica{{alias: "cap1", at: edge1}, {alias: "cap2", at: core}, {alias: "cap3", at: edge2}}
	var servers []pdu.Name
	for _, r := range replicas {
		id, _, err := p.NewNode(certs.KindServer, r.alias, 24*time.Hour)
		if err != nil {
			return err
		}
		r.id, r.dir = id, filepath.Join(d.Dir, "capsuled-"+r.alias)
		if err := start(r); err != nil {
			return err
		}
		d.Defer(func() { stop(r) })
		servers = append(servers, id.Name)
	}
	d.Say("three capsule servers, each with its own pebble store: cap1 at edge1, cap2 at core, cap3 at edge2")

	user := func(alias string, n *router.Node) (*client.CapsuleClient, error) {
		id, _, err := p.NewNode(certs.KindClient, alias, time.Hour)
		if err != nil {
			return nil, err
		}
		c, ep, err := attach(id, n, 8192)
		if err != nil {
			return nil, err
		}
		if _, err := c.Advertise(ctx, c.Self()); err != nil {
			_ = ep.Close()
			return nil, err
		}
		cc := client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: time.Second})
		d.Defer(func() { _ = cc.Close(); _ = c.Close(); _ = ep.Close() })
		return cc, nil
	}
	writer, err := user("site-a-writer", edge1)
	if err != nil {
		return err
	}
	reader, err := user("site-b-reader", edge2)
	if err != nil {
		return err
	}

	meta, err := certs.NewCapsule(p.Owner.Key, p.Writer.Public(), "demo replicated sensor log")
	if err != nil {
		return err
	}
	name := meta.Name()
	d.Shared["capsule.name"] = name
	places, err := client.PlaceCapsule(p.Owner, meta, servers, 24*time.Hour)
	if err != nil {
		return err
	}
	if err := writer.Create(ctx, p.Owner, meta, 2, places); err != nil {
		return err
	}
	d.Say("alice placed capsule %s on all three (an AdCert each, N=3, W=2)", name)

	wr, err := writer.NewWriter(ctx, name, p.Writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		return err
	}
	defer wr.Close(context.Background())
	data := func(i int) []byte { return []byte(fmt.Sprintf("reading %05d: 21.%d °C", i, i%10)) }
	write := func(from, to int) (client.Durability, time.Duration, error) {
		t0 := time.Now()
		for i := from; i <= to; i++ {
			if _, err := wr.Append(ctx, data(i)); err != nil {
				return client.Durability{}, 0, err
			}
		}
		dur, err := wr.Flush(ctx)
		return dur, time.Since(t0), err
	}
	dur, took, err := write(1, 2000)
	if err != nil {
		return err
	}
	if !dur.Met || dur.Acks < 2 {
		return fmt.Errorf("durability with all replicas up: %s", dur)
	}
	d.Say("the writer at site A (edge1) appended 2000 records in %s, batched under signed heartbeats: %s", took.Round(time.Millisecond), dur)
	d.Figure("written, all replicas up", "%d records in %s, durable on %d of %d (w=%d)", dur.Seqno, took.Round(time.Millisecond), dur.Acks, dur.N, dur.W)

	victim := replicas[2]
	stop(victim)
	d.Say("cap3 (edge2) is killed")
	dur, _, err = write(2001, 3000)
	if err != nil {
		return err
	}
	if !dur.Met || dur.Acks != 2 {
		return fmt.Errorf("durability with cap3 down: %s", dur)
	}
	d.Say("1000 more records while cap3 is down: %s — still durable", dur)
	d.Figure("written while cap3 was down", "up to seqno %d, durable on %d of %d (w=%d)", dur.Seqno, dur.Acks, dur.N, dur.W)

	for deadline := time.Now().Add(10 * time.Second); holdsLocal(edge2, victim.id.Name); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("edge2 kept cap3's old tunnel")
		}
	}
	if err := start(victim); err != nil {
		return err
	}
	t0 := time.Now()
	for {
		h, err := victim.srv.Store().Head(name)
		if err == nil && h.Seqno == 3000 {
			break
		}
		if time.Since(t0) > 30*time.Second {
			return fmt.Errorf("cap3 did not catch up (head %d)", h.Seqno)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	caught := time.Since(t0).Round(time.Millisecond)
	d.Say("cap3 restarted over its store and caught up from its peers in %s (anti-entropy, every record verified before storing)", caught)
	d.Figure("cap3 catch-up", "%s", caught)

	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rd, err := reader.NewReader(rctx, name, client.ReaderOptions{})
	if err != nil {
		return err
	}
	n := 0
	err = rd.Scan(rctx, 1, 3000, func(e capsule.Record) error {
		n++
		if !bytes.Equal(e.Data, data(int(e.Seqno))) {
			return fmt.Errorf("record %d differs", e.Seqno)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n != 3000 {
		return fmt.Errorf("read %d records, want 3000", n)
	}
	hb := rd.Heartbeat()
	d.Say("the reader at site B (edge2) read all %d records from the nearest replica and verified each page:", n)
	d.Say("  hash chain, inclusion proof of the page's last record, heartbeat %d signed by the writer key (root %.16s…)", hb.Seqno, hb.Root)
	d.Say("  (on a deployment the same read is: gdp capsule read CAPSULE --json, docs/OPERATIONS.md §5.3)")
	d.Figure("records read and verified at site B", "%d of 3000", n)
	if conf, ok := d.Shared["router.explorer"].(string); ok {
		gdp := demoSelf()
		d.Explore("the replicated capsule's placement and head, from its replicas", fmt.Sprintf("%s capsule info %s --config %s", gdp, name, conf))
		d.Explore("read and verify its first 5 records", fmt.Sprintf("%s capsule read %s --to 5 --config %s", gdp, name, conf))
	}
	return nil
}

// holdsLocal reports whether n still has a route for name through an
// attached endpoint (a restarted server waits until its old tunnel is gone).
func holdsLocal(n *router.Node, name pdu.Name) bool {
	for _, h := range n.Router.FIB().Lookup(name) {
		if h.Origin == router.OriginLocal {
			return true
		}
	}
	return false
}
