package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
)

// renewPlan is one certificate file gdp cert renew looked at.
type renewPlan struct {
	file   string
	cert   *certs.Cert
	issuer *certs.Identity // nil: the keystore does not hold the signing key
}

// findIssuer returns the keystore identity whose key signed c (for an
// AdCert that is the capsule owner's key; for an RtCert the endpoint's;
// for a membership the domain's), or nil.
func findIssuer(ks *certs.Keystore, es []certs.Entry, c *certs.Cert) *certs.Identity {
	for _, e := range es {
		id, err := ks.Load(e.Alias)
		if err != nil {
			continue
		}
		if c.VerifySignature(id.Meta.Key) {
			return id
		}
	}
	return nil
}

// reissue signs a certificate like c (same kind, issuer, subject and
// lifetime) valid from now - backdate.
func reissue(c *certs.Cert, by *certs.Identity, now time.Time, backdate time.Duration) (*certs.Cert, error) {
	life := c.NotAfter.Sub(c.NotBefore)
	nb := now.Add(-backdate)
	na := nb.Add(life)
	switch c.Kind {
	case certs.KindMember:
		return certs.IssueMember(by, c.Subject, nb, na)
	case certs.KindRtCert:
		return certs.IssueRtCert(by, c.Subject, nb, na)
	case certs.KindAdCert:
		return certs.IssueAdCert(by.Key, c.Issuer, c.Subject, nb, na)
	}
	return nil, fmt.Errorf("cannot renew a %s certificate", c.Kind)
}

func init() {
	var dryRun bool
	var backdate time.Duration
	var certDir string
	renew := &cobra.Command{
		Use:   "renew [--dry-run]",
		Short: "Re-issue every certificate in the keystore that is past half its life",
		Long: `renew looks at every certificate file in the keystore directory (--keystore)
and re-issues each one that is past half its lifetime (or expired), with the
same kind, issuer, subject and lifetime, starting now (minus --backdate). It
is signed with the issuer's key if the keystore holds it (the domain key for
a membership, the endpoint key for an RtCert, the capsule owner's key for an
AdCert); the file is replaced atomically, so a running daemon that watches
it reloads on its own. A certificate whose issuer key is not in the keystore
is named with the issuer that must sign it, and renew exits non-zero.
Certificates kept in another directory (where gdp cert issue --out wrote
them) are looked at too with --dir DIR. Finding no certificate file at all
is an error: a timer that renews nothing would let every membership lapse.

Run it from a timer (for example every hour). --dry-run only says what it
would renew.`,
		Example: `  gdp cert --keystore /var/lib/gdp/keys renew --dry-run
  gdp cert --keystore /var/lib/gdp/keys renew
  gdp cert renew --dir /etc/gdp    # certificates issued with --out /etc/gdp/...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := os.Stat(certKeystoreDir)
			if err != nil {
				return fmt.Errorf("keystore %s: %w", certKeystoreDir, err)
			}
			if !st.IsDir() {
				return fmt.Errorf("keystore %s: not a directory", certKeystoreDir)
			}
			ks, err := openKeystore()
			if err != nil {
				return err
			}
			es, err := ks.List()
			if err != nil {
				return err
			}
			dirs := []string{certKeystoreDir}
			if certDir != "" && filepath.Clean(certDir) != filepath.Clean(certKeystoreDir) {
				dirs = append(dirs, certDir)
			}
			var files []string
			for _, d := range dirs {
				des, err := os.ReadDir(d)
				if err != nil {
					return fmt.Errorf("certificate directory %s: %w", d, err)
				}
				for _, de := range des {
					if de.Type().IsRegular() {
						files = append(files, filepath.Join(d, de.Name()))
					}
				}
			}
			now := time.Now()
			var due []renewPlan
			fresh := 0
			for _, file := range files {
				v, err := readAny(file)
				if err != nil {
					continue // keys, metadata in other formats, unrelated files
				}
				c, ok := v.(*certs.Cert)
				if !ok {
					continue
				}
				half := c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
				if now.Before(half) {
					fresh++
					continue
				}
				due = append(due, renewPlan{file: file, cert: c, issuer: findIssuer(ks, es, c)})
			}
			if fresh == 0 && len(due) == 0 {
				// After OPERATIONS §1.1 the certificates sit where --out
				// wrote them, not in the keystore: say where renew looked.
				return fmt.Errorf("no certificate file in %s: renew looks only at the keystore directory and --dir; keep the certificates you issue there (gdp cert issue … --out %s) or name their directory with --dir DIR",
					strings.Join(dirs, " or "), filepath.Join(dirs[len(dirs)-1], "NAME.member"))
			}
			sort.Slice(due, func(i, j int) bool { return due[i].file < due[j].file })
			var missing []string
			renewed := 0
			for _, p := range due {
				c := p.cert
				if p.issuer == nil {
					signer := c.Issuer.String()
					if c.Kind == certs.KindAdCert {
						signer = "the owner of capsule " + c.Issuer.String()
					}
					say(cmd, "%s: %s %s -> %s past half its life (expires %s) but the keystore does not hold its issuer's key: %s must sign it (gdp cert issue %s ... --force --out %s)",
						p.file, c.Kind, c.Issuer, c.Subject, c.NotAfter.UTC().Format(time.RFC3339), signer, c.Kind, p.file)
					missing = append(missing, p.file)
					continue
				}
				if dryRun {
					say(cmd, "%s: would renew %s %s -> %s (expires %s), signed by %s", p.file, c.Kind, c.Issuer, c.Subject,
						c.NotAfter.UTC().Format(time.RFC3339), p.issuer.Name)
					continue
				}
				nc, err := reissue(c, p.issuer, now, backdate)
				if err != nil {
					return fmt.Errorf("%s: %w", p.file, err)
				}
				if err := writeOut(p.file, certs.Armor(certs.PEMCert, nc.Marshal()), true); err != nil {
					return fmt.Errorf("%s: %w", p.file, err)
				}
				renewed++
				say(cmd, "%s: renewed %s %s -> %s, valid %s to %s (was until %s)", p.file, nc.Kind, nc.Issuer, nc.Subject,
					nc.NotBefore.UTC().Format(time.RFC3339), nc.NotAfter.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
			}
			say(cmd, "%d renewed, %d not yet at half-life, %d need another signer", renewed, fresh, len(missing))
			if len(missing) > 0 {
				return errors.New("some certificates need their issuer to renew them (see above)")
			}
			return nil
		},
	}
	renew.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be renewed, change nothing")
	renew.Flags().StringVar(&certDir, "dir", "", "also renew the certificate files in this directory (where gdp cert issue --out wrote them)")
	renew.Flags().DurationVar(&backdate, "backdate", time.Minute, "start the new certificates this much before now, to tolerate clock skew")
	certCmd.AddCommand(renew)
}
