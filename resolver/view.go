package resolver

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// View is a record as people and JSON read it (gdp lookup, the API).
type View struct {
	Kind      string      `json:"kind"`
	Name      string      `json:"name"`
	Router    string      `json:"router"`
	Domain    string      `json:"domain"`
	Border    string      `json:"border,omitempty"`
	Addrs     []string    `json:"addrs,omitempty"`
	Sequence  uint64      `json:"sequence"`
	Expiry    time.Time   `json:"expiry"`
	Withdrawn bool        `json:"withdrawn,omitempty"`
	Chain     []ChainLink `json:"chain"`
}

// ChainLink is one piece of the chain: a principal or a certificate.
type ChainLink struct {
	Link        string     `json:"link"`
	Name        string     `json:"name,omitempty"`
	Kind        string     `json:"kind"`
	Description string     `json:"description,omitempty"`
	Issuer      string     `json:"issuer,omitempty"`
	Subject     string     `json:"subject,omitempty"`
	NotBefore   *time.Time `json:"not_before,omitempty"`
	NotAfter    *time.Time `json:"not_after,omitempty"`
}

func metaLink(link string, m *certs.Metadata) ChainLink {
	return ChainLink{Link: link, Name: m.Name().String(), Kind: m.Kind.String(), Description: m.Description}
}

func certLink(link string, c *certs.Cert) ChainLink {
	nb, na := c.NotBefore.UTC(), c.NotAfter.UTC()
	return ChainLink{Link: link, Kind: c.Kind.String(), Issuer: c.Issuer.String(), Subject: c.Subject.String(), NotBefore: &nb, NotAfter: &na}
}

// ViewOf describes r.
func ViewOf(r *Record) View {
	v := View{Kind: r.Kind.String(), Name: r.Name.String(), Router: r.Router().String(), Domain: r.Domain().String(),
		Addrs: r.Addrs, Sequence: r.Sequence, Expiry: r.EffectiveExpiry().UTC(), Withdrawn: r.Withdrawn}
	c := r.Chain
	v.Chain = append(v.Chain, metaLink("target", c.Target))
	if c.AdCert != nil {
		v.Chain = append(v.Chain, certLink("adcert", c.AdCert))
		if c.Endpoint != nil {
			v.Chain = append(v.Chain, metaLink("endpoint", c.Endpoint))
		}
	}
	v.Chain = append(v.Chain, certLink("rtcert", c.RtCert), metaLink("router", c.Router),
		certLink("member", c.Member), metaLink("domain", c.Domain))
	if r.Kind == KindBorder {
		v.Border = r.Border.Name().String()
		v.Chain = append(v.Chain, metaLink("border", r.Border), certLink("border member", r.BorderMember))
	}
	return v
}

// Print writes v for a terminal.
func (v View) Print(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "name      %s\n", v.Name)
	fmt.Fprintf(w, "kind      %s\n", v.Kind)
	if v.Kind == KindBorder.String() {
		fmt.Fprintf(w, "domain    %s\n", v.Domain)
		fmt.Fprintf(w, "via       %s (border router)\n", v.Border)
	} else {
		fmt.Fprintf(w, "router    %s\n", v.Router)
		fmt.Fprintf(w, "domain    %s\n", v.Domain)
	}
	if v.Withdrawn {
		fmt.Fprintf(w, "withdrawn yes\n")
	} else {
		fmt.Fprintf(w, "addrs     %s\n", strings.Join(v.Addrs, ", "))
	}
	fmt.Fprintf(w, "sequence  %d\n", v.Sequence)
	fmt.Fprintf(w, "expires   %s (in %s)\n", v.Expiry.Format(time.RFC3339), v.Expiry.Sub(now).Round(time.Second))
	fmt.Fprintf(w, "chain:\n")
	for _, l := range v.Chain {
		if l.Name != "" {
			fmt.Fprintf(w, "  %-13s %s  %s %q\n", l.Link, l.Name, l.Kind, l.Description)
			continue
		}
		fmt.Fprintf(w, "  %-13s %s -> %s  valid %s .. %s\n", l.Link, short(l.Issuer), short(l.Subject),
			l.NotBefore.Format(time.RFC3339), l.NotAfter.Format(time.RFC3339))
	}
}

func short(n string) string {
	if len(n) > 12 {
		return n[:12] + "…"
	}
	return n
}
