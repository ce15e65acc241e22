package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/router"
)

// addRouterQueries adds `gdp router status|routes|peers`, which read a
// running router's admin API.
func addRouterQueries(parent *cobra.Command) {
	var admin string
	var asJSON bool
	var limit int
	var name string
	get := func(ctx context.Context, path string, q url.Values, v any) ([]byte, error) {
		base := admin
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		u := strings.TrimSuffix(base, "/") + path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("admin API at %s: %w (is the router running? see --admin)", admin, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("admin API: %s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		return body, json.Unmarshal(body, v)
	}
	flags := func(c *cobra.Command) {
		c.Flags().StringVar(&admin, "admin", "127.0.0.1:8019", "the router's admin address (config key admin)")
		c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON as is")
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show a running router's name, domain, FIB size, faces and peers",
		Example: `  gdp router status
  gdp router status --admin 10.0.0.1:8019 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s router.Summary
			raw, err := get(cmd.Context(), "/v1/status", nil, &s)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				_, err = out.Write(raw)
				return err
			}
			printRouterStatus(out, s, time.Now())
			return nil
		},
	}
	flags(status)

	routes := &cobra.Command{
		Use:   "routes",
		Short: "List a running router's FIB: name, next hops, origin, expiry",
		Example: `  gdp router routes --limit 50
  gdp router routes --name NAME --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if name != "" {
				q = url.Values{"name": {name}}
			}
			var rs []router.RouteInfo
			raw, err := get(cmd.Context(), "/v1/routes", q, &rs)
			if err != nil {
				return err
			}
			if asJSON {
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFACE\tKIND\tPEER\tCOST\tORIGIN\tEXPIRES")
			for _, r := range rs {
				for _, h := range r.Hops {
					exp := "never"
					if h.Expiry != nil {
						exp = time.Until(*h.Expiry).Round(time.Second).String()
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", r.Name, h.Face, h.Kind, h.Peer, h.Cost, h.Origin, exp)
				}
			}
			return tw.Flush()
		},
	}
	flags(routes)
	routes.Flags().IntVar(&limit, "limit", 1000, "at most this many names (0: all)")
	routes.Flags().StringVar(&name, "name", "", "only this name")

	peers := &cobra.Command{
		Use:   "peers",
		Short: "List the routers a running router has tunnels to",
		Example: `  gdp router peers
  gdp router peers --admin 10.0.0.1:8019`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []router.PeerInfo
			raw, err := get(cmd.Context(), "/v1/peers", nil, &ps)
			if err != nil {
				return err
			}
			if asJSON {
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tFACE\tDOMAIN\tADDR\tUPSTREAM")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%v\n", p.Name, p.Face, p.Domain, p.Addr, p.Upstream)
			}
			return tw.Flush()
		},
	}
	flags(peers)
	parent.AddCommand(status, routes, peers)
}

// printRouterStatus is `gdp router status` without --json, at now.
func printRouterStatus(out io.Writer, s router.Summary, now time.Time) {
	fmt.Fprintf(out, "router    %s\n", s.Name)
	fmt.Fprintf(out, "domain    %s\n", s.Domain)
	if s.Started.IsZero() {
		fmt.Fprintln(out, "up since  unknown")
	} else {
		fmt.Fprintf(out, "up since  %s (%s)\n", s.Started.UTC().Format(time.RFC3339), now.Sub(s.Started).Round(time.Second))
	}
	fmt.Fprintf(out, "addresses %s\n", strings.Join(s.Addrs, ", "))
	if left := s.MemberExpiry.Sub(now); left > 0 {
		fmt.Fprintf(out, "member    until %s (in %s)\n", s.MemberExpiry.UTC().Format(time.RFC3339), left.Round(time.Minute))
	} else {
		fmt.Fprintf(out, "member    EXPIRED at %s (%s ago): peers refuse this router; install a renewed membership at the router's member_cert (docs/OPERATIONS.md §1.2): it is reloaded on its own\n",
			s.MemberExpiry.UTC().Format(time.RFC3339), (-left).Round(time.Second))
	}
	fmt.Fprintf(out, "fib       %d names\n", s.FIBNames)
	fmt.Fprintf(out, "faces     %d (%d peer routers)\n", s.Faces, s.Peers)
	fmt.Fprintf(out, "waiting   %d PDUs for the resolver\n", s.Waiting)
	if s.Draining {
		fmt.Fprintln(out, "state     draining")
	}
}
