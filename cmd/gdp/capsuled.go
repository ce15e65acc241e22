package main

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/client"
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
is closed after its last fsync.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCapsuled(cmd.Context(), cfgPath)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML); none: all defaults")
	addCommand(cmd)
}

func runCapsuled(ctx context.Context, cfgPath string) error {
	cfg, err := loadCapsuledConfig(cfgPath)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	at, err := cfg.attach(actx, client.Options{Logger: log, InboxSize: 16384})
	if err != nil {
		return err
	}
	defer at.ep.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	srv, err := capsuled.New(actx, capsuled.Config{Dir: cfg.Dir, Engine: cfg.Engine, MaxData: cfg.MaxData, Workers: cfg.Workers,
		SyncInterval: cfg.SyncInterval.Std(), MaxSubscriptions: cfg.MaxSubscriptions,
		MaxSubscriptionsPerSubscriber: cfg.MaxSubscriptionsPerSubscriber}, capsuled.Deps{Identity: at.id, Client: at.client, Logger: log, Registry: reg})
	if err != nil {
		return err
	}
	log.Info("capsuled attached", logging.Name(at.id.Name), logging.Addr(cfg.Router))
	var hs *httpService
	if cfg.Metrics != "off" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if hs, err = serveHTTP(cfg.Metrics, "metrics", mux, log); err != nil {
			_ = srv.Close()
			return err
		}
	}
	_ = sdNotify("READY=1\nSTATUS=serving")
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	// A lost tunnel is not the end: the attachment redials (the routers
	// of router: and routers:, in turn) and advertises every capsule
	// again; the replicas' anti-entropy covers the gap.
	select {
	case <-ctx.Done():
	case <-sig:
	}
	_ = sdNotify("STOPPING=1\nSTATUS=draining")
	dctx, dcancel := context.WithTimeout(context.Background(), cfg.DrainTimeout.Std())
	defer dcancel()
	log.Info("draining", zap.Duration("timeout", cfg.DrainTimeout.Std()))
	srv.Drain(dctx)
	hs.Shutdown(dctx)
	return srv.Close()
}
