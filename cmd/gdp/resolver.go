package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/dashboard"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/resolver"
)

func init() {
	var cfgPath string
	var printAddrs bool
	cmd := &cobra.Command{
		Use:   "resolver",
		Short: "Run a gdpnet resolver node (a domain DHT node, or a border that also joins the global DHT)",
		Long: `resolver runs a resolver node: a server of its trust domain's DHT
(go-libp2p-kad-dht under the private prefix /gdp/d/<domain>), which stores
location records only when their whole certificate chain verifies, and
admits only peers that show a membership certificate of the domain. With
a "global" block it is also a border node: it joins the federation's
global DHT and announces its domain's names there ("name C is in domain D
via border B"), and answers other domains' names for its domain's nodes.

The configuration file is documented in deploy/resolver.yaml. The HTTP API
(default 127.0.0.1:8021) serves /lookup/NAME, /status and /metrics; use
"gdp lookup NAME" to query it and verify the answer's chain. Routers embed
the same resolver through their own "resolver:" block.

SIGHUP re-reads the configuration file and reloads the node's membership
certificate (a renewed one is shown to peers from then on) and its
trusted domains (domain and trusted_domains: the membership gate and the
record checks use them at once; peers of a domain no longer trusted are
disconnected). A configuration that does not load is refused and the
running one stays. Listen addresses, bootstrap, the API address and the
rest of the resolver block change on restart only. SIGTERM stops it.`,
		Example: `  gdp resolver --config /etc/gdp/resolver.yaml
  gdp resolver --config /etc/gdp/resolver.yaml --print-addrs
  gdp lookup NAME --api http://127.0.0.1:8021`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runResolver(cmd.Context(), cfgPath, printAddrs)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "resolver configuration file (YAML)")
	cmd.Flags().BoolVar(&printAddrs, "print-addrs", false, "print the node's DHT multiaddrs (for other nodes' bootstrap lists) once it is up")
	addCommand(cmd)
}

func runResolver(ctx context.Context, cfgPath string, printAddrs bool) (err error) {
	cfg, err := loadResolverConfig(cfgPath)
	if err != nil {
		return err
	}
	log, stopped, err := daemonLogger(cfg.Log, "resolver")
	if err != nil {
		return err
	}
	defer stopped(&err)
	creds, err := resolverCreds(cfg)
	if err != nil {
		return err
	}
	reg := newDaemonRegistry()
	watch := newCertWatch(log, reg)
	watch.set("member", creds.Member, resolverMemberPath(cfg))
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	go watch.run(ctx, certCheckEvery)
	// SIGHUP is caught before the node starts: its default action would
	// end the process.
	hup := make(chan os.Signal, 2)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	files := newCertFileWatch(ctx, log, hup)
	files.set(append([]string{resolverMemberPath(cfg), cfg.Domain}, cfg.TrustedDomains...)...)
	if err := checkDHTListen(cfg.Resolver); err != nil {
		return err
	}
	svc, err := resolver.Open(ctx, cfg.Resolver, creds, log, reg)
	if err != nil {
		return err
	}
	defer svc.Close()
	st := svc.Status()
	log.Info("resolver up", logging.Name(creds.Identity.Name), zap.String("mode", st.Mode),
		zap.Bool("border", st.Border), zap.Strings("addrs", st.Addrs), zap.Strings("global_addrs", st.GlobalAddrs))
	if printAddrs {
		b, _ := json.MarshalIndent(map[string][]string{"domain": st.Addrs, "global": st.GlobalAddrs}, "", "  ")
		fmt.Println(string(b))
	}

	api := cfg.API
	if api == "" {
		api = "127.0.0.1:8021"
	}
	var srv *httpService
	if api != "off" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.Handle("/", svc.Handler())
		dashboard.Mount(mux, resolverDashboard(svc, creds.Identity.Name, creds.Domain.Name(), reg))
		if srv, err = serveHTTP(api, "resolver API", mux, log); err != nil {
			return err
		}
	}
	_ = sdNotify("READY=1\nSTATUS=resolving")
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			_ = sdNotify("RELOADING=1")
			if err := inConfig(cfgPath, reloadResolver(cfgPath, svc, watch, files)); err != nil {
				log.Error("reload failed; keeping the running membership and trusted domains", zap.Error(err), reloadFix("resolver", cfgPath))
			} else {
				log.Info("reloaded the membership certificate and trusted domains; addresses, bootstrap and the rest of the resolver block change on restart only")
				if nc, err := loadResolverConfig(cfgPath); err == nil {
					warnRestartOnly(log, "gdp-resolver", cfg, nc, resolverReloaded...)
				}
			}
			_ = sdNotify("READY=1")
		}
	}
	_ = sdNotify("STOPPING=1")
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// resolverReloaded are the settings a resolver's reload puts in force; a
// change to any other is logged as waiting for a restart.
var resolverReloaded = []string{"member_cert", "domain", "trusted_domains", "clock_skew"}

// reloadResolver re-reads the config, the membership certificate and the
// trusted domains it names and gives them to the DHT nodes (SIGHUP), all
// or nothing.
func reloadResolver(cfgPath string, svc *resolver.Service, watch *certWatch, files *certFileWatch) error {
	cfg, err := loadResolverConfig(cfgPath)
	if err != nil {
		return err
	}
	creds, err := resolverCreds(cfg)
	if err != nil {
		return err
	}
	if err := svc.Reload(creds.Member, creds.Certs); err != nil {
		return err
	}
	watch.set("member", creds.Member, resolverMemberPath(cfg))
	files.set(append([]string{resolverMemberPath(cfg), cfg.Domain}, cfg.TrustedDomains...)...)
	return nil
}
