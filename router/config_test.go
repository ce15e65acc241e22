package router

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

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
		{"max_pdu too small", "max_pdu: 10", true},
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
			if tc.name == "unknown key" && !errors.Is(err, config.ErrUnknownKey) {
				t.Fatalf("err = %v, want ErrUnknownKey", err)
			}
		})
	}
}
