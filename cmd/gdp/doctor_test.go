package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

func TestCheckSocketBuffer(t *testing.T) {
	tests := []struct {
		name       string
		value      string // "" : no file
		wantStatus string
		wantDetail string
		wantFix    bool
	}{
		{"linux default", "212992\n", checkWarn, "below the 7 MiB quic-go asks for", true},
		{"enough for quic only", "7340032\n", checkWarn, "below the raw socket's 8 MiB", true},
		{"as the docs say", "8388608\n", checkOK, "8388608 (8 MiB)", false},
		{"more", "16777216\n", checkOK, "16 MiB", false},
		{"not linux", "", checkWarn, "cannot read it", false},
		{"garbage", "lots\n", checkWarn, `unreadable value "lots"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := t.TempDir()
			if tt.value != "" {
				dir := filepath.Join(proc, "net", "core")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "rmem_max"), []byte(tt.value), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := checkSocketBuffer(proc, "rmem_max")
			if r.Check != "net.core.rmem_max" || r.Status != tt.wantStatus || !strings.Contains(r.Detail, tt.wantDetail) {
				t.Fatalf("got %+v; want status %s, detail containing %q", r, tt.wantStatus, tt.wantDetail)
			}
			if wantFix := "sysctl -w net.core.rmem_max=8388608"; tt.wantFix != strings.Contains(r.Fix, wantFix) {
				t.Fatalf("fix %q: want it to contain %q: %v", r.Fix, wantFix, tt.wantFix)
			}
		})
	}
}

// TestDoctorHelperProcess is `gdp` itself when run by runDoctorCLI.
func TestDoctorHelperProcess(t *testing.T) {
	if os.Getenv("GDP_DOCTOR_HELPER") != "1" {
		return
	}
	i := 0
	for i < len(os.Args) && os.Args[i] != "--" {
		i++
	}
	os.Args = append([]string{"gdp"}, os.Args[i+1:]...)
	main()
	os.Exit(0)
}

// runDoctorCLI runs `gdp doctor ARGS...` as a process and returns its
// stdout and exit status.
func runDoctorCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestDoctorHelperProcess$", "--", "doctor"}, args...)...)
	cmd.Env = append(append(os.Environ(), "GDP_DOCTOR_HELPER=1", "GDP_KEYSTORE="), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out) + stderr.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("gdp doctor: %v", err)
	}
	return string(out), 0
}

// findLine returns the report line of check, failing the test if there is
// none.
func findLine(t *testing.T, out, check string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 6 && strings.HasPrefix(l[6:], check+": ") {
			return l
		}
	}
	t.Fatalf("no %q line in:\n%s", check, out)
	return ""
}

// TestDoctorCLI: what an operator sees from `gdp doctor` on a keystore with
// a good key, then with a key left readable (0644), then on configs.
func TestDoctorCLI(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	ks, err := certs.OpenKeystore(keys)
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "doctor domain")
	rt, _ := certs.NewIdentity(certs.KindRouter, "doctor router")
	if err := ks.Save("edge1", rt); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "domain.meta"), certs.PEMMetadata, dom.Meta.Marshal())
	member := func(file string, notAfter time.Duration) {
		now := time.Now()
		m, err := certs.IssueMember(dom, rt.Name, now.Add(-time.Hour), now.Add(notAfter))
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, file), certs.PEMCert, m.Marshal())
	}
	member("long.member", 72*time.Hour)
	member("short.member", 2*time.Hour)

	// A good keystore, found through $GDP_KEYSTORE: exit 0.
	out, code := runDoctorCLI(t, []string{"GDP_KEYSTORE=" + keys})
	if code != 0 {
		t.Fatalf("good keystore: exit %d\n%s", code, out)
	}
	if l := findLine(t, out, "key edge1"); !strings.HasPrefix(l, "ok    key edge1: router "+rt.Name.String()+" loads") {
		t.Errorf("good key: %q", l)
	}
	if l := findLine(t, out, "keystore"); !strings.HasPrefix(l, "ok    keystore: "+keys+", 1 keys") {
		t.Errorf("keystore: %q", l)
	}
	for _, c := range []string{"net.core.rmem_max", "net.core.wmem_max", "udp offload"} {
		if l := findLine(t, out, c); strings.HasPrefix(l, "fail") {
			t.Errorf("%s fails: %q", c, l)
		}
	}

	// A second key readable by everyone: that line fails, with the fix, and
	// the exit status is 1.
	loose, _ := certs.NewIdentity(certs.KindClient, "loose")
	if err := ks.Save("loose", loose); err != nil {
		t.Fatal(err)
	}
	lk := filepath.Join(keys, "loose.key")
	if err := os.Chmod(lk, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = runDoctorCLI(t, nil, "--keystore", keys)
	if code != 1 {
		t.Fatalf("0644 key: exit %d, want 1\n%s", code, out)
	}
	want := fmt.Sprintf("fail  key loose: %s is mode 0644, readable by group or others: the daemons refuse it — fix: chmod 600 %s", lk, lk)
	if l := findLine(t, out, "key loose"); l != want {
		t.Errorf("0644 key:\n got %q\nwant %q", l, want)
	}
	if !strings.HasPrefix(findLine(t, out, "key edge1"), "ok") || !strings.Contains(out, "1 fail\n") || !strings.Contains(out, "gdp: 1 of 7 checks failed") {
		t.Errorf("0644 key report:\n%s", out)
	}

	// --json: the same, as data.
	out, code = runDoctorCLI(t, nil, "--keystore", keys, "--json")
	var rs []checkResult
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "]")+1]), &rs); err != nil || code != 1 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	got := map[string]checkResult{}
	for _, r := range rs {
		got[r.Check] = r
	}
	if r := got["key loose"]; r.Status != checkFail || r.Fix != "chmod 600 "+lk {
		t.Errorf("--json key loose: %+v", r)
	}
	if r := got["key edge1"]; r.Status != checkOK {
		t.Errorf("--json key edge1: %+v", r)
	}
	if err := os.Chmod(lk, 0o600); err != nil {
		t.Fatal(err)
	}

	// Router configs, loaded by the router's own loader.
	writeConf := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := fmt.Sprintf("keystore: %q\ndomain: %q\n", keys, filepath.Join(dir, "domain.meta"))
	edge1 := "identity: edge1\n"
	tests := []struct {
		name     string
		conf     string
		wantCode int
		check    string
		want     string // prefix of the check's line
		wantIn   string // and a part of it
	}{
		{"unknown key", base + edge1 + "member_cert: " + filepath.Join(dir, "long.member") + "\nlisten_adress: \"[::]:8009\"\n",
			1, "config", "fail  config: config ", `unknown key "listen_adress"`},
		{"good", base + edge1 + "member_cert: " + filepath.Join(dir, "long.member") + "\n",
			0, "membership", "ok    membership: " + filepath.Join(dir, "long.member") + " valid for 71h59m more (until ", ""},
		{"expiring", base + edge1 + "member_cert: " + filepath.Join(dir, "short.member") + "\n",
			0, "membership", "warn  membership: " + filepath.Join(dir, "short.member") + " valid, but expires in 1h59m", "reloads the replaced file on its own"},
		{"missing membership", base + edge1 + "member_cert: " + filepath.Join(dir, "none.member") + "\n",
			1, "membership", "fail  membership: " + filepath.Join(dir, "none.member"), "gdp cert issue member"},
		{"missing identity", base + "member_cert: " + filepath.Join(dir, "long.member") + "\nidentity: core9\n",
			1, "identity", `fail  identity: router identity "core9"`, "fix: gdp cert --keystore " + keys + " keygen --kind router --alias core9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConf(strings.ReplaceAll(tt.name, " ", "-")+".yaml", tt.conf)
			out, code := runDoctorCLI(t, nil, "--config", p, "--role", "router")
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if l := findLine(t, out, tt.check); !strings.HasPrefix(l, tt.want) || !strings.Contains(l, tt.wantIn) {
				t.Errorf("%s line:\n got %q\nwant prefix %q containing %q", tt.check, l, tt.want, tt.wantIn)
			}
		})
	}

	// --config without --role is a usage error.
	if out, code := runDoctorCLI(t, nil, "--config", filepath.Join(dir, "good.yaml")); code != 1 || !strings.Contains(out, "--config needs --role") {
		t.Errorf("--config without --role: exit %d\n%s", code, out)
	}
}
