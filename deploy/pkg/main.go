// Command pkg builds the gdpnet Debian package (make deb) with nfpm used as
// a library: the static gdp binary, the systemd units and sysusers file of
// deploy/, the example configs as conffiles under /etc/gdp (where the
// units read them), shell completions and man pages generated from the
// binary's command tree.
//
//	go run ./deploy/pkg -bin bin/gdp -version 0.1.0 -out dist
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	bin := flag.String("bin", "bin/gdp", "the gdp binary to package (build it with CGO_ENABLED=0)")
	deploy := flag.String("deploy", "deploy", "the deploy/ directory: units, sysusers, example configs")
	version := flag.String("version", "0.0.0", "package version")
	arch := flag.String("arch", runtime.GOARCH, "Debian architecture (Go names: amd64, arm64)")
	out := flag.String("out", "dist", "directory the .deb is written to")
	flag.Parse()
	p, err := build(*bin, *deploy, *version, *arch, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pkg:", err)
		os.Exit(1)
	}
	fmt.Println(p)
}

// postinst creates the gdp user from the installed sysusers file and
// reloads systemd; the units are not enabled or started.
const postinst = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers /usr/lib/sysusers.d/gdp.conf
	elif ! getent passwd gdp >/dev/null; then
		adduser --system --group --home /var/lib/gdp --no-create-home gdp
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null || true
	fi
fi
`

func build(bin, deploy, version, arch, out string) (string, error) {
	gen, err := os.MkdirTemp("", "gdp-pkg-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(gen)
	var contents files.Contents
	add := func(src, dst, typ string, mode os.FileMode) {
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}})
	}
	add(bin, "/usr/bin/gdp", "", 0o755)
	for _, u := range []string{"gdp-router.service", "gdp-resolver.service", "gdp-capsuled.service"} {
		add(filepath.Join(deploy, u), "/usr/lib/systemd/system/"+u, "", 0o644)
	}
	add(filepath.Join(deploy, "gdp.sysusers.conf"), "/usr/lib/sysusers.d/gdp.conf", "", 0o644)
	for _, c := range []string{"router", "resolver", "capsuled", "gateway"} {
		add(filepath.Join(deploy, c+".yaml"), "/etc/gdp/"+c+".yaml", files.TypeConfigNoReplace, 0o644)
	}
	// Completions, from the binary itself.
	for sh, dst := range map[string]string{
		"bash": "/usr/share/bash-completion/completions/gdp",
		"zsh":  "/usr/share/zsh/vendor-completions/_gdp",
		"fish": "/usr/share/fish/vendor_completions.d/gdp.fish",
	} {
		f := filepath.Join(gen, "gdp."+sh)
		b, err := exec.Command(bin, "completion", sh).Output()
		if err != nil {
			return "", fmt.Errorf("gdp completion %s: %w", sh, err)
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return "", err
		}
		add(f, dst, "", 0o644)
	}
	man := filepath.Join(gen, "man")
	if b, err := exec.Command(bin, "man", man).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gdp man: %w: %s", err, b)
	}
	pages, err := filepath.Glob(filepath.Join(man, "*.1"))
	if err != nil || len(pages) == 0 {
		return "", fmt.Errorf("gdp man wrote no pages (%v)", err)
	}
	sort.Strings(pages)
	for _, pg := range pages {
		add(pg, "/usr/share/man/man1/"+filepath.Base(pg), "", 0o644)
	}
	script := filepath.Join(gen, "postinst")
	if err := os.WriteFile(script, []byte(postinst), 0o755); err != nil {
		return "", err
	}
	info := &nfpm.Info{
		Name: "gdpnet", Arch: arch, Platform: "linux", Version: version,
		Section: "net", Priority: "optional", Maintainer: "gdpnet <gdpnet@localhost>",
		Description: "Global Data Plane: name-routed overlay routers, resolver and capsule servers",
		Homepage:    "https://github.com/gdpnet/gdpnet",
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts:  nfpm.Scripts{PostInstall: script},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("package info: %w", err)
	}
	pkger, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	name := filepath.Join(out, pkger.ConventionalFileName(info))
	f, err := os.Create(name)
	if err != nil {
		return "", err
	}
	if err := pkger.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("deb: %w", err)
	}
	return name, f.Close()
}
