package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

func init() {
	var target, adcert, endpoint, rtcert, router, member, domain, out string
	var force bool
	chain := &cobra.Command{
		Use:   "chain --target FILE [--adcert FILE --endpoint FILE] --rtcert FILE --router FILE --member FILE --domain FILE --out FILE",
		Short: "Bundle metadata and certificates into a route chain",
		Long: `chain bundles everything a router needs to believe "name N is reachable at
router R" into one file: the target's metadata, the AdCert and the hosting
server's metadata (omit both when an endpoint advertises its own name), the
RtCert, the router's metadata, the router's membership cert and the domain's
metadata. It checks the pieces parse; gdp cert verify checks that they fit.`,
		Example: `  gdp cert chain --target sensor.meta --adcert sensor-store1.adcert --endpoint store1.meta \
      --rtcert store1-edge1.rtcert --router edge1.meta --member edge1.member \
      --domain acme.meta --out sensor.chain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var c certs.Chain
			var err error
			if c.Target, err = certs.ReadMetadataFile(target); err != nil {
				return err
			}
			if (adcert == "") != (endpoint == "") {
				return errors.New("give --adcert and --endpoint together (or neither, for a self-advertisement)")
			}
			if adcert != "" {
				if c.AdCert, err = certs.ReadCertFile(adcert); err != nil {
					return err
				}
				if c.Endpoint, err = certs.ReadMetadataFile(endpoint); err != nil {
					return err
				}
			} else {
				c.Endpoint = c.Target
			}
			if c.RtCert, err = certs.ReadCertFile(rtcert); err != nil {
				return err
			}
			if c.Router, err = certs.ReadMetadataFile(router); err != nil {
				return err
			}
			if c.Member, err = certs.ReadCertFile(member); err != nil {
				return err
			}
			if c.Domain, err = certs.ReadMetadataFile(domain); err != nil {
				return err
			}
			if err := writeOut(out, certs.Armor(certs.PEMChain, c.Marshal()), force); err != nil {
				return err
			}
			say(cmd, "chain written to %s: %s at router %s", out, c.Target.Name(), c.Router.Name())
			return nil
		},
	}
	for _, f := range []struct {
		p    *string
		name string
		help string
		req  bool
	}{
		{&target, "target", "metadata of the advertised name (a capsule, or the endpoint itself)", true},
		{&adcert, "adcert", "the AdCert (omit for a self-advertisement)", false},
		{&endpoint, "endpoint", "metadata of the server the AdCert names", false},
		{&rtcert, "rtcert", "the endpoint's RtCert", true},
		{&router, "router", "the router's metadata", true},
		{&member, "member", "the router's membership cert", true},
		{&domain, "domain", "the trust domain's metadata", true},
		{&out, "out", "file to write the chain to", true},
	} {
		chain.Flags().StringVar(f.p, f.name, "", f.help)
		if f.req {
			chain.MarkFlagRequired(f.name)
		}
	}
	chain.Flags().BoolVar(&force, "force", false, "replace --out if it exists")
	certCmd.AddCommand(chain)

	var trust []string
	var at, name, routerName, node string
	verify := &cobra.Command{
		Use:   "verify --trust DOMAIN.meta CHAIN | verify --trust DOMAIN.meta --node NODE.meta MEMBER",
		Short: "Check a route chain (or a membership) link by link; name the link that fails",
		Long: `verify checks a chain exactly as a router does before it installs a route:
the target's metadata hashes to its name, its owner signed the AdCert for the
server, the server signed the RtCert for the router, the router holds a
membership cert from a domain given with --trust, and every certificate is
valid now (NotBefore <= now < NotAfter). It prints the route and when it
expires, or exits 1 naming the failing link (target, adcert, endpoint,
rtcert, router, member, domain) and the reason.

With --node, the file is a membership cert instead, and verify checks that
the node (router, resolver, server) described by --node belongs to a
trusted domain, as a peer does when a tunnel comes up.`,
		Example: `  gdp cert verify --trust acme.meta sensor.chain
  gdp cert verify --trust acme.meta --at 2026-12-01T00:00:00Z sensor.chain
  gdp cert verify --trust acme.meta --node edge1.meta edge1.member`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(trust) == 0 {
				return errors.New("no trusted domain: give --trust DOMAIN.meta")
			}
			var domains []*certs.Metadata
			for _, p := range trust {
				m, err := readMetaKind(p, certs.KindDomain)
				if err != nil {
					return err
				}
				domains = append(domains, m)
			}
			v := certs.NewVerifier(domains...)
			now, err := parseWhen(at)
			if err != nil {
				return err
			}
			v.Now = func() time.Time { return now }
			if node != "" {
				return verifyMemberCLI(cmd, v, now, node, args[0])
			}
			c, err := certs.ReadChainFile(args[0])
			if err != nil {
				return fmt.Errorf("chain rejected: %w", err)
			}
			n, r := c.Target.Name(), c.Router.Name()
			if name != "" {
				if n, err = pdu.ParseName(name); err != nil {
					return err
				}
			}
			if routerName != "" {
				if r, err = pdu.ParseName(routerName); err != nil {
					return err
				}
			}
			exp, err := v.VerifyRoute(c, n, r)
			if err != nil {
				var ce *certs.ChainError
				if errors.As(err, &ce) {
					return fmt.Errorf("chain rejected at link %q: %v (%s)", ce.Link, ce.Err, ce.Detail)
				}
				return fmt.Errorf("chain rejected: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %s (%s) is reachable at router %s\n", n, c.Target.Kind, r)
			if c.AdCert != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "    hosted by %s, authorised by the capsule's owner\n", c.Endpoint.Name())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "    router is a member of domain %s\n", c.Member.Issuer)
			fmt.Fprintf(cmd.OutOrStdout(), "    expires %s (in %s); renew before then\n",
				exp.Format(time.RFC3339), exp.Sub(now).Round(time.Second))
			return nil
		},
	}
	verify.Flags().StringArrayVar(&trust, "trust", nil, "metadata file of a trusted domain (repeatable)")
	verify.Flags().StringVar(&at, "at", "now", "verify as of this time (RFC 3339)")
	verify.Flags().StringVar(&name, "name", "", "name the route is for (default: the chain's target)")
	verify.Flags().StringVar(&routerName, "router", "", "router the route is at (default: the chain's router)")
	verify.Flags().StringVar(&node, "node", "", "metadata of a node: verify the membership cert FILE for it instead of a chain")
	certCmd.AddCommand(verify)
}

func verifyMemberCLI(cmd *cobra.Command, v *certs.Verifier, now time.Time, nodePath, memberPath string) error {
	meta, err := certs.ReadMetadataFile(nodePath)
	if err != nil {
		return err
	}
	mc, err := certs.ReadCertFile(memberPath)
	if err != nil {
		return fmt.Errorf("membership rejected: %w", err)
	}
	dom, exp, err := v.VerifyMember(meta, mc, nil)
	if err != nil {
		var ce *certs.ChainError
		if errors.As(err, &ce) {
			return fmt.Errorf("membership rejected at link %q: %v (%s)", ce.Link, ce.Err, ce.Detail)
		}
		return fmt.Errorf("membership rejected: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "OK: %s (%s) is a member of domain %s\n", meta.Name(), meta.Kind, dom)
	fmt.Fprintf(cmd.OutOrStdout(), "    expires %s (in %s); renew before then\n",
		exp.Format(time.RFC3339), exp.Sub(now).Round(time.Second))
	return nil
}
