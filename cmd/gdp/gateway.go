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

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

func init() {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the local GDP gateway: the user's keys, an uplink that follows, HTTP/JSON and WebSocket for local apps",
		Long: `gateway runs on the user's machine. It attaches to the first router of
router: and routers: that answers, as the user's identity (a client key in
the keystore), and re-attaches to another when that router fails; its
names follow it. Local applications use its HTTP/JSON API (docs/GATEWAY.md,
docs/openapi.json) on a unix socket, mode 0600, and optionally on a
loopback TCP port that wants the token of token_file on every request.
A non-loopback tcp_listen is refused unless allow_non_loopback is set.

The configuration file is documented in deploy/gateway.yaml. SIGHUP
re-reads it and puts the request limits and capsule defaults in force,
re-reads the token file and the membership certificate, all or nothing;
the listeners and routers change on restart only.`,
		Example: `  gdp gateway --config ~/.config/gdp/gateway.yaml
  curl --unix-socket $XDG_RUNTIME_DIR/gdp/gateway.sock http://gdp/v1/status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGateway(cmd.Context(), cfgPath)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML); none: all defaults")
	addCommand(cmd)
}

func runGateway(ctx context.Context, cfgPath string) (err error) {
	cfg, err := loadGatewayConfig(cfgPath)
	if err != nil {
		return err
	}
	log, stopped, err := daemonLogger(cfg.Log, "gateway")
	if err != nil {
		return err
	}
	defer stopped(&err)
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)

	creds, err := gatewayCreds(cfg)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rname := cfg.RouterName
	if rname == "" {
		if rname, err = adminName(actx, cfg.Admin); err != nil {
			return fmt.Errorf("router name: %w (or set router_name)", err)
		}
	}
	rn, err := pdu.ParseName(rname)
	if err != nil {
		return fmt.Errorf("router name: %w", err)
	}
	routers := []client.RouterAddr{{Addr: cfg.Router, Name: rn}}
	for _, r := range cfg.Routers {
		routers = append(routers, client.RouterAddr{Addr: r.Addr, Name: r.Name})
	}
	tc := cfg.Tunnel.WithDefaults()
	up, err := gateway.DialUplink(actx, gateway.UplinkConfig{Identity: creds.id, Member: creds.member, Domain: creds.domain,
		Verifier: creds.verifier, Listen: cfg.Listen, Routers: routers, KeepAlive: tc.KeepAlive.Std(),
		IdleTimeout: tc.IdleTimeout.Std(), CountDatagramDrops: tc.CountDatagramDrops, RequestTimeout: cfg.Timeout.Std(), Logger: log})
	if err != nil {
		return err
	}
	defer up.Close()
	reg := newDaemonRegistry()
	reg.MustRegister(up.Endpoint().Collector())
	watch := newCertWatch(log, reg)
	watch.set("member", creds.member, cfg.MemberCert)
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	go watch.run(wctx, certCheckEvery)
	files := newCertFileWatch(wctx, log, sig)
	files.set(append([]string{cfg.MemberCert, cfg.Domain}, cfg.TrustedDomains...)...)
	srv, err := gateway.New(cfg.server(), gateway.Deps{Uplink: up, Keys: creds.ks, Logger: log, Registry: reg,
		LockWriter: func(c pdu.Name) (func(), error) { return lockWriter(creds.ks.Dir(), c) }})
	if err != nil {
		return err
	}
	var services []*httpService
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		for _, s := range services {
			s.Shutdown(sctx)
		}
		if cerr := srv.Close(sctx); cerr != nil {
			log.Warn("closing writers", zap.Error(cerr))
		}
		_ = os.Remove(cfg.Socket)
	}()
	// The token file exists before anything is served: a script that
	// waits for the socket to answer and then reads the token finds it.
	if cfg.TCPListen != "" {
		tok, err := gateway.LoadOrCreateToken(cfg.TokenFile)
		if err != nil {
			return err
		}
		srv.SetToken(tok)
	}
	uln, err := gateway.ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	services = append(services, serveHTTPAt(uln, cfg.Socket, "unix socket", srv.Handler(false), log))
	if cfg.TCPListen != "" {
		tln, err := gateway.ListenTCP(cfg.TCPListen, cfg.AllowNonLoopback)
		if err != nil {
			return err
		}
		if cfg.AllowNonLoopback {
			log.Warn("tcp_listen may be reached from the network: anyone with the token acts with the user's keys", logging.Addr(cfg.TCPListen))
		}
		services = append(services, serveHTTPOn(tln, "tcp", srv.Handler(true), log))
	}
	if cfg.Metrics != "off" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs, err := serveHTTP(cfg.Metrics, "metrics", mux, log)
		if err != nil {
			return err
		}
		services = append(services, hs)
	}
	log.Info("gateway serving", logging.Name(creds.id.Name), logging.Peer(up.Status().Router), zap.String("socket", cfg.Socket))
	_ = sdNotify("READY=1\nSTATUS=serving")
	for {
		select {
		case <-ctx.Done():
			_ = sdNotify("STOPPING=1")
			return nil
		case s := <-sig:
			if s != syscall.SIGHUP {
				_ = sdNotify("STOPPING=1")
				return nil
			}
			_ = sdNotify("RELOADING=1")
			if err := inConfig(cfgPath, reloadGateway(cfgPath, creds.id, up, srv, watch, files)); err != nil {
				log.Error("reload failed; keeping the running configuration", zap.Error(err), reloadFix("gateway", cfgPath))
			} else {
				log.Info("reloaded the limits, capsule defaults, token and membership certificate; listeners and routers change on restart only")
				if nc, err := loadGatewayConfig(cfgPath); err == nil {
					warnRestartOnly(log, "", cfg, nc, gatewayReloaded...)
				}
			}
			_ = sdNotify("READY=1")
		}
	}
}

// gatewayCreds loads the gateway's identity and trust, with its clock_skew.
func gatewayCreds(cfg gatewayConfig) (*nodeCreds, error) {
	return loadCreds("client", cfg.files())
}

// gatewayReloaded are the settings a gateway's reload puts in force; a
// change to any other is logged as waiting for a restart.
var gatewayReloaded = []string{"member_cert", "domain", "trusted_domains", "token_file", "max_body", "max_batch_records", "max_read_records",
	"max_subscriptions", "max_readers", "max_writers", "max_kv_stores", "idle_close", "request_timeout", "capsules"}

// reloadGateway re-reads the config, the token file and the membership
// certificate and puts them in force, all or nothing.
func reloadGateway(cfgPath string, id *certs.Identity, up *gateway.Uplink, srv *gateway.Server, watch *certWatch, files *certFileWatch) error {
	cfg, err := loadGatewayConfig(cfgPath)
	if err != nil {
		return err
	}
	var tok []byte
	if cfg.TCPListen != "" {
		if tok, err = gateway.LoadOrCreateToken(cfg.TokenFile); err != nil {
			return err
		}
	}
	member, err := certs.ReadCertFile(cfg.MemberCert)
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	domain, v, err := cfg.verifier()
	if err != nil {
		return err
	}
	if _, _, err := v.VerifyMember(id.Meta, member, domain); err != nil {
		return fmt.Errorf("membership %s: %w", cfg.MemberCert, err)
	}
	if err := up.Endpoint().Reload(member, domain, v); err != nil {
		return err
	}
	srv.Reload(cfg.server())
	if tok != nil {
		srv.SetToken(tok)
	}
	watch.set("member", member, cfg.MemberCert)
	files.set(append([]string{cfg.MemberCert, cfg.Domain}, cfg.TrustedDomains...)...)
	return nil
}
