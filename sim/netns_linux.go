//go:build linux

package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// The netns mode. Every node gets a network namespace with one veth; the
// other end of every veth is in the run's hub namespace, which has no
// address and forwards nothing itself: one AF_PACKET socket there reads
// what each node sends and hands each UDP datagram to the same link
// emulator (linkem.Network) as the in-process mode, which carries it along
// the topology's shortest path of links — delay, jitter, loss, bandwidth,
// MTU, up/down, counters, wire captures — and then writes it, as a fresh
// IPv4/UDP frame, out of the destination's veth. Routers are real
// `gdp router` processes started inside their namespaces from generated
// YAML and certificates; they find each other's names through a kad-dht
// of their own (resolver mode dht, bootstrapped from the first router).
// Servers and clients are the real client and capsuled code in this
// process, each on a kernel UDP socket opened inside its own namespace, so
// that their traffic crosses the namespaces and the emulator too.

// nsGateway is the next hop every node routes 10.0.0.0/8 through: a
// permanent neighbour entry maps it to the hub side of the node's veth.
var nsGateway = net.IPv4(169, 254, 0, 1)

const (
	nsTunnelPort = RouterPort
	nsDHTPort    = 8011
	nsAdmin      = "127.0.0.1:8019"
	ethPIP       = 0x0800
	frameHeader  = 14 + 20 + 8 // Ethernet, IPv4, UDP
)

// nsRun is one netns run's resources.
type nsRun struct {
	s       *Sim
	id      string
	dir     string // configs, keys, logs
	bin     string
	domPath string
	hub     netns.NsHandle
	hubName string
	pkt     *os.File
	rc      syscall.RawConn
	byIf    map[int]*nsNode
	byAddr  map[netip.Addr]*nsNode
	nodes   []*nsNode
	// epGo is closed when enough routers are up for the endpoints to
	// start (endpointsAt), epStop when the routers' start failed.
	epGo, epStop chan struct{}
	startEp      func(context.Context, *simNode) error // s.startEndpoint; tests replace it
	state        nsState
	stateMu      sync.Mutex
	ipID         atomic.Uint32
	closed       atomic.Bool
	readers      sync.WaitGroup

	// Frames the hub did not forward, by reason.
	Drops nsDrops
}

type nsDrops struct {
	Malformed, NotUDP, Fragment, Spoofed, NoDest, SendFailed atomic.Uint64
}

// nsNode is one node's namespace, veth and (a router) process.
type nsNode struct {
	n       *simNode
	nsName  string
	h       netns.NsHandle
	hubIf   string
	nodeIf  string
	ifindex int // the hub side's
	hubMAC  net.HardwareAddr
	nodeMAC net.HardwareAddr
	alias   string
	cfg     string
	log     string
	member  string // its membership file
	dhtAddr string // its DHT multiaddr with /p2p/
	admin   *http.Client
	joined  chan struct{} // a router's: closed once it is up and in the DHT

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// nsState is what `gdp sim clean` needs after the simulator died: written
// to StateDir/run.json before anything it names is made.
type nsState struct {
	Run        string        `json:"run"`
	PID        int           `json:"pid"`
	PIDStart   uint64        `json:"pid_start"`
	Started    time.Time     `json:"started"`
	Dir        string        `json:"dir"`
	Namespaces []string      `json:"namespaces"`
	Veths      []string      `json:"veths"`
	Procs      []nsProcState `json:"procs"`
}

type nsProcState struct {
	Node  string `json:"node"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// NetnsAvailable says why the netns mode cannot run here (nil: it can).
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("netns mode needs root (it creates network namespaces and veth pairs); run as root, or use the in-process mode")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("netns mode: network namespaces unavailable: %w", err)
	}
	return nil
}

// lockedNS runs f on an OS thread switched into ns; sockets f opens and
// processes it starts belong to ns.
func lockedNS(ns netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace: %w", err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it ends with this goroutine rather
		// than run other goroutines in the wrong namespace.
		return fmt.Errorf("leave namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// newNamedNS makes a named namespace without moving this thread into it.
func newNamedNS(name string) (netns.NsHandle, error) {
	h := netns.None()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return h, err
	}
	defer orig.Close()
	h, err = netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		return h, fmt.Errorf("leave namespace: %w", serr)
	}
	if err != nil {
		_ = os.Remove(filepath.Join("/run/netns", name))
		return h, fmt.Errorf("namespace %s: %w", name, err)
	}
	return h, nil
}

func (s *Sim) buildNetns(ctx context.Context) error {
	t0 := time.Now()
	if err := NetnsAvailable(); err != nil {
		return err
	}
	if len(s.top.Domains) > 1 {
		return fmt.Errorf("netns mode: the topology has %d trust domains; the routers form one domain's DHT (federation between domains is not set up here), so put every node in one domain", len(s.top.Domains))
	}
	bin := s.opts.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("netns mode: the gdp binary: %w", err)
		}
	}
	if _, err := exec.LookPath(bin); err != nil {
		return fmt.Errorf("netns mode: the gdp binary: %w", err)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	r := &nsRun{s: s, id: hex.EncodeToString(idb[:]), bin: bin, dir: filepath.Join(s.dir, "netns"),
		byIf: map[int]*nsNode{}, byAddr: map[netip.Addr]*nsNode{}}
	r.hubName = NetnsPrefix + r.id + "-hub"
	s.ns = r
	if err := os.MkdirAll(filepath.Join(r.dir, "keys"), 0o700); err != nil {
		return err
	}
	if err := s.identities(); err != nil {
		return err
	}
	for i, n := range s.order {
		nd := &nsNode{n: n, nsName: NetnsPrefix + r.id + "-" + n.spec.Name,
			hubIf:  fmt.Sprintf("%s%sh%d", VethPrefix, r.id, i),
			nodeIf: fmt.Sprintf("%s%sn%d", VethPrefix, r.id, i),
			hubMAC: mac(0x68, i), nodeMAC: mac(0x6e, i), alias: fmt.Sprintf("n%d", i)}
		if n.spec.Kind == KindRouter {
			nd.joined = make(chan struct{})
		}
		n.ns = nd
		r.nodes = append(r.nodes, nd)
		r.byAddr[n.addr] = nd
	}
	if err := r.setup(); err != nil {
		return err
	}
	s.say("%d namespaces and veths up (%s)", len(r.nodes)+1, time.Since(t0).Round(time.Millisecond))
	for _, l := range s.top.Measure.Pcap {
		if err := s.captureWire(l); err != nil {
			return err
		}
	}
	if err := r.writeFiles(); err != nil {
		return err
	}
	s.net.SetDeliver(r.deliver)
	r.readers.Add(1)
	go r.readLoop()
	// The endpoints start while the last routers join (startEndpoints'
	// comment): their attaching and publishing overlap the join.
	r.epGo, r.epStop = make(chan struct{}), make(chan struct{})
	epErr := make(chan error, 1)
	go func() { epErr <- r.startEndpoints(ctx, t0) }()
	if err := r.startRouters(ctx); err != nil {
		close(r.epStop)
		<-epErr
		return err
	}
	s.say("%d gdp router processes up, DHT joined (%s)", len(s.order)-s.endpoints(), time.Since(t0).Round(time.Millisecond))
	if err := <-epErr; err != nil {
		return err
	}
	if err := r.waitNames(ctx); err != nil {
		return err
	}
	s.say("%d endpoints attached and advertised; built in %s", s.endpoints(), time.Since(t0).Round(time.Millisecond))
	return nil
}

// identities gives every node a key and a week's membership, as build does.
func (s *Sim) identities() error {
	for _, d := range s.top.Domains {
		id, err := certs.NewIdentity(certs.KindDomain, "sim domain "+d)
		if err != nil {
			return err
		}
		s.doms[d] = id
	}
	var metas []*certs.Metadata
	for _, d := range s.top.Domains {
		metas = append(metas, s.doms[d].Meta)
	}
	s.trust = certs.NewVerifier(metas...)
	for i, n := range s.top.Nodes {
		if err := s.addNode(i, n); err != nil {
			return err
		}
	}
	return nil
}

func mac(kind byte, i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, kind, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// writeState records the run's resources (atomically).
func (r *nsRun) writeState() error {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	b, err := json.MarshalIndent(&r.state, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(StateDir, r.id+".json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return os.Rename(tmp, p)
}

// setup makes the hub, every node's namespace and veth, and the hub's
// packet socket; the state file names them first.
func (r *nsRun) setup() error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	r.state = nsState{Run: r.id, PID: os.Getpid(), PIDStart: procStart(os.Getpid()), Started: time.Now().UTC(), Dir: r.s.dir,
		Namespaces: []string{r.hubName}}
	for _, nd := range r.nodes {
		r.state.Namespaces = append(r.state.Namespaces, nd.nsName)
		r.state.Veths = append(r.state.Veths, nd.hubIf, nd.nodeIf)
	}
	if err := r.writeState(); err != nil {
		return err
	}
	var err error
	if r.hub, err = newNamedNS(r.hubName); err != nil {
		return err
	}
	hh, err := netlink.NewHandleAt(r.hub)
	if err != nil {
		return fmt.Errorf("netlink in the hub: %w", err)
	}
	defer hh.Close()
	for _, nd := range r.nodes {
		if err := r.setupNode(hh, nd); err != nil {
			return fmt.Errorf("node %s: %w", nd.n.spec.Name, err)
		}
	}
	return r.openPacket()
}

func (r *nsRun) setupNode(hh *netlink.Handle, nd *nsNode) error {
	var err error
	if nd.h, err = newNamedNS(nd.nsName); err != nil {
		return err
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nd.hubIf, HardwareAddr: nd.hubMAC, MTU: 1500},
		PeerName: nd.nodeIf, PeerHardwareAddr: nd.nodeMAC, PeerNamespace: netlink.NsFd(int(nd.h))}
	if err := hh.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s: %w", nd.hubIf, err)
	}
	hl, err := hh.LinkByName(nd.hubIf)
	if err != nil {
		return err
	}
	nd.ifindex = hl.Attrs().Index
	r.byIf[nd.ifindex] = nd
	if err := hh.LinkSetUp(hl); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(nd.h)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	l, err := h.LinkByName(nd.nodeIf)
	if err != nil {
		return err
	}
	ip := net.IP(nd.n.addr.AsSlice())
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}}); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	idx := l.Attrs().Index
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: nsGateway, HardwareAddr: nd.hubMAC}); err != nil {
		return fmt.Errorf("gateway neighbour: %w", err)
	}
	_, dst, _ := net.ParseCIDR("10.0.0.0/8")
	if err := h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: dst, Gw: nsGateway, Src: ip, Flags: int(netlink.FLAG_ONLINK)}); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	nd.admin = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := lockedNS(nd.h, func() error {
				var err error
				c, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacket opens the hub's AF_PACKET socket: every IPv4 frame any node
// sends arrives on it.
func (r *nsRun) openPacket() error {
	var fd int
	err := lockedNS(r.hub, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(ethPIP)))
		return err
	})
	if err != nil {
		return fmt.Errorf("packet socket in the hub: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	r.pkt = os.NewFile(uintptr(fd), r.hubName+"-packet")
	r.rc, err = r.pkt.SyscallConn()
	return err
}

// readLoop hands every datagram a node sends to the emulator.
func (r *nsRun) readLoop() {
	defer r.readers.Done()
	buf := make([]byte, 1<<16)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := r.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil || r.closed.Load() {
			return
		}
		if rerr != nil {
			continue
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if nd := r.byIf[ll.Ifindex]; nd != nil {
			r.ingress(nd, buf[:n])
		}
	}
}

// ingress parses one frame from nd's veth and injects its datagram.
func (r *nsRun) ingress(nd *nsNode, f []byte) {
	if len(f) < frameHeader || binary.BigEndian.Uint16(f[12:14]) != ethPIP {
		r.Drops.Malformed.Add(1)
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ip[0]>>4 != 4 || ihl < 20 || total < ihl+8 || total > len(ip) {
		r.Drops.Malformed.Add(1)
		return
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		r.Drops.Fragment.Add(1)
		return
	}
	if ip[9] != unix.IPPROTO_UDP {
		r.Drops.NotUDP.Add(1)
		return
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	if src != nd.n.addr {
		r.Drops.Spoofed.Add(1)
		return
	}
	udp := ip[ihl:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < 8 || ulen > len(udp) {
		r.Drops.Malformed.Add(1)
		return
	}
	sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
	if err := r.s.net.Inject(netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp), udp[8:ulen]); err != nil {
		r.Drops.NoDest.Add(1)
	}
}

// deliver writes a datagram the emulator delivered out of its
// destination's veth, as a fresh IPv4/UDP frame (UDP checksum 0: none, as
// IPv4 allows; the emulator is the wire).
func (r *nsRun) deliver(src, dst netip.AddrPort, payload []byte) {
	nd := r.byAddr[dst.Addr()]
	if nd == nil || r.closed.Load() {
		r.Drops.NoDest.Add(1)
		return
	}
	f := frame(nd.nodeMAC, nd.hubMAC, src, dst, uint16(r.ipID.Add(1)), payload)
	to := &unix.SockaddrLinklayer{Ifindex: nd.ifindex, Protocol: htons(ethPIP), Halen: 6}
	copy(to.Addr[:], nd.nodeMAC)
	var serr error
	err := r.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), f, 0, to)
		return true // never wait: a full buffer is a drop, the scheduler goes on
	})
	if err != nil || serr != nil {
		r.Drops.SendFailed.Add(1)
	}
}

// frame is an Ethernet/IPv4/UDP frame carrying payload from src to dst.
func frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.AddrPort, id uint16, payload []byte) []byte {
	f := make([]byte, frameHeader+len(payload))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], ethPIP)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+len(payload)))
	binary.BigEndian.PutUint16(ip[4:6], id)
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	copy(f[frameHeader:], payload)
	return f
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// listen opens a kernel UDP socket at n's address inside its namespace.
// quic-go sees a plain net.PacketConn (no GSO: one datagram per frame on
// the veth, as the emulator needs).
func (r *nsRun) listen(n *simNode, port uint16) (net.PacketConn, error) {
	if n.ns == nil {
		return nil, fmt.Errorf("node %s has no namespace", n.spec.Name)
	}
	var c net.PacketConn
	err := lockedNS(n.ns.h, func() error {
		var err error
		c, err = net.ListenPacket("udp4", netip.AddrPortFrom(n.addr, port).String())
		return err
	})
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(4 << 20)
		_ = u.SetWriteBuffer(4 << 20)
	}
	return plainConn{c}, nil
}

// plainConn hides *net.UDPConn's batch and GSO methods from quic-go;
// the buffers are sized already.
type plainConn struct{ net.PacketConn }

func (plainConn) SetReadBuffer(int) error  { return nil }
func (plainConn) SetWriteBuffer(int) error { return nil }

// writeFiles writes the domain and every router's key and membership, in
// parallel; each router's config is written when it starts
// (writeConfig), with bootstrap peers that are up by then.
func (r *nsRun) writeFiles() error {
	s := r.s
	ks, err := certs.OpenKeystore(filepath.Join(r.dir, "keys"))
	if err != nil {
		return err
	}
	dom := s.doms[s.top.Domains[0]]
	r.domPath = filepath.Join(r.dir, "domain.meta")
	if err := os.WriteFile(r.domPath, certs.Armor(certs.PEMMetadata, dom.Meta.Marshal()), 0o644); err != nil {
		return err
	}
	routers := r.routers()
	errs := make(chan error, len(routers))
	sem := make(chan struct{}, max(2, runtime.NumCPU()))
	var wg sync.WaitGroup
	for _, nd := range routers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pid, err := peerID(nd.n.id)
			if err == nil {
				nd.n.peer = pid // its place in the key space (kadKey)
				nd.dhtAddr = fmt.Sprintf("/ip4/%s/udp/%d/quic-v1/p2p/%s", nd.n.addr, nsDHTPort, pid)
				err = ks.Save(nd.alias, nd.n.id)
			}
			if err == nil {
				nd.member = filepath.Join(r.dir, nd.alias+".member")
				err = os.WriteFile(nd.member, certs.Armor(certs.PEMCert, nd.n.member.Marshal()), 0o644)
			}
			nd.cfg = filepath.Join(r.dir, nd.alias+".yaml")
			nd.log = filepath.Join(r.dir, nd.alias+".log")
			if err != nil {
				errs <- fmt.Errorf("router %s: %w", nd.n.spec.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

// writeConfig writes a router's YAML: the DHT joined through boot (none:
// the first router), retried for two minutes if none of them admits it at
// once (resolver.bootstrap_timeout), rather than exiting; the join is
// seeded (boot is the router's nearest routers among those up, and one
// per distance: seedBoot), without kad-dht's routing table refresh.
func (r *nsRun) writeConfig(nd *nsNode, boot []*nsNode) error {
	n := nd.n
	bs := ""
	if len(boot) > 0 {
		var addrs []string
		for _, b := range boot {
			addrs = append(addrs, b.dhtAddr)
		}
		bs = fmt.Sprintf("  bootstrap: [%s]\n  bootstrap_timeout: 2m\n  join: seeded\n", strings.Join(addrs, ", "))
	}
	tick := ""
	if t := r.s.routerSizing().tick; t > 0 {
		// As in-process: above coarseTickRouters a router's housekeeping
		// wakes every 500 ms, not 50 (the idle CPU of a hundred processes).
		tick = fmt.Sprintf("tick: %s\n", t)
	}
	cfg := fmt.Sprintf(`# %s, generated by gdp sim (netns mode)
listen: "%s:%d"
keystore: %s
identity: %s
member_cert: %s
domain: %s
admin: %q
drain_timeout: 1s
dedup: {slots: %d}
log: {level: warn}
%sresolver:
  mode: dht
  listen: [/ip4/%s/udp/%d/quic-v1]
  min_puts: 1
  handshake_timeout: 30s
  put_timeout: 20s
  timeout: 30s
%s`, n.spec.Name, n.addr, nsTunnelPort, filepath.Join(r.dir, "keys"), nd.alias, nd.member, r.domPath, nsAdmin, simDedupSlots,
		tick, n.addr, nsDHTPort, bs)
	return os.WriteFile(nd.cfg, []byte(cfg), 0o644)
}

// routers are the router nodes in topology order.
func (r *nsRun) routers() []*nsNode {
	var out []*nsNode
	for _, nd := range r.nodes {
		if nd.n.spec.Kind == KindRouter {
			out = append(out, nd)
		}
	}
	return out
}

// How routers join: the first alone; then the other nsSeeds-1 seeds
// through it; then every other router, up to nsJoinWindow joining at any
// one time (the next starts as soon as one is up: no wave waits for its
// slowest member), each seeded (seedBoot) with the routers already up
// that are nearest to it in the key space and one at each farther
// distance, as the in-process simulator's DHT is.
const (
	nsSeeds      = 4
	nsJoinWindow = 16
)

// startRouters starts every router and returns once each serves its
// admin API and (beyond the first) has admitted a DHT peer.
func (r *nsRun) startRouters(ctx context.Context) error {
	t0 := time.Now()
	routers := endpointRoutersFirst(r.routers(), r.s.top.Nodes)
	epAt := endpointsAt(len(routers))
	if len(routers) == 0 {
		close(r.epGo)
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		up    []*nsNode
		joins []time.Duration
		rng   = mrand.New(mrand.NewPCG(r.s.top.Seed, 0x6e73))
	)
	join := func(nd *nsNode, boot []*nsNode) error {
		t := time.Now()
		if err := r.writeConfig(nd, boot); err != nil {
			return fmt.Errorf("router %s: config: %w", nd.n.spec.Name, err)
		}
		if err := r.startRouter(nd.n); err != nil {
			return err
		}
		if err := r.waitUp(ctx, nd, len(boot) > 0); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		up = append(up, nd)
		close(nd.joined)
		if len(up) == epAt {
			close(r.epGo)
		}
		joins = append(joins, time.Since(t))
		if k := len(up); k == len(routers) || k%25 == 0 {
			r.s.say("  %d/%d routers up (%s)", k, len(routers), time.Since(t0).Round(time.Millisecond))
		}
		return nil
	}
	if err := join(routers[0], nil); err != nil {
		return err
	}
	// The seeds, then the rest; each phase's routers joining through
	// routers already up.
	seeds := min(nsSeeds, len(routers))
	for _, phase := range [][]*nsNode{routers[1:seeds], routers[seeds:]} {
		sem := make(chan struct{}, nsJoinWindow)
		errs := make(chan error, len(phase))
		var wg sync.WaitGroup
	launch:
		for _, nd := range phase {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break launch
			}
			mu.Lock()
			boot := seedBoot(nd, up, rng)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := join(nd, boot); err != nil {
					errs <- err
					cancel() // no more starts: the build failed
				}
			}()
		}
		wg.Wait()
		close(errs)
		// The first failure cancelled the other joins: report it, not
		// their cancellations.
		var failed []error
		for _, err := range collect(errs) {
			if !errors.Is(err, context.Canceled) {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			return errors.Join(failed...)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	slices.Sort(joins)
	r.s.say("  each router's start to joined: median %s, max %s", joins[len(joins)/2].Round(time.Millisecond),
		joins[len(joins)-1].Round(time.Millisecond))
	return nil
}

// endpointRoutersFirst orders the routers to start: the first stays
// first, then the routers endpoints attach to, then the others (each group
// in topology order), so that the endpoints can start as soon as
// endpointsAt routers are up instead of waiting for their routers among
// the last.
func endpointRoutersFirst(routers []*nsNode, nodes []*Node) []*nsNode {
	if len(routers) < 2 {
		return routers
	}
	attached := map[string]bool{}
	for _, n := range nodes {
		if n.Kind != KindRouter {
			attached[n.Attach] = true
		}
	}
	out := append([]*nsNode{routers[0]}, routers[1:]...)
	slices.SortStableFunc(out[1:], func(a, b *nsNode) int {
		switch ea, eb := attached[a.n.spec.Name], attached[b.n.spec.Name]; {
		case ea && !eb:
			return -1
		case eb && !ea:
			return 1
		}
		return 0
	})
	return out
}

// endpointsAt is how many of n routers are up when the endpoints start:
// four fifths (all of up to four). An endpoint's router publishes its
// name to the closest routers up at that moment; with four fifths of them
// up, most of the name's closest routers in the whole DHT hold it, and a
// lookup, which asks the closest routers it finds, meets one of them.
// Earlier (among a handful of routers) the record would sit on routers
// that end far from the name in the full DHT.
func endpointsAt(n int) int { return max(1, n-n/5) }

// startEndpoints starts the servers and clients once endpointsAt routers
// are up, each once its own router is up; the last routers are still
// joining meanwhile. It gives up when the routers' start failed (epStop).
func (r *nsRun) startEndpoints(ctx context.Context, t0 time.Time) error {
	select {
	case <-r.epGo:
	case <-r.epStop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	s := r.s
	var eps []*simNode
	for _, n := range s.order {
		if n.spec.Kind != KindRouter {
			eps = append(eps, n)
		}
	}
	if len(eps) == 0 {
		return nil
	}
	s.say("  starting the %d endpoints (%s)", len(eps), time.Since(t0).Round(time.Millisecond))
	err := eachLimited(ctx, eps, s.opts.Parallel, func(n *simNode) error {
		if at := s.nodes[n.spec.Attach]; at != nil && at.ns != nil && at.ns.joined != nil {
			select {
			case <-at.ns.joined:
			case <-r.epStop:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-r.epStop:
			return nil // the build failed: start nothing more
		default:
		}
		start := r.startEp
		if start == nil {
			start = s.startEndpoint
		}
		if err := start(ctx, n); err != nil {
			return fmt.Errorf("%s: %w", n.spec.Name, err)
		}
		return nil
	})
	if err == nil {
		s.say("  %d endpoints attached, names advertised (%s)", len(eps), time.Since(t0).Round(time.Millisecond))
	}
	return err
}

// seedBoot is nd's bootstrap peers among the routers up: its seeds
// (seedsOf) as if up and nd were the whole DHT. The caller holds the lock
// guarding up and rng.
func seedBoot(nd *nsNode, up []*nsNode, rng *mrand.Rand) []*nsNode {
	keys := make([][32]byte, len(up)+1)
	for i, u := range up {
		keys[i] = kadKey(u.n)
	}
	keys[len(up)] = kadKey(nd.n)
	var out []*nsNode
	for _, i := range seedsOf(len(up), keys, rng) {
		out = append(out, up[i])
	}
	return out
}

// startRouter starts n's `gdp router` process inside its namespace.
func (r *nsRun) startRouter(n *simNode) error {
	nd := n.ns
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := r.routerCmd(nd, logf)
	if err := r.spawn(nd.h, cmd); err != nil {
		return fmt.Errorf("router %s: start %s: %w", n.spec.Name, r.bin, err)
	}
	nd.cmd = cmd
	done := make(chan struct{})
	nd.done = done
	go func() { _ = cmd.Wait(); close(done) }()
	r.stateMu.Lock()
	r.state.Procs = append(r.state.Procs, nsProcState{Node: n.spec.Name, PID: cmd.Process.Pid, Start: procStart(cmd.Process.Pid)})
	r.stateMu.Unlock()
	n.mu.Lock()
	n.up = true
	n.mu.Unlock()
	return r.writeState()
}

// routerCmd is nd's `gdp router` command, its output to logf.
func (r *nsRun) routerCmd(nd *nsNode, logf *os.File) *exec.Cmd {
	cmd := exec.Command(r.bin, "router", "--config", nd.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	// One P each: a hundred mostly idle routers on a few cores do not
	// need more, and idle Ps spinning for work cost CPU the others need.
	// GOGC 200: a router's heap is small, and at the default its joining
	// (handshakes, proofs) collects garbage every few MiB.
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_GSO=true", "GOMAXPROCS=1", "GOGC=200", "GDP_SIM_RUN="+r.id)
	cmd.Env = append(cmd.Env, r.s.opts.RouterEnv...) // exec keeps a key's last value
	// Dies with the simulator's thread; gdp sim clean covers the rest.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

// spawn starts cmd inside namespace h with the routers' timer slack
// (Options.RouterTimerSlack): the starting thread's slack is set for the
// fork, which the child and every thread it makes inherit, and restored
// after, so the simulator's own timers (the link emulator's) keep the
// kernel's default.
func (r *nsRun) spawn(h netns.NsHandle, cmd *exec.Cmd) error {
	slack := r.s.opts.RouterTimerSlack
	if slack == 0 {
		slack = NetnsTimerSlack
	}
	return lockedNS(h, func() error {
		if slack < 0 {
			return cmd.Start()
		}
		old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		if err != nil {
			return fmt.Errorf("timer slack: %w", err)
		}
		if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
			return fmt.Errorf("timer slack %s: %w", slack, err)
		}
		serr := cmd.Start()
		if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0); err != nil {
			// The thread keeps the routers' slack: end it with the
			// goroutine rather than let it run the simulator's timers.
			runtime.LockOSThread()
			return errors.Join(serr, fmt.Errorf("restore timer slack: %w", err))
		}
		return serr
	})
}

// stopRouter kills n's process (a crash: nothing is said to its peers).
func (r *nsRun) stopRouter(n *simNode) {
	nd := n.ns
	if nd == nil {
		return
	}
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.cmd = nil
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// getJSON reads a router's admin API.
func (nd *nsNode) getJSON(path string, v any) error {
	resp, err := nd.admin.Get("http://" + nsAdmin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// exited says whether a router's process is gone, with its log's tail.
func (nd *nsNode) exited() error {
	nd.mu.Lock()
	done := nd.done
	nd.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		b, _ := os.ReadFile(nd.log)
		if len(b) > 600 {
			b = b[len(b)-600:]
		}
		return fmt.Errorf("router %s exited: %s", nd.n.spec.Name, strings.TrimSpace(string(b)))
	default:
		return nil
	}
}

// waitUp waits until router nd answers on its admin API and, with dht,
// has admitted a DHT peer, polling every 250 ms (up to 180 s). A router
// that exits meanwhile is started again, twice at most.
func (r *nsRun) waitUp(ctx context.Context, nd *nsNode, dht bool) error {
	deadline := time.Now().Add(180 * time.Second)
	retries := 0
	for {
		if err := nd.exited(); err != nil {
			if retries >= 2 || ctx.Err() != nil {
				return err
			}
			retries++
			nd.mu.Lock()
			nd.cmd, nd.done = nil, nil
			nd.mu.Unlock()
			if err := r.startRouter(nd.n); err != nil {
				return err
			}
			r.s.say("  router %s exited while joining; started again", nd.n.spec.Name)
			continue
		}
		var sum router.Summary
		var st resolver.Status
		if nd.getJSON("/v1/status", &sum) == nil && sum.Name == nd.n.id.Name &&
			(!dht || nd.getJSON("/v1/resolver/status", &st) == nil && st.Admitted >= 1) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("router %s: not up (admin API, DHT) after 180 s; its log: %s", nd.n.spec.Name, nd.log)
		}
		// Polled gently: a hundred routers starting on a loaded
		// machine need the CPU more than the answer.
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("router %s: %w", nd.n.spec.Name, ctx.Err())
		}
	}
}

// waitNames waits until every endpoint's name is in the routers' DHT,
// asked (uncached) of a router other than its own where there is one. It
// first waits, on the admin API, until the endpoint's router has no
// publication pending (its name was put, or the put is being retried),
// then looks the name up every 250 ms: each lookup is a DHT walk, which
// a name not yet put would make for nothing.
func (r *nsRun) waitNames(ctx context.Context) error {
	routers := r.routers()
	t0 := time.Now()
	deadline := t0.Add(60 * time.Second)
	wait := func() error {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-time.After(250 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, nd := range r.nodes {
		if nd.n.spec.Kind == KindRouter {
			continue
		}
		if at := r.s.nodes[nd.n.spec.Attach]; at != nil && at.ns != nil {
			for {
				var sum router.Summary
				if at.ns.getJSON("/v1/status", &sum) == nil && sum.PublishPending == 0 {
					break
				}
				if err := wait(); err != nil {
					return fmt.Errorf("%s: its router %s never published its name: %w", nd.n.spec.Name, at.spec.Name, err)
				}
			}
		}
		ask := routers[i%len(routers)]
		if ask.n.spec.Name == nd.n.spec.Attach && len(routers) > 1 {
			ask = routers[(i+1)%len(routers)]
		}
		for {
			var views []resolver.View
			if ask.getJSON("/v1/resolver/lookup/"+nd.n.id.Name.String()+"?format=json&cache=no", &views) == nil && len(views) > 0 {
				break
			}
			if err := wait(); err != nil {
				return fmt.Errorf("%s: its name never reached the DHT (asked router %s): %w", nd.n.spec.Name, ask.n.spec.Name, err)
			}
		}
	}
	if len(routers) > 0 {
		r.s.say("  every endpoint's name found (%s)", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// close kills the routers, closes the hub socket and removes every
// namespace and the state file.
func (r *nsRun) close() {
	if !r.closed.CompareAndSwap(false, true) {
		return
	}
	for _, nd := range r.nodes {
		if nd.n.spec.Kind == KindRouter {
			nd.mu.Lock()
			if nd.cmd != nil {
				_ = nd.cmd.Process.Kill()
			}
			nd.mu.Unlock()
		}
	}
	for _, nd := range r.nodes {
		nd.mu.Lock()
		done := nd.done
		nd.cmd = nil
		nd.mu.Unlock()
		if done != nil {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
		}
	}
	r.s.net.SetDeliver(nil)
	if r.pkt != nil {
		_ = r.pkt.Close()
		r.readers.Wait()
	}
	for _, nd := range r.nodes {
		if nd.h.IsOpen() {
			_ = nd.h.Close()
		}
		_ = deleteNS(nd.nsName)
	}
	if r.hub.IsOpen() {
		_ = r.hub.Close()
	}
	_ = deleteNS(r.hubName)
	if r.s.opts.Out != "" {
		r.keepLogs(filepath.Join(r.s.opts.Out, "router-logs"))
	}
	_ = os.RemoveAll(r.dir)
	_ = os.Remove(filepath.Join(StateDir, r.id+".json"))
}

// deleteNS removes a named namespace (the kernel frees it, with its
// veths, once no process or socket holds it).
func deleteNS(name string) error {
	p := filepath.Join("/run/netns", name)
	if _, err := os.Lstat(p); err != nil {
		return err
	}
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	return os.Remove(p)
}

// procStart is a process's start time (clock ticks after boot, field 22
// of /proc/PID/stat): with the pid it names one process, not a reused pid.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	var v uint64
	fmt.Sscan(f[19], &v)
	return v
}

// captureWire writes a link's datagrams to a-b.wire.pcap (netns mode: the
// routers' PDUs are inside their processes, so no .pdu.pcap).
func (s *Sim) captureWire(id string) error {
	if s.opts.Out == "" {
		return fmt.Errorf("measure.pcap needs a results directory (--out)")
	}
	l := s.linkFor(id)
	if l == nil {
		return fmt.Errorf("pcap %s: netns mode captures links only (a-b.wire.pcap); %s is no link", id, id)
	}
	return s.tapWire(id, l)
}

// RouterPIDs are the running router processes by node (netns mode; nil
// in-process).
func (s *Sim) RouterPIDs() map[string]int {
	if s.ns == nil {
		return nil
	}
	out := map[string]int{}
	for _, nd := range s.ns.nodes {
		nd.mu.Lock()
		if nd.cmd != nil {
			out[nd.n.spec.Name] = nd.cmd.Process.Pid
		}
		nd.mu.Unlock()
	}
	return out
}

// RunID is the netns run's id: its namespaces are NetnsPrefix+id+"-…",
// its state file StateDir/id.json ("" in-process).
func (s *Sim) RunID() string {
	if s.ns == nil {
		return ""
	}
	return s.ns.id
}

// keepLogs copies the routers' logs and configs to dir (the results
// directory's router-logs/), with the hub's drop counters.
func (r *nsRun) keepLogs(dir string) {
	if os.MkdirAll(dir, 0o755) != nil {
		return
	}
	for _, nd := range r.routers() {
		for _, f := range []struct{ from, to string }{{nd.log, nd.n.spec.Name + ".log"}, {nd.cfg, nd.n.spec.Name + ".yaml"}} {
			if b, err := os.ReadFile(f.from); err == nil {
				_ = os.WriteFile(filepath.Join(dir, f.to), b, 0o644)
			}
		}
	}
	d := &r.Drops
	st := r.s.net.Stats()
	_ = os.WriteFile(filepath.Join(dir, "hub.txt"), []byte(fmt.Sprintf(
		"hub frames dropped: malformed %d, not UDP %d, fragments %d, spoofed %d, no destination %d, send failed %d\nnetwork: delivered %d, no route %d\n",
		d.Malformed.Load(), d.NotUDP.Load(), d.Fragment.Load(), d.Spoofed.Load(), d.NoDest.Load(), d.SendFailed.Load(),
		st.Delivered.Load(), st.NoRoute.Load())), 0o644)
}
