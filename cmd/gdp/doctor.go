package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/certs"
)

// `gdp doctor`: the checks an operator runs on a node before starting a
// daemon. Each check prints one line, ok/warn/fail with what it saw and how
// to fix it; a failed check makes the command exit 1, a warning does not
// (the daemon would run, but worse or not for long).

// Check statuses.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
)

// errChecksFailed is returned (exit status 1) when any check failed.
var errChecksFailed = errors.New("checks failed")

// Socket buffer sizes the tunnel asks for (docs/OPERATIONS.md §2).
const (
	quicSocketBuffer = 7 << 20 // quic-go, on the QUIC socket
	rawSocketBuffer  = 8 << 20 // tunnel.Config.SocketBuffer default, on the raw socket
)

// membershipWarnWithin: a membership expiring sooner than this is a warning.
const membershipWarnWithin = 24 * time.Hour

// checkResult is one line of the report.
type checkResult struct {
	Check  string `json:"check"`
	Status string `json:"status"` // ok, warn or fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctorOptions are the command's inputs; procSys and now let tests stand in
// for the machine.
type doctorOptions struct {
	keystore string // "" : the config's, else $GDP_KEYSTORE, else the daemons' default
	config   string
	role     string
	remote   string // --remote: an inventory of sites to check over the network
	running  bool   // --running: the daemon runs with this config; its ports are its own
	procSys  string // normally /proc/sys
	now      func() time.Time
	synced   func() (bool, error)            // normally clockSynced
	disk     func(dir string) (int64, error) // normally diskSize
	free     func(dir string) (int64, error) // normally diskFree
}

func init() {
	o := doctorOptions{procSys: "/proc/sys", now: time.Now, synced: clockSynced, disk: diskSize, free: diskFree}
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "doctor [--keystore DIR] [--config FILE --role router|resolver|capsuled|gateway|handoffd | --remote FILE] [--json]",
		Short: "Check this node before starting a daemon: socket buffers, UDP offload, clock, keys, config, ports, membership",
		Long: `doctor runs the checks an operator wants before starting gdp router,
gdp resolver, gdp capsuled, gdp gateway or gdp handoffd, and prints one
line per check: ok, warn or fail, what it found, and the command that
fixes it.

  net.core.rmem_max, net.core.wmem_max
        Linux caps every socket buffer at these. quic-go asks for 7 MiB on
        the QUIC socket and the tunnel for 8 MiB on the raw socket; below
        that, bursts are dropped in the kernel (docs/OPERATIONS.md §2).
  udp offload
        whether the kernel offers UDP GSO and GRO, which the raw path uses
        to batch frames (probed on a loopback socket).
  keystore, key ALIAS
        the keystore directory (--keystore, else the config's keystore,
        else $GDP_KEYSTORE, else /var/lib/gdp/keys) and every key in it,
        loaded as the daemons load them: a key file readable by group or
        others is refused.
  clock
        whether the kernel says NTP keeps the clock synchronised:
        certificate lifetimes are checked against it.
  config, port KEY, identity, membership, domain, trusted domain
        with --config FILE --role ROLE: the file loaded by the daemon's own
        loader and validation (unknown keys, bad values, a log level or
        port the daemon refuses, a bootstrap address without /p2p/ are
        errors), each address it listens on bound once (in use: fail),
        then the files it
        names: the identity in the keystore, the membership certificate
        verified against the domain, and how long it stays valid (a
        warning when less than 24h is left).
  share KEY
        with --config: a per-member or per-domain share above the total it
        is part of (placement.max_per_requester above max_placements,
        placement.max_bytes_per_requester above the disk dir is on,
        face.max_per_identity above face.max_per_domain, ...) never bites:
        a warning naming both. -1 (no bound) is not checked.

With --remote FILE it checks a live deployment from this machine instead:
FILE lists each site's router (tunnel address, admin API), resolver API,
other daemons' metrics addresses and the peers each router should have,
and a probe identity (a client of the domain). Per site:

  SITE admin, SITE clock, SITE udp buffers
        the router's admin API answers (TCP port open); its clock against
        this machine's, within the round trip; its host's
        net.core.rmem_max/wmem_max.
  SITE tunnel, SITE router membership
        a real QUIC tunnel to the router with the probe identity (both
        memberships verified, UDP port open) and an echo to the router;
        the membership it presented and how long it has left.
  SITE peer OTHER
        the router holds a tunnel to OTHER's router.
  SITE resolver, SITE metrics ADDR
        a resolver's API (mode, DHT neighbours) and a daemon's /metrics
        (its membership's remaining life), with their clocks from the
        HTTP Date.

Exit status: 0 when nothing failed (warnings allowed), 1 otherwise.`,
		Example: `  gdp doctor
  gdp doctor --keystore /var/lib/gdp/keys
  gdp doctor --config /etc/gdp/router.yaml --role router
  gdp doctor --config /etc/gdp/capsuled.yaml --role capsuled --json
  gdp doctor --remote sites.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.remote != "" {
				if o.config != "" || o.role != "" {
					return fmt.Errorf("--remote checks other machines; run --config on the machine the config is for")
				}
				inv, err := loadInventory(o.remote)
				if err != nil {
					return err
				}
				results := runRemoteDoctor(cmd.Context(), inv, o.procSys, o.synced)
				if err := printChecks(cmd.OutOrStdout(), results, jsonOut); err != nil {
					return err
				}
				if n := countStatus(results, checkFail); n > 0 {
					return fmt.Errorf("%d of %d %w", n, len(results), errChecksFailed)
				}
				return nil
			}
			if o.config != "" && o.role == "" {
				return fmt.Errorf("--config needs --role " + doctorRoles)
			}
			if o.role != "" && o.config == "" {
				return fmt.Errorf("--role needs --config")
			}
			if !cmd.Flags().Changed("keystore") {
				o.keystore = ""
			}
			results := runDoctor(o)
			if err := printChecks(cmd.OutOrStdout(), results, jsonOut); err != nil {
				return err
			}
			if n := countStatus(results, checkFail); n > 0 {
				return fmt.Errorf("%d of %d %w", n, len(results), errChecksFailed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.keystore, "keystore", "", "keystore directory to check (default: the config's keystore, else $GDP_KEYSTORE, else /var/lib/gdp/keys)")
	cmd.Flags().StringVarP(&o.config, "config", "c", "", "a daemon's configuration file (YAML) to check, with --role")
	cmd.Flags().StringVar(&o.role, "role", "", "which daemon --config is for: "+doctorRoles)
	cmd.Flags().BoolVar(&o.running, "running", false, "the daemon already runs with --config (checking an edit before a reload): its listen ports are not bound, they are its own")
	cmd.Flags().StringVar(&o.remote, "remote", "", "check a live deployment from here: the sites and addresses in this inventory file (YAML; deploy/examples/three-sites/sites.yaml)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print a JSON array of {check, status, detail, fix}")
	addCommand(cmd)
}

// runDoctor runs every check that applies.
func runDoctor(o doctorOptions) []checkResult {
	if o.now == nil {
		o.now = time.Now
	}
	var out []checkResult
	out = append(out, checkSocketBuffer(o.procSys, "rmem_max"), checkSocketBuffer(o.procSys, "wmem_max"))
	out = append(out, checkOffload())
	if o.synced != nil {
		out = append(out, checkClock(o.synced))
	}
	var files *credFiles
	if o.config != "" {
		var r checkResult
		var ports []listenAddr
		r, files, ports = checkConfig(o.config, o.role)
		out = append(out, r)
		if r.Status == checkOK {
			out = append(out, checkShares(o.config, o.role, o.disk)...)
			if o.role == "capsuled" && o.free != nil {
				out = append(out, checkStoreFree(o.config, o.free)...)
			}
		}
		for _, p := range ports {
			if p.addr != "" && p.addr != "off" {
				if o.running {
					// The daemon being checked before a reload holds its
					// own ports: binding them would fail for no fault.
					out = append(out, checkResult{Check: "port " + p.key, Status: checkOK,
						Detail: fmt.Sprintf("%s %s not checked (--running: the daemon holds it)", p.network, p.addr)})
					continue
				}
				out = append(out, checkPortFree(p))
			}
		}
	}
	ks := o.keystore
	if ks == "" && files != nil {
		ks = files.keystore
	}
	if ks == "" {
		ks = os.Getenv("GDP_KEYSTORE")
	}
	if ks == "" {
		ks = "/var/lib/gdp/keys"
	}
	out = append(out, checkKeystore(ks)...)
	if files != nil {
		files.keystore = ks
		out = append(out, checkCredFiles(*files, o.role, o.now())...)
	}
	return out
}

// checkSocketBuffer reads net.core.NAME from procSys.
func checkSocketBuffer(procSys, name string) checkResult {
	key := "net.core." + name
	r := checkResult{Check: key}
	fix := fmt.Sprintf("sysctl -w %s=%d && echo %s=%d >> /etc/sysctl.d/60-gdpnet.conf", key, rawSocketBuffer, key, rawSocketBuffer)
	b, err := os.ReadFile(filepath.Join(procSys, "net", "core", name))
	if err != nil {
		r.Status, r.Detail = checkWarn, fmt.Sprintf("cannot read it (%v); the tunnel asks for %s and the OS may give less", err, mib(rawSocketBuffer))
		return r
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		r.Status, r.Detail = checkWarn, fmt.Sprintf("unreadable value %q", strings.TrimSpace(string(b)))
		return r
	}
	switch {
	case v >= rawSocketBuffer:
		r.Status, r.Detail = checkOK, fmt.Sprintf("%d (%s): room for quic-go's %s and the raw socket's %s", v, mib(v), mib(quicSocketBuffer), mib(rawSocketBuffer))
	case v >= quicSocketBuffer:
		r.Status, r.Detail, r.Fix = checkWarn, fmt.Sprintf("%d (%s): enough for quic-go's %s, below the raw socket's %s", v, mib(v), mib(quicSocketBuffer), mib(rawSocketBuffer)), fix
	default:
		r.Status, r.Detail, r.Fix = checkWarn, fmt.Sprintf("%d (%s): below the %s quic-go asks for; under load datagrams are dropped in the kernel", v, mib(v), mib(quicSocketBuffer)), fix
	}
	return r
}

func mib(v int64) string {
	if v >= 1<<20 && v%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", v>>20)
	}
	if v >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", v>>10)
}

// checkOffload probes UDP GSO/GRO on a loopback socket.
func checkOffload() checkResult {
	r := checkResult{Check: "udp offload"}
	gso, gro, err := probeOffload()
	switch {
	case err != nil:
		r.Status, r.Detail = checkWarn, fmt.Sprintf("cannot probe: %v; the raw path will send frames singly", err)
	case gso && gro:
		r.Status, r.Detail = checkOK, "UDP GSO and GRO available: the raw path batches frames"
	default:
		r.Status, r.Detail = checkWarn, fmt.Sprintf("GSO %s, GRO %s: the raw path sends or receives frames singly (slower, still correct)", yesNo(gso), yesNo(gro))
		r.Fix = "a Linux kernel with UDP_SEGMENT (4.18+) and UDP_GRO (5.0+)"
	}
	return r
}

func yesNo(b bool) string {
	if b {
		return "available"
	}
	return "unavailable"
}

// checkKeystore checks the directory and loads every key in it as the
// daemons do, without creating anything.
func checkKeystore(dir string) []checkResult {
	r := checkResult{Check: "keystore"}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.Status, r.Detail, r.Fix = checkFail, fmt.Sprintf("%s does not exist", dir), fmt.Sprintf("gdp cert --keystore %s keygen --kind router|server|client|resolver --alias ALIAS", dir)
		return []checkResult{r}
	case err != nil:
		r.Status, r.Detail = checkFail, err.Error()
		return []checkResult{r}
	case !st.IsDir():
		r.Status, r.Detail = checkFail, fmt.Sprintf("%s is not a directory", dir)
		return []checkResult{r}
	}
	ks, err := certs.OpenKeystore(dir)
	if err != nil {
		r.Status, r.Detail = checkFail, err.Error()
		return []checkResult{r}
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		r.Status, r.Detail = checkFail, fmt.Sprintf("%s: %v", dir, err)
		return []checkResult{r}
	}
	var aliases []string
	for _, de := range des {
		if a, ok := strings.CutSuffix(de.Name(), ".key"); ok && certs.ValidAlias(a) == nil {
			aliases = append(aliases, a)
		}
	}
	sort.Strings(aliases)
	r.Status, r.Detail = checkOK, fmt.Sprintf("%s, %d keys", dir, len(aliases))
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		r.Status, r.Detail, r.Fix = checkWarn, fmt.Sprintf("%s is mode %04o: others can list the keys", dir, perm), "chmod 700 "+dir
	} else if len(aliases) == 0 {
		r.Status, r.Fix = checkWarn, fmt.Sprintf("gdp cert --keystore %s keygen --kind KIND --alias ALIAS", dir)
	}
	out := []checkResult{r}
	for _, a := range aliases {
		out = append(out, checkKey(ks, a))
	}
	return out
}

// checkKey loads one key through certs.Keystore.Load, which refuses a key
// file group or others may read.
func checkKey(ks *certs.Keystore, alias string) checkResult {
	r := checkResult{Check: "key " + alias}
	kp := filepath.Join(ks.Dir(), alias+".key")
	id, err := ks.Load(alias)
	switch {
	case errors.Is(err, certs.ErrKeyPermissions):
		mode := ""
		if st, err := os.Stat(kp); err == nil {
			mode = fmt.Sprintf(" is mode %04o,", st.Mode().Perm())
		}
		r.Status, r.Detail, r.Fix = checkFail, fmt.Sprintf("%s%s readable by group or others: the daemons refuse it", kp, mode), "chmod 600 "+kp
	case err != nil:
		r.Status, r.Detail = checkFail, err.Error()
	default:
		r.Status, r.Detail = checkOK, fmt.Sprintf("%s %s loads (mode 0600 or stricter)", id.Meta.Kind, id.Name)
	}
	return r
}

// checkConfig loads path through the role's own loader and returns the
// credential files it names, with the daemon's defaults (nil if the file
// does not load).
func checkConfig(path, role string) (checkResult, *credFiles, []listenAddr) {
	r := checkResult{Check: "config"}
	var f credFiles
	var ports []listenAddr
	var err error
	switch role {
	case "router":
		cfg, e := loadRouterConfig(path)
		err = e
		f = credFiles{keystore: cfg.Keystore, identity: cfg.Identity, member: cfg.MemberCert, domain: cfg.Domain, trusted: cfg.TrustedDomains}
		ports = []listenAddr{{"listen", "udp", cfg.Listen}, {"raw_listen", "udp", cfg.RawListen}, {"admin", "tcp", cfg.Admin}}
		ports = append(ports, multiaddrPorts("resolver.listen", cfg.Resolver.Listen)...)
	case "resolver":
		cfg, e := loadResolverConfig(path)
		err = e
		ports = []listenAddr{{"api", "tcp", cmpOr(cfg.API, "127.0.0.1:8021")}}
		listen := cfg.Resolver.Listen
		if len(listen) == 0 {
			listen = []string{"/ip4/127.0.0.1/udp/8011/quic-v1"}
		}
		ports = append(ports, multiaddrPorts("resolver.listen", listen)...)
		// the defaults resolverCreds applies
		f = credFiles{keystore: cmpOr(cfg.Keystore, defaultKeystoreDir()), identity: cmpOr(cfg.Identity, "resolver"),
			member: cmpOr(cfg.MemberCert, "/etc/gdp/resolver.member"), domain: cmpOr(cfg.Domain, "/etc/gdp/domain.meta"), trusted: cfg.TrustedDomains}
	case "capsuled":
		cfg, e := loadCapsuledConfig(path)
		err = e
		f = cfg.files()
		ports = []listenAddr{{"metrics", "tcp", cfg.Metrics}}
	case "gateway": // Session 18: an operator's first deployment reached for it
		cfg, e := loadGatewayConfig(path)
		err = e
		f = cfg.files()
		ports = []listenAddr{{"metrics", "tcp", cfg.Metrics}, {"tcp_listen", "tcp", cfg.TCPListen}}
	case "handoffd":
		cfg, e := loadHandoffdConfig(path)
		err = e
		f = cfg.files()
		ports = []listenAddr{{"metrics", "tcp", cfg.Metrics}, {"listen_tcp", "tcp", cfg.ListenTCP}}
	default:
		r.Status, r.Detail = checkFail, fmt.Sprintf("--role %q: want %s", role, doctorRoles)
		return r, nil, nil
	}
	if err != nil {
		r.Status, r.Detail, r.Fix = checkFail, err.Error(), "correct the file; gdp "+role+" refuses to start with it"
		return r, nil, nil
	}
	r.Status, r.Detail = checkOK, fmt.Sprintf("%s loads as a %s config (the daemon's own validation)", path, role)
	return r, &f, ports
}

// checkStoreFree compares the free space of the capsule server's dir
// with its min_free_bytes (Session 18: a store on a small file system
// refused its appends from the first record with nothing before it to
// say so): below it the server refuses every append and new capsule; at
// less than four times it, a warning.
func checkStoreFree(path string, free func(string) (int64, error)) []checkResult {
	cfg, err := loadCapsuledConfig(path)
	if err != nil || cfg.MinFreeBytes < 0 {
		return nil
	}
	sc, err := cfg.server()
	if err != nil {
		return nil
	}
	c, err := sc.WithDefaults()
	if err != nil || c.MinFreeBytes < 0 {
		return nil
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = store.DefaultMinFreeBytes
	}
	n, err := free(c.Dir)
	if err != nil {
		return nil
	}
	r := checkResult{Check: "disk dir"}
	detail := fmt.Sprintf("%s: %d bytes free, min_free_bytes %d", c.Dir, n, c.MinFreeBytes)
	switch {
	case n < c.MinFreeBytes:
		r.Status, r.Detail = checkFail, detail+": the server would refuse every append and new capsule (503, disk nearly full)"
		r.Fix = "free space on that file system, or give dir a larger one (lower min_free_bytes only knowing that pebble stops the process on a full disk)"
	case n < 4*c.MinFreeBytes:
		r.Status, r.Detail = checkWarn, detail+": less than four times the reserve; appends are refused once it is reached"
		r.Fix = "give dir a larger file system, or free space on it"
	default:
		r.Status, r.Detail = checkOK, detail
	}
	return []checkResult{r}
}

// listenAddr is an address a daemon will listen on.
type listenAddr struct{ key, network, addr string }

// multiaddrPorts turns libp2p listen multiaddrs into the sockets they bind
// (/ip4/A/udp/P/quic-v1 is UDP A:P, /ip4/A/tcp/P is TCP).
func multiaddrPorts(key string, addrs []string) []listenAddr {
	var out []listenAddr
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue
		}
		host := ""
		for _, p := range []int{ma.P_IP4, ma.P_IP6} {
			if v, err := m.ValueForProtocol(p); err == nil {
				host = v
			}
		}
		for _, nw := range []struct {
			code int
			name string
		}{{ma.P_UDP, "udp"}, {ma.P_TCP, "tcp"}} {
			if port, err := m.ValueForProtocol(nw.code); err == nil && host != "" {
				out = append(out, listenAddr{key, nw.name, net.JoinHostPort(host, port)})
			}
		}
	}
	return out
}

// checkPortFree binds a daemon's listen address and lets it go again: an
// address in use (the daemon already running, or another program) fails.
func checkPortFree(l listenAddr) checkResult {
	r := checkResult{Check: "port " + l.key}
	if l.addr == "" || l.addr == "off" {
		r.Status, r.Detail = checkOK, "off"
		return r
	}
	var err error
	if l.network == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", l.addr); err == nil {
			_ = c.Close()
		}
	} else {
		var ln net.Listener
		if ln, err = net.Listen("tcp", l.addr); err == nil {
			_ = ln.Close()
		}
	}
	if err != nil {
		r.Status, r.Detail = checkFail, fmt.Sprintf("%s %s: %v", l.network, l.addr, err)
		r.Fix = fmt.Sprintf("stop what holds it (ss -lpn | grep %s) or choose another %s", portOf(l.addr), l.key)
		return r
	}
	r.Status, r.Detail = checkOK, fmt.Sprintf("%s %s is free", l.network, l.addr)
	return r
}

func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return ":" + p
	}
	return addr
}

// checkClock: certificates are checked against the clock, so a clock no
// time daemon keeps in sync drifts into refusing (or accepting) the wrong
// certificates.
func checkClock(synced func() (bool, error)) checkResult {
	r := checkResult{Check: "clock"}
	ok, err := synced()
	switch {
	case err != nil:
		r.Status, r.Detail = checkWarn, fmt.Sprintf("cannot tell whether the clock is synchronised: %v", err)
	case !ok:
		r.Status, r.Detail = checkWarn, "the kernel says the clock is not synchronised (STA_UNSYNC): certificate lifetimes and advertisement timestamps are checked against it"
		r.Fix = "run a time daemon: systemctl enable --now systemd-timesyncd (or chrony)"
	default:
		r.Status, r.Detail = checkOK, "synchronised (NTP)"
	}
	return r
}

// doctorRoles are the daemons --role names.
const doctorRoles = "router, resolver, capsuled, gateway or handoffd"

// roleKind is the key kind a daemon's identity has.
func roleKind(role string) string {
	switch role {
	case "capsuled":
		return "server"
	case "gateway":
		return "client"
	case "handoffd":
		return "agent"
	}
	return role
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// checkCredFiles checks the identity, membership and domain files a config
// names, and the membership's remaining lifetime at now.
func checkCredFiles(f credFiles, role string, now time.Time) []checkResult {
	var out []checkResult
	idr := checkResult{Check: "identity"}
	var id *certs.Identity
	if _, err := os.Stat(f.keystore); err != nil {
		idr.Status, idr.Detail = checkFail, fmt.Sprintf("keystore: %v", err) // OpenKeystore would create it
	} else if ks, err := certs.OpenKeystore(f.keystore); err != nil {
		idr.Status, idr.Detail = checkFail, err.Error()
	} else if id, err = ks.Load(f.identity); err != nil {
		idr.Status, idr.Detail = checkFail, fmt.Sprintf("%s identity %q: %v", role, f.identity, err)
		if errors.Is(err, certs.ErrNotFound) {
			idr.Fix = fmt.Sprintf("gdp cert --keystore %s keygen --kind %s --alias %s", f.keystore, roleKind(role), f.identity)
		}
	} else {
		idr.Status, idr.Detail = checkOK, fmt.Sprintf("%q in %s: %s %s", f.identity, f.keystore, id.Meta.Kind, id.Name)
	}
	out = append(out, idr)

	dr := checkResult{Check: "domain"}
	domain, v, err := trustedVerifier(f.domain, f.trusted)
	if err != nil {
		dr.Status, dr.Detail = checkFail, err.Error()
		dr.Fix = "copy the domain's metadata file from its operator (gdp cert new-domain writes it)"
	} else {
		dr.Status, dr.Detail = checkOK, fmt.Sprintf("%s: %s, trusting %d domain(s)", f.domain, domain.Name(), 1+len(f.trusted))
	}
	out = append(out, dr)

	mr := checkResult{Check: "membership"}
	renew := fmt.Sprintf("the domain operator runs: gdp cert issue member --domain DOMAIN --member %s.meta --out %s", f.identity, f.member)
	member, err := certs.ReadCertFile(f.member)
	switch {
	case err != nil:
		mr.Status, mr.Detail, mr.Fix = checkFail, fmt.Sprintf("%s: %v", f.member, err), renew
	case id == nil || v == nil:
		// cannot verify without the identity and the domain; still say
		// how long the certificate itself runs
		mr.Status, mr.Detail = checkFail, fmt.Sprintf("%s not verified (identity or domain missing above); %s", f.member, lifetime(member.NotBefore, member.NotAfter, now))
	default:
		v.Now = func() time.Time { return now }
		_, notAfter, err := v.VerifyMember(id.Meta, member, domain)
		left := notAfter.Sub(now)
		switch {
		case err != nil:
			mr.Status, mr.Detail, mr.Fix = checkFail, fmt.Sprintf("%s: %v", f.member, err), renew
		case left < membershipWarnWithin:
			mr.Status, mr.Detail, mr.Fix = checkWarn, fmt.Sprintf("%s valid, but expires in %s (%s)", f.member, hoursMinutes(left), notAfter.UTC().Format(time.RFC3339)), renew+" (a running daemon reloads the replaced file on its own)"
		default:
			mr.Status, mr.Detail = checkOK, fmt.Sprintf("%s valid for %s more (until %s)", f.member, hoursMinutes(left), notAfter.UTC().Format(time.RFC3339))
		}
	}
	return append(out, mr)
}

// hoursMinutes prints d as "71h59m", rounded down: never more time than
// there is.
func hoursMinutes(d time.Duration) string {
	m := int64(d / time.Minute)
	return fmt.Sprintf("%dh%02dm", m/60, m%60)
}

func lifetime(nb, na, now time.Time) string {
	switch {
	case now.Before(nb):
		return "not valid before " + nb.UTC().Format(time.RFC3339)
	case !now.Before(na):
		return "expired at " + na.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("runs until %s", na.UTC().Format(time.RFC3339))
}

func countStatus(rs []checkResult, status string) int {
	n := 0
	for _, r := range rs {
		if r.Status == status {
			n++
		}
	}
	return n
}

// printChecks writes one line per check ("STATUS  CHECK: detail — fix:
// ...") and a summary, or a JSON array.
func printChecks(w io.Writer, rs []checkResult, jsonOut bool) error {
	if jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	for _, r := range rs {
		line := fmt.Sprintf("%-4s  %s: %s", r.Status, r.Check, r.Detail)
		if r.Fix != "" {
			line += " — fix: " + r.Fix
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d ok, %d warn, %d fail\n", countStatus(rs, checkOK), countStatus(rs, checkWarn), countStatus(rs, checkFail))
	return err
}
