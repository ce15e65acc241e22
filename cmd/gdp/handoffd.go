package main

import (
	"context"
	"fmt"
	"github.com/gdpnet/gdpnet/pdu"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/handoffd"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/internal/logging"
)

// handoffdConfig is deploy/handoffd.yaml.
type handoffdConfig struct {
	attachConfig `yaml:",inline"`
	// Cache is the base image cache. Default /var/lib/gdp/handoff/bases.
	Cache string `yaml:"cache"`
	// Dir receives committed handoffs, one directory each. Default
	// /var/lib/gdp/handoff/received.
	Dir string `yaml:"dir"`
	// Overlay: accept handoffs over QUIC over names under the agent's own
	// name. Default true.
	Overlay *bool `yaml:"overlay"`
	// ListenTCP also accepts handoffs over plain TCP on this address (a
	// trusted network, tests). Default off.
	ListenTCP string `yaml:"listen_tcp"`
	// MaxConcurrent bounds handoffs received at once. Default 1.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxPerPeer bounds one sender's handoffs at once (its share). Default 1.
	MaxPerPeer int `yaml:"max_per_peer"`
	// IdleTimeout bounds the silence inside a handoff. Default 30s.
	IdleTimeout config.Duration `yaml:"idle_timeout"`
	// MinFreeBytes is the free space dir's file system keeps: a handoff
	// whose declared images (counted in full) would leave less is refused
	// at its hello, one in progress fails when less is free
	// (gdp_handoff_refused_total{reason="disk_full"}). Default 1073741824
	// (1 GiB).
	MinFreeBytes int64 `yaml:"min_free_bytes"`
	// MaxBytesPerPeer bounds the bytes one sender's handoffs in progress
	// stage (declared image sizes, device state, spilled blocks;
	// {reason="peer_bytes"}). Default 549755813888 (512 GiB).
	MaxBytesPerPeer int64 `yaml:"max_bytes_per_peer"`
	// Resume starts a received VM with QEMU (its kernel and initrd from the
	// cache). Default false: the images and device state are only kept.
	// The QEMU starts at the hello, waiting for the device state, which it
	// loads after the commit and the sender's go (handoffd.Agent.PrestartVM).
	Resume bool `yaml:"resume"`
	// Senders are the names (base64url; IP addresses for listen_tcp) whose
	// handoffs are accepted; empty: any member of a trusted domain.
	// Required with resume: true.
	Senders []string `yaml:"senders"`
	// QEMU is the emulator binary. Default qemu-system-x86_64.
	QEMU string `yaml:"qemu"`
	// Metrics is the address of /metrics. Default 127.0.0.1:8039; "off".
	Metrics string `yaml:"metrics"`
	// Log selects level and format. Default info, json.
	Log logging.Config `yaml:"log"`
}

func loadHandoffdConfig(path string) (handoffdConfig, error) {
	var cfg handoffdConfig
	if path != "" {
		if err := config.Load(path, &cfg); err != nil {
			return cfg, err
		}
	}
	cfg.withDefaults("handoffd")
	if err := cfg.attachConfig.validate(); err != nil {
		return cfg, err
	}
	if cfg.Cache == "" {
		cfg.Cache = defaultHandoffCache
	}
	if cfg.Dir == "" {
		cfg.Dir = "/var/lib/gdp/handoff/received"
	}
	if cfg.Overlay == nil {
		t := true
		cfg.Overlay = &t
	}
	if cfg.Metrics == "" {
		cfg.Metrics = "127.0.0.1:8039"
	}
	// What the agent would refuse only once running (its logger, its
	// listeners), refused here, so gdp doctor --role handoffd and a reload
	// see it (Session 18).
	if err := cfg.Log.Validate(); err != nil {
		return cfg, err
	}
	if err := checkAPIAddr("metrics", cfg.Metrics); err != nil {
		return cfg, err
	}
	if cfg.ListenTCP != "" {
		if err := checkHostPort("listen_tcp", cfg.ListenTCP, true); err != nil {
			return cfg, err
		}
	}
	if cfg.MaxConcurrent < 0 || cfg.MaxPerPeer < 0 || cfg.IdleTimeout < 0 || cfg.MinFreeBytes < 0 || cfg.MaxBytesPerPeer < 0 {
		return cfg, fmt.Errorf("max_concurrent, max_per_peer, idle_timeout, min_free_bytes and max_bytes_per_peer must not be negative")
	}
	if cfg.Resume && len(cfg.Senders) == 0 {
		return cfg, fmt.Errorf("resume: true would run a VM from any member of a trusted domain: list the sender names allowed in senders")
	}
	for _, n := range cfg.Senders {
		if _, err := netip.ParseAddr(n); err == nil {
			continue // a host, for listen_tcp
		}
		if _, err := pdu.ParseName(n); err != nil {
			return cfg, fmt.Errorf("senders: %q is neither a name nor an IP address: %w", n, err)
		}
	}
	if !*cfg.Overlay && cfg.ListenTCP == "" {
		return cfg, fmt.Errorf("overlay is off and listen_tcp is empty: the agent would accept nothing")
	}
	return cfg, nil
}

func init() {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "handoffd",
		Short: "Run a cloudlet's VM handoff agent: receive handoffs, verify them, resume VMs",
		Long: `handoffd attaches to its router, advertises its own name and accepts handoffs
over QUIC over names (and plain TCP if listen_tcp is set). Each handoff is
rebuilt on a copy of its base images from the cache, every block's hash and
each image's digest checked, and only then committed under dir; a handoff
interrupted at any point leaves nothing (partial directories of a crashed run
are removed at start). With resume: true a VM handoff is started with QEMU
(-incoming defer) on its rebuilt memory and disk: the QEMU starts when the
handoff begins and runs the VM once it is committed.

The configuration file is documented in deploy/handoffd.yaml and
docs/HANDOFF.md.`,
		Example: `  gdp handoffd --config /etc/gdp/handoffd.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runHandoffd(cmd.Context(), cfgPath)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML); none: all defaults")
	addCommand(cmd)
}

func runHandoffd(ctx context.Context, cfgPath string) (err error) {
	cfg, err := loadHandoffdConfig(cfgPath)
	if err != nil {
		return inConfig(cfgPath, err)
	}
	log, stopped, err := daemonLogger(cfg.Log, "handoffd")
	if err != nil {
		return err
	}
	defer stopped(&err)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	// SIGHUP is caught from the start: its default action would end the
	// process.
	hup := make(chan os.Signal, 4)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cache, err := handoffd.OpenBaseCache(cfg.Cache)
	if err != nil {
		return err
	}
	reg := newDaemonRegistry()
	metrics := handoffd.NewMetrics(reg)
	// The membership it runs with is watched like the other daemons':
	// gdp_cert_expiry_seconds{kind="member"}, a WARN when a renewal is due.
	watch := newCertWatch(log, reg)
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	// watchFiles (re)starts the watch of the certificate files cfg names:
	// a reload that names other files moves the watch to them.
	files := newCertFileWatch(wctx, log, hup)
	watchFiles := func(c handoffdConfig) { files.set(c.MemberCert, c.Domain) }
	agent := &handoffd.Agent{Cache: cache, Dir: cfg.Dir, Logger: log, Metrics: metrics,
		Config: handoffd.AgentConfig{MaxConcurrent: cfg.MaxConcurrent, MaxPerPeer: cfg.MaxPerPeer, IdleTimeout: cfg.IdleTimeout.Std(),
			Senders: cfg.Senders, MinFreeBytes: cfg.MinFreeBytes, MaxBytesPerPeer: cfg.MaxBytesPerPeer}}
	if cfg.Resume {
		// The destination QEMU starts at the hello, waiting for the device
		// state: its start is not in the VM's pause.
		agent.PrestartVM = &handoffd.QEMUConfig{Binary: cfg.QEMU, Logger: log}
		agent.OnReceived = func(ctx context.Context, rec *handoffd.Received) error {
			if !rec.VM {
				return nil
			}
			vmDir := filepath.Join(rec.Dir, "vm")
			if err := os.MkdirAll(vmDir, 0o755); err != nil {
				return err
			}
			// The VM outlives this handoff: it is not tied to ctx.
			q, err := handoffd.ResumeVM(context.WithoutCancel(ctx), cache, rec, handoffd.QEMUConfig{Binary: cfg.QEMU, Dir: vmDir, Logger: log})
			if err != nil {
				return err
			}
			log.Info("vm resumed", zap.String("name", rec.ID), zap.String("serial", q.Serial))
			return nil
		}
	}
	var listeners []handoffd.Listener
	var at *attached
	if *cfg.Overlay {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if at, err = cfg.attach(actx, client.Options{Logger: log, InboxSize: 16384}); err != nil {
			return err
		}
		defer at.Close()
		reg.MustRegister(at.ep.Collector())
		watch.set("member", at.member, cfg.MemberCert)
		go watch.run(wctx, certCheckEvery)
		// A renewed membership or domain file is put in force without a
		// restart: the watch raises a SIGHUP.
		watchFiles(cfg)
		if _, err := at.client.Advertise(actx, at.client.Self()); err != nil {
			return fmt.Errorf("advertise %s: %w", at.id.Name, err)
		}
		// Advertised again before the route's chain runs out (its RtCert,
		// an hour; the router's membership) for as long as the agent runs.
		// Session 20: advertised once, the agent's name expired at its
		// router after at most an hour and nothing reached it over the
		// overlay (TestHandoffdKeepsItsRoute).
		at.client.Maintain(wctx, func() []client.Route { return []client.Route{at.client.Self()} }, 5*time.Second)
		ln, err := client.ListenName(at.client, at.client.Name(), nil)
		if err != nil {
			return err
		}
		listeners = append(listeners, handoffd.OverlayListener(ln))
		log.Info("handoff agent on the overlay", logging.Name(at.id.Name), logging.Addr(cfg.Router))
	}
	if cfg.ListenTCP != "" {
		l, err := net.Listen("tcp", cfg.ListenTCP)
		if err != nil {
			return fmt.Errorf("listen_tcp: %w", err)
		}
		listeners = append(listeners, handoffd.TCPListener(l))
		log.Info("handoff agent on tcp", zap.String("addr", l.Addr().String()))
	}
	var hs *httpService
	if cfg.Metrics != "off" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if hs, err = serveHTTP(cfg.Metrics, "metrics", mux, log); err != nil {
			return err
		}
	}
	// SIGHUP (or a changed certificate file): re-read the file, the
	// membership and the domain; all or nothing. Limits and senders take
	// effect for the next handoffs; listeners, directories and the identity
	// need a restart.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = sdNotify("RELOADING=1")
				if nc, err := reloadHandoffd(cfgPath, at, agent, watch); err != nil {
					log.Error("reload failed; keeping the running membership and configuration", zap.Error(inConfig(cfgPath, err)), reloadFix("handoffd", cfgPath))
				} else {
					if at != nil {
						watchFiles(nc)
					}
					log.Info("reloaded the membership certificate, domain, limits and senders; listeners, directories and the identity change on restart only",
						zap.Int("max_concurrent", nc.MaxConcurrent), zap.Int("senders", len(nc.Senders)))
					warnRestartOnly(log, "", cfg, nc, handoffdReloaded...)
				}
				_ = sdNotify("READY=1")
			}
		}
	}()
	_ = sdNotify("READY=1\nSTATUS=serving")
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- agent.Serve(ctx, l) }()
	}
	for range listeners {
		if e := <-errc; e != nil && err == nil {
			err = e
			stop()
		}
	}
	_ = sdNotify("STOPPING=1")
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	hs.Shutdown(sctx)
	return err
}

// handoffdReloaded are the settings a handoff agent's reload puts in
// force; a change to any other is logged as waiting for a restart.
var handoffdReloaded = []string{"member_cert", "domain", "max_concurrent", "max_per_peer", "senders", "min_free_bytes", "max_bytes_per_peer"}

// reloadHandoffd re-reads the configuration and, when the agent is on the
// overlay, its membership certificate and domain, and puts them in force:
// all or nothing (a file that does not load or verify changes nothing).
func reloadHandoffd(cfgPath string, at *attached, agent *handoffd.Agent, watch *certWatch) (handoffdConfig, error) {
	nc, err := loadHandoffdConfig(cfgPath)
	if err != nil {
		return nc, err
	}
	if at != nil {
		member, err := certs.ReadCertFile(nc.MemberCert)
		if err != nil {
			return nc, fmt.Errorf("membership: %w", err)
		}
		domain, v, err := nc.verifier()
		if err != nil {
			return nc, err
		}
		if _, _, err := v.VerifyMember(at.id.Meta, member, domain); err != nil {
			return nc, fmt.Errorf("membership %s: %w", nc.MemberCert, err)
		}
		if err := at.ep.Reload(member, domain, v); err != nil {
			return nc, err
		}
		watch.set("member", member, nc.MemberCert)
	}
	agent.Reload(handoffd.AgentConfig{MaxConcurrent: nc.MaxConcurrent, MaxPerPeer: nc.MaxPerPeer, Senders: nc.Senders,
		MinFreeBytes: nc.MinFreeBytes, MaxBytesPerPeer: nc.MaxBytesPerPeer})
	return nc, nil
}
