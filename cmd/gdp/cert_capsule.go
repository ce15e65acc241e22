package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
)

func init() {
	var owner, writer, writerMeta, desc, out string
	cmd := &cobra.Command{
		Use:   "new-capsule --owner ALIAS --writer ALIAS --out FILE",
		Short: "Create a capsule's metadata (owner and writer keys) and print its name",
		Long: `new-capsule writes the metadata of a new DataCapsule to --out and prints the
capsule's name (SHA-256 of that metadata) on stdout.

A capsule has two keys. The OWNER key (--owner, an identity in the keystore)
decides which servers may host the capsule: it signs AdCerts. The WRITER key
(--writer, an identity in the keystore, or --writer-meta, the metadata file
of someone else's identity) signs the capsule's records. Keep them apart: a
compromised writer then cannot move the capsule to a server of its choosing.`,
		Example: `  gdp cert keygen --kind client --alias alice
  gdp cert keygen --kind client --alias alice-writer
  gdp cert new-capsule --owner alice --writer alice-writer \
      --description "temperature, lab 3" --out sensor.meta`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			own, err := loadIdentity(owner)
			if err != nil {
				return fmt.Errorf("owner: %w", err)
			}
			var wkey ed25519.PublicKey
			switch {
			case writer != "" && writerMeta != "":
				return errors.New("give --writer or --writer-meta, not both")
			case writer != "":
				w, err := loadIdentity(writer)
				if err != nil {
					return fmt.Errorf("writer: %w", err)
				}
				wkey = w.Meta.Key
			case writerMeta != "":
				m, err := certs.ReadMetadataFile(writerMeta)
				if err != nil {
					return fmt.Errorf("writer: %w", err)
				}
				wkey = m.Key
			default:
				return errors.New("no writer key: give --writer ALIAS or --writer-meta FILE")
			}
			m, err := certs.NewCapsule(own.Key, wkey, desc)
			if err != nil {
				return err
			}
			if err := writeOut(out, certs.Armor(certs.PEMMetadata, m.Marshal()), false); err != nil {
				return err
			}
			say(cmd, "capsule metadata written to %s (owner %q, writer key %s)", out, owner, shortKey(wkey))
			fmt.Fprintln(cmd.OutOrStdout(), m.Name())
			return nil
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "keystore alias of the owner identity, which signs AdCerts (required)")
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the identity whose key signs records")
	cmd.Flags().StringVar(&writerMeta, "writer-meta", "", "metadata file of the writer's identity (instead of --writer)")
	cmd.Flags().StringVar(&desc, "description", "", "free text stored in the metadata (part of the name)")
	cmd.Flags().StringVar(&out, "out", "", "file to write the capsule metadata to (required)")
	cmd.MarkFlagRequired("owner")
	cmd.MarkFlagRequired("out")
	certCmd.AddCommand(cmd)
}
