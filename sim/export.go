package sim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/gdpnet/gdpnet/sim/linkem"
)

// ExportOptions says how to export a topology to a cluster engine.
type ExportOptions struct {
	// Image runs every node (gdp, sh, getent and tc from iproute2).
	// Default gdpnet/gdp:latest.
	Image string
	// Namespace of the Kubernetes objects. Default gdp-sim.
	Namespace string
}

func (o *ExportOptions) defaults() {
	if o.Image == "" {
		o.Image = "gdpnet/gdp:latest"
	}
	if o.Namespace == "" {
		o.Namespace = "gdp-sim"
	}
}

// Labels and files of the export.
const (
	LabelTopology = "gdp.sim/topology"
	LabelNode     = "gdp.sim/node"
	LabelKind     = "gdp.sim/kind"
	// ConfigFile is the node's daemon configuration in its ConfigMap: a
	// gdp router or gdp capsuled config, a client's attach block (gdp
	// capsule --config), in the daemons' own keys.
	ConfigFile = "node.yaml"
	// SimFile is what the simulator knows of the node (NodeConfig): its
	// name, kind, domain, router and DHT peers.
	SimFile = "sim.yaml"
	// Where an exported node expects its credentials (a Secret mounted
	// read-only: not exported) and keeps its state (the container's own
	// file system).
	credDir  = "/var/lib/gdp"
	stateDir = "/var/lib/gdp-state"
	// LinksFile is the node's link emulation script in its ConfigMap.
	LinksFile = "links.sh"
	configDir = "/etc/gdp"
)

// ExportNode is one node of an exported topology: its object name (a DNS
// label), its configuration and its link emulation.
type ExportNode struct {
	Node *Node
	// Host is the node's Service (Kubernetes) or service (compose) name.
	Host string
	// Config is what the simulator knows of the node (sim.yaml).
	Config NodeConfig
	// Daemon is the node's configuration file (node.yaml): what gdp
	// router, gdp capsuled or a client's gdp capsule --config reads.
	Daemon string
	// Paths are the emulated paths to every node this one can reach.
	Paths []ExportPath
	// Script applies Paths with tc (links.sh).
	Script string
}

// NodeConfig is what the simulator knows of an exported node (sim.yaml).
type NodeConfig struct {
	Name     string   `yaml:"name"`
	Kind     string   `yaml:"kind"`
	Domain   string   `yaml:"domain"`
	Resolver string   `yaml:"resolver"`
	Listen   string   `yaml:"listen,omitempty"`
	Attach   string   `yaml:"attach,omitempty"`    // a server's or client's router, host:port
	DHT      string   `yaml:"dht,omitempty"`       // the router's DHT listen multiaddr
	DHTPeers []string `yaml:"dht_peers,omitempty"` // routers whose DHT nodes it joins (host:port)
}

// ExportPath is the emulated path from a node to another: the links of
// the underlay's shortest path composed into one (delays and jitters add,
// losses combine, the narrowest bandwidth holds).
type ExportPath struct {
	To        string  `yaml:"to"`
	Hops      int     `yaml:"hops"`
	DelayUS   int64   `yaml:"delay_us"`
	JitterUS  int64   `yaml:"jitter_us,omitempty"`
	Loss      float64 `yaml:"loss,omitempty"`
	Bandwidth int64   `yaml:"bandwidth_bps,omitempty"`
}

var dnsBad = regexp.MustCompile(`[^a-z0-9-]+`)

// hostName turns a node name into a DNS-1035 label.
func hostName(node string) string {
	h := dnsBad.ReplaceAllString(strings.ToLower(node), "-")
	h = strings.Trim(h, "-")
	return "gdp-" + h
}

// Export validates top and computes each node's configuration and paths.
func (t *Topology) Export() ([]*ExportNode, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	net, err := t.underlay()
	if err != nil {
		return nil, err
	}
	defer net.Close()
	byHost := map[string]string{}
	var out []*ExportNode
	for _, n := range t.Nodes {
		h := hostName(n.Name)
		if len(h) > 63 {
			return nil, fmt.Errorf("export: node %q: name too long for a DNS label (%s)", n.Name, h)
		}
		if o, dup := byHost[h]; dup {
			return nil, fmt.Errorf("export: nodes %q and %q map to the same host name %s", o, n.Name, h)
		}
		byHost[h] = n.Name
		out = append(out, &ExportNode{Node: n, Host: h})
	}
	hostOf := map[string]string{}
	for _, e := range out {
		hostOf[e.Node.Name] = e.Host
	}
	var routers []*Node
	for _, n := range t.Nodes {
		if n.Kind == KindRouter {
			routers = append(routers, n)
		}
	}
	for i, e := range out {
		n := e.Node
		e.Config = NodeConfig{Name: n.Name, Kind: n.Kind, Domain: n.Domain, Resolver: t.Resolver}
		if n.Kind == KindRouter {
			e.Config.Listen = fmt.Sprintf("0.0.0.0:%d", RouterPort)
			// Every exported router runs a DHT node (the static resolver
			// is a table inside the simulator's process) and joins the
			// routers of its domain before it (the first joins none):
			// a domain's DHT admits its members only.
			e.Config.DHT = fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DHTPort)
			for _, r := range routers {
				if r.Name == n.Name || len(e.Config.DHTPeers) == dhtSeeds {
					break
				}
				if r.Domain == n.Domain {
					e.Config.DHTPeers = append(e.Config.DHTPeers, fmt.Sprintf("%s:%d", hostOf[r.Name], DHTPort))
				}
			}
		} else {
			e.Config.Attach = fmt.Sprintf("%s:%d", hostOf[n.Attach], RouterPort)
		}
		src := net.Node(n.Name)
		for j, m := range t.Nodes {
			if i == j {
				continue
			}
			dirs := net.Path(src, net.Node(m.Name))
			if len(dirs) == 0 {
				continue // unreachable at start
			}
			e.Paths = append(e.Paths, composePath(hostOf[m.Name], dirs))
		}
		e.Script = linksScript(e)
		e.Daemon = daemonConfig(e, hostOf)
	}
	return out, nil
}

// daemonConfig is the node's node.yaml, in the keys of the daemon that
// reads it (Session 19: before, node.yaml was sim.yaml's content, which
// gdp router and gdp capsuled refuse: unknown keys name, kind, attach).
// The routers find names through their DHT, whatever the topology's
// resolver: the static resolver is a table shared inside the simulator's
// process. What comes from the keys — the credentials, a router's DHT
// peer id for resolver.bootstrap, the router's name for router_name — is
// not exported; the comments say where each goes.
func daemonConfig(e *ExportNode, hostOf map[string]string) string {
	var b strings.Builder
	n := e.Node
	alias := map[string]string{KindRouter: "router", KindServer: "capsuled", KindClient: "client"}[n.Kind]
	what := map[string]string{KindRouter: "gdp router config", KindServer: "gdp capsuled config",
		KindClient: "client attach config (gdp capsule --config)"}[n.Kind]
	fmt.Fprintf(&b, "# %s: %s (domain %s), exported by gdp sim (docs/SIMULATOR.md §9).\n", n.Name, what, n.Domain)
	fmt.Fprintf(&b, "# Credentials are not exported: the node's key (alias %q) in %s/keys,\n", alias, credDir)
	fmt.Fprintf(&b, "# its membership and its domain's metadata at the paths below (gdp cert).\n")
	if n.Kind != KindRouter {
		fmt.Fprintf(&b, "router: %q\n", hostOf[n.Attach]+":"+strconv.Itoa(RouterPort))
		fmt.Fprintf(&b, "# router_name: the name of %s's router key (gdp cert prints it); without it the\n", n.Attach)
		fmt.Fprintf(&b, "# node asks the router's admin API, which listens inside the router's pod only.\n")
	} else {
		fmt.Fprintf(&b, "listen: \"0.0.0.0:%d\"\n", RouterPort)
		fmt.Fprintf(&b, "state_dir: %s/router\n", stateDir)
	}
	fmt.Fprintf(&b, "keystore: %s/keys\nidentity: %s\nmember_cert: %s/%s.member\ndomain: %s/domain.meta\n",
		credDir, alias, credDir, alias, credDir)
	switch n.Kind {
	case KindRouter:
		fmt.Fprintf(&b, "resolver:\n  mode: dht\n  listen: [/ip4/0.0.0.0/udp/%d/quic-v1]\n  bootstrap_timeout: 2m\n", DHTPort)
		if len(e.Config.DHTPeers) == 0 {
			b.WriteString("  # the first router: it joins no one\n")
		} else {
			b.WriteString("  # join the routers started before it, by DHT address and peer id\n")
			b.WriteString("  # (gdp resolver --print-addrs with their keys), e.g.\n")
			host, _, _ := strings.Cut(e.Config.DHTPeers[0], ":")
			fmt.Fprintf(&b, "  # bootstrap: [/dns4/%s/udp/%d/quic-v1/p2p/PEER_ID]\n", host, DHTPort)
		}
	case KindServer:
		fmt.Fprintf(&b, "dir: %s/capsuled\n", stateDir)
	}
	return b.String()
}

func composePath(to string, dirs []*linkem.Dir) ExportPath {
	p := ExportPath{To: to, Hops: len(dirs)}
	keep := 1.0
	for _, d := range dirs {
		c := d.Config()
		p.DelayUS += c.Delay.Microseconds()
		p.JitterUS += c.Jitter.Microseconds()
		loss := c.Loss
		if c.GE != nil {
			loss = c.GE.Rate()
		}
		keep *= 1 - loss
		if c.Bandwidth > 0 && (p.Bandwidth == 0 || c.Bandwidth < p.Bandwidth) {
			p.Bandwidth = c.Bandwidth
		}
	}
	p.Loss = 1 - keep
	return p
}

// linksScript is the shell script that shapes the node's egress: an htb
// class per destination, a netem qdisc under it (delay, jitter, loss),
// and a u32 filter on the destination's Service address.
func linksScript(e *ExportNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# gdp sim export: link emulation for %s (docs/SIMULATOR.md §9).\n", e.Node.Name)
	b.WriteString("set -eu\nDEV=${GDP_SIM_DEV:-eth0}\n")
	b.WriteString("tc qdisc replace dev $DEV root handle 1: htb default 1\n")
	b.WriteString("tc class replace dev $DEV parent 1: classid 1:1 htb rate 100gbit\n")
	b.WriteString("addr() { getent hosts \"$1\" | awk '{print $1; exit}'; }\n")
	for i, p := range e.Paths {
		id := fmt.Sprintf("%x", i+2)
		rate := "100gbit"
		if p.Bandwidth > 0 {
			rate = fmt.Sprintf("%dbit", p.Bandwidth)
		}
		// linkem's jitter is uniform in [0, jitter) on top of the delay;
		// netem's "delay D J" is uniform in [D-J, D+J) (no distribution
		// table): D + J/2 and J/2 give linkem's range and mean.
		netem := fmt.Sprintf("delay %dus", p.DelayUS+p.JitterUS/2)
		if p.JitterUS > 0 {
			netem += fmt.Sprintf(" %dus", p.JitterUS/2)
		}
		if p.Loss > 0 {
			netem += fmt.Sprintf(" loss %.6f%%", p.Loss*100)
		}
		fmt.Fprintf(&b, "# to %s: %d hops\nIP=$(addr %s)\n", p.To, p.Hops, p.To)
		fmt.Fprintf(&b, "tc class replace dev $DEV parent 1: classid 1:%s htb rate %s\n", id, rate)
		fmt.Fprintf(&b, "tc qdisc replace dev $DEV parent 1:%s handle %s: netem %s limit 10000\n", id, id, netem)
		fmt.Fprintf(&b, "tc filter add dev $DEV parent 1: protocol ip prio 1 u32 match ip dst $IP/32 flowid 1:%s\n", id)
	}
	return b.String()
}

// nodeCommand is what a node's container runs.
func nodeCommand(e *ExportNode) []string {
	cfg := configDir + "/" + ConfigFile
	switch e.Node.Kind {
	case KindRouter:
		return []string{"gdp", "router", "--config", cfg}
	case KindServer:
		return []string{"gdp", "capsuled", "--config", cfg}
	}
	// A client waits for the experimenter (kubectl exec … gdp ping NAME).
	return []string{"sh", "-c", "exec sleep infinity"}
}

// K8sObjects builds, per node, a ConfigMap (node.yaml, links.sh), a
// Service and a Pod whose init container applies links.sh.
func K8sObjects(top *Topology, opts ExportOptions) ([]*corev1.ConfigMap, []*corev1.Service, []*corev1.Pod, error) {
	opts.defaults()
	nodes, err := top.Export()
	if err != nil {
		return nil, nil, nil, err
	}
	var cms []*corev1.ConfigMap
	var svcs []*corev1.Service
	var pods []*corev1.Pod
	for _, e := range nodes {
		simCfg, err := yaml.Marshal(e.Config)
		if err != nil {
			return nil, nil, nil, err
		}
		labels := map[string]string{LabelTopology: hostName(top.Name)[4:], LabelNode: e.Host, LabelKind: e.Node.Kind}
		meta := metav1.ObjectMeta{Name: e.Host, Namespace: opts.Namespace, Labels: labels}
		cms = append(cms, &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta,
			Data:       map[string]string{ConfigFile: e.Daemon, SimFile: string(simCfg), LinksFile: e.Script},
		})
		ports := []corev1.ServicePort{{Name: "tunnel", Protocol: corev1.ProtocolUDP, Port: RouterPort, TargetPort: intstr.FromInt32(RouterPort)}}
		if e.Node.Kind == KindRouter { // every exported router runs a DHT node
			ports = append(ports, corev1.ServicePort{Name: "dht", Protocol: corev1.ProtocolUDP, Port: DHTPort, TargetPort: intstr.FromInt32(DHTPort)})
		}
		svcs = append(svcs, &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta,
			Spec:       corev1.ServiceSpec{Selector: map[string]string{LabelNode: e.Host}, Ports: ports},
		})
		vol := corev1.VolumeMount{Name: "config", MountPath: configDir, ReadOnly: true}
		pods = append(pods, &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: meta,
			Spec: corev1.PodSpec{
				Hostname: e.Host,
				InitContainers: []corev1.Container{{
					Name: "links", Image: opts.Image,
					Command:         []string{"sh", configDir + "/" + LinksFile},
					VolumeMounts:    []corev1.VolumeMount{vol},
					SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}},
				}},
				Containers: []corev1.Container{{
					Name: "gdp", Image: opts.Image, Command: nodeCommand(e),
					VolumeMounts: []corev1.VolumeMount{vol},
				}},
				Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
					ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: e.Host}},
				}}},
			},
		})
	}
	return cms, svcs, pods, nil
}

// ExportK8s writes DIR/namespace.yaml and one DIR/<host>.yaml per node
// (its ConfigMap, Service and Pod): `kubectl apply -f DIR`.
func ExportK8s(top *Topology, dir string, opts ExportOptions) error {
	opts.defaults()
	cms, svcs, pods, err := K8sObjects(top, opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}}
	if err := writeDocs(filepath.Join(dir, "namespace.yaml"), ns); err != nil {
		return err
	}
	for i := range cms {
		if err := writeDocs(filepath.Join(dir, cms[i].Name+".yaml"), cms[i], svcs[i], pods[i]); err != nil {
			return err
		}
	}
	return nil
}

func writeDocs(path string, objs ...any) error {
	var b bytes.Buffer
	for i, o := range objs {
		y, err := sigyaml.Marshal(o)
		if err != nil {
			return fmt.Errorf("export %s: %w", path, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return writeFileAtomic(path, b.Bytes())
}

// writeFileAtomic writes through a temporary file, so a failed export
// leaves no half-written manifest.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Compose is the docker-compose file the export writes (the subset of the
// Compose specification it uses).
type Compose struct {
	Name     string                    `yaml:"name"`
	Services map[string]ComposeService `yaml:"services"`
	Configs  map[string]ComposeConfig  `yaml:"configs"`
	Networks map[string]ComposeNetwork `yaml:"networks"`
}

// ComposeService is one node.
type ComposeService struct {
	Image    string               `yaml:"image"`
	Hostname string               `yaml:"hostname"`
	Command  []string             `yaml:"command"`
	CapAdd   []string             `yaml:"cap_add"`
	Configs  []ComposeConfigMount `yaml:"configs"`
	Networks []string             `yaml:"networks"`
	Labels   map[string]string    `yaml:"labels"`
}

// ComposeConfigMount mounts a config into a service.
type ComposeConfigMount struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

// ComposeConfig is a config given inline.
type ComposeConfig struct {
	Content string `yaml:"content"`
}

// ComposeNetwork is the experiment's network.
type ComposeNetwork struct {
	Driver string `yaml:"driver"`
}

// ComposeFile builds the docker-compose form: a service per node on one
// bridge network, its node.yaml and links.sh as inline configs, links.sh
// applied (NET_ADMIN) before the node starts.
func ComposeFile(top *Topology, opts ExportOptions) (*Compose, error) {
	opts.defaults()
	nodes, err := top.Export()
	if err != nil {
		return nil, err
	}
	c := &Compose{Name: hostName(top.Name), Services: map[string]ComposeService{}, Configs: map[string]ComposeConfig{},
		Networks: map[string]ComposeNetwork{"gdpsim": {Driver: "bridge"}}}
	for _, e := range nodes {
		simCfg, err := yaml.Marshal(e.Config)
		if err != nil {
			return nil, err
		}
		c.Configs[e.Host+"-config"] = ComposeConfig{Content: e.Daemon}
		c.Configs[e.Host+"-sim"] = ComposeConfig{Content: string(simCfg)}
		c.Configs[e.Host+"-links"] = ComposeConfig{Content: e.Script}
		cmd := strings.Join(quoteAll(nodeCommand(e)), " ")
		c.Services[e.Host] = ComposeService{
			Image: opts.Image, Hostname: e.Host,
			Command: []string{"sh", "-c", fmt.Sprintf("GDP_SIM_DEV=eth0 sh %s/%s && exec %s", configDir, LinksFile, cmd)},
			CapAdd:  []string{"NET_ADMIN"},
			Configs: []ComposeConfigMount{
				{Source: e.Host + "-config", Target: configDir + "/" + ConfigFile},
				{Source: e.Host + "-sim", Target: configDir + "/" + SimFile},
				{Source: e.Host + "-links", Target: configDir + "/" + LinksFile},
			},
			Networks: []string{"gdpsim"},
			Labels:   map[string]string{LabelNode: e.Host, LabelKind: e.Node.Kind},
		}
	}
	return c, nil
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// ExportCompose writes the docker-compose file to path.
func ExportCompose(top *Topology, path string, opts ExportOptions) error {
	c, err := ComposeFile(top, opts)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes())
}
