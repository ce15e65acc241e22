package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// gatewayConfig is deploy/gateway.yaml.
type gatewayConfig struct {
	// The uplink: router, router_name, admin, routers, listen, keystore,
	// identity (default "client": the user's key), member_cert, domain,
	// timeout and tunnel, as in deploy/capsuled.yaml. The gateway's tunnel
	// defaults are keepalive 500ms and idle_timeout 1.5s, so a silently
	// dead router is noticed and left within ~1.5 s.
	attachConfig `yaml:",inline"`
	// TrustedDomains are the metadata files of other domains whose
	// routers this gateway may attach to (a user visiting a partner's
	// edge router, one whose trusted_domains lists the user's domain;
	// Session 18), as gdp capsule's --trust. Default none: only the
	// routers of the gateway's own domain verify. Reloaded by SIGHUP and
	// when a listed file is replaced.
	TrustedDomains []string `yaml:"trusted_domains"`
	// Socket is the unix socket applications connect to, created mode
	// 0600. Default $XDG_RUNTIME_DIR/gdp/gateway.sock, else
	// ~/.gdp/gateway.sock.
	Socket string `yaml:"socket"`
	// TCPListen is an optional loopback TCP address ("127.0.0.1:8039")
	// where every request must carry the token. Default "" (off).
	TCPListen string `yaml:"tcp_listen"`
	// AllowNonLoopback lets tcp_listen be a non-loopback address (the
	// network then reaches the user's keys with the token alone). Default
	// false: such an address is refused.
	AllowNonLoopback bool `yaml:"allow_non_loopback"`
	// TokenFile holds the bearer token of tcp_listen; created (mode 0600,
	// 32 random bytes in hex) when missing, re-read on SIGHUP. Default
	// gateway.token beside the socket.
	TokenFile string `yaml:"token_file"`
	// Metrics is the address of /metrics. Default 127.0.0.1:8049; "off"
	// disables it.
	Metrics string `yaml:"metrics"`
	// MaxBody bounds one request body in bytes (413 beyond). Default
	// 8388608 (8 MiB).
	MaxBody int64 `yaml:"max_body"`
	// MaxBatchRecords bounds the records of one NDJSON append (413
	// beyond). Default 10000.
	MaxBatchRecords int `yaml:"max_batch_records"`
	// MaxReadRecords bounds the records one range read returns (the answer
	// says where to go on). Default 1000.
	MaxReadRecords int `yaml:"max_read_records"`
	// MaxSubscriptions bounds open WebSocket subscriptions (503 beyond).
	// Default 256.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// RequestTimeout bounds the overlay work of one request. Default 30s.
	RequestTimeout config.Duration `yaml:"request_timeout"`
	// MaxReaders bounds the capsule readers kept between requests (one per
	// capsule read); beyond it the least recently used is dropped
	// (gdp_gateway_reader_evictions_total) and reopened on its next read.
	// Default 1024.
	MaxReaders int `yaml:"max_readers"`
	// MaxWriters bounds the capsule writers kept open between requests
	// (one per capsule written, each holding the capsule's writer lock);
	// beyond it the least recently used is closed, flushed and its lock
	// released (gdp_gateway_writer_evictions_total{reason="max_writers"}),
	// and reopened on its next write. Default 256.
	MaxWriters int `yaml:"max_writers"`
	// MaxKVStores bounds the KV stores kept between requests (one per KV
	// capsule read, each following its capsule); beyond it the least
	// recently used is closed. Default 64.
	MaxKVStores int `yaml:"max_kv_stores"`
	// IdleClose closes a writer or KV store unused this long
	// (reason="idle"), releasing its writer lock. Default 5m.
	IdleClose config.Duration `yaml:"idle_close"`
	// Capsules are the defaults of POST /v1/capsules.
	Capsules gatewayCapsules `yaml:"capsules"`
	// Log selects level and format. Default info, json.
	Log logging.Config `yaml:"log"`
}

// gatewayCapsules is the capsules: block.
type gatewayCapsules struct {
	// Servers are the replica servers of a capsule created without
	// "servers". Default none ("servers" then required).
	Servers []pdu.Name `yaml:"servers"`
	// W of such a capsule. Default 0: a majority.
	W int `yaml:"w"`
	// Owner is the keystore alias owning a capsule created without
	// "owner". Default none ("owner" then required).
	Owner string `yaml:"owner"`
	// AdCertLifetime of created capsules. Default 72h.
	AdCertLifetime config.Duration `yaml:"adcert_lifetime"`
}

// defaultGatewaySocket is $XDG_RUNTIME_DIR/gdp/gateway.sock, else
// ~/.gdp/gateway.sock.
func defaultGatewaySocket() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "gdp", "gateway.sock")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".gdp", "gateway.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("gdp-%d", os.Getuid()), "gateway.sock")
}

func loadGatewayConfig(path string) (gatewayConfig, error) {
	var cfg gatewayConfig
	if path != "" {
		if err := config.Load(path, &cfg); err != nil {
			return cfg, err
		}
	}
	cfg.withDefaults("client")
	cfg.attachConfig.trusted = cfg.TrustedDomains
	if cfg.Tunnel.KeepAlive <= 0 {
		cfg.Tunnel.KeepAlive = config.Duration(500 * time.Millisecond)
	}
	if cfg.Tunnel.IdleTimeout <= 0 {
		cfg.Tunnel.IdleTimeout = config.Duration(1500 * time.Millisecond)
	}
	if cfg.Socket == "" {
		cfg.Socket = defaultGatewaySocket()
	}
	if cfg.TokenFile == "" {
		cfg.TokenFile = filepath.Join(filepath.Dir(cfg.Socket), "gateway.token")
	}
	if cfg.Metrics == "" {
		cfg.Metrics = "127.0.0.1:8049"
	}
	return cfg, validateGatewayConfig(cfg)
}

func validateGatewayConfig(c gatewayConfig) error {
	errs := []error{c.Log.Validate(), checkHostPort("router", c.Router, false), checkHostPort("listen", c.Listen, true),
		checkAPIAddr("metrics", c.Metrics), c.attachConfig.validate()}
	for _, r := range c.Routers {
		errs = append(errs, checkHostPort("routers.addr", r.Addr, false))
	}
	if c.TCPListen != "" {
		errs = append(errs, checkHostPort("tcp_listen", c.TCPListen, true), gateway.CheckLoopback(c.TCPListen, c.AllowNonLoopback))
	}
	if c.MaxBody < 0 || c.MaxBatchRecords < 0 || c.MaxReadRecords < 0 || c.MaxSubscriptions < 0 || c.MaxReaders < 0 ||
		c.MaxWriters < 0 || c.MaxKVStores < 0 || c.IdleClose < 0 || c.Capsules.W < 0 {
		errs = append(errs, errors.New("max_body, max_batch_records, max_read_records, max_subscriptions, max_readers, max_writers, max_kv_stores, idle_close and capsules.w must not be negative"))
	}
	if c.Capsules.W > len(c.Capsules.Servers) && len(c.Capsules.Servers) > 0 {
		errs = append(errs, fmt.Errorf("capsules.w %d is more than the %d servers", c.Capsules.W, len(c.Capsules.Servers)))
	}
	return errors.Join(errs...)
}

// server is the gateway.Config the file describes.
func (c gatewayConfig) server() gateway.Config {
	return gateway.Config{MaxBody: c.MaxBody, MaxBatchRecords: c.MaxBatchRecords, MaxReadRecords: c.MaxReadRecords,
		MaxSubscriptions: c.MaxSubscriptions, MaxReaders: c.MaxReaders, MaxWriters: c.MaxWriters, MaxKVStores: c.MaxKVStores, IdleClose: c.IdleClose.Std(), RequestTimeout: c.RequestTimeout.Std(), DefaultServers: c.Capsules.Servers,
		DefaultW: c.Capsules.W, DefaultOwner: c.Capsules.Owner, AdCertLifetime: c.Capsules.AdCertLifetime.Std()}
}
