package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/fsutil"
)

// certCmd is "gdp cert": identities, certificates and chains, modelled on
// nebula-cert. Its subcommands live in cert_*.go.
var certCmd = &cobra.Command{
	Use:   "cert",
	Short: "Create identities, issue and check certificates (AdCert, RtCert, membership)",
	Long: `cert manages gdpnet identities and certificates.

Every principal (trust domain, router, capsule server, client, capsule) has
metadata; its 256-bit name is the SHA-256 of that metadata. Private keys stay
in a keystore directory (one 0600 file per key, next to the metadata); the
public metadata files (*.meta) and certificates are what you copy between
machines. Certificates are short-lived and renewed before they expire:

  member  a trust domain says "router X belongs to domain D"
  rtcert  a server says "I (and my capsules) am reachable through router R"
  adcert  a capsule's owner says "server S may host and advertise capsule C"

A router accepts a route only with the whole chain (gdp cert chain, gdp cert
verify). docs/OPERATIONS.md §1 walks through setting up a domain, a router, a
server and a capsule.

The keystore is --keystore, else $GDP_KEYSTORE, else ./keys.`,
	Example: `  gdp cert new-domain --alias acme
  gdp cert keygen --kind router --alias edge1
  gdp cert issue member --domain acme --member edge1.meta --out edge1.member
  gdp cert inspect edge1.member`,
}

var certKeystoreDir string

func init() {
	def := os.Getenv("GDP_KEYSTORE")
	if def == "" {
		def = "keys"
	}
	certCmd.PersistentFlags().StringVar(&certKeystoreDir, "keystore", def,
		"keystore directory holding private keys (one 0600 file per key)")
	addCommand(certCmd)
}

func openKeystore() (*certs.Keystore, error) { return certs.OpenKeystore(certKeystoreDir) }

// loadIdentity loads alias from the keystore.
func loadIdentity(alias string) (*certs.Identity, error) {
	if alias == "" {
		return nil, errors.New("no keystore alias given")
	}
	if _, err := os.Stat(certKeystoreDir); err != nil {
		// not OpenKeystore, which would create the directory
		return nil, fmt.Errorf("keystore %s: %w; create the key with: gdp cert --keystore %s keygen --kind KIND --alias %s",
			certKeystoreDir, err, certKeystoreDir, alias)
	}
	ks, err := openKeystore()
	if err != nil {
		return nil, err
	}
	id, err := ks.Load(alias)
	if errors.Is(err, certs.ErrNotFound) {
		return nil, fmt.Errorf("%w; create it with: gdp cert --keystore %s keygen --kind KIND --alias %s", err, certKeystoreDir, alias)
	}
	return id, err
}

// writeOut writes data to path atomically and durably. It refuses to
// replace an existing file unless overwrite is set.
func writeOut(path string, data []byte, overwrite bool) error {
	if path == "" {
		return errors.New("no output file given (--out)")
	}
	if err := fsutil.WriteFile(path, data, 0o644, overwrite); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; not overwriting it", path)
		}
		return err
	}
	return nil
}

// parseWhen parses "now" or an RFC 3339 time.
func parseWhen(s string) (time.Time, error) {
	if s == "" || s == "now" {
		return time.Now().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want now or RFC 3339 like 2026-01-02T15:04:05Z", s)
	}
	return t.UTC(), nil
}

// readAny reads a metadata, certificate or chain file (PEM or binary) and
// returns what it holds.
func readAny(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	typ, body, err := certs.Dearmor(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch typ {
	case certs.PEMMetadata:
		return certs.ParseMetadata(body)
	case certs.PEMCert:
		return certs.ParseCert(body)
	case certs.PEMChain:
		return certs.ParseChain(body)
	case certs.PEMPrivateKey:
		return nil, fmt.Errorf("%s is a private key; inspect its metadata (%s) instead", path, strings.TrimSuffix(path, ".key")+".meta")
	case "":
		if m, err := certs.ParseMetadata(body); err == nil {
			return m, nil
		}
		if c, err := certs.ParseCert(body); err == nil {
			return c, nil
		}
		if c, err := certs.ParseChain(body); err == nil {
			return c, nil
		}
		return nil, fmt.Errorf("%s: not gdpnet metadata, a certificate or a chain", path)
	}
	return nil, fmt.Errorf("%s: unknown block type %q", path, typ)
}

func readMetaKind(path string, kinds ...certs.Kind) (*certs.Metadata, error) {
	m, err := certs.ReadMetadataFile(path)
	if err != nil {
		return nil, err
	}
	if len(kinds) == 0 {
		return m, nil
	}
	for _, k := range kinds {
		if m.Kind == k {
			return m, nil
		}
	}
	want := make([]string, len(kinds))
	for i, k := range kinds {
		want[i] = k.String()
	}
	return nil, fmt.Errorf("%s describes a %s, want %s", path, m.Kind, strings.Join(want, " or "))
}

// say prints a human note on stderr, keeping stdout for the one value
// scripts capture (a name).
func say(cmd *cobra.Command, format string, a ...any) {
	fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", a...)
}
