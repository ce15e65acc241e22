package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// `gdp doctor --remote FILE`: checks a live deployment from one machine.
// FILE (YAML, deploy/examples/three-sites/sites.yaml) lists the sites and
// the addresses of their daemons, and the probe identity doctor dials the
// routers with. For every site: its router's admin API (reachable, the
// router's clock against ours, the host's UDP buffer limits), a real QUIC
// tunnel handshake and echo to the router (its tunnel port open, the
// membership it presents and how long it has left), the router's tunnels to
// the peers the site should have, its resolver's API and DHT neighbours, and
// every other daemon's /metrics (reachable, its membership's life). One
// line per check, as `gdp doctor`.

// remoteInventory is the --remote file.
type remoteInventory struct {
	// Probe is the identity doctor attaches to the routers with: a client
	// key in Keystore and its membership in the domain. Relative paths are
	// relative to the inventory file.
	Probe struct {
		Keystore   string `yaml:"keystore"`
		Identity   string `yaml:"identity"` // default "ops"
		MemberCert string `yaml:"member_cert"`
		Domain     string `yaml:"domain"`
	} `yaml:"probe"`
	// Timeout bounds each check's network exchange. Default 3s.
	Timeout config.Duration `yaml:"timeout"`
	// ClockWarn: a clock offset larger than this (beyond the measuring
	// uncertainty) is a warning. Default 1s.
	ClockWarn config.Duration `yaml:"clock_warn"`
	// ClockFail: larger than this fails. Certificates start one minute
	// before they are issued (--backdate), so a clock that far behind sees
	// fresh ones as not yet valid. Default 30s.
	ClockFail config.Duration `yaml:"clock_fail"`
	// Sites are checked in order.
	Sites []remoteSite `yaml:"sites"`
}

// remoteSite is one site of the inventory.
type remoteSite struct {
	Name string `yaml:"name"`
	// Router is the router's tunnel address (UDP, QUIC) as the other sites
	// reach it; RouterName its name (default: from its admin API).
	Router     string `yaml:"router"`
	RouterName string `yaml:"router_name"`
	// Admin is the router's admin API (TCP, HTTP). Optional.
	Admin string `yaml:"admin"`
	// Peers are the sites whose routers this site's router keeps a tunnel
	// to (its peers: entries).
	Peers []string `yaml:"peers"`
	// Resolver is a gdp resolver's API address (TCP, HTTP). Optional.
	Resolver string `yaml:"resolver"`
	// Metrics are further daemons' /metrics addresses (gdp capsuled's
	// metrics:, a resolver's api:). Optional.
	Metrics []string `yaml:"metrics"`
}

func loadInventory(path string) (*remoteInventory, error) {
	var inv remoteInventory
	if err := config.Load(path, &inv); err != nil {
		return nil, err
	}
	if len(inv.Sites) == 0 {
		return nil, fmt.Errorf("inventory %s: no sites", path)
	}
	seen := map[string]bool{}
	for i, s := range inv.Sites {
		if s.Name == "" {
			return nil, fmt.Errorf("inventory %s: site %d has no name", path, i+1)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("inventory %s: site %q twice", path, s.Name)
		}
		seen[s.Name] = true
		if s.RouterName != "" {
			if _, err := pdu.ParseName(s.RouterName); err != nil {
				return nil, fmt.Errorf("inventory %s: site %s: router_name: %w", path, s.Name, err)
			}
		}
	}
	for _, s := range inv.Sites {
		for _, p := range s.Peers {
			if !seen[p] {
				return nil, fmt.Errorf("inventory %s: site %s: peer %q is not a site of the file", path, s.Name, p)
			}
		}
		if len(s.Peers) > 0 && s.Admin == "" {
			return nil, fmt.Errorf("inventory %s: site %s: peers are checked through the router's admin API: set admin", path, s.Name)
		}
	}
	base := filepath.Dir(path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	rel(&inv.Probe.Keystore)
	rel(&inv.Probe.MemberCert)
	rel(&inv.Probe.Domain)
	if inv.Probe.Identity == "" {
		inv.Probe.Identity = "ops"
	}
	if inv.Timeout <= 0 {
		inv.Timeout = config.Duration(3 * time.Second)
	}
	if inv.ClockWarn <= 0 {
		inv.ClockWarn = config.Duration(time.Second)
	}
	if inv.ClockFail <= 0 {
		inv.ClockFail = config.Duration(30 * time.Second)
	}
	return &inv, nil
}

// remoteDoctor runs the checks of one inventory.
type remoteDoctor struct {
	inv     *remoteInventory
	procSys string
	synced  func() (bool, error)
	http    *http.Client
	status  map[string]*router.Summary // by site, from its admin API
}

// runRemoteDoctor checks this machine's own limits once, then every site.
func runRemoteDoctor(ctx context.Context, inv *remoteInventory, procSys string, synced func() (bool, error)) []checkResult {
	d := &remoteDoctor{inv: inv, procSys: procSys, synced: synced,
		http:   &http.Client{Timeout: inv.Timeout.Std()},
		status: map[string]*router.Summary{}}
	local := func(r checkResult) checkResult { r.Check = "local " + r.Check; return r }
	out := []checkResult{local(checkSocketBuffer(procSys, "rmem_max")), local(checkSocketBuffer(procSys, "wmem_max"))}
	if synced != nil {
		out = append(out, local(checkClock(synced)))
	}
	// Every admin API first: the peers check needs the names of the
	// routers of the other sites.
	adminLines := map[string][]checkResult{}
	for _, s := range inv.Sites {
		if s.Admin != "" {
			adminLines[s.Name] = d.checkAdmin(ctx, s)
		}
	}
	creds, credErr := loadCreds("probe", credFiles{keystore: inv.Probe.Keystore, identity: inv.Probe.Identity,
		member: inv.Probe.MemberCert, domain: inv.Probe.Domain})
	for _, s := range inv.Sites {
		out = append(out, adminLines[s.Name]...)
		if s.Router != "" {
			if credErr != nil {
				out = append(out, checkResult{Check: s.Name + " tunnel", Status: checkFail, Detail: "no probe identity: " + credErr.Error(),
					Fix: "set probe: in the inventory to a client key with a membership of the domain (gdp cert keygen --kind client --alias ops; gdp cert issue member …)"})
			} else {
				out = append(out, d.checkTunnel(ctx, s, creds)...)
			}
		}
		if len(s.Peers) > 0 && d.status[s.Name] != nil {
			out = append(out, d.checkPeers(ctx, s)...)
		}
		if s.Resolver != "" {
			out = append(out, d.checkResolver(ctx, s))
		}
		for _, m := range s.Metrics {
			out = append(out, d.checkMetrics(ctx, s, m))
		}
	}
	return out
}

// get fetches url into v (JSON) or returns the body; it also returns the
// instant the request was sent and the round trip, for the clock check.
func (d *remoteDoctor) get(ctx context.Context, url string) (body []byte, hdr http.Header, sent time.Time, rtt time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, sent, 0, err
	}
	sent = time.Now()
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, nil, sent, 0, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	rtt = time.Since(sent)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return body, resp.Header, sent, rtt, err
}

// unreachable says what a failed dial means and how to find out more.
func unreachable(site, daemon, key, addr string, err error) checkResult {
	r := checkResult{Status: checkFail}
	r.Detail = fmt.Sprintf("%s %s: %v", daemon, addr, shortErr(err))
	r.Fix = fmt.Sprintf("is %s running at %s? (systemctl status %s; journalctl -u %s) — %s: in its config must be %s and TCP port %s open to this machine",
		daemon, site, unitOf(daemon), unitOf(daemon), key, addr, portOf(addr))
	return r
}

func unitOf(daemon string) string { return "gdp-" + strings.TrimPrefix(daemon, "gdp ") }

// shortErr drops the URL prefix net/http puts before a dial error.
func shortErr(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		var oe *net.OpError
		if errors.As(err, &oe) {
			return oe.Error()
		}
	}
	return err.Error()
}

// checkAdmin reads the router's /v1/status: reachable (its TCP port open),
// its clock, its host's UDP buffer limits.
func (d *remoteDoctor) checkAdmin(ctx context.Context, s remoteSite) []checkResult {
	ar := checkResult{Check: s.Name + " admin"}
	body, _, sent, rtt, err := d.get(ctx, "http://"+s.Admin+"/v1/status")
	var st router.Summary
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	if err != nil {
		r := unreachable(s.Name, "gdp router", "admin", s.Admin, err)
		r.Check = ar.Check
		return []checkResult{r}
	}
	d.status[s.Name] = &st
	ar.Status, ar.Detail = checkOK, fmt.Sprintf("tcp %s open: router %s, %d faces, %d peer routers, %d names", s.Admin, st.Name, st.Faces, st.Peers, st.FIBNames)
	if st.Draining {
		ar.Status, ar.Fix = checkWarn, "the router is draining (stopping): wait for systemd to restart it or start it"
		ar.Detail += ", draining"
	}
	out := []checkResult{ar}
	out = append(out, d.clock(s.Name+" clock", "router", st.Now, 0, sent, rtt))
	br := checkResult{Check: s.Name + " udp buffers"}
	if len(st.UDPBuffers) == 0 {
		br.Status, br.Detail = checkWarn, "the router does not report them (not Linux, or an older gdp)"
		br.Fix = fmt.Sprintf("on %s: gdp doctor", s.Name)
	} else {
		lo := min(st.UDPBuffers["rmem_max"], st.UDPBuffers["wmem_max"])
		fix := fmt.Sprintf("on %s: sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d (and in /etc/sysctl.d/60-gdpnet.conf)", s.Name, rawSocketBuffer, rawSocketBuffer)
		detail := fmt.Sprintf("rmem_max %s, wmem_max %s", mib(st.UDPBuffers["rmem_max"]), mib(st.UDPBuffers["wmem_max"]))
		switch {
		case lo >= rawSocketBuffer:
			br.Status, br.Detail = checkOK, detail
		case lo >= quicSocketBuffer:
			br.Status, br.Detail, br.Fix = checkWarn, detail+fmt.Sprintf(": below the raw socket's %s", mib(rawSocketBuffer)), fix
		default:
			br.Status, br.Detail, br.Fix = checkWarn, detail+fmt.Sprintf(": below the %s quic-go asks for; bursts are dropped in the kernel", mib(quicSocketBuffer)), fix
		}
	}
	return append(out, br)
}

// clock compares a remote timestamp (taken between sent and sent+rtt) with
// ours; res is the timestamp's resolution (1s for an HTTP Date).
func (d *remoteDoctor) clock(check, what string, remote time.Time, res time.Duration, sent time.Time, rtt time.Duration) checkResult {
	r := checkResult{Check: check}
	if remote.IsZero() {
		r.Status, r.Detail = checkWarn, "the "+what+" does not say its time (an older gdp)"
		return r
	}
	off := remote.Sub(sent.Add(rtt / 2))
	unc := rtt/2 + res
	abs := off
	if abs < 0 {
		abs = -abs
	}
	excess := abs - unc
	detail := fmt.Sprintf("%s's clock %+v against this machine's (±%v)", what, off.Round(time.Millisecond), unc.Round(time.Millisecond))
	fix := "run a time daemon on both machines: systemctl enable --now systemd-timesyncd (or chrony); certificates are checked against the clock"
	switch {
	case excess > d.inv.ClockFail.Std():
		r.Status, r.Detail, r.Fix = checkFail, detail+fmt.Sprintf(": more than %v off, fresh certificates look not yet valid or expired", d.inv.ClockFail.Std()), fix
	case excess > d.inv.ClockWarn.Std():
		r.Status, r.Detail, r.Fix = checkWarn, detail, fix
	default:
		r.Status, r.Detail = checkOK, detail
	}
	return r
}

// checkTunnel opens a real tunnel to the router (QUIC handshake, both
// memberships verified) and sends an echo to the router's own name.
func (d *remoteDoctor) checkTunnel(ctx context.Context, s remoteSite, creds *nodeCreds) []checkResult {
	tr := checkResult{Check: s.Name + " tunnel"}
	name := s.RouterName
	if name == "" && d.status[s.Name] != nil {
		name = d.status[s.Name].Name.String()
	}
	if name == "" {
		tr.Status, tr.Detail = checkFail, "the router's name is unknown (its admin API did not answer, and router_name is not set)"
		tr.Fix = "set router_name: for " + s.Name + " in the inventory (gdp cert inspect router.meta prints it)"
		return []checkResult{tr}
	}
	rn, err := pdu.ParseName(name)
	if err != nil {
		tr.Status, tr.Detail = checkFail, err.Error()
		return []checkResult{tr}
	}
	conn, err := net.ListenPacket("udp", ":0")
	if err != nil {
		tr.Status, tr.Detail = checkFail, fmt.Sprintf("local udp socket: %v", err)
		return []checkResult{tr}
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: creds.id, Member: creds.member, Domain: creds.domain, Conn: conn,
		Options: client.Options{RequestTimeout: d.inv.Timeout.Std(), Attempts: 1}})
	if err != nil {
		_ = conn.Close()
		tr.Status, tr.Detail = checkFail, err.Error()
		return []checkResult{tr}
	}
	defer ep.Close()
	cctx, cancel := context.WithTimeout(ctx, d.inv.Timeout.Std())
	defer cancel()
	start := time.Now()
	c, err := ep.Attach(cctx, s.Router, rn)
	if err != nil {
		tr.Status, tr.Detail = checkFail, fmt.Sprintf("QUIC handshake with %s: %v", s.Router, err)
		tr.Fix = fmt.Sprintf("is gdp-router running at %s (systemctl status gdp-router)? UDP port %s must be open to this machine (listen: in its router.yaml); a refused handshake names the certificate at fault (gdp doctor --config on %s)",
			s.Name, portOf(s.Router), s.Name)
		return []checkResult{tr}
	}
	hs := time.Since(start)
	defer c.Close()
	out := []checkResult{}
	if _, err := c.Advertise(cctx, c.Self()); err != nil {
		tr.Status, tr.Detail = checkFail, fmt.Sprintf("handshake with %s in %v, but advertising the probe failed: %v", s.Router, hs.Round(time.Millisecond), err)
		tr.Fix = "see the router's log for 'advertisement refused' and its reason"
		out = append(out, tr)
	} else if rep, err := c.Ping(cctx, rn, 32, d.inv.Timeout.Std()); err != nil {
		tr.Status, tr.Detail = checkFail, fmt.Sprintf("handshake with %s in %v, but no echo from the router: %v", s.Router, hs.Round(time.Millisecond), err)
		tr.Fix = "the router is overloaded or stuck: gdp router status on " + s.Name + "; its log"
		out = append(out, tr)
	} else {
		tr.Status, tr.Detail = checkOK, fmt.Sprintf("udp %s open: QUIC handshake in %v, echo from router %s in %v",
			s.Router, hs.Round(time.Millisecond), rn, rep.RTT.Round(time.Microsecond))
		out = append(out, tr)
	}
	// The membership the router presented, verified by the handshake.
	cr := checkResult{Check: s.Name + " router membership"}
	exp := c.RouterExpiry()
	left := time.Until(exp)
	renew := fmt.Sprintf("the domain operator issues a new one (gdp cert issue member --domain DOMAIN --member router.meta --force --out router.member) and installs it at %s's member_cert: the router reloads it on its own", s.Name)
	switch {
	case exp.IsZero():
		cr.Status, cr.Detail = checkWarn, "the tunnel did not say when the router's membership expires"
	case left < membershipWarnWithin:
		cr.Status, cr.Detail, cr.Fix = checkWarn, fmt.Sprintf("presented in the handshake, valid, expires in %s (%s)", hoursMinutes(left), exp.UTC().Format(time.RFC3339)), renew
	default:
		cr.Status, cr.Detail = checkOK, fmt.Sprintf("presented in the handshake, valid for %s more (until %s)", hoursMinutes(left), exp.UTC().Format(time.RFC3339))
	}
	return append(out, cr)
}

// checkPeers: the site's router has a tunnel to each router it should.
func (d *remoteDoctor) checkPeers(ctx context.Context, s remoteSite) []checkResult {
	body, _, _, _, err := d.get(ctx, "http://"+s.Admin+"/v1/peers")
	var ps []router.PeerInfo
	if err == nil {
		err = json.Unmarshal(body, &ps)
	}
	var out []checkResult
	for _, p := range s.Peers {
		r := checkResult{Check: s.Name + " peer " + p}
		want := ""
		for _, o := range d.inv.Sites {
			if o.Name == p {
				want = o.RouterName
				if want == "" && d.status[p] != nil {
					want = d.status[p].Name.String()
				}
				break
			}
		}
		switch {
		case err != nil:
			r.Status, r.Detail = checkFail, fmt.Sprintf("%s /v1/peers: %v", s.Admin, err)
		case want == "":
			r.Status, r.Detail = checkFail, fmt.Sprintf("the name of %s's router is unknown (its admin API did not answer)", p)
			r.Fix = fmt.Sprintf("see the %s lines; or set router_name: for %s in the inventory", p, p)
		default:
			found := false
			for _, pi := range ps {
				found = found || pi.Name.String() == want
			}
			if found {
				r.Status, r.Detail = checkOK, fmt.Sprintf("%s's router has a tunnel to %s's router %s", s.Name, p, want)
			} else {
				r.Status, r.Detail = checkFail, fmt.Sprintf("%s's router has no tunnel to %s's router %s (%d peer tunnels)", s.Name, p, want, len(ps))
				r.Fix = fmt.Sprintf("check the peers: entry for %s in %s's router.yaml (name and addr), that %s's router is up, and that its UDP port is open to %s; %s's router log says why the dial fails",
					p, s.Name, p, s.Name, s.Name)
			}
		}
		out = append(out, r)
	}
	return out
}

// checkResolver reads a resolver's /status and its clock from the Date
// header.
func (d *remoteDoctor) checkResolver(ctx context.Context, s remoteSite) checkResult {
	r := checkResult{Check: s.Name + " resolver"}
	body, hdr, sent, rtt, err := d.get(ctx, "http://"+s.Resolver+"/status")
	var st resolver.Status
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	if err != nil {
		f := unreachable(s.Name, "gdp resolver", "api", s.Resolver, err)
		f.Check = r.Check
		return f
	}
	r.Status, r.Detail = checkOK, fmt.Sprintf("tcp %s open: mode %s, %d domain peers (%d admitted), %d records published", s.Resolver, st.Mode, st.DomainPeers, st.Admitted, len(st.Published))
	if st.Mode == "dht" && st.DomainPeers == 0 {
		r.Status = checkWarn
		r.Detail += ": alone in the domain's DHT"
		r.Fix = "the routers' resolver.bootstrap must list this node's multiaddr with /p2p/ (gdp resolver --print-addrs), and its resolver.listen UDP port must be open to them"
	}
	if t, err := http.ParseTime(hdr.Get("Date")); err == nil {
		if c := d.clock("", "resolver", t, time.Second, sent, rtt); c.Status != checkOK {
			r.Status, r.Detail, r.Fix = c.Status, r.Detail+"; "+c.Detail, c.Fix
		}
	}
	return r
}

// checkMetrics reads a daemon's /metrics: reachable, and how long its
// membership has left.
func (d *remoteDoctor) checkMetrics(ctx context.Context, s remoteSite, addr string) checkResult {
	r := checkResult{Check: s.Name + " metrics " + addr}
	body, hdr, sent, rtt, err := d.get(ctx, "http://"+addr+"/metrics")
	if err != nil {
		f := unreachable(s.Name, "the daemon", "metrics", addr, err)
		f.Check = r.Check
		f.Fix = fmt.Sprintf("is the daemon whose metrics: is %s running at %s (systemctl status gdp-capsuled)? TCP port %s must be open to this machine", addr, s.Name, portOf(addr))
		return f
	}
	page := string(body)
	left, ok := promValue(page, "gdp_cert_expiry_seconds", `kind="member"`)
	switch {
	case !ok:
		r.Status, r.Detail = checkOK, fmt.Sprintf("tcp %s open (no membership expiry exported)", addr)
	case left <= 0:
		r.Status, r.Detail = checkFail, fmt.Sprintf("tcp %s open; its membership EXPIRED %s ago", addr, hoursMinutes(time.Duration(-left*float64(time.Second))))
		r.Fix = "the domain operator issues a new one (gdp cert issue member … --force --out FILE) and installs it at the daemon's member_cert: it reloads it on its own"
	case time.Duration(left*float64(time.Second)) < membershipWarnWithin:
		r.Status, r.Detail = checkWarn, fmt.Sprintf("tcp %s open; its membership expires in %s", addr, hoursMinutes(time.Duration(left*float64(time.Second))))
		r.Fix = "renew it (gdp cert issue member … --force --out FILE, or gdp cert renew) and install it at the daemon's member_cert: it reloads it on its own"
	default:
		r.Status, r.Detail = checkOK, fmt.Sprintf("tcp %s open; its membership valid for %s more", addr, hoursMinutes(time.Duration(left*float64(time.Second))))
	}
	if t, err := http.ParseTime(hdr.Get("Date")); err == nil {
		if c := d.clock("", "daemon", t, time.Second, sent, rtt); c.Status != checkOK && r.Status == checkOK {
			r.Status, r.Detail, r.Fix = c.Status, r.Detail+"; "+c.Detail, c.Fix
		}
	}
	return r
}

// promValue finds the first series of name in a Prometheus text page whose
// line contains every one of subs.
func promValue(page, name string, subs ...string) (float64, bool) {
	for _, l := range strings.Split(page, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if !ok {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}
