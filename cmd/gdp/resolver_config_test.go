package main

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/resolver"
)

// TestDeployResolverYAML keeps deploy/resolver.yaml loadable and its
// documented defaults true.
func TestDeployResolverYAML(t *testing.T) {
	cfg, err := loadResolverConfig("../../deploy/resolver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Resolver
	if r.Mode != "dht" || cfg.API != "127.0.0.1:8021" || r.Quorum != 1 || r.MinPuts != 3 ||
		r.RecordAge.Std() != time.Hour || r.Republish.Std() != 20*time.Minute || r.Cache.Size != 65536 {
		t.Fatalf("deploy/resolver.yaml drifted from the defaults: %+v", cfg)
	}
}

// TestCheckDHTListen: a DHT listen address in use stops gdp router (mode
// dht) and gdp resolver before libp2p starts, with an error naming the
// key and the address whose stopped line gets the address-in-use fix;
// free addresses and mode static pass (Session 18).
func TestCheckDHTListen(t *testing.T) {
	held, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, port, _ := net.SplitHostPort(held.LocalAddr().String())
	inUse := "/ip4/127.0.0.1/udp/" + port + "/quic-v1"
	err = checkDHTListen(resolver.Config{Mode: "dht", Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1", inUse}})
	if err == nil || !strings.Contains(err.Error(), "resolver.listen udp/127.0.0.1:"+port) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("DHT listen in use: %v, want an error naming resolver.listen and the address", err)
	}
	if fix := stopFix(err, "router"); !strings.Contains(fix, "another process holds that address") {
		t.Fatalf("stopped line's fix for %v: %q", err, fix)
	}
	err = checkDHTListen(resolver.Config{Mode: "dht", Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		Global: &resolver.GlobalConfig{Listen: []string{inUse}}})
	if err == nil || !strings.Contains(err.Error(), "resolver.global.listen") {
		t.Fatalf("global DHT listen in use: %v, want an error naming resolver.global.listen", err)
	}
	if err := checkDHTListen(resolver.Config{Mode: "static", Listen: []string{inUse}}); err != nil {
		t.Fatalf("mode static: %v, want no check", err)
	}
}
