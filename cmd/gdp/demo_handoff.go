package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/handoffd"
	"github.com/gdpnet/gdpnet/router"
)

func init() {
	addDemoStage(70, "VM handoff: an image pair handed from a cloudlet agent at edge1 to one at edge2, through the routers, deduplicated and adaptively compressed", demoHandoff)
}

// demoImagePair builds a base of real bytes (this gdp binary) and a
// current image derived from it the way a running guest changes a disk:
// regions zeroed, regions moved by a page (equal to other base blocks),
// regions written with new data (a later part of the binary), one page
// written twice.
func demoImagePair(dir string) (string, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return "", "", err
	}
	const size = 16 << 20
	if len(bin) < size+4<<20 {
		return "", "", fmt.Errorf("%s is too small for the demo image", exe)
	}
	base := bin[:size]
	cur := append([]byte(nil), base...)
	clear(cur[2<<20 : 4<<20])                           // zeroed
	copy(cur[6<<20:9<<20], base[6<<20+4096:9<<20+4096]) // moved by a page
	copy(cur[11<<20:13<<20], bin[size:size+2<<20])      // new data
	copy(cur[14<<20:14<<20+4096], cur[11<<20:11<<20+4096])
	bp, cp := filepath.Join(dir, "base.img"), filepath.Join(dir, "current.img")
	if err := os.WriteFile(bp, base, 0o644); err != nil {
		return "", "", err
	}
	return bp, cp, os.WriteFile(cp, cur, 0o644)
}

// Shared keys read: "certs.pki", "router.edge1", "router.edge2".
func demoHandoff(ctx context.Context, d *demoEnv) error {
	d.Showed("a 16 MiB image handed off between cloudlets, deduplicated and compressed, verified byte for byte")
	p, ok := d.Shared["certs.pki"].(*demoPKI)
	if !ok {
		return errors.New("needs the certificates stage (certs.pki)")
	}
	edge1, ok1 := d.Shared["router.edge1"].(*router.Node)
	edge2, ok2 := d.Shared["router.edge2"].(*router.Node)
	if !ok1 || !ok2 {
		return errors.New("needs the router stage (router.edge1, router.edge2)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		d.Say("qemu-system-x86 is installed, but this stage hands off an image pair: the real-VM handoff needs a guest kernel (scripts/handoff-kernel.sh) and runs as go test -run TestQEMUHandoff ./handoffd")
	} else {
		d.Say("qemu-system-x86 is not installed: this stage hands off an image pair (the same pipeline a VM's disk and memory take)")
	}
	dir := filepath.Join(d.Dir, "handoff")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	basePath, curPath, err := demoImagePair(dir)
	if err != nil {
		return err
	}
	caches := make([]*handoffd.BaseCache, 2)
	var baseID string
	for i, site := range []string{"a", "b"} {
		if caches[i], err = handoffd.OpenBaseCache(filepath.Join(dir, "bases-"+site)); err != nil {
			return err
		}
		m, err := caches[i].Add(basePath, "demo disk")
		if err != nil {
			return err
		}
		baseID = m.ID
	}
	d.Say("both cloudlets hold the base (16 MiB of this binary) in their cache as %s…", baseID[:12])

	attach := func(alias string, n *router.Node) (*client.Client, error) {
		id, m, err := p.NewNode(certs.KindClient, alias, time.Hour)
		if err != nil {
			return nil, err
		}
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: m, Domain: p.Domain.Meta, Verifier: p.Verifier,
			Conn: conn, Options: client.Options{InboxSize: 8192}})
		if err != nil {
			return nil, err
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := ep.Attach(actx, n.Addr(), n.Router.Name())
		if err != nil {
			_ = ep.Close()
			return nil, err
		}
		if _, err := c.Advertise(actx, c.Self()); err != nil {
			_ = ep.Close()
			return nil, err
		}
		d.Defer(func() { _ = c.Close(); _ = ep.Close() })
		return c, nil
	}
	src, err := attach("cloudlet-a-handoff", edge1)
	if err != nil {
		return err
	}
	dst, err := attach("cloudlet-b-handoffd", edge2)
	if err != nil {
		return err
	}
	ln, err := client.ListenName(dst, dst.Name(), nil)
	if err != nil {
		return err
	}
	agent := &handoffd.Agent{Cache: caches[1], Dir: filepath.Join(dir, "received-b"), Logger: zap.NewNop()}
	actx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- agent.Serve(actx, handoffd.OverlayListener(ln)) }()
	d.Defer(func() { stop(); <-served })
	d.Say("agent %s listens at edge2 (QUIC over names); the sender attaches at edge1", dst.Name().String()[:8]+"…")

	// The first PDUs to a new name wait for its route: retry the dial a little.
	var st handoffd.Stream
	for i := 0; ; i++ {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err = handoffd.DialOverlay(dctx, src, dst.Name(), nil)
		cancel()
		if err == nil || i == 5 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	const mbit = 20
	d.Say("handing off %s over a link emulated at %d Mbit/s…", filepath.Base(curPath), mbit)
	rep, err := handoffd.Send(ctx, handoffd.NewLink(mbit*1e6).Stream(st), &handoffd.Handoff{Images: []handoffd.Image{{Name: "disk", Base: baseID, Path: curPath}}},
		handoffd.SendConfig{Cache: caches[0], AdaptInterval: time.Second, Logger: zap.NewNop()})
	st.Close()
	if err != nil {
		return err
	}
	got, err := os.ReadFile(filepath.Join(rep.Dest, "disk"))
	if err != nil {
		return err
	}
	want, _ := os.ReadFile(curPath)
	if string(got) != string(want) {
		return errors.New("the image at edge2 differs from the current image")
	}
	printHandoffSummary(&indent{w: d.Out, prefix: "    "}, rep)
	d.Say("the image at edge2 is the current image, byte for byte (every block hash and the image digest checked before commit)")
	d.Figure("changed → on the wire", "%.2f MB → %.2f MB (ratio %.3f)", float64(rep.ChangedBytes)/1e6, float64(rep.WireBytes)/1e6, rep.Ratio)
	d.Figure("handoff time", "%.2fs", rep.TotalSec)
	return nil
}
