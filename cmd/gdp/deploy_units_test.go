package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The systemd units in deploy/ carry the hardening that applies to the
// daemons, reload with SIGHUP, run as the user deploy/gdp.sysusers.conf
// creates, and (where systemd-analyze is installed) rate at most 2.0.
func TestDeployUnitsHardened(t *testing.T) {
	want := map[string]string{
		"User": "gdp", "Group": "gdp", "UMask": "0077", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/gdp", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
		"ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
		"RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes",
		"SystemCallFilter": "@system-service", "SystemCallArchitectures": "native", "ExecReload": "/bin/kill -HUP $MAINPID",
		"Type": "notify",
	}
	users, err := os.ReadFile(filepath.Join("..", "..", "deploy", "gdp.sysusers.conf"))
	if err != nil || !regexp.MustCompile(`(?m)^u\s+gdp\s`).Match(users) {
		t.Errorf("deploy/gdp.sysusers.conf does not create user gdp (%v)", err)
	}
	for _, d := range []string{"router", "resolver", "capsuled"} {
		p := filepath.Join("..", "..", "deploy", "gdp-"+d+".service")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
				got[k] = append(got[k], v)
			}
		}
		for k, v := range want {
			found := false
			for _, g := range got[k] {
				found = found || g == v
			}
			if !found {
				t.Errorf("%s: no %s=%s (have %q)", p, k, v, got[k])
			}
		}
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			continue
		}
		out, err := exec.Command("systemd-analyze", "security", "--offline=true", p).CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Logf("systemd-analyze security --offline not usable here (%v): %s", err, out)
			continue
		}
		if v, _ := strconv.ParseFloat(string(m[1]), 64); v > 2.0 {
			t.Errorf("%s: systemd-analyze security rates it %v, want <= 2.0:\n%s", p, v, out)
		}
	}
}
