package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
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
	return top
}

// TestExportK8s: the manifests decode back strictly (UniversalDeserializer
// with strict decoding) with the k8s.io/api types, and every node has its
// ConfigMap (config + links script), Service and Pod, consistent with each
// other and with the topology's links.
func TestExportK8s(t *testing.T) {
	top := exportTopo(t)
	dir := t.TempDir()
	if err := ExportK8s(top, dir, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()
	cms, svcs, pods := map[string]*corev1.ConfigMap{}, map[string]*corev1.Service{}, map[string]*corev1.Pod{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) != len(top.Nodes)+1 {
		t.Fatalf("%d files, want a namespace and one per node (%d)", len(files), len(top.Nodes))
	}
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
				cms[o.Name] = o
			case *corev1.Service:
				svcs[o.Name] = o
			case *corev1.Pod:
				pods[o.Name] = o
			case *corev1.Namespace:
				if o.Name != "gdp-sim" {
					t.Fatalf("namespace %q", o.Name)
				}
			default:
				t.Fatalf("%s: unexpected %T", f, obj)
			}
		}
	}
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
}

// TestExportCompose: the docker-compose file decodes back strictly and
// has a service per node with its config and links script.
func TestExportCompose(t *testing.T) {
	top := exportTopo(t)
	path := filepath.Join(t.TempDir(), "compose.yaml")
	if err := ExportCompose(top, path, ExportOptions{Image: "example/gdp:1"}); err != nil {
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
