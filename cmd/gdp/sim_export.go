package main

import (
	"errors"
	"fmt"

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
	var k8sDir, compose string
	var opts sim.ExportOptions
	c := &cobra.Command{
		Use:   "export FILE (--k8s DIR | --compose FILE)",
		Short: "Export a topology to Kubernetes manifests or a docker-compose file (docs/SIMULATOR.md §9)",
		Long: `export writes the topology for a cluster engine: per node a ConfigMap (its
node.yaml — the gdp router, gdp capsuled or client config it runs with —,
sim.yaml and links.sh), a Service and a Pod whose init container applies
links.sh with tc (htb + netem per destination: the emulated path's delay,
jitter, loss and bandwidth), or the same as one docker-compose file.

Credentials are not exported: create each node's key, membership and
domain with "gdp cert" into a Secret mounted at /var/lib/gdp, and fill in
what comes from the keys (each router's resolver.bootstrap peer ids, the
servers' and clients' router_name); node.yaml says where in comments
(docs/SIMULATOR.md §9).`,
		Example: `  gdp sim export topo.yaml --k8s manifests/ && kubectl apply -f manifests/
  gdp sim export topo.yaml --compose compose.yaml && docker compose -f compose.yaml up`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if k8sDir == "" && compose == "" {
				return errors.New("sim export: give --k8s DIR, --compose FILE or both")
			}
			t, err := sim.Load(args[0])
			if err != nil {
				return err
			}
			if k8sDir != "" {
				if err := sim.ExportK8s(t, k8sDir, opts); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d nodes: Kubernetes manifests in %s (kubectl apply -f %s)\n", len(t.Nodes), k8sDir, k8sDir)
			}
			if compose != "" {
				if err := sim.ExportCompose(t, compose, opts); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d nodes: docker-compose file %s\n", len(t.Nodes), compose)
			}
			return nil
		},
	}
	c.Flags().StringVar(&k8sDir, "k8s", "", "write Kubernetes manifests (namespace.yaml, one file per node) to this directory")
	c.Flags().StringVar(&compose, "compose", "", "write a docker-compose file")
	c.Flags().StringVar(&opts.Image, "image", "", "container image with gdp, sh, getent and tc (default gdpnet/gdp:latest)")
	c.Flags().StringVar(&opts.Namespace, "namespace", "", "Kubernetes namespace (default gdp-sim)")
	return c
}
