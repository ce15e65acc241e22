package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/dashboard"
	"github.com/gdpnet/gdpnet/internal/logging"
)

func init() {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "capsuled",
		Short: "Run a capsule server: host DataCapsules, serve appends, reads and subscriptions, replicate",
		Long: `capsuled attaches to its router over a QUIC tunnel, advertises its own name
and every capsule placed on it (with the owner's AdCert), and serves the
capsule commands of docs/PROTOCOL.md §8. Replicas of a capsule repair each
other by anti-entropy.

The configuration file is documented in deploy/capsuled.yaml. SIGTERM
drains: capsule names are withdrawn, requests in progress finish, the store
is closed after its last fsync. SIGHUP re-reads the configuration file
and reloads the server's membership certificate and domain (a renewed
membership is shown to the router from then on), trusted_domains (a
domain removed proves nothing from then on), the placement: policy
(owners, max_per_owner, max_replicas, max_placements) and the
subscription limits, all or nothing: a configuration that does not load
is refused and the running one stays. The router, the store and the
other limits change on restart only.`,
		Example: `  gdp capsuled --config /etc/gdp/capsuled.yaml
  systemctl reload gdp-capsuled    # SIGHUP: renewed membership, placement policy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCapsuled(cmd.Context(), cfgPath)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML); none: all defaults")
	addCommand(cmd)
}

func runCapsuled(ctx context.Context, cfgPath string) (err error) {
	cfg, err := loadCapsuledConfig(cfgPath)
	if err != nil {
		return err
	}
	log, stopped, err := daemonLogger(cfg.Log, "capsuled")
	if err != nil {
		return err
	}
	defer stopped(&err)
	// Signals are caught from the start: SIGHUP's default action would end
	// the process.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// The RtCerts the server issues itself are watched like its
	// membership: gdp_cert_expiry_seconds{kind="rtcert"}, a WARN when a
	// renewal is overdue. The watch exists before the first advertisement.
	reg := newDaemonRegistry()
	watch := newCertWatch(log, reg)
	onRt := func(c *certs.Cert) {
		log.Debug("issued an rtcert", logging.Name(c.Subject), logging.Expiry(c.NotAfter))
		watch.set("rtcert", c, "")
	}
	at, err := cfg.attach(actx, client.Options{Logger: log, InboxSize: 16384, RtCertLifetime: cfg.RtCertLifetime.Std(), OnRtCert: onRt})
	if err != nil {
		return err
	}
	defer at.ep.Close()
	reg.MustRegister(at.ep.Collector())
	// QUIC over names (OPERATIONS.md §7): packets for it that reach the
	// server are counted even while it serves none.
	reg.MustRegister(at.client.QUICCollector())
	watch.set("member", at.member, cfg.MemberCert)
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	go watch.run(wctx, certCheckEvery)
	files := newCertFileWatch(wctx, log, sig)
	files.set(cfg.certFiles()...)
	scfg, err := cfg.server()
	if err != nil {
		return err
	}
	srv, err := capsuled.New(actx, scfg, capsuled.Deps{Identity: at.id, Client: at.client, Logger: log, Registry: reg})
	if err != nil {
		return err
	}
	log.Info("capsuled attached", logging.Name(at.id.Name), logging.Addr(cfg.Router))
	var hs *httpService
	if cfg.Metrics != "off" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		dashboard.Mount(mux, capsuledDashboard(srv, reg))
		if cfg.Pprof {
			mountPprof(mux)
		}
		if hs, err = serveHTTP(cfg.Metrics, "metrics", mux, log); err != nil {
			_ = srv.Close()
			return err
		}
	}
	_ = sdNotify("READY=1\nSTATUS=serving")
	// A lost tunnel is not the end: the attachment redials (the routers
	// of router: and routers:, in turn) and advertises every capsule
	// again; the replicas' anti-entropy covers the gap.
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case s := <-sig:
			if s != syscall.SIGHUP {
				done = true
				break
			}
			_ = sdNotify("RELOADING=1")
			if err := inConfig(cfgPath, reloadCapsuled(cfgPath, at, srv, watch, files)); err != nil {
				log.Error("reload failed; keeping the running membership and policy", zap.Error(err), reloadFix("capsuled", cfgPath))
			} else {
				log.Info("reloaded the membership certificate, domain, trusted domains, placement policy, subscription limits and possession_min_samples; the router, store and other limits change on restart only")
				if nc, err := loadCapsuledConfig(cfgPath); err == nil {
					warnRestartOnly(log, "gdp-capsuled", cfg, nc, capsuledReloaded...)
				}
			}
			_ = sdNotify("READY=1")
		}
	}
	_ = sdNotify("STOPPING=1\nSTATUS=draining")
	dctx, dcancel := context.WithTimeout(context.Background(), cfg.DrainTimeout.Std())
	defer dcancel()
	log.Info("draining", zap.Duration("timeout", cfg.DrainTimeout.Std()))
	srv.Drain(dctx)
	hs.Shutdown(dctx)
	return srv.Close()
}

// capsuledReloaded are the settings a capsule server's reload puts in
// force; a change to any other is logged as waiting for a restart.
var capsuledReloaded = []string{"member_cert", "domain", "trusted_domains", "placement", "max_subscriptions", "max_subscriptions_per_subscriber",
	"max_subscriptions_unproven", "possession_min_samples"}

// reloadCapsuled re-reads the config, the membership certificate and the
// domain it names (shown to the router from the next tunnel on) and puts
// the trusted domains (Session 17: requester proofs, QUIC over names and
// the router tunnel's checks; proofs of a domain no longer listed are
// dropped), the placement policy and subscription limits in force (SIGHUP), all or
// nothing: everything is checked before anything changes (the server's
// part as its Reload will check it: CheckReload).
func reloadCapsuled(cfgPath string, at *attached, srv *capsuled.Server, watch *certWatch, files *certFileWatch) error {
	cfg, err := loadCapsuledConfig(cfgPath)
	if err != nil {
		return err
	}
	scfg, err := cfg.server()
	if err != nil {
		return err
	}
	if err := srv.CheckReload(scfg); err != nil {
		return err
	}
	member, err := certs.ReadCertFile(cfg.MemberCert)
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	domain, v, err := cfg.verifier()
	if err != nil {
		return err
	}
	if _, _, err := v.VerifyMember(at.id.Meta, member, domain); err != nil {
		return fmt.Errorf("membership %s: %w", cfg.MemberCert, err)
	}
	if err := at.ep.Reload(member, domain, v); err != nil {
		return err
	}
	srv.ReloadTrust(v)
	if err := srv.Reload(scfg); err != nil {
		return err
	}
	watch.set("member", member, cfg.MemberCert)
	files.set(cfg.certFiles()...)
	return nil
}
