package router

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestExampleConfig: deploy/router.yaml loads strictly (no unknown keys),
// validates, and states exactly the defaults.
func TestExampleConfig(t *testing.T) {
	var c Config
	if err := config.Load("../deploy/router.yaml", &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got, want := c.WithDefaults(), Config{}.WithDefaults()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("deploy/router.yaml does not state the defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	peer := pdu.Name{7}
	other := pdu.Name{8}
	tests := []struct {
		name    string
		yaml    string
		wantErr bool
	}{
		{"empty", "", false},
		{"peer and upstream", "peers: [{name: " + peer.String() + ", addr: \"127.0.0.1:1\"}]\nupstream: " + peer.String(), false},
		{"upstream not a peer", "upstream: " + other.String(), true},
		{"peer without addr", "peers: [{name: " + peer.String() + "}]", true},
		{"bad resolver mode", "resolver: {mode: carrier-pigeon}", true},
		{"dht node", "resolver: {mode: dht, listen: [/ip4/127.0.0.1/udp/0/quic-v1], bootstrap: [/ip4/127.0.0.1/udp/1/quic-v1/p2p/x], min_puts: 1}", false},
		{"dht border", "resolver: {mode: dht, global: {border_addrs: [\"127.0.0.1:8009\"]}}", false},
		{"static with bootstrap", "resolver: {bootstrap: [/ip4/127.0.0.1/udp/1/quic-v1/p2p/x]}", true},
		{"border without border_addrs", "resolver: {mode: dht, global: {listen: [/ip4/127.0.0.1/udp/0/quic-v1]}}", true},
		{"republish not below record_age", "resolver: {mode: dht, record_age: 10m, republish: 10m}", true},
		{"resolver cache", "resolver: {cache: {size: 10, negative_ttl: 1s, max_age: 5s}}", false},
		{"old dht_listen key", "resolver: {mode: dht, dht_listen: [x]}", true},
		{"max_pdu too small", "max_pdu: 10", true},
		{"tick", "tick: 500ms", false},
		{"tick too fine", "tick: 100us", true},
		{"unknown key", "listen_addr: x", true},
		{"bad name", "upstream: not-a-name", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "r.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var c Config
			err := config.Load(p, &c)
			if err == nil {
				err = c.Validate()
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if (tc.name == "unknown key" || tc.name == "old dht_listen key") && !errors.Is(err, config.ErrUnknownKey) {
				t.Fatalf("err = %v, want ErrUnknownKey", err)
			}
		})
	}
}

// TestResolverDefaults: the zero config is a static resolver; mode dht
// listens on every address unless told otherwise; the cache keeps a
// record at most 30 s in a router.
func TestResolverDefaults(t *testing.T) {
	z := Config{}.WithDefaults().Resolver
	if z.Mode != "static" || len(z.Listen) != 0 || z.Cache.MaxAge.Std() != 30*time.Second || z.Quorum != 1 ||
		z.MinPuts != 3 || z.RecordAge.Std() != time.Hour || z.Republish.Std() != 20*time.Minute {
		t.Fatalf("zero config resolver: %+v", z)
	}
	var d Config
	d.Resolver.Mode = "dht"
	d.Resolver.Cache.MaxAge = config.Duration(time.Minute)
	got := d.WithDefaults().Resolver
	if len(got.Listen) != 1 || got.Listen[0] != DefaultDHTListen || got.Cache.MaxAge.Std() != time.Minute {
		t.Fatalf("dht resolver: %+v", got)
	}
}
