package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gdpnet/gdpnet/certs"
)

// DefaultCertLifetime is how long the memberships an export mints are
// valid (gdp sim export --cert-lifetime): a week, as the in-process
// simulator's. Nothing renews them inside the cluster.
const DefaultCertLifetime = 7 * 24 * time.Hour

// exportBackdate is how long before the export the minted memberships
// start: a cluster's clocks may lie behind the exporting machine's by more
// than the verifiers' tolerance (certs.DefaultClockSkew).
const exportBackdate = time.Hour

// ExportCredentials are the identities an export mints (Session 20): a
// trust domain per topology domain and, per node, an Ed25519 key and its
// membership, made with the calls gdp cert keygen and gdp cert issue
// member make. The domains' private keys go into no manifest
// (SaveDomains keeps them on the exporting machine when asked).
type ExportCredentials struct {
	// Domains are the trust domains by topology domain name.
	Domains map[string]*certs.Identity
	// Nodes are the nodes' identities by node name.
	Nodes map[string]*NodeCredentials
	// NotBefore and NotAfter bound every membership.
	NotBefore, NotAfter time.Time
}

// NodeCredentials is one node's identity and membership.
type NodeCredentials struct {
	// Alias is the node's keystore alias: router, capsuled or client, what
	// its node.yaml names.
	Alias    string
	Identity *certs.Identity
	Member   *certs.Cert
	// PeerID is a router's DHT identity (its key as a libp2p peer), for
	// the other routers' resolver.bootstrap; empty for endpoints.
	PeerID peer.ID
}

// nodeAlias is the keystore alias of a node's key, by kind.
func nodeAlias(kind string) string {
	return map[string]string{KindRouter: "router", KindServer: "capsuled", KindClient: "client"}[kind]
}

// MintCredentials validates t and mints its credentials: a fresh domain
// per topology domain and every node's key and membership, valid from an
// hour before now for lifetime (0: DefaultCertLifetime).
func (t *Topology) MintCredentials(lifetime time.Duration) (*ExportCredentials, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if lifetime < 0 {
		return nil, fmt.Errorf("export: certificate lifetime %s: want a positive duration", lifetime)
	}
	if lifetime == 0 {
		lifetime = DefaultCertLifetime
	}
	now := time.Now().UTC().Truncate(time.Second)
	c := &ExportCredentials{Domains: map[string]*certs.Identity{}, Nodes: map[string]*NodeCredentials{},
		NotBefore: now.Add(-exportBackdate), NotAfter: now.Add(lifetime)}
	for _, d := range t.Domains {
		id, err := certs.NewIdentity(certs.KindDomain, fmt.Sprintf("gdp sim export %s: domain %s", t.Name, d))
		if err != nil {
			return nil, err
		}
		c.Domains[d] = id
	}
	kinds := map[string]certs.Kind{KindRouter: certs.KindRouter, KindServer: certs.KindServer, KindClient: certs.KindClient}
	for _, n := range t.Nodes {
		id, err := certs.NewIdentity(kinds[n.Kind], fmt.Sprintf("gdp sim export %s: %s", t.Name, n.Name))
		if err != nil {
			return nil, err
		}
		m, err := certs.IssueMember(c.Domains[n.Domain], id.Name, c.NotBefore, c.NotAfter)
		if err != nil {
			return nil, err
		}
		nc := &NodeCredentials{Alias: nodeAlias(n.Kind), Identity: id, Member: m}
		if n.Kind == KindRouter {
			if nc.PeerID, err = peerID(id); err != nil {
				return nil, fmt.Errorf("export: router %s: %w", n.Name, err)
			}
		}
		c.Nodes[n.Name] = nc
	}
	return c, nil
}

// check says whether c holds an identity for every node of t in the
// node's domain (credentials minted for another topology would give nodes
// keys their configs do not name).
func (c *ExportCredentials) check(t *Topology) error {
	for _, n := range t.Nodes {
		nc := c.Nodes[n.Name]
		dom := c.Domains[n.Domain]
		if nc == nil || dom == nil || nc.Member == nil || nc.Member.Issuer != dom.Name || nc.Alias != nodeAlias(n.Kind) {
			return fmt.Errorf("export: the credentials given have no %s identity for node %s in domain %s (minted for another topology?)", n.Kind, n.Name, n.Domain)
		}
	}
	return nil
}

// peerID is a router's libp2p peer ID (its DHT identity).
func peerID(id *certs.Identity) (peer.ID, error) {
	priv, err := crypto.UnmarshalEd25519PrivateKey(id.Key)
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(priv)
}

// SecretFile is one file of a node's credentials: Key in its Secret, Path
// under the credentials directory (/var/lib/gdp) with Mode.
type SecretFile struct {
	Key  string
	Path string
	Data []byte
	Mode os.FileMode
}

// secretFiles are node n's credential files at the paths its node.yaml
// names: its key and metadata in keys/, its membership, its domain's
// metadata and, for routers and servers of a topology with several
// domains, every other domain's as trusted-K.meta (every node trusts every
// domain, as in-process).
func (c *ExportCredentials) secretFiles(t *Topology, n *Node) []SecretFile {
	nc := c.Nodes[n.Name]
	a := nc.Alias
	files := []SecretFile{
		{Key: a + ".key", Path: "keys/" + a + ".key", Data: certs.Armor(certs.PEMPrivateKey, nc.Identity.Key.Seed()), Mode: 0o400},
		{Key: a + ".meta", Path: "keys/" + a + ".meta", Data: certs.Armor(certs.PEMMetadata, nc.Identity.Meta.Marshal()), Mode: 0o444},
		{Key: a + ".member", Path: a + ".member", Data: certs.Armor(certs.PEMCert, nc.Member.Marshal()), Mode: 0o444},
		{Key: "domain.meta", Path: "domain.meta", Data: certs.Armor(certs.PEMMetadata, c.Domains[n.Domain].Meta.Marshal()), Mode: 0o444},
	}
	for _, f := range trustedFiles(t, n) {
		files = append(files, SecretFile{Key: f.file, Path: f.file, Data: certs.Armor(certs.PEMMetadata, c.Domains[f.domain].Meta.Marshal()), Mode: 0o444})
	}
	return files
}

type trustedFile struct{ domain, file string }

// trustedFiles are the other domains a router or server trusts, with the
// file each one's metadata is in.
func trustedFiles(t *Topology, n *Node) []trustedFile {
	if n.Kind == KindClient {
		return nil // a client's attach block has no trusted_domains (gdp capsule --trust)
	}
	var out []trustedFile
	for i, d := range t.Domains {
		if d != n.Domain {
			out = append(out, trustedFile{domain: d, file: fmt.Sprintf("trusted-%d.meta", i)})
		}
	}
	return out
}

// writeCredentialDirs writes, under dir, one directory per node (named by
// its host) holding its credential files with their modes: what compose
// mounts read-only at /var/lib/gdp. It writes into a temporary directory
// and renames it over dir, so a failed export leaves the previous one.
func writeCredentialDirs(dir string, nodes []*ExportNode) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	// A fresh name (Session 21, review14: not dir+".tmp", which a
	// symlink could have taken between its removal and its creation).
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after the rename: nothing there
	for _, e := range nodes {
		for _, f := range e.Secret {
			p := filepath.Join(tmp, e.Host, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
				return err
			}
			if err := os.Chmod(p, f.Mode); err != nil { // whatever the umask
				return err
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// SaveDomains keeps the domains' keys in the keystore dir (created 0700;
// one 0600 key file per domain, alias domain-NAME): with them the
// experimenter can issue memberships later (gdp cert --keystore DIR issue
// member). No exported manifest holds them. It refuses to replace a key
// the keystore already has.
func (c *ExportCredentials) SaveDomains(dir string) ([]string, error) {
	ks, err := certs.OpenKeystore(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for d := range c.Domains {
		names = append(names, d)
	}
	sort.Strings(names)
	var aliases []string
	seen := map[string]string{}
	for _, d := range names {
		alias := domainAlias(d)
		if o, dup := seen[alias]; dup {
			return nil, fmt.Errorf("export: domains %q and %q map to the same keystore alias %s", o, d, alias)
		}
		seen[alias] = d
		aliases = append(aliases, alias)
	}
	// Every alias free before any is saved (Session 21, review14: an
	// ErrExists on the second left the first saved, and a re-run was then
	// refused on the first).
	for _, alias := range aliases {
		for _, ext := range []string{".key", ".meta"} {
			if p := filepath.Join(ks.Dir(), alias+ext); fileExists(p) {
				return nil, fmt.Errorf("keystore save %s: %w: %s (a previous export's domain: give another --ca-keystore)", alias, certs.ErrExists, p)
			}
		}
	}
	for i, alias := range aliases {
		if err := ks.Save(alias, c.Domains[seen[alias]]); err != nil {
			for _, done := range aliases[:i] { // this call's own, none other's
				_ = os.Remove(filepath.Join(ks.Dir(), done+".key"))
				_ = os.Remove(filepath.Join(ks.Dir(), done+".meta"))
			}
			if errors.Is(err, certs.ErrExists) {
				return nil, fmt.Errorf("%w (a previous export's domain: give another --ca-keystore)", err)
			}
			return nil, err
		}
	}
	return aliases, nil
}

// domainAlias is the keystore alias of a topology domain's key.
func domainAlias(d string) string {
	var b strings.Builder
	for _, r := range d {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 56 {
			break
		}
	}
	return "domain-" + b.String()
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
