package main

import (
	"testing"
	"time"
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
