package sim

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/gdpnet/gdpnet/certs"
)

func exportTopo(t *testing.T) *Topology {
	t.Helper()
	top, err := Builtin("linear", Params{N: 3, Delay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Resolver = ResolverDHT
	top.Links = slices.DeleteFunc(top.Links, func(l *Link) bool {
		return l.ID() == "r1-r2" || l.ID() == "r2-r1" || l.ID() == "r2-r3" || l.ID() == "r3-r2"
	})
	top.Link("r1", "r2", Delay(10*time.Millisecond), Loss(0.01), Bandwidth(10_000_000))
	top.Link("r2", "r3", Delay(10*time.Millisecond), Jitter(4*time.Millisecond))
	top.AddServer("s1", "r2")
	return top
}

func exportCreds(t *testing.T, top *Topology) *ExportCredentials {
	t.Helper()
	c, err := top.MintCredentials(0)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d != DefaultCertLifetime+time.Hour {
		t.Fatalf("memberships valid for %s, want the default %s from an hour before", d, DefaultCertLifetime)
	}
	return c
}

// exported is one node's export as a cluster would see it: its node.yaml,
// sim.yaml and credential files by path under /var/lib/gdp, with modes.
type exported struct {
	daemon string
	sim    NodeConfig
	files  map[string][]byte
	modes  map[string]os.FileMode
}

// checkCredentials checks every node's exported credentials (Session 20):
// exactly the files node.yaml names, the key loads from a keystore laid
// out as mounted (mode 0400) and is the identity sim.yaml names, the
// membership makes it a member of the domain whose metadata is beside it;
// each router's resolver.bootstrap names the routers of its domain before
// it by their DHT peer ids, derived here from the keys in their own
// files; each endpoint's router_name is its router's name; the domains'
// private keys are in no exported file (all).
func checkCredentials(t *testing.T, top *Topology, creds *ExportCredentials, nodes map[string]*exported, all []byte) {
	t.Helper()
	peerOf := map[string]string{}
	nameOf := map[string]string{}
	for _, n := range top.Nodes {
		e := nodes[hostName(n.Name)]
		a := nodeAlias(n.Kind)
		want := []string{"keys/" + a + ".key", "keys/" + a + ".meta", a + ".member", "domain.meta"}
		if len(e.files) != len(want) {
			t.Fatalf("%s: credential files %v, want %v", n.Name, slices.Collect(maps.Keys(e.files)), want)
		}
		for _, key := range []string{"keystore: /var/lib/gdp/keys\nidentity: " + a + "\n", "member_cert: /var/lib/gdp/" + a + ".member\n", "domain: /var/lib/gdp/domain.meta\n"} {
			if !strings.Contains(e.daemon, key) {
				t.Fatalf("%s: node.yaml does not say %q:\n%s", n.Name, key, e.daemon)
			}
		}
		dir := t.TempDir()
		for _, w := range want {
			if e.files[w] == nil {
				t.Fatalf("%s: no %s in its credentials", n.Name, w)
			}
			p := filepath.Join(dir, w)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, e.files[w], e.modes[w]); err != nil {
				t.Fatal(err)
			}
		}
		ks, err := certs.OpenKeystore(filepath.Join(dir, "keys"))
		if err != nil {
			t.Fatal(err)
		}
		id, err := ks.Load(a)
		if err != nil {
			t.Fatalf("%s: key as mounted: %v", n.Name, err)
		}
		if id.Name.String() != e.sim.GDPName || id.Name != creds.Nodes[n.Name].Identity.Name {
			t.Fatalf("%s: key %s, sim.yaml says %s", n.Name, id.Name, e.sim.GDPName)
		}
		m, err := certs.ReadCertFile(filepath.Join(dir, a+".member"))
		if err != nil {
			t.Fatal(err)
		}
		dom, err := certs.ReadMetadataFile(filepath.Join(dir, "domain.meta"))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := certs.NewVerifier(dom).VerifyMember(id.Meta, m, dom); err != nil || dom.Name() != creds.Domains[n.Domain].Name || !m.NotAfter.Equal(creds.NotAfter) {
			t.Fatalf("%s: membership %v (domain %s, until %s)", n.Name, err, dom.Name(), m.NotAfter)
		}
		nameOf[n.Name] = id.Name.String()
		if n.Kind == KindRouter {
			pid, err := peerID(id)
			if err != nil || pid.String() != e.sim.PeerID {
				t.Fatalf("%s: peer id %s, sim.yaml says %s (%v)", n.Name, pid, e.sim.PeerID, err)
			}
			peerOf[n.Name] = pid.String()
		}
	}
	for _, d := range creds.Domains {
		seed := certs.Armor(certs.PEMPrivateKey, d.Key.Seed())
		for _, form := range [][]byte{seed, []byte(base64.StdEncoding.EncodeToString(seed)), d.Key.Seed()} {
			if bytes.Contains(all, form) {
				t.Fatalf("a domain's private key is in the export")
			}
		}
	}
	var before []string
	for _, n := range top.Nodes {
		e := nodes[hostName(n.Name)]
		var cfg struct {
			RouterName string `yaml:"router_name"`
			Resolver   struct {
				Bootstrap []string `yaml:"bootstrap"`
			} `yaml:"resolver"`
		}
		if err := yaml.Unmarshal([]byte(e.daemon), &cfg); err != nil {
			t.Fatal(err)
		}
		if n.Kind != KindRouter {
			if cfg.RouterName != nameOf[n.Attach] {
				t.Fatalf("%s: router_name %q, want %s's %s", n.Name, cfg.RouterName, n.Attach, nameOf[n.Attach])
			}
			continue
		}
		var want []string
		for _, r := range before[:min(len(before), dhtSeeds)] {
			want = append(want, fmt.Sprintf("/dns4/%s/udp/%d/quic-v1/p2p/%s", hostName(r), DHTPort, peerOf[r]))
		}
		if !slices.Equal(cfg.Resolver.Bootstrap, want) {
			t.Fatalf("%s: bootstrap %q, want %q", n.Name, cfg.Resolver.Bootstrap, want)
		}
		if !strings.Contains(e.daemon, fmt.Sprintf("addrs: [\"%s:%d\"]", hostName(n.Name), RouterPort)) {
			t.Fatalf("%s: node.yaml does not publish its Service address:\n%s", n.Name, e.daemon)
		}
		before = append(before, n.Name)
	}
}

// TestExportK8s: the manifests decode back strictly (UniversalDeserializer
// with strict decoding) with the k8s.io/api types, and every node has its
// ConfigMap (config + links script), Service and Pod, consistent with each
// other and with the topology's links.
func TestExportK8s(t *testing.T) {
	top := exportTopo(t)
	creds := exportCreds(t, top)
	dir := t.TempDir()
	if err := ExportK8s(top, dir, ExportOptions{Credentials: creds}); err != nil {
		t.Fatal(err)
	}
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()
	cms, svcs, pods := map[string]*corev1.ConfigMap{}, map[string]*corev1.Service{}, map[string]*corev1.Pod{}
	secrets := map[string]*corev1.Secret{}
	var all []byte
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) != len(top.Nodes)+1 {
		t.Fatalf("%d files, want a namespace and one per node (%d)", len(files), len(top.Nodes))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
		if st, _ := os.Stat(f); filepath.Base(f) != "namespace.yaml" && st.Mode().Perm() != 0o600 {
			t.Fatalf("%s holds private keys with mode %04o, want 0600", f, st.Mode().Perm())
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			obj, _, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: strict decode: %v", f, err)
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				cms[o.Name] = o
			case *corev1.Service:
				svcs[o.Name] = o
			case *corev1.Pod:
				pods[o.Name] = o
			case *corev1.Secret:
				secrets[o.Name] = o
			case *corev1.Namespace:
				if o.Name != "gdp-sim" {
					t.Fatalf("namespace %q", o.Name)
				}
			default:
				t.Fatalf("%s: unexpected %T", f, obj)
			}
		}
	}
	ex := map[string]*exported{}
	for _, n := range top.Nodes {
		h := hostName(n.Name)
		cm, svc, pod := cms[h], svcs[h], pods[h]
		if cm == nil || svc == nil || pod == nil {
			t.Fatalf("node %s: configmap %v service %v pod %v", n.Name, cm != nil, svc != nil, pod != nil)
		}
		var cfg NodeConfig
		d := yaml.NewDecoder(strings.NewReader(cm.Data[SimFile]))
		d.KnownFields(true)
		if err := d.Decode(&cfg); err != nil || cfg.Name != n.Name || cfg.Kind != n.Kind || cfg.Resolver != ResolverDHT {
			t.Fatalf("node %s: config %+v: %v", n.Name, cfg, err)
		}
		if n.Kind != KindRouter && cfg.Attach != hostName(n.Attach)+":8009" {
			t.Fatalf("node %s attaches to %q", n.Name, cfg.Attach)
		}
		if svc.Spec.Selector[LabelNode] != h || pod.Labels[LabelNode] != h {
			t.Fatalf("node %s: service selects %v, pod labelled %v", n.Name, svc.Spec.Selector, pod.Labels)
		}
		if pod.Spec.Volumes[0].ConfigMap.Name != cm.Name || pod.Spec.InitContainers[0].SecurityContext.Capabilities.Add[0] != "NET_ADMIN" {
			t.Fatalf("node %s: pod does not mount its configmap or cannot shape", n.Name)
		}
		// The Secret is mounted read-only at /var/lib/gdp, mode 0400, in
		// the node's container only; its items are what node.yaml names.
		sec := secrets[h]
		if sec == nil || len(pod.Spec.Volumes) != 2 || pod.Spec.Volumes[1].Secret == nil {
			t.Fatalf("node %s: secret %v, volumes %+v", n.Name, sec != nil, pod.Spec.Volumes)
		}
		sv := pod.Spec.Volumes[1].Secret
		vm := pod.Spec.Containers[0].VolumeMounts
		if sv.SecretName != h || sv.DefaultMode == nil || *sv.DefaultMode != 0o400 || len(vm) != 2 || vm[1].Name != pod.Spec.Volumes[1].Name ||
			vm[1].MountPath != "/var/lib/gdp" || !vm[1].ReadOnly || len(pod.Spec.InitContainers[0].VolumeMounts) != 1 {
			t.Fatalf("node %s: secret volume %+v mounted %+v", n.Name, sv, vm)
		}
		e := &exported{daemon: cm.Data[ConfigFile], sim: cfg, files: map[string][]byte{}, modes: map[string]os.FileMode{}}
		for _, it := range sv.Items {
			e.files[it.Path], e.modes[it.Path] = sec.Data[it.Key], os.FileMode(*sv.DefaultMode)
		}
		if len(sv.Items) != len(sec.Data) {
			t.Fatalf("node %s: %d items of %d keys", n.Name, len(sv.Items), len(sec.Data))
		}
		ex[h] = e
		// links.sh shapes the path to every other node.
		for _, m := range top.Nodes {
			if m != n && !strings.Contains(cm.Data[LinksFile], "IP=$(addr "+hostName(m.Name)+")") {
				t.Fatalf("node %s: links.sh has no path to %s", n.Name, m.Name)
			}
		}
	}
	// Every link's settings are in both ends' scripts: r1–r2 is 10 ms,
	// 1 % loss, 10 Mbit/s.
	for _, end := range []string{"r1", "r2"} {
		other := map[string]string{"r1": "r2", "r2": "r1"}[end]
		s := cms[hostName(end)].Data[LinksFile]
		i := strings.Index(s, "# to "+hostName(other)+": 1 hops")
		if i < 0 {
			t.Fatalf("%s: no one-hop path to %s:\n%s", end, other, s)
		}
		blk := s[i:]
		blk = blk[:strings.Index(blk, "u32")]
		for _, want := range []string{"htb rate 10000000bit", "netem delay 10000us loss 1.000000%"} {
			if !strings.Contains(blk, want) {
				t.Fatalf("%s → %s: %q missing in\n%s", end, other, want, blk)
			}
		}
	}
	// A two-hop path composes: r1 → r3 is 20 ms, loss 1 − 0.99, and
	// r2–r3's 4 ms of jitter, which linkem draws in [0, 4 ms) on top of
	// the delay and netem in [D−J, D+J): delay 22 ms ± 2 ms (Session 19:
	// before, 20 ms ± 4 ms, which netem drew 4 ms below the delay).
	s := cms[hostName("r1")].Data[LinksFile]
	i := strings.Index(s, "# to "+hostName("r3")+": 2 hops")
	if i < 0 || !strings.Contains(s[i:i+400], "netem delay 22000us 2000us loss 1.000000%") {
		t.Fatalf("r1 → r3 not composed: %s", s[max(i, 0):])
	}
	// The routers' DHT port is served.
	if p := svcs[hostName("r2")].Spec.Ports; len(p) != 2 || p[1].Port != DHTPort {
		t.Fatalf("r2 service ports %+v", p)
	}
	checkCredentials(t, top, creds, ex, all)
}

// TestExportWithoutCredentials: ExportOptions without Credentials (gdp sim
// export --credentials=false) exports no Secret and no key; node.yaml says
// in comments what to create and fill in.
func TestExportWithoutCredentials(t *testing.T) {
	top := exportTopo(t)
	m, err := K8sObjects(top, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Secrets) != 0 || len(m.Pods[0].Spec.Volumes) != 1 {
		t.Fatalf("%d secrets, volumes %+v", len(m.Secrets), m.Pods[0].Spec.Volumes)
	}
	for _, cm := range m.ConfigMaps {
		d := cm.Data[ConfigFile]
		if !strings.Contains(d, "Credentials are not exported") || strings.Contains(d, "router_name:") && !strings.Contains(d, "# router_name:") {
			t.Fatalf("%s:\n%s", cm.Name, d)
		}
	}
	if !strings.Contains(m.ConfigMaps[1].Data[ConfigFile], "# bootstrap: [/dns4/gdp-r1/udp/4001/quic-v1/p2p/PEER_ID]") {
		t.Fatalf("r2 without the bootstrap to fill in:\n%s", m.ConfigMaps[1].Data[ConfigFile])
	}
	// Credentials minted for another topology are refused.
	other := New("other")
	other.AddRouter("x1", "")
	oc, err := other.MintCredentials(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := K8sObjects(top, ExportOptions{Credentials: oc}); err == nil || !strings.Contains(err.Error(), "another topology") {
		t.Fatalf("foreign credentials: %v", err)
	}
}

// TestExportCompose: the docker-compose file decodes back strictly and
// has a service per node with its config and links script.
func TestExportCompose(t *testing.T) {
	top := exportTopo(t)
	creds := exportCreds(t, top)
	path := filepath.Join(t.TempDir(), "exp", "compose.yaml")
	if err := ExportCompose(top, path, ExportOptions{Image: "example/gdp:1", Credentials: creds}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c Compose
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		t.Fatal(err)
	}
	all := b
	ex := map[string]*exported{}
	if len(c.Services) != len(top.Nodes) {
		t.Fatalf("%d services, want %d", len(c.Services), len(top.Nodes))
	}
	for _, n := range top.Nodes {
		h := hostName(n.Name)
		svc, ok := c.Services[h]
		if !ok || svc.Image != "example/gdp:1" || svc.CapAdd[0] != "NET_ADMIN" {
			t.Fatalf("node %s: service %+v", n.Name, svc)
		}
		if !strings.Contains(svc.Command[2], "links.sh") || len(svc.Configs) != 3 {
			t.Fatalf("node %s: command %q configs %v", n.Name, svc.Command, svc.Configs)
		}
		for _, m := range svc.Configs {
			if _, ok := c.Configs[m.Source]; !ok {
				t.Fatalf("node %s mounts missing config %s", n.Name, m.Source)
			}
		}
		if !strings.Contains(c.Configs[h+"-sim"].Content, "name: "+n.Name) || !strings.HasPrefix(c.Configs[h+"-config"].Content, "# "+n.Name+": ") {
			t.Fatalf("node %s: sim.yaml %q, node.yaml %q", n.Name, c.Configs[h+"-sim"].Content, c.Configs[h+"-config"].Content)
		}
		// Its credentials: a directory beside the compose file, mounted
		// read-only at /var/lib/gdp, files with their modes.
		if want := "./compose-credentials/" + h + ":/var/lib/gdp:ro"; len(svc.Volumes) != 1 || svc.Volumes[0] != want {
			t.Fatalf("node %s: volumes %q, want %q", n.Name, svc.Volumes, want)
		}
		var sc NodeConfig
		d := yaml.NewDecoder(strings.NewReader(c.Configs[h+"-sim"].Content))
		d.KnownFields(true)
		if err := d.Decode(&sc); err != nil {
			t.Fatal(err)
		}
		e := &exported{daemon: c.Configs[h+"-config"].Content, sim: sc, files: map[string][]byte{}, modes: map[string]os.FileMode{}}
		root := filepath.Join(filepath.Dir(path), "compose-credentials", h)
		err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			if want := os.FileMode(0o444); strings.HasSuffix(p, ".key") {
				want = 0o400
				if st.Mode().Perm() != want {
					return fmt.Errorf("%s mode %04o, want %04o", p, st.Mode().Perm(), want)
				}
			} else if st.Mode().Perm() != want {
				return fmt.Errorf("%s mode %04o, want %04o", p, st.Mode().Perm(), want)
			}
			e.files[filepath.ToSlash(rel)], _ = os.ReadFile(p)
			e.modes[filepath.ToSlash(rel)] = st.Mode().Perm()
			all = append(all, e.files[filepath.ToSlash(rel)]...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ex[h] = e
	}
	checkCredentials(t, top, creds, ex, all)
	// A second export replaces the credentials directory, no .tmp left.
	if err := ExportCompose(top, path, ExportOptions{Credentials: exportCreds(t, top)}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 2 {
		t.Fatalf("beside the compose file after a second export: %v", ents)
	}
}

// TestExportNameClash: two nodes whose names map to one DNS label are
// refused, nothing is written.
func TestExportNameClash(t *testing.T) {
	top := New("clash")
	top.AddRouter("r_1", "")
	top.AddRouter("r.1", "")
	top.Link("r_1", "r.1")
	dir := filepath.Join(t.TempDir(), "out")
	err := ExportK8s(top, dir, ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), "same host name") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("export wrote %s", dir)
	}
}

// TestExportK8sRunAs (Session 21): with RunAs, a node's gdp container runs
// as that user, not root, and can still read its credentials: a Secret's
// files are root's, mode 0400 (fsGroup would make the key 0440, which the
// keystore refuses), so the credentials init container copies them into
// an emptyDir the user owns. Its script, run here against the Secret's
// files laid out as kubelet mounts them, leaves a keystore that loads (key
// 0400, owned by the user) and the other files 0444; the state directory
// is an emptyDir. A compose export refuses RunAs (links.sh needs root in
// the same container).
func TestExportK8sRunAs(t *testing.T) {
	top := exportTopo(t)
	creds := exportCreds(t, top)
	as := RunAs{UID: int64(os.Getuid()), GID: int64(os.Getgid())}
	if as.UID == 0 { // root may give the files to anyone
		as = RunAs{UID: 65532, GID: 65533}
	}
	m, err := K8sObjects(top, ExportOptions{Credentials: creds, RunAs: &as})
	if err != nil {
		t.Fatal(err)
	}
	for i, pod := range m.Pods {
		n, sec := top.Nodes[i], m.Secrets[i]
		c := pod.Spec.Containers[0]
		if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != as.UID || *sc.RunAsGroup != as.GID || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Fatalf("%s: gdp container security context %+v, want user %d:%d, non-root", n.Name, sc, as.UID, as.GID)
		}
		vols := map[string]corev1.Volume{}
		for _, v := range pod.Spec.Volumes {
			vols[v.Name] = v
		}
		mounts := map[string]corev1.VolumeMount{}
		for _, vm := range c.VolumeMounts {
			mounts[vm.MountPath] = vm
		}
		if cm := mounts[credDir]; cm.Name != "credentials" || !cm.ReadOnly || vols["credentials"].EmptyDir == nil {
			t.Fatalf("%s: %s mounted %+v from %+v, want the credentials emptyDir read-only", n.Name, credDir, cm, vols["credentials"])
		}
		if sm := mounts[stateDir]; sm.Name != "state" || sm.ReadOnly || vols["state"].EmptyDir == nil {
			t.Fatalf("%s: %s mounted %+v, want a writable emptyDir", n.Name, stateDir, sm)
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name == "credentials-secret" {
				t.Fatalf("%s: the gdp container mounts the Secret itself", n.Name)
			}
		}
		var init *corev1.Container
		for k := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[k].Name == "credentials" {
				init = &pod.Spec.InitContainers[k]
			}
		}
		sv := vols["credentials-secret"].Secret
		if init == nil || sv == nil || init.SecurityContext != nil || len(init.Command) != 3 || init.VolumeMounts[0].MountPath != secretSrcDir {
			t.Fatalf("%s: credentials init container %+v, secret volume %+v", n.Name, init, sv)
		}
		// The Secret as kubelet mounts it: every item root's, DefaultMode.
		src, dst := t.TempDir(), filepath.Join(t.TempDir(), "gdp")
		for _, it := range sv.Items {
			p := filepath.Join(src, it.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, sec.Data[it.Key], os.FileMode(*sv.DefaultMode)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(dst, 0o777); err != nil { // an emptyDir
			t.Fatal(err)
		}
		script := strings.ReplaceAll(strings.ReplaceAll(init.Command[2], secretSrcDir, src), credDir, dst)
		if out, err := exec.Command(init.Command[0], init.Command[1], script).CombinedOutput(); err != nil {
			t.Fatalf("%s: credentials script: %v\n%s\n%s", n.Name, err, out, script)
		}
		a := nodeAlias(n.Kind)
		err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int64(sys.Uid) != as.UID || int64(sys.Gid) != as.GID) {
				return fmt.Errorf("%s owned by %d:%d, want %d:%d", p, sys.Uid, sys.Gid, as.UID, as.GID)
			}
			want := os.FileMode(0o444)
			switch {
			case d.IsDir():
				return nil
			case filepath.Base(p) == a+".key":
				want = 0o400
			}
			if st.Mode().Perm() != want {
				return fmt.Errorf("%s mode %04o, want %04o", p, st.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		ks, err := certs.OpenKeystore(filepath.Join(dst, "keys"))
		if err != nil {
			t.Fatal(err)
		}
		if id, err := ks.Load(a); err != nil || id.Name != creds.Nodes[n.Name].Identity.Name {
			t.Fatalf("%s: the key as copied: %v", n.Name, err)
		}
	}
	if err := ExportCompose(top, filepath.Join(t.TempDir(), "compose.yaml"), ExportOptions{Credentials: creds, RunAs: &as}); !errors.Is(err, errComposeRunAs) {
		t.Fatalf("compose export with RunAs: %v, want errComposeRunAs", err)
	}
}

// TestExportWritesSafely (Session 21, review14): the Secret manifests are
// written through a fresh temporary file, so a symlink planted at the old
// fixed name (<file>.tmp) does not receive the private keys; and
// SaveDomains checks every alias before it saves any, so a keystore that
// holds the second domain's alias keeps no key of the first.
func TestExportWritesSafely(t *testing.T) {
	top := exportTopo(t)
	creds := exportCreds(t, top)
	dir, elsewhere := t.TempDir(), filepath.Join(t.TempDir(), "planted")
	if err := os.WriteFile(elsewhere, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := hostName(top.Nodes[0].Name)
	if err := os.Symlink(elsewhere, filepath.Join(dir, h+".yaml.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := ExportK8s(top, dir, ExportOptions{Credentials: creds}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(elsewhere); string(b) != "untouched" {
		t.Fatalf("the file a planted symlink pointed at now holds %d bytes of the export", len(b))
	}
	if st, err := os.Lstat(filepath.Join(dir, h+".yaml")); err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s.yaml: %v %v, want a regular 0600 file", h, st.Mode(), err)
	}

	two := New("two domains")
	two.Domains = []string{"alpha", "beta"}
	two.AddRouter("r1", "alpha")
	two.AddRouter("r2", "beta")
	two.Link("r1", "r2")
	tc, err := two.MintCredentials(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ksDir := t.TempDir()
	ks, err := certs.OpenKeystore(ksDir)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := certs.NewIdentity(certs.KindDomain, "an earlier export's beta")
	if err := ks.Save(domainAlias("beta"), other); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.SaveDomains(ksDir); !errors.Is(err, certs.ErrExists) {
		t.Fatalf("SaveDomains over a held alias: %v, want ErrExists", err)
	}
	if _, err := ks.Load(domainAlias("alpha")); !errors.Is(err, certs.ErrNotFound) {
		t.Fatalf("alpha's key after the refused save: %v, want none saved", err)
	}
}
