package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
)

func init() {
	var kind, alias, desc, out string
	keygen := &cobra.Command{
		Use:   "keygen --kind KIND --alias ALIAS",
		Short: "Create an identity: an Ed25519 key in the keystore and its metadata",
		Long: `keygen creates a fresh Ed25519 key and metadata of the given kind, stores
both in the keystore under ALIAS (ALIAS.key, mode 0600, and ALIAS.meta), and
writes a copy of the public metadata to --out (default ALIAS.meta in the
current directory) for you to hand to whoever issues your certificates.

It prints the new name on stdout. Kinds: router, server, client, agent,
resolver, domain. (A capsule is made with new-capsule; a domain with
new-domain, which is keygen --kind domain.)`,
		Example: `  gdp cert keygen --kind router --alias edge1 --description "edge router, site 1"
  gdp cert keygen --kind server --alias store1
  NAME=$(gdp cert keygen --kind client --alias alice)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := certs.ParseKind(kind)
			if err != nil {
				return err
			}
			if k == certs.KindCapsule {
				return fmt.Errorf("a capsule has an owner and a writer key: use gdp cert new-capsule")
			}
			return createIdentity(cmd, k, alias, desc, out)
		},
	}
	keygen.Flags().StringVar(&kind, "kind", "", "router, server, client, agent, resolver or domain (required)")
	keygen.Flags().StringVar(&alias, "alias", "", "local name of the identity in the keystore (required)")
	keygen.Flags().StringVar(&desc, "description", "", "free text stored in the metadata (part of the name)")
	keygen.Flags().StringVar(&out, "out", "", "where to write the public metadata (default ALIAS.meta)")
	keygen.MarkFlagRequired("kind")
	keygen.MarkFlagRequired("alias")
	certCmd.AddCommand(keygen)

	var dalias, ddesc, dout string
	domain := &cobra.Command{
		Use:   "new-domain --alias ALIAS",
		Short: "Create a trust domain: the key that signs membership certificates",
		Long: `new-domain creates a trust domain identity (keygen --kind domain). The
domain key signs membership certificates for routers, resolvers and servers;
keep its keystore on a well-guarded machine. Hand the public metadata
(ALIAS.meta) to every node that should trust the domain (gdp cert verify
--trust, and the trust lists of router and resolver configs).`,
		Example: `  gdp cert new-domain --alias acme --description "ACME edge network"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return createIdentity(cmd, certs.KindDomain, dalias, ddesc, dout)
		},
	}
	domain.Flags().StringVar(&dalias, "alias", "", "local name of the domain in the keystore (required)")
	domain.Flags().StringVar(&ddesc, "description", "", "free text stored in the metadata (part of the name)")
	domain.Flags().StringVar(&dout, "out", "", "where to write the public metadata (default ALIAS.meta)")
	domain.MarkFlagRequired("alias")
	certCmd.AddCommand(domain)

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the identities in the keystore",
		Example: `  gdp cert list --keystore /etc/gdp/keys`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(certKeystoreDir); err != nil {
				return fmt.Errorf("keystore %s: %w; create a key with: gdp cert --keystore %s keygen --kind KIND --alias ALIAS",
					certKeystoreDir, err, certKeystoreDir)
			}
			ks, err := openKeystore()
			if err != nil {
				return err
			}
			es, err := ks.List()
			if err != nil {
				return err
			}
			for _, e := range es {
				fmt.Fprintf(cmd.OutOrStdout(), "%-20s %-8s %s\n", e.Alias, e.Kind, e.Name)
			}
			return nil
		},
	}
	certCmd.AddCommand(list)
}

func createIdentity(cmd *cobra.Command, kind certs.Kind, alias, desc, out string) error {
	if err := certs.ValidAlias(alias); err != nil {
		return err
	}
	if out == "" {
		out = alias + ".meta"
	}
	ks, err := openKeystore()
	if err != nil {
		return err
	}
	id, err := certs.NewIdentity(kind, desc)
	if err != nil {
		return err
	}
	if err := ks.Save(alias, id); err != nil {
		return err
	}
	if err := writeOut(out, certs.Armor(certs.PEMMetadata, id.Meta.Marshal()), false); err != nil {
		return fmt.Errorf("identity saved in the keystore, but exporting its metadata failed: %w", err)
	}
	say(cmd, "created %s %q in %s (private key %s/%s.key, mode 0600); public metadata in %s",
		kind, alias, ks.Dir(), ks.Dir(), alias, out)
	fmt.Fprintln(cmd.OutOrStdout(), id.Name)
	return nil
}
