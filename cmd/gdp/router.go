package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/internal/dashboard"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

func init() {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run a gdpnet router, or query a running one (status, routes, peers)",
		Long: `router runs the gdpnet router daemon: it accepts tunnels from endpoints and
peer routers, verifies advertisements, forwards PDUs by name, and serves
an admin API with Prometheus metrics.

The configuration file (YAML) is documented in deploy/router.yaml; every
key is optional. Its resolver: block embeds the resolver: static (in
memory, the default) or a node of the domain's DHT, federated when
configured; the admin API serves it under /v1/resolver/ (status,
lookup). SIGHUP reloads certificates, trusted domains and the domain
policy; SIGTERM drains (withdraws routes) and stops. Under systemd use
Type=notify (deploy/gdp-router.service).`,
		Example: `  gdp router --config /etc/gdp/router.yaml
  gdp router status --admin 127.0.0.1:8019
  systemctl reload gdp-router    # SIGHUP: renewed certificates, trust, policy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRouter(cmd.Context(), cfgPath)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "router configuration file (YAML); none: all defaults")
	addRouterQueries(cmd)
	addCommand(cmd)
}

// loadRouterConfig reads path (if set) over the zero Config.
func loadRouterConfig(path string) (router.Config, error) {
	var cfg router.Config
	if path != "" {
		if err := config.Load(path, &cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if cfg.Keystore == "" {
		cfg.Keystore = defaultKeystoreDir()
	}
	if cfg.StateDir == "" {
		// beside the keystore: /var/lib/gdp/router by default, a test's
		// own directory when its keystore is there
		cfg.StateDir = filepath.Join(filepath.Dir(cfg.Keystore), "router")
	}
	cfg = cfg.WithDefaults()
	return cfg, validateRouterConfig(cfg)
}

// resolveAddrs turns each host name in addrs (a Kubernetes Service, as gdp
// sim export writes) into the ip:port a location record carries, once at
// start; an ip:port stays as it is. Session 20: before, a host name passed
// the config check and then every publish refused it ("want canonical
// ip:port"), so no other router could resolve or dial this one.
func resolveAddrs(ctx context.Context, addrs []string) ([]string, error) {
	var out []string
	for _, a := range addrs {
		if _, err := netip.ParseAddrPort(a); err == nil {
			out = append(out, a)
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("addrs %q: %w", a, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("addrs %q: port %q: %w", a, port, err)
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
		cancel()
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("addrs %q: cannot resolve %s: %v; addrs are where other routers dial this one: an ip:port, or a host name that resolves where the router starts", a, host, err)
		}
		for _, ip := range ips {
			if s := netip.AddrPortFrom(ip.Unmap(), uint16(p)).String(); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// loadRouterCreds loads the router's identity and trust from the files cfg
// names.
func loadRouterCreds(cfg router.Config) (*nodeCreds, error) {
	return loadCreds("router", credFiles{keystore: cfg.Keystore, identity: cfg.Identity, member: cfg.MemberCert,
		domain: cfg.Domain, trusted: cfg.TrustedDomains, skew: cfg.ClockSkew.Std()})
}

func runRouter(ctx context.Context, cfgPath string) (err error) {
	cfg, err := loadRouterConfig(cfgPath)
	if err != nil {
		return err
	}
	log, stopped, err := daemonLogger(cfg.Log, "router")
	if err != nil {
		return err
	}
	defer stopped(&err)
	creds, err := loadRouterCreds(cfg)
	if err != nil {
		return err
	}
	conn, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	var raw net.PacketConn
	if cfg.RawListen != "" {
		if raw, err = net.ListenPacket("udp", cfg.RawListen); err != nil {
			_ = conn.Close()
			return fmt.Errorf("raw listen %s: %w", cfg.RawListen, err)
		}
	}
	admin := cfg.Admin
	var adminLn net.Listener
	if admin != "off" {
		if adminLn, err = listenHTTP(admin, "admin API"); err != nil {
			_ = conn.Close()
			if raw != nil {
				_ = raw.Close()
			}
			return err
		}
		// closed here unless served (then Shutdown closes it)
		defer func() {
			if adminLn != nil {
				_ = adminLn.Close()
			}
		}()
	}
	reg := newDaemonRegistry()
	watch := newCertWatch(log, reg)
	watch.set("member", creds.member, cfg.MemberCert)
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	go watch.run(wctx, certCheckEvery)
	if err := checkDHTListen(cfg.Resolver.Config); err != nil {
		_ = conn.Close()
		if raw != nil {
			_ = raw.Close()
		}
		return err
	}
	res, err := openResolver(ctx, cfg, creds, log, reg)
	if err != nil {
		_ = conn.Close()
		if raw != nil {
			_ = raw.Close()
		}
		return err
	}
	// Deferred before the node: closed after it (the node's drain and
	// close still withdraw through it).
	defer func() {
		if err := res.Close(); err != nil {
			log.Warn("closing the resolver", zap.Error(err))
		}
	}()
	// The node runs with addrs resolved; cfg keeps the file's (a reload
	// compares the file with it).
	ncfg := cfg
	if ncfg.Addrs, err = resolveAddrs(ctx, cfg.Addrs); err != nil {
		_ = conn.Close()
		if raw != nil {
			_ = raw.Close()
		}
		return err
	}
	node, err := router.StartNode(ncfg, router.Deps{
		Identity: creds.id, Member: creds.member, Domain: creds.domain, Verifier: creds.verifier,
		Resolver: res, Logger: log, Registry: reg, Tick: cfg.Tick.Std(),
	}, conn, raw)
	if err != nil {
		return err
	}
	defer node.Close()
	// Signals are taken from here on, before "router up" and READY: a
	// SIGHUP sent as soon as either is seen (systemctl reload right after
	// start) was the default action before, which ends the process.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	log.Info("router up", logging.Name(creds.id.Name), logging.Addr(node.Addr()))

	var srv *httpService
	if adminLn != nil {
		srv, adminLn = serveHTTPOn(adminLn, "admin API", routerAdminHandler(node.Router, res, reg), log), nil
	}
	_ = sdNotify("READY=1\nSTATUS=forwarding")

	// A replaced certificate file reloads like SIGHUP (OPERATIONS.md, rotating certificates).
	files := newCertFileWatch(wctx, log, sig)
	files.set(append([]string{cfg.MemberCert, cfg.Domain}, cfg.TrustedDomains...)...)
	for {
		select {
		case <-ctx.Done():
		case s := <-sig:
			if s == syscall.SIGHUP {
				_ = sdNotify("RELOADING=1")
				if err := inConfig(cfgPath, reloadRouter(cfgPath, node, res, watch, files, log)); err != nil {
					log.Error("reload failed; keeping the running configuration", zap.Error(err), reloadFix("router", cfgPath))
				} else {
					log.Info("reloaded certificates, trusted domains and policy")
					if nc, err := loadRouterConfig(cfgPath); err == nil {
						warnRestartOnly(log, "gdp-router", cfg, nc, routerReloaded...)
					}
				}
				_ = sdNotify("READY=1")
				continue
			}
		}
		break
	}
	_ = sdNotify("STOPPING=1\nSTATUS=draining")
	drain := cfg.DrainTimeout.Std()
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	log.Info("draining", zap.Duration("timeout", drain))
	node.Router.Drain(dctx)
	srv.Shutdown(dctx)
	return nil
}

// routerReloaded are the settings a router's reload puts in force; a
// change to any other is logged as waiting for a restart.
var routerReloaded = []string{"member_cert", "domain", "trusted_domains", "allow_domains", "clock_skew"}

// reloadRouter re-reads the config file and the certificate files and
// swaps them in (SIGHUP). Fields that need a restart are reported.
func reloadRouter(cfgPath string, node *router.Node, res *resolver.Service, watch *certWatch, files *certFileWatch, log *zap.Logger) error {
	cfg, err := loadRouterConfig(cfgPath)
	if err != nil {
		return err
	}
	creds, err := loadRouterCreds(cfg)
	if err != nil {
		return err
	}
	// The embedded resolver's part is checked first, so that a reload it
	// would refuse (its DHT nodes keep the domain they started with)
	// changes nothing: all or nothing.
	if err := res.CheckReload(creds.member, creds.verifier); err != nil {
		return fmt.Errorf("resolver: %w", err)
	}
	// The router and its tunnel's identity: both checked before either
	// changes (Node.Reload).
	if err := node.Reload(creds.id, creds.member, creds.domain, creds.verifier, cfg.AllowDomains); err != nil {
		return err
	}
	// The embedded resolver: the renewed membership for its DHT nodes and
	// the same trusted domains (the router's checks passed with both).
	if err := res.Reload(creds.member, creds.verifier); err != nil {
		return fmt.Errorf("resolver: %w", err)
	}
	watch.set("member", creds.member, cfg.MemberCert)
	files.set(append([]string{cfg.MemberCert, cfg.Domain}, cfg.TrustedDomains...)...)
	log.Info("listen addresses, limits, peers and the rest of the resolver block change on restart only")
	return nil
}

// routerAdminHandler is the router's admin API with the embedded
// resolver's read-only API beside it: GET /v1/resolver/status and
// /v1/resolver/lookup/NAME (so `gdp lookup --api http://ADMIN/v1/resolver`
// asks the router's own resolver), and the web dashboard (GET /,
// /dashboard/, /api/status) over the admin API and the metrics in g.
func routerAdminHandler(r *router.Router, res *resolver.Service, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	dashboard.Mount(mux, routerDashboard(r, res, g))
	api := http.StripPrefix("/v1/resolver", res.Handler())
	mux.Handle("GET /v1/resolver/status", api)
	mux.Handle("GET /v1/resolver/lookup/{name}", api)
	mux.Handle("/", r.AdminHandler())
	return mux
}

// openResolver opens the resolver the config's resolver: block asks for
// (resolver.Open: a cache in front of the static resolver or of the
// domain's DHT, federated when configured), with the router's identity as
// the DHT node's. The caller closes it after the router.
func openResolver(ctx context.Context, cfg router.Config, creds *nodeCreds, log *zap.Logger, reg prometheus.Registerer) (*resolver.Service, error) {
	svc, err := resolver.Open(ctx, cfg.Resolver.Config, creds.nodeCredentials(), log.Named("resolver"), reg)
	if err != nil {
		return nil, fmt.Errorf("open resolver: %w", err)
	}
	st := svc.Status()
	log.Info("resolver up", zap.String("mode", st.Mode), zap.Bool("border", st.Border),
		zap.Strings("addrs", st.Addrs), zap.Strings("global_addrs", st.GlobalAddrs))
	return svc, nil
}
