package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// TestKVCLI runs `gdp kv put|get|del|ls|history` with the built binary
// against a router and a capsule server: reads as of a seqno and of a time
// return exactly what was current then, a deleted key is an error now and
// readable before, and bad input (--as-of, a missing key) is a clear
// error with exit status 1.
func TestKVCLI(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gdp")
	if out, err := exec.Command(goTool(t), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dom, _ := certs.NewIdentity(certs.KindDomain, "kv cli domain")
	now := time.Now()
	member := func(id *certs.Identity) *certs.Cert {
		m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ids := map[string]*certs.Identity{}
	for alias, kind := range map[string]certs.Kind{"router": certs.KindRouter, "store1": certs.KindServer,
		"client": certs.KindClient, "alice": certs.KindClient, "alice-writer": certs.KindClient} {
		id, err := certs.NewIdentity(kind, alias)
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.Save(alias, id); err != nil {
			t.Fatal(err)
		}
		ids[alias] = id
		writePEM(t, filepath.Join(dir, alias+".member"), certs.PEMCert, member(id).Marshal())
	}
	writePEM(t, filepath.Join(dir, "domain.meta"), certs.PEMMetadata, dom.Meta.Marshal())
	v := certs.NewVerifier(dom.Meta)
	res := resolver.NewStatic(&resolver.Verifier{Certs: v})
	defer res.Close()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node, err := router.StartNode(router.Config{Admin: "off"}, router.Deps{Identity: ids["router"], Member: member(ids["router"]),
		Domain: dom.Meta, Verifier: v, Resolver: res, Logger: zap.NewNop()}, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: ids["store1"], Member: member(ids["store1"]), Domain: dom.Meta, Conn: pc,
		Options: client.Options{InboxSize: 8192}})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c1, err := ep.Attach(ctx, node.Addr(), node.Router.Name())
	if err != nil {
		t.Fatal(err)
	}
	s1, err := capsuled.New(ctx, capsuled.Config{Dir: filepath.Join(dir, "store1")}, capsuled.Deps{Identity: ids["store1"], Client: c1})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()

	common := []string{"--router", node.Addr(), "--router-name", node.Router.Name().String(), "--keystore", filepath.Join(dir, "keys"),
		"--identity", "client", "--member", filepath.Join(dir, "client.member"), "--domain", filepath.Join(dir, "domain.meta")}
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, common...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Stdin = strings.NewReader(stdin)
		err := cmd.Run()
		if err != nil {
			return stdout.String() + stderr.String(), err
		}
		return stdout.String(), nil
	}
	gdp := func(args ...string) string {
		t.Helper()
		out, err := run("", args...)
		if err != nil {
			t.Fatalf("gdp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := run("", args...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, want) {
			t.Fatalf("gdp %s: %v, want exit 1 with %q:\n%s", strings.Join(args, " "), err, want, out)
		}
	}
	c := strings.TrimSpace(gdp("capsule", "create", "--owner", "alice", "--writer", "alice-writer",
		"--servers", ids["store1"].Name.String(), "--w", "1"))
	put := func(k, v string) uint64 {
		t.Helper()
		var out struct {
			Key     string
			Seqno   uint64
			Durable bool
		}
		s := gdp("kv", "put", c, k, v, "--writer", "alice-writer", "--json")
		if err := json.Unmarshal([]byte(s), &out); err != nil || out.Key != k || out.Seqno == 0 || !out.Durable {
			t.Fatalf("put %s: %v %s", k, err, s)
		}
		return out.Seqno
	}
	red := put("colour", "red")
	time.Sleep(30 * time.Millisecond)
	between := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(30 * time.Millisecond)
	green := put("colour", "green")
	put("shape", "round")
	if out, err := run("tab\there\n", "kv", "put", c, "raw", "-", "--writer", "alice-writer"); err != nil || !strings.HasPrefix(out, "raw\tseqno ") {
		t.Fatalf("put from stdin: %v %s", err, out)
	}
	if out := gdp("kv", "del", c, "colour", "--writer", "alice-writer"); !strings.HasPrefix(out, "colour\tdeleted\tseqno ") {
		t.Fatalf("del: %q", out)
	}

	for _, tc := range []struct {
		asOf, want string
	}{{itoa(red), "red"}, {itoa(green), "green"}, {between, "red"}, {itoa(green + 1), "green"}} {
		if out := gdp("kv", "get", c, "colour", "--as-of", tc.asOf); out != tc.want {
			t.Fatalf("get colour --as-of %s: %q, want %q", tc.asOf, out, tc.want)
		}
	}
	fails("key not found", "kv", "get", c, "colour")
	if out := gdp("kv", "get", c, "raw"); out != "tab\there\n" {
		t.Fatalf("get raw: %q", out)
	}
	var got struct {
		Value string
		Seqno uint64
		At    uint64
	}
	if err := json.Unmarshal([]byte(gdp("kv", "get", c, "colour", "--as-of", itoa(green), "--json")), &got); err != nil ||
		got.Value != "green" || got.Seqno != green || got.At != green {
		t.Fatalf("get --json: %+v %v", got, err)
	}
	if out := gdp("kv", "ls", c); out != "raw\t4\t\"tab\\there\\n\"\nshape\t3\tround\n" {
		t.Fatalf("ls now:\n%q", out)
	}
	if out := gdp("kv", "ls", c, "col", "--as-of", itoa(green)); out != "colour\t2\tgreen\n" {
		t.Fatalf("ls col --as-of %d:\n%q", green, out)
	}
	hist := gdp("kv", "history", c, "colour")
	if lines := strings.Split(strings.TrimSpace(hist), "\n"); len(lines) != 3 || !strings.HasSuffix(lines[0], "\tred") ||
		!strings.HasSuffix(lines[1], "\tgreen") || !strings.HasSuffix(lines[2], "\t(deleted)") {
		t.Fatalf("history:\n%s", hist)
	}
	fails("--as-of", "kv", "get", c, "colour", "--as-of", "yesterday")
	fails("--as-of", "kv", "get", c, "colour", "--as-of", "0")
	fails("key not found", "kv", "history", c, "never")
	fails("nothing to delete", "kv", "del", c, "never", "--writer", "alice-writer")
	fails("key not found", "kv", "get", c, "shape", "--as-of", itoa(red))
}
