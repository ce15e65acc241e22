package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDeb builds gdp (static), packages it, and checks the .deb the way
// dpkg sees it: control fields, conffiles, every file with its mode, a
// static binary that runs, and units that pass systemd-analyze verify.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdp")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed (apt-get install dpkg): cannot inspect the .deb")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gdp")
	gobuild := exec.Command(goTool, "build", "-trimpath", "-o", bin, "../../cmd/gdp")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	deb, err := build(bin, "..", "1.2.3", "amd64", filepath.Join(dir, "dist"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "gdpnet_1.2.3_amd64.deb" {
		t.Errorf("file name %s", filepath.Base(deb))
	}
	info, err := exec.Command("dpkg-deb", "-I", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -I: %v\n%s", err, info)
	}
	for _, want := range []string{"Package: gdpnet", "Version: 1.2.3", "Architecture: amd64", "Section: net",
		"Maintainer: gdpnet", "Description: Global Data Plane", "postinst", "conffiles"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("dpkg-deb -I: no %q in\n%s", want, info)
		}
	}
	ctl := filepath.Join(dir, "control")
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	conf, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	for _, c := range []string{"router", "resolver", "capsuled", "gateway"} {
		if !strings.Contains(string(conf), "/etc/gdp/"+c+".yaml\n") {
			t.Errorf("conffiles lacks /etc/gdp/%s.yaml:\n%s", c, conf)
		}
	}
	if st, err := os.Stat(filepath.Join(ctl, "postinst")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("postinst: %v %v", st, err)
	} else if b, _ := os.ReadFile(filepath.Join(ctl, "postinst")); !strings.Contains(string(b), "systemd-sysusers /usr/lib/sysusers.d/gdp.conf") {
		t.Errorf("postinst does not create the gdp user:\n%s", b)
	}

	root := filepath.Join(dir, "root")
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	want := map[string]os.FileMode{
		"usr/bin/gdp": 0o755,
		"usr/lib/systemd/system/gdp-router.service":    0o644,
		"usr/lib/systemd/system/gdp-resolver.service":  0o644,
		"usr/lib/systemd/system/gdp-capsuled.service":  0o644,
		"usr/lib/sysusers.d/gdp.conf":                  0o644,
		"etc/gdp/router.yaml":                          0o644,
		"etc/gdp/resolver.yaml":                        0o644,
		"etc/gdp/capsuled.yaml":                        0o644,
		"etc/gdp/gateway.yaml":                         0o644,
		"usr/share/bash-completion/completions/gdp":    0o644,
		"usr/share/zsh/vendor-completions/_gdp":        0o644,
		"usr/share/fish/vendor_completions.d/gdp.fish": 0o644,
		"usr/share/man/man1/gdp.1":                     0o644,
		"usr/share/man/man1/gdp-router.1":              0o644,
		"usr/share/man/man1/gdp-capsule-append.1":      0o644,
	}
	for f, mode := range want {
		st, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Errorf("missing /%s", f)
			continue
		}
		if st.Mode().Perm() != mode {
			t.Errorf("/%s: mode %v, want %v", f, st.Mode().Perm(), mode)
		}
	}
	// Completions and man pages are real ones.
	for f, s := range map[string]string{"usr/share/bash-completion/completions/gdp": "__start_gdp",
		"usr/share/zsh/vendor-completions/_gdp": "#compdef gdp", "usr/share/fish/vendor_completions.d/gdp.fish": "complete -c gdp",
		"usr/share/man/man1/gdp-router.1": ".TH \"GDP\" \"1\"", "etc/gdp/router.yaml": "admin:"} {
		if b, _ := os.ReadFile(filepath.Join(root, f)); !strings.Contains(string(b), s) {
			t.Errorf("/%s lacks %q", f, s)
		}
	}
	// The packaged binary is static and runs.
	if out, err := exec.Command(filepath.Join(root, "usr/bin/gdp"), "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "gdp") {
		t.Errorf("gdp version: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "usr/bin/gdp")); err == nil && strings.Contains(string(b[:min(len(b), 4096)]), "ld-linux") {
		t.Errorf("/usr/bin/gdp is dynamically linked (build with CGO_ENABLED=0)")
	}
	// The units, verified as installed (ExecStart found under the root).
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units not verified")
		return
	}
	// ExecReload runs /bin/kill, which the package does not ship: give the
	// throwaway root the host's so verify checks the rest.
	if k, err := exec.LookPath("kill"); err == nil {
		if b, err := os.ReadFile(k); err == nil {
			_ = os.MkdirAll(filepath.Join(root, "bin"), 0o755)
			_ = os.WriteFile(filepath.Join(root, "bin", "kill"), b, 0o755)
		}
	}
	var units []string
	for _, u := range []string{"gdp-router.service", "gdp-resolver.service", "gdp-capsuled.service"} {
		units = append(units, filepath.Join(root, "usr/lib/systemd/system", u))
	}
	cmd := exec.Command(sa, append([]string{"verify", "--root=" + root, "--man=no", "--recursive-errors=no"}, units...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze verify:\n%s", out)
}
