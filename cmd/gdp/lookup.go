package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
)

func init() {
	var (
		api, cfgPath string
		trust        []string
		noCache      bool
		asJSON       bool
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "lookup NAME",
		Short: "Resolve a name through a resolver and print its location record and verified chain",
		Long: `lookup asks a resolver's API (gdp resolver, default http://127.0.0.1:8021)
for NAME's location record, then verifies the record itself — its router's
signature and every link of its certificate chain against the trusted
domains — before printing it. The resolver is not trusted: an answer that
does not verify is an error.

Trusted domains come from --trust files, or from the domain and
trusted_domains of --config (a resolver.yaml).`,
		Example: `  gdp lookup 2yNlK5wUKAwmKrjz0yiPbTHHNyrb1hNY2BFqgyYO8Yk --trust /etc/gdp/domain.meta
  gdp lookup NAME --config /etc/gdp/resolver.yaml --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := pdu.ParseName(args[0])
			if err != nil {
				return err
			}
			if cfgPath != "" {
				cfg, err := loadResolverConfig(cfgPath)
				if err != nil {
					return err
				}
				if !cmd.Flags().Changed("api") && cfg.API != "" && cfg.API != "off" {
					api = "http://" + cfg.API
				}
				d := cfg.Domain
				if d == "" {
					d = "/etc/gdp/domain.meta"
				}
				trust = append(trust, d)
				trust = append(trust, cfg.TrustedDomains...)
			}
			if len(trust) == 0 {
				return errors.New("no trusted domains: give --trust DOMAIN.meta (or --config resolver.yaml)")
			}
			_, v, err := trustedVerifier(trust[0], trust[1:])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			rec, err := lookupVerified(ctx, api, name, noCache, v)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(resolver.ViewOf(rec))
			}
			resolver.ViewOf(rec).Print(out, time.Now())
			fmt.Fprintf(out, "verified: signature by the %s and the whole chain, against %d trusted domain(s)\n",
				map[resolver.Kind]string{resolver.KindLocation: "router", resolver.KindBorder: "border router"}[rec.Kind], len(trust))
			return nil
		},
	}
	cmd.Flags().StringVar(&api, "api", "http://127.0.0.1:8021", "resolver API base URL")
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "resolver.yaml to take the API address and trusted domains from")
	cmd.Flags().StringArrayVar(&trust, "trust", nil, "trusted domain metadata file (repeatable)")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "ask the resolver to bypass its cache")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	addCommand(cmd)
}

// lookupVerified fetches name's record from the resolver API at base and
// verifies it with v.
func lookupVerified(ctx context.Context, base string, name pdu.Name, noCache bool, v *certs.Verifier) (*resolver.Record, error) {
	u := strings.TrimRight(base, "/") + "/lookup/" + url.PathEscape(name.String())
	if noCache {
		u += "?cache=no"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", resolver.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, resolver.MaxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("lookup %s: %w", name, resolver.ErrNotFound)
	default:
		return nil, fmt.Errorf("lookup %s: resolver answered %s: %s", name, resp.Status, strings.TrimSpace(string(body)))
	}
	rec, err := resolver.ParseRecord(body)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: resolver's answer: %w", name, err)
	}
	if rec.Name != name {
		return nil, fmt.Errorf("lookup %s: resolver answered for %s: %w", name, rec.Name, resolver.ErrWrongKey)
	}
	if _, err := (&resolver.Verifier{Certs: v, Kind: rec.Kind}).Verify(rec); err != nil {
		return nil, fmt.Errorf("lookup %s: resolver's answer does not verify: %w", name, err)
	}
	return rec, nil
}
