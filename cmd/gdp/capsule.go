package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/internal/fsutil"
	"github.com/gdpnet/gdpnet/pdu"
)

// capsuleCmd holds what every `gdp capsule` subcommand shares: how to reach
// the overlay and the output format.
type capsuleCmd struct {
	cfgPath string
	attach  attachConfig
	json    bool
	timeout time.Duration
}

func init() {
	cc := &capsuleCmd{}
	cmd := &cobra.Command{
		Use:   "capsule",
		Short: "Create, write, read, follow and verify DataCapsules",
		Long: `capsule talks to capsule servers through a router, as the endpoint named by
--identity (a client key in the keystore with a membership certificate).
Every answer is verified: record hashes and the hash chain, inclusion
proofs against writer-signed heartbeats, consistency between heartbeats.

The connection settings may come from a YAML file (--config) with the
keys of deploy/capsuled.yaml's connection part: router, router_name,
admin, keystore, identity, member_cert, domain, timeout.`,
	}
	cmd.PersistentFlags().StringVarP(&cc.cfgPath, "config", "c", "", "connection settings (YAML)")
	cmd.PersistentFlags().BoolVar(&cc.json, "json", false, "print JSON")
	cmd.PersistentFlags().DurationVar(&cc.timeout, "timeout", 30*time.Second, "give up after this long")
	cc.attach.flags(cmd)
	for _, f := range []string{"router", "router-name", "admin", "keystore", "identity", "member", "domain"} {
		cmd.PersistentFlags().AddFlag(cmd.Flags().Lookup(f))
	}
	cmd.AddCommand(cc.createCmd(), cc.appendCmd(), cc.readCmd(), cc.tailCmd(), cc.infoCmd(), cc.verifyCmd())
	addCommand(cmd)
}

// connect attaches and returns a capsule client; close releases both.
func (cc *capsuleCmd) connect(ctx context.Context) (*client.CapsuleClient, *attached, func(), error) {
	a := cc.attach
	if cc.cfgPath != "" {
		var file attachConfig
		if err := config.Load(cc.cfgPath, &file); err != nil {
			return nil, nil, nil, err
		}
		a.merge(file)
	}
	a.withDefaults("client")
	at, err := a.attach(ctx, client.Options{InboxSize: 8192})
	if err != nil {
		return nil, nil, nil, err
	}
	// The identity's own name, and this process's session name: answers
	// to this process's requests go there, not to another process running
	// under the same identity (a tail -f beside an append).
	session, err := at.client.Session()
	if err != nil {
		_ = at.Close()
		return nil, nil, nil, err
	}
	if _, err := at.client.Advertise(ctx, at.client.Self(), session); err != nil {
		_ = at.Close()
		return nil, nil, nil, fmt.Errorf("advertise %s: %w", at.id.Name, err)
	}
	caps := client.NewCapsuleClient(at.client, client.CapsuleOptions{Timeout: a.Timeout.Std()})
	return caps, at, func() { _ = caps.Close(); _ = at.Close() }, nil
}

func (cc *capsuleCmd) ctx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
	ctx, cancel := context.WithTimeout(ctx, cc.timeout)
	return ctx, func() { cancel(); stop() }
}

// session is what every capsule subcommand starts with: a context that ends
// on Ctrl-C and, unless the command follows a stream, after --timeout; and
// a connection through the router. done closes both.
func (cc *capsuleCmd) session(cmd *cobra.Command, follow bool) (ctx context.Context, caps *client.CapsuleClient, at *attached, done func(), err error) {
	var cancel context.CancelFunc
	if follow {
		ctx, cancel = signal.NotifyContext(cmd.Context(), os.Interrupt)
	} else {
		ctx, cancel = cc.ctx(cmd)
	}
	caps, at, closeConn, err := cc.connect(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, nil, err
	}
	return ctx, caps, at, func() { closeConn(); cancel() }, nil
}

func (cc *capsuleCmd) print(w io.Writer, v any, text func()) error {
	if cc.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text()
	return nil
}

func parseNames(list []string) ([]pdu.Name, error) {
	var out []pdu.Name
	for _, s := range list {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			n, err := pdu.ParseName(part)
			if err != nil {
				return nil, fmt.Errorf("name %q: %w", part, err)
			}
			out = append(out, n)
		}
	}
	return out, nil
}

func (cc *capsuleCmd) createCmd() *cobra.Command {
	var owner, writer, desc, metaOut string
	var servers []string
	var w int
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "create --owner ALIAS --writer ALIAS --servers S1,S2,S3 [--w N]",
		Short: "Mint a capsule and place it on its replica servers",
		Long: `create makes the capsule's metadata (owner key and writer key from the
keystore), issues an AdCert for each server with the owner key, and sends
each server a CREATE with the whole replica set and W. It prints the
capsule's name; --meta-out saves the metadata.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, caps, at, done, err := cc.session(cmd, false)
			if err != nil {
				return err
			}
			defer done()
			own, err := at.ks.Load(owner)
			if err != nil {
				return fmt.Errorf("owner %q: %w", owner, err)
			}
			wr, err := at.ks.Load(writer)
			if err != nil {
				return fmt.Errorf("writer %q: %w", writer, err)
			}
			names, err := parseNames(servers)
			if err != nil || len(names) == 0 {
				return fmt.Errorf("--servers: %v (want one or more server names)", err)
			}
			meta, err := certs.NewCapsule(own.Key, wr.Public(), desc)
			if err != nil {
				return err
			}
			places, err := client.PlaceCapsule(own, meta, names, lifetime)
			if err != nil {
				return err
			}
			if err := caps.Create(ctx, own, meta, w, places); err != nil {
				return err
			}
			if metaOut != "" {
				if err := fsutil.WriteFile(metaOut, certs.Armor(certs.PEMMetadata, meta.Marshal()), 0o644, true); err != nil {
					return err
				}
			}
			out := struct {
				Capsule  string   `json:"capsule"`
				Replicas []string `json:"replicas"`
				W        int      `json:"w"`
			}{Capsule: meta.Name().String(), W: w}
			for _, n := range names {
				out.Replicas = append(out.Replicas, n.String())
			}
			return cc.print(cmd.OutOrStdout(), out, func() { fmt.Fprintln(cmd.OutOrStdout(), meta.Name()) })
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "keystore alias of the owner key (signs AdCerts)")
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the writer key (signs heartbeats)")
	cmd.Flags().StringVar(&desc, "desc", "", "description")
	cmd.Flags().StringSliceVar(&servers, "servers", nil, "replica server names (comma-separated)")
	cmd.Flags().IntVar(&w, "w", 0, "replicas that must hold a write (default: a majority)")
	cmd.Flags().DurationVar(&lifetime, "adcert-lifetime", 7*24*time.Hour, "validity of the AdCerts issued")
	cmd.Flags().StringVar(&metaOut, "meta-out", "", "write the capsule's metadata to this file")
	_ = cmd.MarkFlagRequired("owner")
	_ = cmd.MarkFlagRequired("writer")
	_ = cmd.MarkFlagRequired("servers")
	return cmd
}

func (cc *capsuleCmd) appendCmd() *cobra.Command {
	var writer string
	var data []string
	var pf *progressFlags
	cmd := &cobra.Command{
		Use:   "append CAPSULE --writer ALIAS [--data TEXT]... ",
		Short: "Append records (each --data, or each line of stdin) and report their durability",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := pdu.ParseName(args[0])
			if err != nil {
				return err
			}
			ctx, caps, at, done, err := cc.session(cmd, false)
			if err != nil {
				return err
			}
			defer done()
			wid, err := at.ks.Load(writer)
			if err != nil {
				return fmt.Errorf("writer %q: %w", writer, err)
			}
			wr, err := caps.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
			if err != nil {
				return err
			}
			defer wr.Close(context.Background())
			bar, err := pf.start(cmd, cc.json, false, "append", int64(len(data)))
			if err != nil {
				return err
			}
			first, last := uint64(0), uint64(0)
			add := func(b []byte) error {
				s, err := wr.Append(ctx, b)
				if first == 0 {
					first = s
				}
				last = s
				if err == nil {
					bar.inc()
				}
				return err
			}
			err = func() error {
				if len(data) > 0 {
					for _, d := range data {
						if err := add([]byte(d)); err != nil {
							return err
						}
					}
					return nil
				}
				sc := bufio.NewScanner(cmd.InOrStdin())
				sc.Buffer(make([]byte, 64<<10), 64<<10)
				for sc.Scan() {
					if err := add(append([]byte(nil), sc.Bytes()...)); err != nil {
						return err
					}
				}
				return sc.Err()
			}()
			bar.finish(err)
			if err != nil {
				return err
			}
			d, err := wr.Flush(ctx)
			if err != nil {
				return err
			}
			out := struct {
				Capsule string   `json:"capsule"`
				First   uint64   `json:"first"`
				Last    uint64   `json:"last"`
				Acks    int      `json:"acks"`
				N       int      `json:"n"`
				W       int      `json:"w"`
				Met     bool     `json:"durable"`
				Holders []string `json:"holders"`
				// Receipts prove durability: each holder's signature over
				// (capsule, seqno, heartbeat hash, server), checked by the
				// writer under the key of a server the owner placed the
				// capsule on (docs/PROTOCOL.md §8.6).
				Receipts []appendReceipt `json:"receipts"`
			}{name.String(), first, last, d.Acks, d.N, d.W, d.Met, nil, nil}
			for i, h := range d.Holders {
				out.Holders = append(out.Holders, h.String())
				if i < len(d.Receipts) && d.Receipts[i] != nil {
					rc := d.Receipts[i]
					out.Receipts = append(out.Receipts, appendReceipt{Server: rc.Server.String(), Seqno: rc.Seqno,
						Heartbeat: rc.Heartbeat.String(), Signature: hex.EncodeToString(rc.Sig), Receipt: hex.EncodeToString(rc.Marshal())})
				}
			}
			if err := cc.print(cmd.OutOrStdout(), out, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "appended %d..%d: %s\n", first, last, d)
			}); err != nil {
				return err
			}
			if !d.Met {
				return fmt.Errorf("durability not met: %s", d)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the capsule's writer key")
	cmd.Flags().StringArrayVar(&data, "data", nil, "record data (repeatable); default: one record per line of stdin")
	_ = cmd.MarkFlagRequired("writer")
	pf = addProgressFlags(cmd)
	return cmd
}

// recordJSON is a record as the commands print it.
type recordJSON struct {
	Seqno uint64 `json:"seqno"`
	Time  string `json:"time,omitempty"`
	Hole  bool   `json:"hole,omitempty"`
	Hash  string `json:"hash"`
	Data  string `json:"data,omitempty"`
}

func toJSON(e capsule.Record) recordJSON {
	r := recordJSON{Seqno: e.Seqno, Hole: e.Hole, Hash: e.Hash().String(), Data: string(e.Data)}
	if !e.Hole {
		r.Time = time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano)
	}
	return r
}

func (cc *capsuleCmd) printRecord(w io.Writer, e capsule.Record) {
	if cc.json {
		b, _ := json.Marshal(toJSON(e))
		fmt.Fprintln(w, string(b))
		return
	}
	if e.Hole {
		fmt.Fprintf(w, "%d\t(hole)\n", e.Seqno)
		return
	}
	fmt.Fprintf(w, "%d\t%s\t%s\n", e.Seqno, time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano), e.Data)
}

func (cc *capsuleCmd) readerFlags(cmd *cobra.Command, server *string) {
	cmd.Flags().StringVar(server, "server", "", "read from this replica (default: the nearest)")
}

func (cc *capsuleCmd) open(ctx context.Context, caps *client.CapsuleClient, arg, server string) (*client.Reader, error) {
	name, err := pdu.ParseName(arg)
	if err != nil {
		return nil, err
	}
	var opts client.ReaderOptions
	if server != "" {
		if opts.Server, err = pdu.ParseName(server); err != nil {
			return nil, err
		}
	}
	return caps.NewReader(ctx, name, opts)
}

func (cc *capsuleCmd) readCmd() *cobra.Command {
	var from, to uint64
	var at, server string
	var pf *progressFlags
	cmd := &cobra.Command{
		Use:   "read CAPSULE [--from N] [--to M] [--at TIME]",
		Short: "Read records, verified (JSON lines with --json)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, caps, _, done, err := cc.session(cmd, false)
			if err != nil {
				return err
			}
			defer done()
			rd, err := cc.open(ctx, caps, args[0], server)
			if err != nil {
				return err
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				e, err := rd.ReadAt(ctx, t)
				if err != nil {
					return err
				}
				cc.printRecord(cmd.OutOrStdout(), e)
				return nil
			}
			bar, err := pf.start(cmd, cc.json, true, "read", readTotal(from, to, rd.Heartbeat()))
			if err != nil {
				return err
			}
			err = rd.Scan(ctx, from, to, func(e capsule.Record) error {
				cc.printRecord(cmd.OutOrStdout(), e)
				bar.inc()
				return nil
			})
			bar.finish(err)
			return err
		},
	}
	cmd.Flags().Uint64Var(&from, "from", 1, "first seqno")
	cmd.Flags().Uint64Var(&to, "to", 0, "last seqno (default: the head)")
	cmd.Flags().StringVar(&at, "at", "", "read the first record written at or after this RFC 3339 time")
	cc.readerFlags(cmd, &server)
	pf = addProgressFlags(cmd)
	return cmd
}

func (cc *capsuleCmd) tailCmd() *cobra.Command {
	var n uint64
	var follow bool
	var server string
	cmd := &cobra.Command{
		Use:   "tail CAPSULE [-n N] [-f]",
		Short: "Print the last records; -f follows a subscription",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, caps, _, done, err := cc.session(cmd, follow)
			if err != nil {
				return err
			}
			defer done()
			rd, err := cc.open(ctx, caps, args[0], server)
			if err != nil {
				return err
			}
			var head uint64
			if hb := rd.Heartbeat(); hb != nil {
				head = hb.Seqno
			}
			from := uint64(1)
			if head > n {
				from = head - n + 1
			}
			if head > 0 && n > 0 {
				if err := rd.Scan(ctx, from, head, func(e capsule.Record) error {
					cc.printRecord(cmd.OutOrStdout(), e)
					return nil
				}); err != nil {
					return err
				}
			}
			if !follow {
				return nil
			}
			sub, err := rd.Subscribe(ctx, head+1)
			if err != nil {
				return err
			}
			defer sub.Close()
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				for _, e := range ev.Entries {
					cc.printRecord(cmd.OutOrStdout(), e)
				}
			}
		},
	}
	cmd.Flags().Uint64VarP(&n, "lines", "n", 10, "how many of the last records to print")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records as they are written")
	cc.readerFlags(cmd, &server)
	return cmd
}

// appendReceipt is one durability receipt as `gdp capsule append --json`
// prints it: the server, the heartbeat it holds (seqno and SHA-256 of its
// wire form), the server's Ed25519 signature, and the whole COSE_Sign1.
type appendReceipt struct {
	Server    string `json:"server"`
	Seqno     uint64 `json:"seqno"`
	Heartbeat string `json:"heartbeat_hash"`
	Signature string `json:"signature"`
	Receipt   string `json:"receipt"`
}
