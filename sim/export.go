package sim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/gdpnet/gdpnet/internal/fsutil"
	"github.com/gdpnet/gdpnet/sim/linkem"
)

// ExportOptions says how to export a topology to a cluster engine.
type ExportOptions struct {
	// Image runs every node (gdp, sh, getent and tc from iproute2).
	// Default gdpnet/gdp:latest.
	Image string
	// Namespace of the Kubernetes objects. Default gdp-sim.
	Namespace string
	// Credentials, when set, are exported (Session 20): a Secret per node
	// (compose: a directory per node beside the compose file) with its
	// key, membership and domain at the paths node.yaml names, and the
	// values that come from the keys filled in (each router's
	// resolver.bootstrap peer ids, the endpoints' router_name). Nil: no
	// credentials, node.yaml says in comments what to create and fill in.
	Credentials *ExportCredentials
	// RunAs, when set (Session 21; Kubernetes only), runs every node's
	// gdp container as this user and group instead of the image's user
	// (root). A Secret volume's files are root's (mode 0400), and
	// fsGroup would make the key group-readable (0440), which the
	// keystore refuses: so a root init container, "credentials", copies
	// them from the Secret into an emptyDir owned by RunAs (the key 0400,
	// the rest 0444), mounted read-only at /var/lib/gdp, and the state
	// directory is an emptyDir the node can write. Nil: as before, the
	// image's user, the Secret mounted directly.
	RunAs *RunAs
}

// RunAs is the user and group a node's container runs as.
type RunAs struct {
	UID, GID int64
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
	// read-only, mode 0400) and keeps its state (the container's own file
	// system).
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
	// Secret are the node's credential files (ExportOptions.Credentials),
	// at paths under /var/lib/gdp; none without credentials.
	Secret []SecretFile
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
	// With credentials (Session 20): the node's 256-bit name (what gdp
	// ping and gdp capsule create --servers take) and a router's DHT peer
	// id.
	GDPName string `yaml:"gdp_name,omitempty"`
	PeerID  string `yaml:"peer_id,omitempty"`
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

// Export validates top and computes each node's configuration and paths,
// without credentials.
func (t *Topology) Export() ([]*ExportNode, error) { return t.ExportWith(nil) }

// ExportWith is Export with the credentials creds (nil: none): each node's
// Secret files, and in node.yaml each router's resolver.bootstrap with the
// peer ids of the routers it joins and each endpoint's router_name.
func (t *Topology) ExportWith(creds *ExportCredentials) ([]*ExportNode, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if creds != nil {
		if err := creds.check(t); err != nil {
			return nil, err
		}
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
		if creds != nil {
			nc := creds.Nodes[n.Name]
			e.Config.GDPName = nc.Identity.Name.String()
			if nc.PeerID != "" {
				e.Config.PeerID = nc.PeerID.String()
			}
			e.Secret = creds.secretFiles(t, n)
		}
		e.Daemon = daemonConfig(t, e, hostOf, creds)
	}
	return out, nil
}

// daemonConfig is the node's node.yaml, in the keys of the daemon that
// reads it (Session 19: before, node.yaml was sim.yaml's content, which
// gdp router and gdp capsuled refuse: unknown keys name, kind, attach).
// The routers find names through their DHT, whatever the topology's
// resolver: the static resolver is a table shared inside the simulator's
// process. A router publishes its Service address (addrs) so the others
// can dial it on demand (Session 20: before, it published none, listening
// on 0.0.0.0). What comes from the keys — each router's DHT peer ids for
// resolver.bootstrap, the router's name for router_name — is filled in
// from creds (Session 20); without creds the comments say where each goes.
func daemonConfig(t *Topology, e *ExportNode, hostOf map[string]string, creds *ExportCredentials) string {
	var b strings.Builder
	n := e.Node
	alias := nodeAlias(n.Kind)
	what := map[string]string{KindRouter: "gdp router config", KindServer: "gdp capsuled config",
		KindClient: "client attach config (gdp capsule --config)"}[n.Kind]
	fmt.Fprintf(&b, "# %s: %s (domain %s), exported by gdp sim (docs/SIMULATOR.md §9).\n", n.Name, what, n.Domain)
	if creds != nil {
		fmt.Fprintf(&b, "# Credentials minted by gdp sim export for this experiment: the node's key (alias %q),\n", alias)
		fmt.Fprintf(&b, "# membership (valid until %s) and domain, in Secret %s (compose: a directory\n", creds.NotAfter.Format(time.RFC3339), e.Host)
		fmt.Fprintf(&b, "# beside the compose file) mounted read-only at %s.\n", credDir)
	} else {
		fmt.Fprintf(&b, "# Credentials are not exported: the node's key (alias %q) in %s/keys,\n", alias, credDir)
		fmt.Fprintf(&b, "# its membership and its domain's metadata at the paths below (gdp cert).\n")
	}
	if n.Kind != KindRouter {
		fmt.Fprintf(&b, "router: %q\n", hostOf[n.Attach]+":"+strconv.Itoa(RouterPort))
		if creds != nil {
			fmt.Fprintf(&b, "router_name: %q # %s\n", creds.Nodes[n.Attach].Identity.Name.String(), n.Attach)
		} else {
			fmt.Fprintf(&b, "# router_name: the name of %s's router key (gdp cert prints it); without it the\n", n.Attach)
			fmt.Fprintf(&b, "# node asks the router's admin API, which listens inside the router's pod only.\n")
		}
	} else {
		fmt.Fprintf(&b, "listen: \"0.0.0.0:%d\"\n", RouterPort)
		fmt.Fprintf(&b, "addrs: [\"%s:%d\"] # where the other routers dial it (its Service)\n", e.Host, RouterPort)
		fmt.Fprintf(&b, "state_dir: %s/router\n", stateDir)
	}
	fmt.Fprintf(&b, "keystore: %s/keys\nidentity: %s\nmember_cert: %s/%s.member\ndomain: %s/domain.meta\n",
		credDir, alias, credDir, alias, credDir)
	if creds != nil {
		if tf := trustedFiles(t, n); len(tf) > 0 {
			var paths []string
			for _, f := range tf {
				paths = append(paths, credDir+"/"+f.file)
			}
			fmt.Fprintf(&b, "trusted_domains: [%s] # the topology's other domains\n", strings.Join(paths, ", "))
		}
	}
	switch n.Kind {
	case KindRouter:
		fmt.Fprintf(&b, "resolver:\n  mode: dht\n  listen: [/ip4/0.0.0.0/udp/%d/quic-v1]\n  bootstrap_timeout: 2m\n", DHTPort)
		switch {
		case len(e.Config.DHTPeers) == 0:
			b.WriteString("  # the first router: it joins no one\n")
		case creds != nil:
			b.WriteString("  # join the routers of its domain before it, by DHT address and peer id\n")
			var boot []string
			for _, p := range e.Config.DHTPeers {
				host, _, _ := strings.Cut(p, ":")
				boot = append(boot, fmt.Sprintf("/dns4/%s/udp/%d/quic-v1/p2p/%s", host, DHTPort, creds.Nodes[nodeOfHost(hostOf, host)].PeerID))
			}
			fmt.Fprintf(&b, "  bootstrap: [%s]\n", strings.Join(boot, ", "))
		default:
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

// nodeOfHost is the node whose host is h.
func nodeOfHost(hostOf map[string]string, h string) string {
	for n, x := range hostOf {
		if x == h {
			return n
		}
	}
	return ""
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

// K8sManifests are the Kubernetes objects of an export, one of each per
// node in topology order (Secrets only with credentials).
type K8sManifests struct {
	ConfigMaps []*corev1.ConfigMap
	Services   []*corev1.Service
	Pods       []*corev1.Pod
	Secrets    []*corev1.Secret
}

// secretMode is the mode of every file of a node's Secret volume: a key
// readable by others is refused (certs.Keystore).
const secretMode int32 = 0o400

// K8sObjects builds, per node, a ConfigMap (node.yaml, sim.yaml,
// links.sh), a Service, a Pod whose init container applies links.sh and,
// with opts.Credentials, a Secret with the node's credentials, mounted
// read-only at /var/lib/gdp (mode 0400) in the node's container only.
func K8sObjects(top *Topology, opts ExportOptions) (*K8sManifests, error) {
	opts.defaults()
	nodes, err := top.ExportWith(opts.Credentials)
	if err != nil {
		return nil, err
	}
	m := &K8sManifests{}
	for _, e := range nodes {
		simCfg, err := yaml.Marshal(e.Config)
		if err != nil {
			return nil, err
		}
		labels := map[string]string{LabelTopology: hostName(top.Name)[4:], LabelNode: e.Host, LabelKind: e.Node.Kind}
		meta := metav1.ObjectMeta{Name: e.Host, Namespace: opts.Namespace, Labels: labels}
		m.ConfigMaps = append(m.ConfigMaps, &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta,
			Data:       map[string]string{ConfigFile: e.Daemon, SimFile: string(simCfg), LinksFile: e.Script},
		})
		ports := []corev1.ServicePort{{Name: "tunnel", Protocol: corev1.ProtocolUDP, Port: RouterPort, TargetPort: intstr.FromInt32(RouterPort)}}
		if e.Node.Kind == KindRouter { // every exported router runs a DHT node
			ports = append(ports, corev1.ServicePort{Name: "dht", Protocol: corev1.ProtocolUDP, Port: DHTPort, TargetPort: intstr.FromInt32(DHTPort)})
		}
		m.Services = append(m.Services, &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta,
			Spec:       corev1.ServiceSpec{Selector: map[string]string{LabelNode: e.Host}, Ports: ports},
		})
		vol := corev1.VolumeMount{Name: "config", MountPath: configDir, ReadOnly: true}
		pod := &corev1.Pod{
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
		}
		if opts.RunAs != nil {
			c := &pod.Spec.Containers[0]
			nonRoot := true
			uid, gid := opts.RunAs.UID, opts.RunAs.GID
			c.SecurityContext = &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &gid, RunAsNonRoot: &nonRoot}
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "state", MountPath: stateDir})
		}
		if len(e.Secret) > 0 {
			sec := &corev1.Secret{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
				ObjectMeta: meta,
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{},
			}
			var items []corev1.KeyToPath
			for _, f := range e.Secret {
				sec.Data[f.Key] = f.Data
				items = append(items, corev1.KeyToPath{Key: f.Key, Path: f.Path})
			}
			m.Secrets = append(m.Secrets, sec)
			mode := secretMode
			secretVol := corev1.Volume{Name: "credentials", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: e.Host, Items: items, DefaultMode: &mode},
			}}
			c := &pod.Spec.Containers[0]
			if opts.RunAs == nil {
				pod.Spec.Volumes = append(pod.Spec.Volumes, secretVol)
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "credentials", MountPath: credDir, ReadOnly: true})
			} else {
				secretVol.Name = "credentials-secret"
				pod.Spec.Volumes = append(pod.Spec.Volumes, secretVol,
					corev1.Volume{Name: "credentials", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
					Name: "credentials", Image: opts.Image, Command: []string{"sh", "-c", credentialsScript(e.Secret, *opts.RunAs)},
					VolumeMounts: []corev1.VolumeMount{
						{Name: "credentials-secret", MountPath: secretSrcDir, ReadOnly: true},
						{Name: "credentials", MountPath: credDir},
					},
				})
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "credentials", MountPath: credDir, ReadOnly: true})
			}
		}
		m.Pods = append(m.Pods, pod)
	}
	return m, nil
}

// secretSrcDir is where the credentials init container (RunAs) sees the
// node's Secret.
const secretSrcDir = "/var/lib/gdp-secret"

// credentialsScript is the credentials init container's script (RunAs):
// it copies the node's credential files from the Secret (secretSrcDir)
// to credDir with their modes (the key 0400) and gives credDir to the
// user the node runs as. Only cp, mkdir, chmod and chown: the image's sh.
func credentialsScript(files []SecretFile, as RunAs) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	dirs := map[string]bool{}
	for _, f := range files {
		if d := path.Dir(f.Path); d != "." && !dirs[d] {
			dirs[d] = true
			fmt.Fprintf(&b, "mkdir -p %s/%s\n", credDir, d)
		}
		fmt.Fprintf(&b, "cp %s/%s %s/%s\nchmod %04o %s/%s\n", secretSrcDir, f.Path, credDir, f.Path, f.Mode.Perm(), credDir, f.Path)
	}
	fmt.Fprintf(&b, "chown -R %d:%d %s\nchmod 0700 %s\n", as.UID, as.GID, credDir, credDir)
	return b.String()
}

// ExportK8s writes DIR/namespace.yaml and one DIR/<host>.yaml per node
// (its ConfigMap, Service, Pod and, with credentials, Secret; then the
// file is mode 0600): `kubectl apply -f DIR`.
func ExportK8s(top *Topology, dir string, opts ExportOptions) error {
	opts.defaults()
	m, err := K8sObjects(top, opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}}
	if err := writeDocs(filepath.Join(dir, "namespace.yaml"), 0o644, ns); err != nil {
		return err
	}
	for i, cm := range m.ConfigMaps {
		objs, mode := []any{cm, m.Services[i], m.Pods[i]}, os.FileMode(0o644)
		if m.Secrets != nil { // before the Pod that mounts it
			objs, mode = []any{cm, m.Secrets[i], m.Services[i], m.Pods[i]}, 0o600 // private keys
		}
		if err := writeDocs(filepath.Join(dir, cm.Name+".yaml"), mode, objs...); err != nil {
			return err
		}
	}
	return nil
}

func writeDocs(path string, mode os.FileMode, objs ...any) error {
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
	return writeFileAtomic(path, b.Bytes(), mode)
}

// writeFileAtomic writes through a temporary file, so a failed export
// leaves no half-written manifest.
//
// Session 21 (review14): a fresh temporary name (not path+".tmp", where a
// symlink planted between a Remove and a WriteFile redirected the private
// keys), its mode set before the data, fsynced (internal/fsutil).
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return fsutil.WriteFile(path, b, mode, true)
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
	// Volumes, with credentials: the node's credentials directory beside
	// the compose file, read-only at /var/lib/gdp.
	Volumes  []string          `yaml:"volumes,omitempty"`
	Networks []string          `yaml:"networks"`
	Labels   map[string]string `yaml:"labels"`
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
// applied (NET_ADMIN) before the node starts; with opts.Credentials, each
// node's credentials directory credDir/<host> (relative to the compose
// file) mounted read-only at /var/lib/gdp.
func ComposeFile(top *Topology, opts ExportOptions, credDir string) (*Compose, error) {
	c, _, err := composeFile(top, opts, credDir)
	return c, err
}

func composeFile(top *Topology, opts ExportOptions, creds string) (*Compose, []*ExportNode, error) {
	opts.defaults()
	if opts.RunAs != nil {
		return nil, nil, errComposeRunAs
	}
	nodes, err := top.ExportWith(opts.Credentials)
	if err != nil {
		return nil, nil, err
	}
	c := &Compose{Name: hostName(top.Name), Services: map[string]ComposeService{}, Configs: map[string]ComposeConfig{},
		Networks: map[string]ComposeNetwork{"gdpsim": {Driver: "bridge"}}}
	for _, e := range nodes {
		simCfg, err := yaml.Marshal(e.Config)
		if err != nil {
			return nil, nil, err
		}
		c.Configs[e.Host+"-config"] = ComposeConfig{Content: e.Daemon}
		c.Configs[e.Host+"-sim"] = ComposeConfig{Content: string(simCfg)}
		c.Configs[e.Host+"-links"] = ComposeConfig{Content: e.Script}
		cmd := strings.Join(quoteAll(nodeCommand(e)), " ")
		svc := ComposeService{
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
		if len(e.Secret) > 0 {
			svc.Volumes = []string{"./" + filepath.ToSlash(filepath.Join(creds, e.Host)) + ":" + credDir + ":ro"}
		}
		c.Services[e.Host] = svc
	}
	return c, nodes, nil
}

// errComposeRunAs: a compose service runs links.sh (tc, which needs root)
// and the node in one container, so it cannot run the node as another
// user.
var errComposeRunAs = errors.New("export: --run-as is for --k8s only: a compose service shapes its links with tc (root) and runs the node in the same container; run it as root, or use --k8s")

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// ComposeCredentialsDir is where ExportCompose writes the credentials of
// the compose file at path: the directory beside it named after it
// (compose.yaml: compose-credentials).
func ComposeCredentialsDir(path string) string {
	base := filepath.Base(path)
	return filepath.Join(filepath.Dir(path), strings.TrimSuffix(base, filepath.Ext(base))+"-credentials")
}

// ExportCompose writes the docker-compose file to path and, with
// credentials, one directory per node under ComposeCredentialsDir(path)
// (replacing a previous export's): keys/<alias>.key (0400), its metadata,
// the membership and the domain (0444).
func ExportCompose(top *Topology, path string, opts ExportOptions) error {
	dir := ComposeCredentialsDir(path)
	c, nodes, err := composeFile(top, opts, filepath.Base(dir))
	if err != nil {
		return err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return err
	}
	if opts.Credentials != nil {
		if err := writeCredentialDirs(dir, nodes); err != nil {
			return fmt.Errorf("export credentials to %s: %w", dir, err)
		}
	}
	return writeFileAtomic(path, b.Bytes(), 0o644)
}
