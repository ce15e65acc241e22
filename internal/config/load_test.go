package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testLog struct {
	Level string `yaml:"level"`
}

type testPeer struct {
	Name      string   `yaml:"name"`
	Keepalive Duration `yaml:"keepalive"`
}

type testConfig struct {
	Listen  string     `yaml:"listen"`
	Timeout Duration   `yaml:"timeout"`
	Log     testLog    `yaml:"log"`
	Peers   []testPeer `yaml:"peers"`
}

func defaults() testConfig {
	return testConfig{Listen: "127.0.0.1:1", Timeout: Duration(5 * time.Second), Log: testLog{Level: "info"}}
}

func TestLoad(t *testing.T) {
	got := defaults()
	if err := Load("testdata/good.yaml", &got); err != nil {
		t.Fatal(err)
	}
	if got.Listen != "127.0.0.1:8009" || got.Timeout.Std() != 90*time.Second || got.Log.Level != "debug" {
		t.Fatalf("Load = %+v", got)
	}
	if len(got.Peers) != 2 || got.Peers[0].Keepalive.Std() != 250*time.Millisecond || got.Peers[1].Keepalive.Std() != 5*time.Second {
		t.Fatalf("peers = %+v", got.Peers)
	}
}

func TestLoadEmptyKeepsDefaults(t *testing.T) {
	got := defaults()
	if err := Load("testdata/empty.yaml", &got); err != nil {
		t.Fatal(err)
	}
	if want := defaults(); got.Listen != want.Listen || got.Timeout != want.Timeout || got.Log != want.Log {
		t.Fatalf("empty file changed the defaults: %+v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "unreadable.yaml")
	if err := os.WriteFile(unreadable, []byte("listen: x\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		is   error    // errors.Is target, if any
		want []string // substrings of the message
	}{
		{"missing file", "testdata/no-such.yaml", fs.ErrNotExist, []string{"testdata/no-such.yaml", "does not exist"}},
		{"directory", "testdata", nil, []string{"config testdata:", "is a directory"}},
		{"unknown key", "testdata/unknown-key.yaml", ErrUnknownKey, []string{"unknown-key.yaml", `line 2: unknown key "timout"`}},
		{"unknown nested keys, all listed", "testdata/unknown-nested.yaml", ErrUnknownKey, []string{`line 4: unknown key "colour"`, `line 8: unknown key "weight"`}},
		{"durations", "testdata/bad-duration.yaml", nil, []string{`line 2: duration "5": want a number with a unit`, `line 5: duration "-1s": must not be negative`}},
		{"wrong type", "testdata/bad-type.yaml", nil, []string{"line 1:", "cannot unmarshal"}},
		{"syntax", "testdata/syntax.yaml", nil, []string{"syntax.yaml", "line"}},
		{"two documents", "testdata/two-docs.yaml", nil, []string{"more than one YAML document"}},
	}
	if os.Geteuid() != 0 { // root reads anything
		tests = append(tests, struct {
			name string
			path string
			is   error
			want []string
		}{"unreadable", unreadable, fs.ErrPermission, []string{"permission denied"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaults()
			err := Load(tt.path, &got)
			if err == nil {
				t.Fatalf("Load(%s) succeeded: %+v", tt.path, got)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if tt.is != ErrUnknownKey && errors.Is(err, ErrUnknownKey) {
				t.Errorf("error %q claims an unknown key", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestLoadBadDestination(t *testing.T) {
	var nilPtr *testConfig
	for _, dst := range []any{nil, testConfig{}, nilPtr} {
		if err := Load("testdata/good.yaml", dst); err == nil || !strings.Contains(err.Error(), "non-nil pointer") {
			t.Errorf("Load into %T: %v", dst, err)
		}
	}
}
