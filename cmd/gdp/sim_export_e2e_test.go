//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/gdpnet/gdpnet/sim"
)

// exportedNode is one node as its Kubernetes manifests describe it.
type exportedNode struct {
	cm     *corev1.ConfigMap
	secret *corev1.Secret
	pod    *corev1.Pod
	sim    sim.NodeConfig
}

// readManifests decodes every document of dir strictly with the
// k8s.io/api types, by object name.
func readManifests(t *testing.T, dir string) map[string]*exportedNode {
	t.Helper()
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()
	nodes := map[string]*exportedNode{}
	get := func(name string) *exportedNode {
		if nodes[name] == nil {
			nodes[name] = &exportedNode{}
		}
		return nodes[name]
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			obj, _, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: strict decode: %v", f, err)
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				get(o.Name).cm = o
				d := yaml.NewDecoder(strings.NewReader(o.Data[sim.SimFile]))
				d.KnownFields(true)
				if err := d.Decode(&get(o.Name).sim); err != nil {
					t.Fatalf("%s: sim.yaml: %v", o.Name, err)
				}
			case *corev1.Secret:
				get(o.Name).secret = o
			case *corev1.Pod:
				get(o.Name).pod = o
			}
		}
	}
	return nodes
}

// TestExportRunsInNetns: a topology exported with credentials (the
// default) runs from its exported files only. Two routers of one domain,
// a capsule server on r1, a client on r2: each node gets a network
// namespace on one bridge (a cluster's flat network), its host name in
// /etc/netns/<ns>/hosts (what ip netns exec mounts over /etc/hosts), and a
// root directory holding its ConfigMap's node.yaml (only the file-system
// prefix /var/lib/gdp rewritten to the root's) and its Secret's files at
// the paths and mode of the Pod's Secret volume, bind-mounted read-only as
// the Secret is. Each daemon runs the Pod's command. Then the routers find
// each other through their DHT (r2 bootstrapped from r1 by the exported
// peer id), the client on r2 pings the server on r1 by name, creates a
// capsule on it, appends and reads back a record. links.sh is not run:
// this kernel has no netem.
func TestExportRunsInNetns(t *testing.T) {
	netnsOrSkip(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("no ip command: %v", err)
	}
	work := t.TempDir()
	topo := filepath.Join(work, "topo.yaml")
	if err := os.WriteFile(topo, []byte(`name: e2e
nodes:
  - {name: r1, kind: router}
  - {name: r2, kind: router}
  - {name: s1, kind: server, attach: r1}
  - {name: c1, kind: client, attach: r2}
links:
  - {a: r1, b: r2, delay: 5ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(work, "manifests")
	if out, err := gdpExec("sim", "export", topo, "--k8s", man).CombinedOutput(); err != nil {
		t.Fatalf("gdp sim export: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "PRIVATE KEYS") {
		t.Fatalf("export did not say the manifests hold private keys:\n%s", out)
	}
	nodes := readManifests(t, man)
	hosts := []string{"gdp-r1", "gdp-r2", "gdp-s1", "gdp-c1"}
	for _, h := range hosts {
		if n := nodes[h]; n == nil || n.cm == nil || n.secret == nil || n.pod == nil {
			t.Fatalf("%s: configmap, secret or pod missing: %+v", h, n)
		}
	}

	// The network: namespace <p>h (hub, with the bridge) and <p>0..3.
	p := fmt.Sprintf("gdpx%d-", os.Getpid()%100000)
	ipc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	hub := p + "h"
	t.Cleanup(func() {
		for i := range hosts {
			_ = exec.Command("ip", "netns", "del", fmt.Sprintf("%s%d", p, i)).Run()
			_ = os.RemoveAll(filepath.Join("/etc/netns", fmt.Sprintf("%s%d", p, i)))
		}
		_ = exec.Command("ip", "netns", "del", hub).Run()
		_ = os.Remove("/etc/netns") // if this test made it (not when it holds others')
	})
	ipc("netns", "add", hub)
	ipc("-n", hub, "link", "add", "br0", "type", "bridge")
	ipc("-n", hub, "link", "set", "br0", "up")
	var hostsFile strings.Builder
	hostsFile.WriteString("127.0.0.1 localhost\n")
	for i, h := range hosts {
		fmt.Fprintf(&hostsFile, "10.201.0.%d %s\n", i+1, h)
	}
	for i := range hosts {
		ns := fmt.Sprintf("%s%d", p, i)
		ipc("netns", "add", ns)
		ipc("-n", ns, "link", "set", "lo", "up")
		ipc("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", fmt.Sprintf("v%d", i), "netns", hub)
		ipc("-n", ns, "addr", "add", fmt.Sprintf("10.201.0.%d/24", i+1), "dev", "eth0")
		ipc("-n", ns, "link", "set", "eth0", "up")
		ipc("-n", hub, "link", "set", fmt.Sprintf("v%d", i), "master", "br0", "up")
		etc := filepath.Join("/etc/netns", ns)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hostsFile.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Each node's root: its node.yaml and its Secret volume.
	roots := map[string]string{}
	for _, h := range hosts {
		n := nodes[h]
		root := filepath.Join(work, "root", h)
		roots[h] = root
		cfg := strings.ReplaceAll(n.cm.Data[sim.ConfigFile], "/var/lib/gdp", root+"/var/lib/gdp")
		if err := os.MkdirAll(filepath.Join(root, "etc/gdp"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc/gdp", sim.ConfigFile), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		var mount string
		var vol *corev1.SecretVolumeSource
		for _, m := range n.pod.Spec.Containers[0].VolumeMounts {
			for _, v := range n.pod.Spec.Volumes {
				if v.Name == m.Name && v.Secret != nil {
					mount, vol = m.MountPath, v.Secret
					if !m.ReadOnly {
						t.Fatalf("%s: credentials mounted writable", h)
					}
				}
			}
		}
		if mount != "/var/lib/gdp" || vol == nil || vol.SecretName != n.secret.Name || vol.DefaultMode == nil || *vol.DefaultMode != 0o400 {
			t.Fatalf("%s: credentials volume %+v at %q, want the Secret read-only at /var/lib/gdp, mode 0400", h, vol, mount)
		}
		dir := root + mount
		for _, it := range vol.Items {
			data, ok := n.secret.Data[it.Key]
			if !ok {
				t.Fatalf("%s: item %s not in the Secret", h, it.Key)
			}
			f := filepath.Join(dir, it.Path)
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, data, os.FileMode(*vol.DefaultMode)); err != nil {
				t.Fatal(err)
			}
		}
		// Read-only, as kubelet mounts a Secret: a daemon writing there
		// fails here as it would in the cluster (root ignores modes).
		readOnly(t, dir)
	}

	tmp := filepath.Join(work, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	// inNS runs this binary as gdp in host h's namespace.
	inNS := func(ctx context.Context, h string, args ...string) *exec.Cmd {
		i := 0
		for k, x := range hosts {
			if x == h {
				i = k
			}
		}
		c := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", fmt.Sprintf("%s%d", p, i), os.Args[0]}, args...)...)
		// Its temporary directory (a writer lock beside the read-only
		// keystore goes there) is the test's.
		c.Env = append(os.Environ(), "GDP_TEST_RUN_MAIN=1", "TMPDIR="+tmp)
		c.WaitDelay = 5 * time.Second
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := func(h string) {
		cmd := nodes[h].pod.Spec.Containers[0].Command
		if cmd[0] != "gdp" || cmd[len(cmd)-1] != "/etc/gdp/"+sim.ConfigFile {
			t.Fatalf("%s runs %q", h, cmd)
		}
		args := append(append([]string{}, cmd[1:len(cmd)-1]...), filepath.Join(roots[h], "etc/gdp", sim.ConfigFile))
		c := inNS(ctx, h, args...)
		logf, err := os.Create(filepath.Join(work, h+".log"))
		if err != nil {
			t.Fatal(err)
		}
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = c.Process.Kill()
				<-done
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("%s log:\n%s", h, tail(string(b), 3000))
			}
		})
	}
	t0 := time.Now()
	for _, h := range []string{"gdp-r1", "gdp-r2", "gdp-s1"} {
		start(h)
	}
	if c := nodes["gdp-c1"].pod.Spec.Containers[0].Command; !strings.Contains(strings.Join(c, " "), "sleep infinity") {
		t.Fatalf("client runs %q", c)
	}

	// The client, as an experimenter would run it: kubectl exec gdp-c1 -- …
	s1 := nodes["gdp-s1"].sim.GDPName
	r2 := nodes["gdp-r2"].sim.GDPName
	if s1 == "" || r2 == "" || nodes["gdp-r1"].sim.PeerID == "" {
		t.Fatalf("sim.yaml without names: s1 %q r2 %q r1 peer %q", s1, r2, nodes["gdp-r1"].sim.PeerID)
	}
	cdir := roots["gdp-c1"] + "/var/lib/gdp"
	clientCfg := filepath.Join(roots["gdp-c1"], "etc/gdp", sim.ConfigFile)
	run := func(args ...string) (string, error) {
		c := inNS(ctx, "gdp-c1", args...)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	// r2 knows s1 only through the DHT (s1 attached to r1): retry until
	// the routers joined and s1 advertised.
	var out string
	var err error
	for {
		out, err = run("ping", s1, "-c", "1", "--timeout", "2s", "--router", "gdp-r2:8009", "--router-name", r2,
			"--identity", "client", "--keystore", cdir+"/keys", "--member", cdir+"/client.member", "--domain", cdir+"/domain.meta")
		if err == nil || ctx.Err() != nil || time.Since(t0) > 45*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("gdp ping s1 from c1 through r2: %v\n%s", err, out)
	}
	t.Logf("c1 pinged s1 (attached to r1) through r2 %s after the daemons started:\n%s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))
	// r2 joined r1's DHT node through the exported bootstrap entry (its
	// peer id from r1's key): its DHT node started with a peer.
	if !dhtStartedWithPeer(t, filepath.Join(work, "gdp-r2.log")) {
		t.Fatalf("r2's DHT node did not start with r1 as a peer")
	}
	out, err = run("capsule", "--config", clientCfg, "create", "--owner", "client", "--writer", "client", "--servers", s1, "--w", "1")
	if err != nil {
		t.Fatalf("gdp capsule create on s1: %v\n%s", err, out)
	}
	capsule := strings.TrimSpace(out[strings.LastIndexByte(strings.TrimSpace(out), '\n')+1:])
	if out, err = run("capsule", "--config", clientCfg, "append", capsule, "--writer", "client", "--data", "exported and running"); err != nil {
		t.Fatalf("gdp capsule append: %v\n%s", err, out)
	}
	if out, err = run("capsule", "--config", clientCfg, "read", capsule); err != nil || !strings.Contains(out, "exported and running") {
		t.Fatalf("gdp capsule read: %v\n%s", err, out)
	}
	t.Logf("capsule %s created on s1, appended and read back from c1; %s in all", capsule, time.Since(t0).Round(time.Millisecond))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// dhtStartedWithPeer says whether the router's JSON log has its DHT node
// started with at least one peer.
func dhtStartedWithPeer(t *testing.T, log string) bool {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Msg   string `json:"msg"`
			Peers int    `json:"peers"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "dht node started" {
			return l.Peers > 0
		}
	}
	return false
}
