package main

import (
	"bytes"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
)

// issueWindow holds the validity flags every issue subcommand shares.
type issueWindow struct {
	notBefore string
	duration  time.Duration
	backdate  time.Duration
	out       string
	force     bool
}

func (w *issueWindow) flags(cmd *cobra.Command, defDuration time.Duration) {
	cmd.Flags().StringVar(&w.notBefore, "not-before", "now", "start of validity: now or RFC 3339")
	cmd.Flags().DurationVar(&w.duration, "duration", defDuration, "validity from --not-before; keep it short and renew at half-life")
	cmd.Flags().DurationVar(&w.backdate, "backdate", time.Minute, "start this much before --not-before, to tolerate clock skew")
	cmd.Flags().StringVar(&w.out, "out", "", "file to write the certificate to (required)")
	cmd.Flags().BoolVar(&w.force, "force", false, "replace --out if it exists (renewal); also issue a certificate that would already be expired")
	cmd.MarkFlagRequired("out")
}

// window returns [nb - backdate, nb + duration).
func (w *issueWindow) window() (time.Time, time.Time, error) {
	nb, err := parseWhen(w.notBefore)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if w.duration <= 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("--duration must be positive")
	}
	na := nb.Add(w.duration)
	if now := time.Now(); !na.After(now) && !w.force {
		return time.Time{}, time.Time{}, fmt.Errorf("the certificate would be expired already (not after %s, now %s): check --not-before and --duration (--force issues it anyway)",
			na.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nb.Add(-w.backdate), na, nil
}

func (w *issueWindow) write(cmd *cobra.Command, c *certs.Cert) error {
	if err := writeOut(w.out, certs.Armor(certs.PEMCert, c.Marshal()), w.force); err != nil {
		return err
	}
	say(cmd, "%s written to %s: %s -> %s, valid %s to %s", c.Kind, w.out, c.Issuer, c.Subject,
		c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	return nil
}

func init() {
	issue := &cobra.Command{
		Use:   "issue adcert|rtcert|member",
		Short: "Issue a certificate (AdCert, RtCert or domain membership)",
		Long: `issue signs a certificate with a key from the keystore.

  adcert  signed by a capsule's owner: the server may host and advertise it
  rtcert  signed by an endpoint (server, client, agent): it is reachable
          through the router
  member  signed by a trust domain: the router/resolver/server belongs to it

Certificates are valid from --not-before (minus --backdate, for clock skew)
for --duration. Keep them short-lived and issue a new one (--force replaces
the file) well before the old one expires; there are no revocation lists.`,
	}

	var aw issueWindow
	var aOwner, aCapsule, aServer string
	ad := &cobra.Command{
		Use:   "adcert --owner ALIAS --capsule FILE --server FILE --out FILE",
		Short: "Let a server host and advertise a capsule (signed by the capsule's owner)",
		Long: `adcert is signed with the capsule's OWNER key (--owner, which must be the key
in the capsule's metadata) and says that the server in --server may host the
capsule and advertise it to routers. Only servers holding a valid AdCert can
attract the capsule's traffic. Renew it before it expires (--force).`,
		Example: `  gdp cert issue adcert --owner alice --capsule sensor.meta --server store1.meta \
      --duration 72h --out sensor-store1.adcert`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			own, err := loadIdentity(aOwner)
			if err != nil {
				return fmt.Errorf("owner: %w", err)
			}
			capsule, err := readMetaKind(aCapsule, certs.KindCapsule)
			if err != nil {
				return err
			}
			if !bytes.Equal(capsule.Key, own.Meta.Key) {
				return fmt.Errorf("%q does not own the capsule in %s: its owner key is %s, %q holds %s",
					aOwner, aCapsule, shortKey(capsule.Key), aOwner, shortKey(own.Meta.Key))
			}
			srv, err := readMetaKind(aServer, certs.KindServer, certs.KindClient, certs.KindAgent, certs.KindResolver, certs.KindRouter)
			if err != nil {
				return err
			}
			nb, na, err := aw.window()
			if err != nil {
				return err
			}
			c, err := certs.IssueAdCert(own.Key, capsule.Name(), srv.Name(), nb, na)
			if err != nil {
				return err
			}
			return aw.write(cmd, c)
		},
	}
	ad.Flags().StringVar(&aOwner, "owner", "", "keystore alias of the capsule's owner (required)")
	ad.Flags().StringVar(&aCapsule, "capsule", "", "the capsule's metadata file (required)")
	ad.Flags().StringVar(&aServer, "server", "", "metadata file of the server that may host it (required)")
	ad.MarkFlagRequired("owner")
	ad.MarkFlagRequired("capsule")
	ad.MarkFlagRequired("server")
	aw.flags(ad, 72*time.Hour)
	issue.AddCommand(ad)

	var rw issueWindow
	var rEndpoint, rRouter string
	rt := &cobra.Command{
		Use:   "rtcert --endpoint ALIAS --router FILE --out FILE",
		Short: "Say that an endpoint (and its capsules) is reachable through a router",
		Long: `rtcert is signed by the endpoint itself (--endpoint: a server, client, agent or
resolver in the keystore) and names the router it attaches to (--router, the
router's metadata file). It covers the endpoint's own name and every capsule
it holds an AdCert for. Keep it short-lived (hours) and renew it often.`,
		Example: `  gdp cert issue rtcert --endpoint store1 --router edge1.meta \
      --duration 24h --out store1-edge1.rtcert`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ep, err := loadIdentity(rEndpoint)
			if err != nil {
				return fmt.Errorf("endpoint: %w", err)
			}
			r, err := readMetaKind(rRouter, certs.KindRouter)
			if err != nil {
				return err
			}
			nb, na, err := rw.window()
			if err != nil {
				return err
			}
			c, err := certs.IssueRtCert(ep, r.Name(), nb, na)
			if err != nil {
				return err
			}
			return rw.write(cmd, c)
		},
	}
	rt.Flags().StringVar(&rEndpoint, "endpoint", "", "keystore alias of the endpoint (server, client, agent) (required)")
	rt.Flags().StringVar(&rRouter, "router", "", "the router's metadata file (required)")
	rt.MarkFlagRequired("endpoint")
	rt.MarkFlagRequired("router")
	rw.flags(rt, 24*time.Hour)
	issue.AddCommand(rt)

	var mw issueWindow
	var mDomain, mMember string
	mem := &cobra.Command{
		Use:   "member --domain ALIAS --member FILE --out FILE",
		Short: "Make a router, resolver or server a member of a trust domain",
		Long: `member is signed by the trust domain (--domain, in the domain operator's
keystore) and says that the node described by --member (its metadata file)
belongs to the domain. Routers and resolvers that trust the domain accept
routes through its members. Stop renewing it to remove a node.`,
		Example: `  gdp cert issue member --domain acme --member edge1.meta \
      --duration 72h --out edge1.member`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := loadIdentity(mDomain)
			if err != nil {
				return fmt.Errorf("domain: %w", err)
			}
			if d.Meta.Kind != certs.KindDomain {
				return fmt.Errorf("%q is a %s, not a domain", mDomain, d.Meta.Kind)
			}
			m, err := readMetaKind(mMember, certs.KindRouter, certs.KindResolver, certs.KindServer, certs.KindAgent, certs.KindClient)
			if err != nil {
				return err
			}
			nb, na, err := mw.window()
			if err != nil {
				return err
			}
			c, err := certs.IssueMember(d, m.Name(), nb, na)
			if err != nil {
				return err
			}
			return mw.write(cmd, c)
		},
	}
	mem.Flags().StringVar(&mDomain, "domain", "", "keystore alias of the trust domain (required)")
	mem.Flags().StringVar(&mMember, "member", "", "metadata file of the new member (required)")
	mem.MarkFlagRequired("domain")
	mem.MarkFlagRequired("member")
	mw.flags(mem, 72*time.Hour)
	issue.AddCommand(mem)

	certCmd.AddCommand(issue)
}
