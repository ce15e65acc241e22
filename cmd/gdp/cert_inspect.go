package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/certs"
)

// shortKey prints a public key as base64url, as names are printed.
func shortKey(k ed25519.PublicKey) string { return base64.RawURLEncoding.EncodeToString(k) }

// Inspection output. The JSON field names are stable: scripts use them.
type metaJSON struct {
	Type        string            `json:"type"` // "metadata"
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Key         string            `json:"key"`
	WriterKey   string            `json:"writer_key,omitempty"`
	Created     time.Time         `json:"created"`
	Nonce       string            `json:"nonce"`
	Description string            `json:"description"`
	Extra       map[string]string `json:"extra,omitempty"`
	// PeerID is the libp2p peer ID of a router's or resolver's DHT node
	// (its key is its libp2p identity): the /p2p/ part of the bootstrap
	// multiaddrs other nodes list.
	PeerID string `json:"peer_id,omitempty"`
	Bytes  int    `json:"bytes"`
}

type certJSON struct {
	Type      string    `json:"type"` // "cert"
	Kind      string    `json:"kind"`
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Status    string    `json:"status"` // valid, expired, not yet valid (signature not checked)
	Signature string    `json:"signature"`
	Bytes     int       `json:"bytes"`
}

type chainJSON struct {
	Type     string    `json:"type"` // "chain"
	Target   metaJSON  `json:"target"`
	AdCert   *certJSON `json:"adcert,omitempty"`
	Endpoint *metaJSON `json:"endpoint,omitempty"`
	RtCert   certJSON  `json:"rtcert"`
	Router   metaJSON  `json:"router"`
	Member   certJSON  `json:"member"`
	Domain   metaJSON  `json:"domain"`
	Bytes    int       `json:"bytes"`
}

func metaView(m *certs.Metadata) metaJSON {
	v := metaJSON{Type: "metadata", Name: m.Name().String(), Kind: m.Kind.String(), Key: shortKey(m.Key),
		Created: m.Created, Nonce: hex.EncodeToString(m.Nonce[:]), Description: m.Description,
		Extra: m.Extra, Bytes: len(m.Marshal())}
	if len(m.WriterKey) > 0 {
		v.WriterKey = shortKey(m.WriterKey)
	}
	if m.Kind == certs.KindRouter || m.Kind == certs.KindResolver {
		if pk, err := crypto.UnmarshalEd25519PublicKey(m.Key); err == nil {
			if id, err := peer.IDFromPublicKey(pk); err == nil {
				v.PeerID = id.String()
			}
		}
	}
	return v
}

func certStatus(c *certs.Cert, now time.Time) string {
	switch {
	case now.Before(c.NotBefore):
		return "not yet valid"
	case !now.Before(c.NotAfter):
		return "expired"
	}
	return "valid"
}

func certView(c *certs.Cert, now time.Time) certJSON {
	return certJSON{Type: "cert", Kind: c.Kind.String(), Issuer: c.Issuer.String(), Subject: c.Subject.String(),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Status: certStatus(c, now),
		Signature: hex.EncodeToString(c.Signature()), Bytes: len(c.Marshal())}
}

func chainView(c *certs.Chain, now time.Time) chainJSON {
	v := chainJSON{Type: "chain", Target: metaView(c.Target), RtCert: certView(c.RtCert, now),
		Router: metaView(c.Router), Member: certView(c.Member, now), Domain: metaView(c.Domain),
		Bytes: len(c.Marshal())}
	if c.AdCert != nil {
		a, e := certView(c.AdCert, now), metaView(c.Endpoint)
		v.AdCert, v.Endpoint = &a, &e
	}
	return v
}

// aliases maps names to keystore aliases, to annotate output.
func aliases() map[certs.Name]string {
	out := map[certs.Name]string{}
	if _, err := os.Stat(certKeystoreDir); err != nil {
		return out // no keystore: nothing to annotate (and nothing created)
	}
	ks, err := certs.OpenKeystore(certKeystoreDir)
	if err != nil {
		return out
	}
	es, _ := ks.List()
	for _, e := range es {
		out[e.Name] = e.Alias
	}
	return out
}

func withAlias(n string, al map[certs.Name]string) string {
	for k, a := range al {
		if k.String() == n {
			return n + "  (" + a + ")"
		}
	}
	return n
}

func printMeta(w io.Writer, indent string, v metaJSON, al map[certs.Name]string) {
	fmt.Fprintf(w, "%sname:        %s\n", indent, withAlias(v.Name, al))
	fmt.Fprintf(w, "%skind:        %s\n", indent, v.Kind)
	if v.WriterKey != "" {
		fmt.Fprintf(w, "%sowner key:   %s\n", indent, v.Key)
		fmt.Fprintf(w, "%swriter key:  %s\n", indent, v.WriterKey)
	} else {
		fmt.Fprintf(w, "%skey:         %s\n", indent, v.Key)
	}
	fmt.Fprintf(w, "%screated:     %s\n", indent, v.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "%snonce:       %s\n", indent, v.Nonce)
	fmt.Fprintf(w, "%sdescription: %q\n", indent, v.Description)
	if v.PeerID != "" {
		fmt.Fprintf(w, "%sdht peer id: %s\n", indent, v.PeerID)
	}
	for k, x := range v.Extra {
		fmt.Fprintf(w, "%sextra:       %s = %q\n", indent, k, x)
	}
}

func printCert(w io.Writer, indent string, v certJSON, now time.Time, al map[certs.Name]string) {
	fmt.Fprintf(w, "%skind:        %s\n", indent, v.Kind)
	fmt.Fprintf(w, "%sissuer:      %s\n", indent, withAlias(v.Issuer, al))
	fmt.Fprintf(w, "%ssubject:     %s\n", indent, withAlias(v.Subject, al))
	fmt.Fprintf(w, "%snot before:  %s\n", indent, v.NotBefore.Format(time.RFC3339))
	fmt.Fprintf(w, "%snot after:   %s\n", indent, v.NotAfter.Format(time.RFC3339))
	st := v.Status
	if st == "valid" {
		st = fmt.Sprintf("valid for %s more", v.NotAfter.Sub(now).Round(time.Second))
	}
	fmt.Fprintf(w, "%sstatus:      %s (signature not checked; use gdp cert verify)\n", indent, st)
	fmt.Fprintf(w, "%ssignature:   %s\n", indent, v.Signature)
}

func init() {
	var asJSON bool
	var at string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show what a metadata, certificate or chain file says",
		Long: `inspect decodes a metadata file, a certificate or a chain (PEM or binary)
and prints its fields: names (annotated with keystore aliases), keys, the
validity window and whether it holds now. It checks the encoding strictly but
not signatures: use gdp cert verify for that. --json prints the same fields
as JSON for scripts.`,
		Example: `  gdp cert inspect edge1.meta
  gdp cert inspect --json sensor-store1.adcert
  gdp cert inspect sensor.chain`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now, err := parseWhen(at)
			if err != nil {
				return err
			}
			obj, err := readAny(args[0])
			if err != nil {
				return err
			}
			var view any
			switch o := obj.(type) {
			case *certs.Metadata:
				view = metaView(o)
			case *certs.Cert:
				view = certView(o, now)
			case *certs.Chain:
				view = chainView(o, now)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(view)
			}
			al := aliases()
			switch v := view.(type) {
			case metaJSON:
				fmt.Fprintf(w, "metadata, %d bytes\n", v.Bytes)
				printMeta(w, "  ", v, al)
			case certJSON:
				fmt.Fprintf(w, "certificate, %d bytes\n", v.Bytes)
				printCert(w, "  ", v, now, al)
			case chainJSON:
				fmt.Fprintf(w, "chain, %d bytes\n", v.Bytes)
				fmt.Fprintln(w, "  target:")
				printMeta(w, "    ", v.Target, al)
				if v.AdCert != nil {
					fmt.Fprintln(w, "  adcert:")
					printCert(w, "    ", *v.AdCert, now, al)
					fmt.Fprintln(w, "  endpoint:")
					printMeta(w, "    ", *v.Endpoint, al)
				} else {
					fmt.Fprintln(w, "  (self-advertisement: the target is the endpoint)")
				}
				fmt.Fprintln(w, "  rtcert:")
				printCert(w, "    ", v.RtCert, now, al)
				fmt.Fprintln(w, "  router:")
				printMeta(w, "    ", v.Router, al)
				fmt.Fprintln(w, "  member:")
				printCert(w, "    ", v.Member, now, al)
				fmt.Fprintln(w, "  domain:")
				printMeta(w, "    ", v.Domain, al)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&at, "at", "now", "judge validity as of this time (RFC 3339)")
	certCmd.AddCommand(cmd)
}
