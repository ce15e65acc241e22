package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/handoffd"
)

// TestHandoffCLI: an operator's session — bases added to both cloudlets'
// caches, listed and verified; the agent (gdp handoffd, TCP only) started
// from a YAML file; gdp handoff send with a report and plots; the image at
// the agent is the current image; a corrupted base found by verify; rm.
func TestHandoffCLI(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	base := make([]byte, 4<<20)
	for i := 0; i < len(base); i += 3 {
		base[i] = byte('a' + rng.IntN(6))
	}
	cur := append([]byte(nil), base...)
	for i := 0; i < 300; i++ {
		off := rng.IntN(len(cur) - 100)
		copy(cur[off:], fmt.Sprintf("changed block %d ", i))
	}
	basePath, curPath := filepath.Join(dir, "base.img"), filepath.Join(dir, "cur.img")
	os.WriteFile(basePath, base, 0o644)
	os.WriteFile(curPath, cur, 0o644)
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	id := strings.TrimSpace(runGDP(t, "handoff", "base", "add", "--cache", cacheA, "--label", "test disk", basePath))
	if id2 := strings.TrimSpace(runGDP(t, "handoff", "base", "add", "--cache", cacheB, basePath)); id2 != id {
		t.Fatalf("same image, two ids: %s %s", id, id2)
	}
	if out := runGDP(t, "handoff", "base", "ls", "--cache", cacheA); !strings.Contains(out, id) || !strings.Contains(out, "test disk") {
		t.Fatalf("ls:\n%s", out)
	}
	if out := runGDP(t, "handoff", "base", "verify", "--cache", cacheA); !strings.Contains(out, "ok  "+id) {
		t.Fatalf("verify:\n%s", out)
	}

	addr := freePort(t)
	cfg := filepath.Join(dir, "handoffd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("cache: %s\ndir: %s\noverlay: false\nlisten_tcp: %s\nmax_concurrent: 2\nmax_per_peer: 2\nmetrics: \"off\"\nlog: {level: warn}\n",
		cacheB, filepath.Join(dir, "received"), addr)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runHandoffd(ctx, cfg) }()
	defer func() { cancel(); <-done }()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("agent never listened")
		}
		time.Sleep(50 * time.Millisecond)
	}
	report := filepath.Join(dir, "report.json")
	out := runGDP(t, "handoff", "send", "--cache", cacheA, "--tcp", addr, "--disk", curPath, "--disk-base", id[:12],
		"--report", report, "--plot", filepath.Join(dir, "plot.svg"), "--progress", "never")
	if !strings.Contains(out, "committed") || !strings.Contains(out, "on the wire") {
		t.Fatalf("send:\n%s", out)
	}
	var rep handoffd.Report
	b, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("report: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "received", rep.ID, "disk"))
	if err != nil || string(got) != string(cur) {
		t.Fatalf("received disk differs from the current image (%v)", err)
	}
	if rep.WireBytes <= 0 || rep.WireBytes >= rep.ChangedBytes || len(rep.Modes) == 0 || len(rep.Stages) != 4 {
		t.Fatalf("report: wire %d changed %d modes %v stages %d", rep.WireBytes, rep.ChangedBytes, rep.Modes, len(rep.Stages))
	}
	if fi, err := os.Stat(filepath.Join(dir, "plot.svg")); err != nil || fi.Size() < 1000 {
		t.Fatalf("plot: %v", err)
	}
	if err := rep.Plot(filepath.Join(dir, "plot.png")); err != nil {
		t.Fatal(err)
	}

	// --disk-fs ext4 on an image that is no ext4 file system: refused, saying so.
	var fout strings.Builder
	rootCmd.SetOut(&fout)
	rootCmd.SetErr(&fout)
	rootCmd.SetArgs([]string{"handoff", "send", "--cache", cacheA, "--tcp", addr, "--disk", curPath, "--disk-base", id[:12], "--disk-fs", "ext4", "--progress", "never"})
	if err := rootCmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "no ext2/3/4 superblock") {
		t.Fatalf("--disk-fs ext4 on a plain image: %v\n%s", err, fout.String())
	}
	rootCmd.SetArgs(nil)

	// A corrupted cached base: verify says which and fails.
	f, _ := os.OpenFile(filepath.Join(cacheA, id, "image"), os.O_RDWR, 0)
	f.WriteAt([]byte("X"), 12345)
	f.Close()
	var vout strings.Builder
	rootCmd.SetOut(&vout)
	rootCmd.SetErr(&vout)
	rootCmd.SetArgs([]string{"handoff", "base", "verify", "--cache", cacheA})
	if err := rootCmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(vout.String(), "BAD "+id) {
		t.Fatalf("verify of a corrupted base: %v\n%s", err, vout.String())
	}
	rootCmd.SetArgs(nil)
	runGDP(t, "handoff", "base", "rm", "--cache", cacheA, id[:10])
	if out := runGDP(t, "handoff", "base", "ls", "--cache", cacheA); strings.Contains(out, id) {
		t.Fatalf("ls after rm:\n%s", out)
	}
}

// TestDeployHandoffdYAML: the shipped deploy/handoffd.yaml loads, and its
// values are the defaults the code applies.
func TestDeployHandoffdYAML(t *testing.T) {
	cfg, err := loadHandoffdConfig("../../deploy/handoffd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := loadHandoffdConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache != def.Cache || cfg.Dir != def.Dir || cfg.Metrics != def.Metrics || *cfg.Overlay != *def.Overlay || cfg.Identity != def.Identity {
		t.Fatalf("deploy/handoffd.yaml %+v differs from the defaults %+v", cfg, def)
	}
	if _, err := loadHandoffdConfigFrom(t, "overlay: false\n"); err == nil {
		t.Fatal("an agent accepting nothing was accepted")
	}
	if _, err := loadHandoffdConfigFrom(t, "max_concurrent: -1\nlisten_tcp: 127.0.0.1:0\n"); err == nil {
		t.Fatal("a negative limit was accepted")
	}
	if cfg.MinFreeBytes != handoffd.DefaultMinFreeBytes || cfg.MaxBytesPerPeer != handoffd.DefaultMaxBytesPerPeer {
		t.Fatalf("deploy/handoffd.yaml min_free_bytes %d, max_bytes_per_peer %d: want the defaults", cfg.MinFreeBytes, cfg.MaxBytesPerPeer)
	}
	for _, y := range []string{"min_free_bytes: -1\n", "max_bytes_per_peer: -1\n"} {
		if _, err := loadHandoffdConfigFrom(t, y); err == nil {
			t.Fatalf("%q accepted", y)
		}
	}
	if _, err := loadHandoffdConfigFrom(t, "resume: true\n"); err == nil || !strings.Contains(err.Error(), "senders") {
		t.Fatalf("resume without senders: %v, want refused naming senders", err)
	}
	if _, err := loadHandoffdConfigFrom(t, "senders: [not-a-name]\n"); err == nil {
		t.Fatal("a malformed sender was accepted")
	}
	if _, err := loadHandoffdConfigFrom(t, "resume: true\nsenders: [127.0.0.1]\n"); err != nil {
		t.Fatalf("resume with a sender: %v", err)
	}
}

func loadHandoffdConfigFrom(t *testing.T, yaml string) (handoffdConfig, error) {
	p := filepath.Join(t.TempDir(), "h.yaml")
	os.WriteFile(p, []byte(yaml), 0o644)
	return loadHandoffdConfig(p)
}
