package main

import (
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/resolver"
)

// resolverFileConfig is deploy/resolver.yaml: where the node's identity and
// trust come from, the API address, and the resolver block.
type resolverFileConfig struct {
	// Keystore holds the node's private key. Default $GDP_KEYSTORE, else
	// /var/lib/gdp/keys.
	Keystore string `yaml:"keystore"`
	// Identity is the key's alias in the keystore. Default "resolver".
	Identity string `yaml:"identity"`
	// MemberCert is the node's membership certificate. Default
	// /etc/gdp/resolver.member.
	MemberCert string `yaml:"member_cert"`
	// Domain is the node's own domain metadata. Default /etc/gdp/domain.meta.
	Domain string `yaml:"domain"`
	// TrustedDomains are the metadata files of the federated domains whose
	// records (via their borders) this node believes.
	TrustedDomains []string `yaml:"trusted_domains"`
	// ClockSkew is how far ahead of this node's clock a certificate's
	// NotBefore may lie and still be taken; NotAfter is never stretched.
	// Default 5m (certs.DefaultClockSkew); a YAML duration cannot be
	// negative (narrow it, e.g. 1s, rather than switch it off).
	ClockSkew config.Duration `yaml:"clock_skew"`
	// API is the HTTP listen address of /lookup, /status and /metrics.
	// Default 127.0.0.1:8021; "off" disables it.
	API string `yaml:"api"`
	// Log sets level and format.
	Log logging.Config `yaml:"log"`
	// Resolver is the resolver itself (mode dht for a resolver node).
	Resolver resolver.Config `yaml:"resolver"`
}

func loadResolverConfig(path string) (resolverFileConfig, error) {
	cfg := resolverFileConfig{Resolver: resolver.Config{Mode: "dht"}}
	if path != "" {
		if err := config.Load(path, &cfg); err != nil {
			return cfg, err
		}
	}
	if cfg.Resolver.Mode == "" {
		cfg.Resolver.Mode = "dht"
	}
	if err := cfg.Resolver.Validate(); err != nil {
		return cfg, err
	}
	return cfg, validateResolverFile(cfg)
}

// resolverCreds loads the node's credentials from the files cfg names.
func resolverCreds(cfg resolverFileConfig) (resolver.NodeCredentials, error) {
	ksDir, alias := cfg.Keystore, cfg.Identity
	if ksDir == "" {
		ksDir = defaultKeystoreDir()
	}
	if alias == "" {
		alias = "resolver"
	}
	memberPath, domainPath := resolverMemberPath(cfg), cfg.Domain
	if domainPath == "" {
		domainPath = "/etc/gdp/domain.meta"
	}
	c, err := loadCreds("resolver", credFiles{keystore: ksDir, identity: alias, member: memberPath,
		domain: domainPath, trusted: cfg.TrustedDomains, skew: cfg.ClockSkew.Std()})
	if err != nil {
		return resolver.NodeCredentials{}, err
	}
	return c.nodeCredentials(), nil
}

// resolverMemberPath is the membership certificate file cfg names, with
// the default.
func resolverMemberPath(cfg resolverFileConfig) string {
	if cfg.MemberCert == "" {
		return "/etc/gdp/resolver.member"
	}
	return cfg.MemberCert
}
