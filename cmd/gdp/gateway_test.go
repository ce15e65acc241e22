package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/gateway"
)

// TestGatewayConfigFromDeploy: the shipped deploy/gateway.yaml loads, and
// a non-loopback tcp_listen is refused unless allow_non_loopback is set.
func TestGatewayConfigFromDeploy(t *testing.T) {
	cfg, err := loadGatewayConfig("../../deploy/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tunnel.IdleTimeout.Std() != 1500*time.Millisecond || cfg.TCPListen != "" || cfg.Identity != "client" || cfg.server().MaxReaders != 1024 ||
		cfg.server().MaxWriters != 256 || cfg.server().MaxKVStores != 64 || cfg.server().IdleClose != 5*time.Minute {
		t.Fatalf("defaults: %+v", cfg)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		yaml string
		ok   bool
	}{
		{`tcp_listen: "0.0.0.0:8039"`, false},
		{`tcp_listen: "192.0.2.1:8039"`, false},
		{"tcp_listen: \"0.0.0.0:8039\"\nallow_non_loopback: true", true},
		{`tcp_listen: "127.0.0.1:8039"`, true},
		{`max_body: -1`, false},
		{`max_readers: -1`, false},
		{`max_writers: -1`, false},
		{`max_kv_stores: -1`, false},
		{`idle_close: -1s`, false},
	} {
		p := filepath.Join(dir, "g.yaml")
		if err := os.WriteFile(p, []byte(tc.yaml+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := loadGatewayConfig(p)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.yaml, err)
		}
		if !tc.ok && strings.Contains(tc.yaml, "tcp_listen") && !errors.Is(err, gateway.ErrNotLoopback) {
			t.Errorf("%q: %v, want ErrNotLoopback", tc.yaml, err)
		}
	}
}

// TestGatewayDaemon runs `gdp gateway` (runGateway) against a router
// daemon: the unix socket is 0600 and wants no token, the TCP port wants
// the token file's token, and SIGHUP re-reads the token file.
func TestGatewayDaemon(t *testing.T) {
	dir := t.TempDir()
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "test domain")
	rid, _ := certs.NewIdentity(certs.KindRouter, "test router")
	uid, _ := certs.NewIdentity(certs.KindClient, "user")
	for alias, id := range map[string]*certs.Identity{"router": rid, "client": uid} {
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for alias, id := range map[string]*certs.Identity{"router": rid, "client": uid} {
		m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, alias+".member"), certs.PEMCert, m.Marshal())
	}
	writePEM(t, filepath.Join(dir, "domain.meta"), certs.PEMMetadata, dom.Meta.Marshal())
	admin, tunnel := adminPort(t), udpPort(t)
	rcfg := filepath.Join(dir, "router.yaml")
	if err := os.WriteFile(rcfg, []byte(fmt.Sprintf("listen: %q\nkeystore: %s\nmember_cert: %s\ndomain: %s\nadmin: %q\ndrain_timeout: 1s\nlog: {level: warn}\n",
		tunnel, filepath.Join(dir, "keys"), filepath.Join(dir, "router.member"), filepath.Join(dir, "domain.meta"), admin)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdone := make(chan error, 1)
	go func() { rdone <- runRouter(ctx, rcfg) }()
	defer func() { cancel(); <-rdone }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := adminName(ctx, admin); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("router did not come up")
		}
	}
	sock := filepath.Join(dir, "run", "gateway.sock")
	tokFile := filepath.Join(dir, "run", "gateway.token")
	tcp := adminPort(t)
	gcfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(gcfg, []byte(fmt.Sprintf("router: %q\nadmin: %q\nkeystore: %s\nmember_cert: %s\ndomain: %s\nsocket: %s\ntcp_listen: %q\ntoken_file: %s\nmetrics: \"off\"\nlog: {level: warn}\n",
		tunnel, admin, filepath.Join(dir, "keys"), filepath.Join(dir, "client.member"), filepath.Join(dir, "domain.meta"), sock, tcp, tokFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithCancel(ctx)
	gdone := make(chan error, 1)
	go func() { gdone <- runGateway(gctx, gcfg) }()
	defer func() {
		gcancel()
		if err := <-gdone; err != nil {
			t.Errorf("gateway exited: %v", err)
		}
	}()
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	get := func(c *http.Client, url, token string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := get(uc, "http://gdp/v1/status", ""); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway did not come up on its socket")
		}
	}
	code, st := get(uc, "http://gdp/v1/status", "")
	if code != 200 || st["identity"] != uid.Name.String() || st["router"] != rid.Name.String() {
		t.Fatalf("status over the socket: %d %v", code, st)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	tb, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(tb))
	if fi, _ := os.Stat(tokFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode())
	}
	base := "http://" + tcp + "/v1/status"
	if code, _ := get(http.DefaultClient, base, ""); code != 401 {
		t.Fatalf("tcp without a token: %d", code)
	}
	if code, _ := get(http.DefaultClient, base, tok); code != 200 {
		t.Fatalf("tcp with the token: %d", code)
	}
	// A new token in the file is in force after SIGHUP; the old one is not.
	newTok := strings.Repeat("ab", 20)
	if err := os.WriteFile(tokFile, []byte(newTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := get(http.DefaultClient, base, newTok); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new token was not taken on SIGHUP")
		}
	}
	if code, _ := get(http.DefaultClient, base, tok); code != 401 {
		t.Fatalf("the old token after SIGHUP: %d", code)
	}
}

// TestGatewayAttachesToPartnerRouter: a user of domain acme visiting a
// partner's edge router (domain beta, whose trusted_domains lists acme)
// runs its gateway with trusted_domains: [beta.meta] and is served there;
// without it the router is refused at the handshake ("untrusted domain")
// and the gateway stops with that error. Before Session 18 the gateway
// had no trusted_domains, so such a router could not be used at all
// (found in a first deployment by hand: two domains trusting each other).
func TestGatewayAttachesToPartnerRouter(t *testing.T) {
	dir := t.TempDir()
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := certs.NewIdentity(certs.KindDomain, "acme")
	beta, _ := certs.NewIdentity(certs.KindDomain, "beta")
	rid, _ := certs.NewIdentity(certs.KindRouter, "beta's edge router")
	uid, _ := certs.NewIdentity(certs.KindClient, "acme user")
	for alias, id := range map[string]*certs.Identity{"router": rid, "client": uid} {
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for _, m := range []struct {
		alias    string
		dom, who *certs.Identity
	}{{"router", beta, rid}, {"client", acme, uid}} {
		c, err := certs.IssueMember(m.dom, m.who.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, m.alias+".member"), certs.PEMCert, c.Marshal())
	}
	writePEM(t, filepath.Join(dir, "acme.meta"), certs.PEMMetadata, acme.Meta.Marshal())
	writePEM(t, filepath.Join(dir, "beta.meta"), certs.PEMMetadata, beta.Meta.Marshal())
	admin, tunnel := adminPort(t), udpPort(t)
	rcfg := filepath.Join(dir, "router.yaml")
	if err := os.WriteFile(rcfg, []byte(fmt.Sprintf("listen: %q\nkeystore: %s\nmember_cert: %s\ndomain: %s\ntrusted_domains: [%s]\nadmin: %q\ndrain_timeout: 1s\nlog: {level: warn}\n",
		tunnel, filepath.Join(dir, "keys"), filepath.Join(dir, "router.member"), filepath.Join(dir, "beta.meta"), filepath.Join(dir, "acme.meta"), admin)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdone := make(chan error, 1)
	go func() { rdone <- runRouter(ctx, rcfg) }()
	defer func() { cancel(); <-rdone }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := adminName(ctx, admin); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("router did not come up")
		}
	}
	sock := filepath.Join(dir, "run", "gateway.sock")
	gcfg := filepath.Join(dir, "gateway.yaml")
	writeCfg := func(trusted string) {
		t.Helper()
		if err := os.WriteFile(gcfg, []byte(fmt.Sprintf("router: %q\nadmin: %q\nkeystore: %s\nmember_cert: %s\ndomain: %s\n%ssocket: %s\nmetrics: \"off\"\nlog: {level: warn}\n",
			tunnel, admin, filepath.Join(dir, "keys"), filepath.Join(dir, "client.member"), filepath.Join(dir, "acme.meta"), trusted, sock)), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	writeCfg("")
	gctx, gcancel := context.WithTimeout(ctx, 60*time.Second)
	err = runGateway(gctx, gcfg)
	gcancel()
	if err == nil || !strings.Contains(err.Error(), "untrusted domain") {
		t.Fatalf("gateway without trusted_domains at the partner's router: %v, want refused (untrusted domain)", err)
	}

	writeCfg(fmt.Sprintf("trusted_domains: [%s]\n", filepath.Join(dir, "beta.meta")))
	gctx, gcancel = context.WithCancel(ctx)
	gdone := make(chan error, 1)
	go func() { gdone <- runGateway(gctx, gcfg) }()
	defer func() {
		gcancel()
		if err := <-gdone; err != nil {
			t.Errorf("gateway exited: %v", err)
		}
	}()
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var st map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-gdone:
			gdone <- err
			t.Fatalf("gateway with trusted_domains [beta] stopped: %v", err)
		default:
		}
		if resp, err := uc.Get("http://gdp/v1/status"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway with trusted_domains [beta] did not come up on its socket")
		}
	}
	if st["identity"] != uid.Name.String() || st["router"] != rid.Name.String() {
		t.Fatalf("status: %v, want acme's user attached to beta's router %s", st, rid.Name)
	}
}
