package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/config"
)

// TestDeployCapsuledYAML: the shipped example loads with the strict loader.
func TestDeployCapsuledYAML(t *testing.T) {
	cfg, err := loadCapsuledConfig(filepath.Join("..", "..", "deploy", "capsuled.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine != "pebble" || cfg.MaxData != 56000 || cfg.SyncInterval.Std() != time.Second || cfg.Identity != "capsuled" {
		t.Fatalf("unexpected values: %+v", cfg)
	}
	sc, err := cfg.server()
	if err != nil || sc.PeerTimeout != 2*time.Second || sc.SyncParallel != 16 || sc.SyncWindow != 4 || sc.SyncAnswersPerPeer != 4 || sc.PeerBackoff != 30*time.Second || sc.PossessionInterval != time.Minute ||
		sc.PossessionSamples != 16 ||
		sc.Placement.MaxPerOwner != 1024 || sc.Placement.MaxReplicas != 7 || sc.Placement.MaxPlacements != 65536 || len(sc.Placement.Owners) != 0 {
		t.Fatalf("unexpected server values: %+v %v", sc, err)
	}
	cfg.Placement.Owners = []string{"not a key"}
	if _, err := cfg.server(); err == nil {
		t.Fatal("a malformed owner key was accepted")
	}
	cfg.Placement.Owners = nil
	if cfg.RtCertLifetime.Std() != time.Hour {
		t.Fatalf("rtcert_lifetime %s, want the documented 1h", cfg.RtCertLifetime.Std())
	}
	cfg.RtCertLifetime = config.Duration(2 * time.Second)
	if err := validateCapsuledConfig(cfg); err == nil || !strings.Contains(err.Error(), "rtcert_lifetime 2s: at least 5s") {
		t.Fatalf("rtcert_lifetime 2s: %v", err)
	}
	cfg.RtCertLifetime = config.Duration(time.Hour)
	// pprof: off by default, and only ever on a loopback metrics address
	if cfg.Pprof {
		t.Fatal("pprof is on by default")
	}
	cfg.Pprof = true
	for addr, want := range map[string]string{"127.0.0.1:8029": "", "[::1]:8029": "", "localhost:8029": "",
		"0.0.0.0:8029": "pprof: true needs metrics on a loopback address", "192.0.2.1:8029": "pprof: true needs metrics on a loopback address",
		":8029": "pprof: true needs metrics on a loopback address", "off": "pprof: true needs metrics"} {
		cfg.Metrics = addr
		err := validateCapsuledConfig(cfg)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("pprof: true with metrics %q: %v, want %q", addr, err, want)
		}
	}
}

// TestCapsuleCLI runs what an operator and a user would: a router, one
// capsule server in-process and one as `gdp capsuled --config`, then
// `gdp capsule create|append|read|tail|info|verify` with the built binary,
// and `tail -f` following a subscription.
func TestCapsuleCLI(t *testing.T) {
	// The router, and store1 in-process.
	w := newCLIWorld(t, []string{"store1"}, map[string]certs.Kind{"capsuled": certs.KindServer})
	dir, bin, ids, node := w.dir, w.bin, w.ids, w.node

	// The second server: gdp capsuled --config.
	conf := fmt.Sprintf("router: %q\nrouter_name: %q\nkeystore: %q\nidentity: capsuled\nmember_cert: %q\ndomain: %q\ndir: %q\nmetrics: \"off\"\nsync_interval: 300ms\nlog:\n  level: warn\n",
		node.Addr(), node.Router.Name().String(), filepath.Join(dir, "keys"), filepath.Join(dir, "capsuled.member"),
		filepath.Join(dir, "domain.meta"), filepath.Join(dir, "capsuled-data"))
	cfgPath := filepath.Join(dir, "capsuled.yaml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(bin, "capsuled", "--config", cfgPath)
	daemon.Stderr = os.Stderr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = daemon.Process.Kill(); _ = daemon.Wait() }()
	for deadline := time.Now().Add(15 * time.Second); len(node.Router.FIB().Lookup(ids["capsuled"].Name)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("gdp capsuled did not attach")
		}
	}

	gdp := func(stdin string, args ...string) string {
		t.Helper()
		cmd := w.command(args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gdp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var created struct {
		Capsule  string   `json:"capsule"`
		Replicas []string `json:"replicas"`
	}
	out := gdp("", "capsule", "create", "--owner", "alice", "--writer", "alice-writer", "--desc", "cli log",
		"--servers", ids["store1"].Name.String()+","+ids["capsuled"].Name.String(), "--w", "2", "--json")
	if err := json.Unmarshal([]byte(out), &created); err != nil || len(created.Replicas) != 2 {
		t.Fatalf("create: %v\n%s", err, out)
	}
	name := created.Capsule

	var appended struct {
		First, Last uint64
		Acks        int
		Durable     bool `json:"durable"`
		Receipts    []struct {
			Server    string `json:"server"`
			Seqno     uint64 `json:"seqno"`
			Heartbeat string `json:"heartbeat_hash"`
			Signature string `json:"signature"`
			Receipt   string `json:"receipt"`
		} `json:"receipts"`
	}
	out = gdp("", "capsule", "append", name, "--writer", "alice-writer", "--data", "one", "--data", "two", "--json")
	if err := json.Unmarshal([]byte(out), &appended); err != nil || appended.Last != 2 || !appended.Durable || appended.Acks != 2 {
		t.Fatalf("append: %v\n%s", err, out)
	}
	// The receipts are the proof of durability: one per server, each the
	// server's own Ed25519 signature (checked here with the server's public
	// key over a Sig_structure built by hand) over the capsule, seqno 2 and
	// the server's name.
	if len(appended.Receipts) != 2 {
		t.Fatalf("append printed %d receipts:\n%s", len(appended.Receipts), out)
	}
	seen := map[string]bool{}
	for _, r := range appended.Receipts {
		var key ed25519.PublicKey
		for _, id := range []string{"store1", "capsuled"} {
			if ids[id].Name.String() == r.Server {
				key = ids[id].Public()
			}
		}
		raw, _ := hex.DecodeString(r.Receipt)
		rc, err := capsule.UnmarshalReceipt(raw)
		if key == nil || seen[r.Server] || err != nil || r.Seqno != 2 || rc.Seqno != 2 || rc.Server.String() != r.Server ||
			rc.Capsule.String() != name || hex.EncodeToString(rc.Sig) != r.Signature || rc.Heartbeat.String() != r.Heartbeat {
			t.Fatalf("receipt %+v: %v", r, err)
		}
		seen[r.Server] = true
		body := rc.Body()
		si := append([]byte{0x84, 0x6a}, "Signature1"...)
		si = append(si, 0x43, 0xa1, 0x01, 0x27, 0x40+byte(len(capsule.ReceiptAAD)))
		si = append(si, capsule.ReceiptAAD...)
		si = append(si, 0x58, byte(len(body)))
		si = append(si, body...)
		if !ed25519.Verify(key, si, rc.Sig) {
			t.Fatalf("receipt of %s does not verify under the server's key", r.Server)
		}
	}
	out = gdp("three\nfour\nfive\n", "capsule", "append", name, "--writer", "alice-writer")
	if !strings.Contains(out, "appended 3..5") || !strings.Contains(out, "met=true") {
		t.Fatalf("append from stdin:\n%s", out)
	}

	out = gdp("", "capsule", "read", name, "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"one", "two", "three", "four", "five"}
	if len(lines) != len(want) {
		t.Fatalf("read %d records:\n%s", len(lines), out)
	}
	for i, l := range lines {
		var r recordJSON
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Seqno != uint64(i+1) || r.Data != want[i] {
			t.Fatalf("record %d: %v %q", i+1, err, l)
		}
	}
	// --progress=always: the bar is drawn on stderr; stdout holds the same
	// records, byte for byte.
	pc2 := w.command("capsule", "read", name, "--json", "--progress=always")
	var barOut strings.Builder
	pc2.Stderr = &barOut
	if stdout, err := pc2.Output(); err != nil || string(stdout) != out || !strings.Contains(barOut.String(), "5 / 5") {
		t.Fatalf("read --progress=always: %v\nstdout:\n%s\nstderr:\n%q", err, stdout, barOut.String())
	}
	if out = gdp("", "capsule", "tail", name, "-n", "2"); !strings.Contains(out, "4\t") || !strings.Contains(out, "five") || strings.Contains(out, "three") {
		t.Fatalf("tail -n 2:\n%s", out)
	}
	var info capsuleJSON
	out = gdp("", "capsule", "info", name, "--json")
	if err := json.Unmarshal([]byte(out), &info); err != nil || !info.OK || len(info.Replicas) != 2 || info.Replicas[0].Head != 5 || info.Replicas[1].Head != 5 {
		t.Fatalf("info: %v\n%s", err, out)
	}
	if out = gdp("", "capsule", "verify", name); strings.Count(out, "5 entries verified") != 2 {
		t.Fatalf("verify:\n%s", out)
	}

	// tail -f follows a subscription.
	follow := w.command("capsule", "tail", name, "-n", "1", "-f")
	pipe, _ := follow.StdoutPipe()
	follow.Stderr = os.Stderr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()
	got := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			got <- sc.Text()
		}
	}()
	// It prints the last record once it has read the head; whatever is
	// written from then on comes through the subscription.
	select {
	case l := <-got:
		if !strings.HasPrefix(l, "5\t") {
			t.Fatalf("tail -n 1 -f printed %q first", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tail -f printed nothing: not even the last record")
	}
	gdp("", "capsule", "append", name, "--writer", "alice-writer", "--data", "six")
	select {
	case l := <-got:
		if !strings.HasPrefix(l, "6\t") || !strings.HasSuffix(l, "six") {
			t.Fatalf("tail -f printed %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail -f printed nothing: record 6 did not come through the subscription")
	}

	// SIGTERM drains gdp capsuled.
	_ = daemon.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- daemon.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gdp capsuled exited: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gdp capsuled did not stop on SIGTERM")
	}
}
