package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/sim"
)

func init() {
	for _, c := range rootCmd.Commands() {
		if c.Name() == "sim" {
			c.AddCommand(simExportCmd())
		}
	}
}

func simExportCmd() *cobra.Command {
	var k8sDir, compose, caKeystore, runAs string
	var withCreds bool
	var lifetime time.Duration
	var opts sim.ExportOptions
	c := &cobra.Command{
		Use:   "export FILE (--k8s DIR | --compose FILE)",
		Short: "Export a topology to Kubernetes manifests or a docker-compose file (docs/SIMULATOR.md §9)",
		Long: `export writes the topology for a cluster engine: per node a ConfigMap (its
node.yaml — the gdp router, gdp capsuled or client config it runs with —,
sim.yaml and links.sh), a Service and a Pod whose init container applies
links.sh with tc (htb + netem per destination: the emulated path's delay,
jitter, loss and bandwidth), or the same as one docker-compose file.

Credentials are minted at export time (--credentials, the default): a
fresh trust domain per topology domain, and every node's key and
membership (valid --cert-lifetime), written as a Secret per node (compose:
a directory per node beside the compose file) mounted read-only at
/var/lib/gdp, where node.yaml names them; each router's
resolver.bootstrap and each endpoint's router_name are filled in from the
keys. The manifests then hold the nodes' private keys (they are Secrets):
keep them as you would keys. The domains' own keys go into no manifest;
--ca-keystore DIR keeps them on this machine, to issue memberships later.
--credentials=false exports no credentials, for nodes that get theirs
from "gdp cert" (node.yaml says where in comments).

The containers run as the image's user (root). --run-as UID[:GID] (--k8s
only) runs each node's gdp container as that user instead: a Secret's
files are root's, mode 0400 (and fsGroup would make the key group-readable,
which the keystore refuses), so a root init container copies them into an
in-memory emptyDir owned by UID:GID (the key 0400) mounted read-only at
/var/lib/gdp, and /var/lib/gdp-state is an emptyDir.`,
		Example: `  gdp sim export topo.yaml --k8s manifests/ && kubectl apply -f manifests/
  gdp sim export topo.yaml --compose compose.yaml && docker compose -f compose.yaml up
  gdp sim export topo.yaml --k8s manifests/ --cert-lifetime 720h --ca-keystore ca-keys/
  gdp sim export topo.yaml --k8s manifests/ --run-as 65532:65532`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if k8sDir == "" && compose == "" {
				return errors.New("sim export: give --k8s DIR, --compose FILE or both")
			}
			if !withCreds && (caKeystore != "" || cmd.Flags().Changed("cert-lifetime")) {
				return errors.New("sim export: --ca-keystore and --cert-lifetime need --credentials")
			}
			if lifetime <= 0 {
				return fmt.Errorf("sim export: --cert-lifetime %s: want a positive duration", lifetime)
			}
			if runAs != "" {
				if compose != "" {
					return errors.New("sim export: --run-as is for --k8s only: a compose service shapes its links with tc (root) and runs the node in the same container")
				}
				ra, err := parseRunAs(runAs)
				if err != nil {
					return err
				}
				opts.RunAs = ra
			}
			t, err := sim.Load(args[0])
			if err != nil {
				return err
			}
			if withCreds {
				// Minted once: the Kubernetes and compose forms of one
				// export share the nodes' identities.
				if opts.Credentials, err = t.MintCredentials(lifetime); err != nil {
					return err
				}
			}
			var aliases []string
			if caKeystore != "" { // before the manifests: none whose domain is lost
				if aliases, err = opts.Credentials.SaveDomains(caKeystore); err != nil {
					return err
				}
			}
			var wrote []string
			if k8sDir != "" {
				if err := sim.ExportK8s(t, k8sDir, opts); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d nodes: Kubernetes manifests in %s (kubectl apply -f %s)\n", len(t.Nodes), k8sDir, k8sDir)
				wrote = append(wrote, fmt.Sprintf("the Secrets in %s/*.yaml (mode 0600)", k8sDir))
			}
			if compose != "" {
				if err := sim.ExportCompose(t, compose, opts); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d nodes: docker-compose file %s\n", len(t.Nodes), compose)
				wrote = append(wrote, fmt.Sprintf("%s/ (keys mode 0400)", sim.ComposeCredentialsDir(compose)))
			}
			if !withCreds {
				say(cmd, "no credentials exported: create each node's key, membership and domain with gdp cert at the paths its node.yaml names (docs/SIMULATOR.md §9)")
				return nil
			}
			cr := opts.Credentials
			say(cmd, "credentials: %d domain(s) and %d node identities minted for this export, memberships valid until %s (--cert-lifetime)",
				len(cr.Domains), len(cr.Nodes), cr.NotAfter.Format(time.RFC3339))
			say(cmd, "the nodes' PRIVATE KEYS are in %s: keep them as you would keys (they are what Secrets are for)", strings.Join(wrote, " and "))
			if caKeystore != "" {
				say(cmd, "domain keys (no manifest holds them) kept in keystore %s as %s: gdp cert --keystore %s issue member --domain %s --member NODE.meta --out FILE",
					caKeystore, strings.Join(aliases, ", "), caKeystore, aliases[0])
			} else {
				say(cmd, "the domains' private keys were not kept (no manifest holds them): no further memberships can be issued; --ca-keystore DIR keeps them")
			}
			// The names experiments address (gdp ping NAME, gdp capsule
			// create --servers NAME), also each node's sim.yaml gdp_name.
			w := cmd.OutOrStdout()
			for _, n := range t.Nodes {
				fmt.Fprintf(w, "%-8s %-7s %s\n", n.Name, n.Kind, cr.Nodes[n.Name].Identity.Name)
			}
			return nil
		},
	}
	c.Flags().StringVar(&k8sDir, "k8s", "", "write Kubernetes manifests (namespace.yaml, one file per node) to this directory")
	c.Flags().StringVar(&compose, "compose", "", "write a docker-compose file")
	c.Flags().StringVar(&opts.Image, "image", "", "container image with gdp, sh, getent and tc (default gdpnet/gdp:latest)")
	c.Flags().StringVar(&opts.Namespace, "namespace", "", "Kubernetes namespace (default gdp-sim)")
	c.Flags().BoolVar(&withCreds, "credentials", true, "mint every node's key and membership (fresh domains) into a Secret per node; false: bring your own (gdp cert)")
	c.Flags().DurationVar(&lifetime, "cert-lifetime", sim.DefaultCertLifetime, "validity of the memberships minted (from an hour before the export); nothing renews them in the cluster")
	c.Flags().StringVar(&caKeystore, "ca-keystore", "", "keep the minted domains' private keys in this keystore directory (default: not kept)")
	c.Flags().StringVar(&runAs, "run-as", "", "--k8s: run each node's gdp container as UID[:GID] (default GID = UID) instead of the image's user; its credentials are copied to a directory that user owns")
	return c
}

// parseRunAs reads --run-as UID[:GID]: non-root, GID defaulting to UID.
func parseRunAs(v string) (*sim.RunAs, error) {
	u, g, hasG := strings.Cut(v, ":")
	uid, err := strconv.ParseInt(u, 10, 64)
	gid := uid
	if err == nil && hasG {
		gid, err = strconv.ParseInt(g, 10, 64)
	}
	if err != nil || uid <= 0 || gid < 0 || uid > 1<<31-1 || gid > 1<<31-1 {
		return nil, fmt.Errorf("sim export: --run-as %q: want UID[:GID], numbers, UID not 0 (root is the default)", v)
	}
	return &sim.RunAs{UID: uid, GID: gid}, nil
}
