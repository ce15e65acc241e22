package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
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
		Short: "Resolve a name through a resolver and print every location record and its verified chain",
		Long: `lookup asks a resolver's API (gdp resolver, default http://127.0.0.1:8021)
for NAME's location records — one per router holding the name (replicas of a
capsule attached at several routers) — then verifies each record itself —
its router's signature and every link of its certificate chain against the
trusted domains — before printing them, newest first. The resolver is not
trusted: an answer with any record that does not verify is an error.

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
			recs, err := lookupVerified(ctx, api, name, noCache, v)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				views := make([]resolver.View, len(recs))
				for i, rec := range recs {
					views[i] = resolver.ViewOf(rec)
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(views)
			}
			now := time.Now()
			for i, rec := range recs {
				if len(recs) > 1 {
					if i > 0 {
						fmt.Fprintln(out)
					}
					fmt.Fprintf(out, "location %d of %d\n", i+1, len(recs))
				}
				resolver.ViewOf(rec).Print(out, now)
			}
			signer := map[resolver.Kind]string{resolver.KindLocation: "router", resolver.KindBorder: "border router"}[recs[0].Kind]
			fmt.Fprintf(out, "verified: %d location(s), each signed by its %s, whole chains checked against %d trusted domain(s)\n",
				len(recs), signer, len(trust))
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

// lookupVerified fetches every location of name from the resolver API at
// base (a record set: one record per router holding the name) and
// verifies each record with v. It returns the live records, newest
// first. Any entry that does not verify (other than one that expired in
// flight) fails the whole lookup: the resolver is not trusted.
func lookupVerified(ctx context.Context, base string, name pdu.Name, noCache bool, v *certs.Verifier) ([]*resolver.Record, error) {
	u := strings.TrimRight(base, "/") + "/lookup/" + url.PathEscape(name.String())
	if noCache {
		u += "?cache=no"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", resolver.SetMediaType+", "+resolver.MediaType+";q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, resolver.MaxSetSize+1))
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
	set, err := resolver.ParseSet(body) // a single record (an older resolver) reads as a set of one
	if err != nil {
		return nil, fmt.Errorf("lookup %s: resolver's answer: %w", name, err)
	}
	var live []*resolver.Record
	for _, rec := range set {
		if rec.Name != name {
			return nil, fmt.Errorf("lookup %s: resolver answered for %s: %w", name, rec.Name, resolver.ErrWrongKey)
		}
		if _, err := (&resolver.Verifier{Certs: v, Kind: rec.Kind}).Verify(rec); err != nil {
			if errors.Is(err, resolver.ErrExpired) {
				continue
			}
			return nil, fmt.Errorf("lookup %s: resolver's answer (router %s) does not verify: %w", name, rec.Router(), err)
		}
		if !rec.Withdrawn {
			live = append(live, rec)
		}
	}
	if len(live) == 0 {
		return nil, fmt.Errorf("lookup %s: %w (only withdrawn or expired records)", name, resolver.ErrNotFound)
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].Sequence > live[j].Sequence })
	return live, nil
}
