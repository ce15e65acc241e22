package sim

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/sim/gdplayer"
	"github.com/gdpnet/gdpnet/sim/linkem"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Captures (measure.pcap: [a-b, …]). For each pair, in the results
// directory:
//   - a-b.pdu.pcap: every PDU the router at one end sends to or receives
//     from the node at the other, in clear, as UDP on port gdplayer.Port
//     between the two nodes' addresses — the overlay tunnel between them,
//     whether a-b is one link or a path of several;
//   - a-b.wire.pcap (when a-b is a link): every datagram offered to the
//     link either way, as sent (QUIC, encrypted), lost ones included.

// pduTap is a router's captures, by the peer's name.
type pduTap struct {
	self netip.Addr
	to   map[pdu.Name]pduTarget
}

type pduTarget struct {
	addr netip.Addr
	w    *gdplayer.Writer
}

func (s *Sim) capture(id string) error {
	if s.opts.Out == "" {
		return fmt.Errorf("measure.pcap needs a results directory (--out)")
	}
	a, b, _ := strings.Cut(id, "-")
	na, nb := s.nodes[a], s.nodes[b]
	if na == nil || nb == nil {
		return fmt.Errorf("pcap %s: no such nodes", id)
	}
	r, o := na, nb
	if r.spec.Kind != KindRouter {
		r, o = nb, na
	}
	if r.spec.Kind != KindRouter {
		return fmt.Errorf("pcap %s: one end must be a router", id)
	}
	w, err := s.pcapFile(id + ".pdu.pcap")
	if err != nil {
		return err
	}
	if r.tap == nil {
		r.tap = &pduTap{self: r.addr, to: map[pdu.Name]pduTarget{}}
	}
	r.tap.to[o.id.Name] = pduTarget{addr: o.addr, w: w}
	if l := s.linkFor(id); l != nil {
		return s.tapWire(id, l)
	}
	return nil
}

// tapWire writes every datagram link l carries, both directions, to
// ID.wire.pcap in the results directory.
func (s *Sim) tapWire(id string, l *linkem.Link) error {
	ww, err := s.pcapFile(id + ".wire.pcap")
	if err != nil {
		return err
	}
	tap := func(_ *linkem.Dir, at time.Time, src, dst netip.AddrPort, payload []byte, _ linkem.Verdict) {
		_ = ww.Write(at, src, dst, payload)
	}
	l.Dirs[0].Tap(tap)
	l.Dirs[1].Tap(tap)
	return nil
}

func (s *Sim) pcapFile(name string) (*gdplayer.Writer, error) {
	f, err := os.Create(filepath.Join(s.opts.Out, name))
	if err != nil {
		return nil, err
	}
	w, err := gdplayer.NewWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.pcaps = append(s.pcaps, w)
	return w, nil
}

func (t *pduTap) record(peer pdu.Name, out bool, p []byte) {
	tg, ok := t.to[peer]
	if !ok {
		return
	}
	self := netip.AddrPortFrom(t.self, gdplayer.Port)
	other := netip.AddrPortFrom(tg.addr, gdplayer.Port)
	if out {
		_ = tg.w.Write(time.Now(), self, other, p)
	} else {
		_ = tg.w.Write(time.Now(), other, self, p)
	}
}

// tapLink is a tunnel link whose sends are captured.
type tapLink struct {
	tunnel.Link
	tap *pduTap
}

func (l *tapLink) Send(p []byte) error {
	l.tap.record(l.Link.Peer(), true, p)
	return l.Link.Send(p)
}

// tapAcceptor hands the router wrapped links.
type tapAcceptor struct {
	ep   *tunnel.Endpoint
	wrap func(tunnel.Link) *tapLink
}

func (a tapAcceptor) Accept(ctx context.Context) (tunnel.Link, error) {
	l, err := a.ep.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return a.wrap(l), nil
}

// tappedRouter is a router started like router.StartNode but with every
// tunnel link wrapped, so that the PDUs it sends and receives are
// captured.
type tappedRouter struct {
	r      *router.Router
	ep     *tunnel.Endpoint
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (t *tappedRouter) Close() error {
	t.cancel()
	err := t.r.Close()
	_ = t.ep.Close()
	t.wg.Wait()
	return err
}

func (s *Sim) startTappedRouter(n *simNode, cfg router.Config, deps router.Deps, conn *linkem.Conn) (*tappedRouter, error) {
	cfg.Listen = conn.LocalAddr().String()
	book := router.NewPeerBook()
	var links sync.Map // tunnel.Link -> *tapLink
	wrap := func(l tunnel.Link) *tapLink {
		if w, ok := links.Load(l); ok {
			return w.(*tapLink)
		}
		w, _ := links.LoadOrStore(l, &tapLink{Link: l, tap: n.tap})
		go func() { <-l.Done(); links.Delete(l) }()
		return w.(*tapLink)
	}
	var rp atomic.Pointer[router.Router]
	tc := tunnel.Config{
		Identity: tunnel.CertIdentity(deps.Identity, deps.Member, deps.Domain),
		Verify:   book.Verifier(deps.Verifier),
		Conn:     conn,
		Handler: func(l tunnel.Link, p []byte) {
			w := wrap(l)
			n.tap.record(l.Peer(), false, p)
			if r := rp.Load(); r != nil {
				r.HandlePDU(w, p)
			}
		},
		Logger:     deps.Logger,
		MaxStreams: -1,
	}
	ep, err := tunnel.NewEndpoint(tc)
	if err != nil {
		return nil, err
	}
	dial := router.TunnelDial(ep)
	deps.Dial = func(ctx context.Context, peer pdu.Name, addr string, raw bool) (router.Link, error) {
		l, err := dial(ctx, peer, addr, raw)
		if err != nil {
			return nil, err
		}
		return wrap(l.(tunnel.Link)), nil
	}
	deps.Classify = book.Classify
	r, err := router.New(cfg, deps)
	if err != nil {
		_ = ep.Close()
		return nil, err
	}
	rp.Store(r)
	t := &tappedRouter{r: r, ep: ep}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if err := r.Serve(ctx, tapAcceptor{ep: ep, wrap: wrap}); err != nil {
			s.log.Warn("accept loop ended", zap.Error(err))
		}
	}()
	return t, nil
}
