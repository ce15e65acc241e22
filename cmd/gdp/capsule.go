package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
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
	// rtCertLifetime is the validity of the RtCerts the command issues
	// for its names (0: client.Options' default, an hour). Tests shorten
	// it.
	rtCertLifetime time.Duration
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
	// A member visiting another domain's router (one that trusts the
	// member's domain) must trust the router's domain to attach.
	cmd.PersistentFlags().StringArrayVar(&cc.attach.trusted, "trust", nil, "metadata file of another trusted domain, e.g. the router's when it is not --domain's (repeatable)")
	cmd.AddCommand(cc.createCmd(), cc.appendCmd(), cc.readCmd(), cc.tailCmd(), cc.infoCmd(), cc.verifyCmd(),
		cc.renewCmd(), cc.deleteCmd())
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
	at, err := a.attach(ctx, client.Options{InboxSize: 8192, RtCertLifetime: cc.rtCertLifetime})
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
	// Advertised again before the routes' chains run out (the RtCert, an
	// hour; the router's membership) for as long as the command runs:
	// advertised once, a `gdp fs mount` or `gdp capsule tail -f` got no
	// answer after an hour (Session 20, review13; as the gateway's uplink).
	at.client.Maintain(ctx, func() []client.Route {
		if s, err := at.client.Session(); err == nil {
			return []client.Route{at.client.Self(), s}
		}
		return []client.Route{at.client.Self()}
	}, 5*time.Second)
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
	return cc.sessionIn(ctx, cancel)
}

// sessionUntilDone is session for a command that handles Ctrl-C itself
// (gdp fs mount: a busy mount is detached and still served): the
// connection lasts until done, whatever signal comes.
func (cc *capsuleCmd) sessionUntilDone(cmd *cobra.Command) (ctx context.Context, caps *client.CapsuleClient, at *attached, done func(), err error) {
	ctx, cancel := context.WithCancel(cmd.Context())
	return cc.sessionIn(ctx, cancel)
}

func (cc *capsuleCmd) sessionIn(ctx context.Context, cancel context.CancelFunc) (context.Context, *client.CapsuleClient, *attached, func(), error) {
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

// defaultAdCertLifetime is the AdCert lifetime create and renew issue by
// default: docs/OPERATIONS.md §1.2 (72 h, renewed every 24–36 h).
const defaultAdCertLifetime = 72 * time.Hour

func (cc *capsuleCmd) createCmd() *cobra.Command {
	var owner, writer, desc, metaOut, metaIn string
	var servers []string
	var w int
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "create --owner ALIAS --writer ALIAS --servers S1,S2,S3 [--w N]",
		Short: "Mint a capsule and place it on its replica servers",
		Long: `create makes the capsule's metadata (owner key and writer key from the
keystore), issues an AdCert for each server with the owner key, and sends
each server a CREATE with the whole replica set and W. It prints the
capsule's name; --meta-out saves the metadata. With --meta it places an
existing capsule (its saved metadata) instead of minting a new one.

If a server refuses, the placements this create made on the others are
deleted again, so a failed create leaves nothing behind.`,
		Example: `  gdp capsule create --owner alice --writer alice-writer --servers $S1,$S2,$S3 --w 2 --meta-out sensor.meta
  gdp capsule create --owner alice --meta sensor.meta --servers $S1,$S2,$S3   # an existing capsule`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if metaIn != "" && writer != "" {
				return fmt.Errorf("give --writer (a new capsule) or --meta (an existing capsule's metadata), not both")
			}
			if metaIn == "" && writer == "" {
				return fmt.Errorf("give --writer ALIAS (the key that signs a new capsule's records; it may be --owner's) or --meta FILE (an existing capsule's metadata)")
			}
			ctx, caps, at, done, err := cc.session(cmd, false)
			if err != nil {
				return err
			}
			defer done()
			own, err := at.ks.Load(owner)
			if err != nil {
				return fmt.Errorf("owner %q: %w", owner, err)
			}
			names, err := parseNames(servers)
			if err != nil || len(names) == 0 {
				return fmt.Errorf("--servers: %v (want one or more server names)", err)
			}
			var meta *certs.Metadata
			if metaIn != "" {
				if meta, err = readCapsuleMeta(metaIn, own); err != nil {
					return err
				}
			} else {
				wr, err := at.ks.Load(writer)
				if err != nil {
					return fmt.Errorf("writer %q: %w", writer, err)
				}
				if meta, err = certs.NewCapsule(own.Key, wr.Public(), desc); err != nil {
					return err
				}
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
				Expires  string   `json:"adcert_not_after"`
			}{Capsule: meta.Name().String(), W: w, Expires: places[0].AdCert.NotAfter.UTC().Format(time.RFC3339)}
			for _, n := range names {
				out.Replicas = append(out.Replicas, n.String())
			}
			return cc.print(cmd.OutOrStdout(), out, func() { fmt.Fprintln(cmd.OutOrStdout(), meta.Name()) })
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "keystore alias of the owner key (signs AdCerts)")
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the writer key (signs heartbeats)")
	cmd.Flags().StringVar(&metaIn, "meta", "", "place the existing capsule whose metadata this file holds (instead of --writer)")
	cmd.Flags().StringVar(&desc, "desc", "", "description")
	cmd.Flags().StringSliceVar(&servers, "servers", nil, "replica server names (comma-separated)")
	cmd.Flags().IntVar(&w, "w", 0, "replicas that must hold a write (default: a majority)")
	cmd.Flags().DurationVar(&lifetime, "adcert-lifetime", defaultAdCertLifetime, "validity of the AdCerts issued (renew with gdp capsule renew every 24–36 h)")
	cmd.Flags().StringVar(&metaOut, "meta-out", "", "write the capsule's metadata to this file")
	_ = cmd.MarkFlagRequired("owner")
	_ = cmd.MarkFlagRequired("servers")
	return cmd
}

// readCapsuleMeta reads a capsule's saved metadata and checks that owner's
// key owns it.
func readCapsuleMeta(path string, owner *certs.Identity) (*certs.Metadata, error) {
	v, err := readAny(path)
	if err != nil {
		return nil, err
	}
	meta, ok := v.(*certs.Metadata)
	if !ok || meta.Kind != certs.KindCapsule {
		return nil, fmt.Errorf("%s: not a capsule's metadata", path)
	}
	if !meta.Key.Equal(owner.Public()) {
		return nil, fmt.Errorf("%s: capsule %s is owned by another key than the owner given", path, meta.Name())
	}
	return meta, nil
}

func (cc *capsuleCmd) renewCmd() *cobra.Command {
	var owner string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "renew CAPSULE --owner ALIAS [--adcert-lifetime D]",
		Short: "Re-issue an existing capsule's AdCerts and refresh them on its servers",
		Long: `renew asks a replica for the capsule's metadata, replica set and W, issues a
fresh AdCert for every replica with the owner key, and sends each replica
a CREATE with it: the servers keep the capsule's name, records and
writer, and advertise it under the new AdCert. Run it before the AdCerts
expire (every 24–36 h for the default 72 h; the CLI warns when less than
20 % of their life is left). After they expired the capsule is not
reachable by name: then give the replicas with --servers.`,
		Example: `  gdp capsule renew $CAPSULE --owner alice
  gdp capsule renew $CAPSULE --owner alice --servers $S1,$S2,$S3 --w 2   # AdCerts already expired`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := pdu.ParseName(args[0])
			if err != nil {
				return err
			}
			servers, _ := cmd.Flags().GetStringSlice("servers")
			w, _ := cmd.Flags().GetInt("w")
			ctx, caps, at, done, err := cc.session(cmd, false)
			if err != nil {
				return err
			}
			defer done()
			own, err := at.ks.Load(owner)
			if err != nil {
				return fmt.Errorf("owner %q: %w", owner, err)
			}
			names, err := parseNames(servers)
			if err != nil {
				return fmt.Errorf("--servers: %w", err)
			}
			var info *client.CapsuleInfo
			for _, dst := range append([]pdu.Name{name}, names...) {
				if info, err = caps.Info(ctx, name, dst); err == nil {
					break
				}
			}
			if err != nil {
				return fmt.Errorf("renew %s: %w", name, err)
			}
			if !info.Meta.Key.Equal(own.Public()) {
				return fmt.Errorf("renew %s: %q is not the capsule's owner key", name, owner)
			}
			if len(names) == 0 {
				names = info.Replicas
			}
			if w == 0 {
				w = info.W
			}
			places, err := client.PlaceCapsule(own, info.Meta, names, lifetime)
			if err != nil {
				return err
			}
			if err := caps.Create(ctx, own, info.Meta, w, places); err != nil {
				return fmt.Errorf("renew: %w", err)
			}
			na := places[0].AdCert.NotAfter.UTC()
			out := struct {
				Capsule  string   `json:"capsule"`
				Replicas []string `json:"replicas"`
				W        int      `json:"w"`
				Expires  string   `json:"adcert_not_after"`
			}{Capsule: name.String(), W: w, Expires: na.Format(time.RFC3339)}
			for _, n := range names {
				out.Replicas = append(out.Replicas, n.String())
			}
			return cc.print(cmd.OutOrStdout(), out, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "renewed %s on %d servers: AdCerts valid until %s\n", name, len(names), na.Format(time.RFC3339))
			})
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "keystore alias of the capsule's owner key")
	cmd.Flags().DurationVar(&lifetime, "adcert-lifetime", defaultAdCertLifetime, "validity of the new AdCerts")
	cmd.Flags().StringSlice("servers", nil, "the replicas (default: the placement a replica reports)")
	cmd.Flags().Int("w", 0, "replicas that must hold a write (default: the placement's)")
	_ = cmd.MarkFlagRequired("owner")
	return cmd
}

func (cc *capsuleCmd) deleteCmd() *cobra.Command {
	var owner string
	var servers []string
	cmd := &cobra.Command{
		Use:   "delete CAPSULE --owner ALIAS [--servers S1,S2]",
		Short: "Remove a capsule's placement and data from its servers (owner-signed)",
		Long: `delete sends each replica (default: the placement a replica reports) a DELETE
signed with the capsule's owner key for that server: the server withdraws
the capsule's name and deletes the placement and every record. A server
that does not hold the capsule counts as done.`,
		Example: `  gdp capsule delete $CAPSULE --owner alice
  gdp capsule delete $CAPSULE --owner alice --servers $S2   # one replica only`,
		Args: cobra.ExactArgs(1),
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
			own, err := at.ks.Load(owner)
			if err != nil {
				return fmt.Errorf("owner %q: %w", owner, err)
			}
			names, err := parseNames(servers)
			if err != nil {
				return fmt.Errorf("--servers: %w", err)
			}
			if len(names) == 0 {
				info, err := caps.Info(ctx, name, name)
				if err != nil {
					return fmt.Errorf("delete %s: %w (give the servers with --servers)", name, err)
				}
				names = info.Replicas
			}
			if err := caps.Delete(ctx, own, name, names); err != nil {
				return err
			}
			return cc.print(cmd.OutOrStdout(), struct {
				Capsule string `json:"capsule"`
				Servers int    `json:"servers"`
			}{name.String(), len(names)}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s from %d servers\n", name, len(names))
			})
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "keystore alias of the capsule's owner key")
	cmd.Flags().StringSliceVar(&servers, "servers", nil, "servers to delete it from (default: every replica)")
	_ = cmd.MarkFlagRequired("owner")
	return cmd
}

// warnExpiry prints a warning on stderr when the AdCert of the replica that
// answered has less than 20 % of its lifetime left, or has expired.
func warnExpiry(cmd *cobra.Command, in *client.CapsuleInfo) {
	if in == nil || in.AdCert == nil {
		return
	}
	now := time.Now()
	left := in.AdCertLifeLeft(now)
	if left >= 0.2 {
		return
	}
	na := in.AdCert.NotAfter.UTC().Format(time.RFC3339)
	if left == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: capsule %s: the AdCert of server %s expired at %s; renew it: gdp capsule renew %s --owner ALIAS\n",
			in.Name, in.Server, na, in.Name)
		return
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "warning: capsule %s: the AdCert of server %s expires at %s (in %s, %.0f%% of its life left); renew it: gdp capsule renew %s --owner ALIAS\n",
		in.Name, in.Server, na, in.AdCert.NotAfter.Sub(now).Round(time.Minute), left*100, in.Name)
}

func (cc *capsuleCmd) appendCmd() *cobra.Command {
	var writer string
	var data []string
	var skip uint64
	var pf *progressFlags
	cmd := &cobra.Command{
		Use:   "append CAPSULE --writer ALIAS [--data TEXT]... ",
		Short: "Append records (each --data, or each line of stdin) and report their durability",
		Long: `append writes each --data value, or else each line of stdin, as one record
(at most ` + fmt.Sprint(wire.MaxRecordData) + ` bytes of data). It holds a writer lock beside the
keystore for the capsule, so a second append of the same capsule on this
machine is refused while one runs.

When it stops early (an error, Ctrl-C) it reports which records the
replicas acknowledged and how to resume: --skip N skips the first N
records of the input (the ones already stored).`,
		Example: `  gdp capsule append $CAPSULE --writer alice-writer --data "hello"
  tail -F app.log | gdp capsule append $CAPSULE --writer alice-writer
  gdp capsule append $CAPSULE --writer alice-writer --skip 33428 < app.log`,
		Args: cobra.ExactArgs(1),
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
			unlock, err := lockWriter(at.ks.Dir(), name)
			if err != nil {
				return err
			}
			defer unlock()
			in, err := caps.Info(ctx, name, name)
			if err != nil {
				return err
			}
			warnExpiry(cmd, in)
			if err := refuseFilesCapsule(ctx, caps, name, "a record"); err != nil {
				return err
			}
			wr, err := caps.NewWriter(ctx, name, wid.Key, client.WriterOptions{Cadence: -1})
			if err != nil {
				return err
			}
			bar, err := pf.start(cmd, cc.json, false, "append", int64(len(data)))
			if err != nil {
				return err
			}
			var n uint64 // input records read (skipped ones included)
			first, last := uint64(0), uint64(0)
			add := func(b []byte) error {
				if n++; n <= skip {
					return nil
				}
				s, err := wr.Append(ctx, b)
				if err != nil {
					return fmt.Errorf("record %d of the input: %w", n, err)
				}
				if first == 0 {
					first = s
				}
				last = s
				bar.inc()
				return nil
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
				// Lines come from a reader goroutine, so Ctrl-C stops the
				// append even while stdin has nothing to say.
				type line struct {
					b   []byte
					err error
					end bool
				}
				lines, stop := make(chan line), make(chan struct{})
				defer close(stop)
				go func() {
					err := readLines(cmd.InOrStdin(), wire.MaxRecordData, func(b []byte) error {
						select {
						case lines <- line{b: b}:
							return nil
						case <-stop:
							return context.Canceled
						}
					})
					select {
					case lines <- line{err: err, end: true}:
					case <-stop:
					}
					close(lines)
				}()
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							return nil
						}
						if l.end {
							return l.err
						}
						if err := add(l.b); err != nil {
							return err
						}
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}()
			var d client.Durability
			if err == nil {
				d, err = wr.Flush(ctx)
			}
			bar.finish(err)
			if err != nil {
				return cc.appendStopped(cmd, wr, skip, err)
			}
			_ = wr.Close(ctx)
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
	cmd.Flags().Uint64Var(&skip, "skip", 0, "skip the first N input records (resume after a partial append)")
	_ = cmd.MarkFlagRequired("writer")
	pf = addProgressFlags(cmd)
	return cmd
}

// appendStopped reports an append that stopped early: it waits briefly for
// the answers to the batches already sent, drops what was not sent, and
// says which records are stored and where to resume.
func (cc *capsuleCmd) appendStopped(cmd *cobra.Command, wr *client.Writer, skip uint64, cause error) error {
	grace, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	p := wr.Drain(grace)
	cancel()
	wr.Abort()
	stored := p.Stored - p.Start // records of this run the replicas hold
	why := "stopped"
	if errors.Is(cause, context.Canceled) {
		why = "interrupted"
	}
	var msg string
	if stored == 0 {
		msg = fmt.Sprintf("%s: no record of this run was acknowledged; resume with --skip %d", why, skip)
	} else {
		msg = fmt.Sprintf("%s: stored records %d–%d (input records %d–%d, %d acknowledged, durable to seqno %d); resume with --skip %d",
			why, p.Start+1, p.Stored, skip+1, skip+stored, stored, p.Durable, skip+stored)
	}
	fmt.Fprintln(cmd.ErrOrStderr(), msg)
	if cc.json {
		_ = cc.print(cmd.OutOrStdout(), struct {
			Capsule string `json:"capsule"`
			First   uint64 `json:"first_stored,omitempty"`
			Stored  uint64 `json:"stored"`
			Durable uint64 `json:"durable_to"`
			Resume  uint64 `json:"resume_skip"`
			Error   string `json:"error"`
		}{wr.Name().String(), min(p.Start+1, p.Stored), p.Stored, p.Durable, skip + stored, cause.Error()}, func() {})
	}
	return fmt.Errorf("%w (%s)", cause, msg)
}

// errLineTooLong: an input line longer than a record may be.
var errLineTooLong = errors.New("line too long")

// readLines calls fn with each line of r (without its line end), and fails
// with the line's number and the limit on a line longer than max bytes.
func readLines(r io.Reader, max int, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for n := 1; ; n++ {
		line = line[:0]
		long := false
		var err error
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			if !long {
				if line = append(line, frag...); len(line) > max+2 {
					long, line = true, line[:0]
				}
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading line %d of the input: %w", n, err)
		}
		if err == io.EOF && len(line) == 0 && !long {
			return nil
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if long || len(line) > max {
			return fmt.Errorf("line %d of the input: %w: a record holds at most %d bytes of data", n, errLineTooLong, max)
		}
		if err := fn(append([]byte(nil), line...)); err != nil {
			return err
		}
		if err == io.EOF {
			return nil
		}
	}
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

func (cc *capsuleCmd) open(cmd *cobra.Command, ctx context.Context, caps *client.CapsuleClient, arg, server string) (*client.Reader, error) {
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
	rd, err := caps.NewReader(ctx, name, opts)
	if err == nil {
		warnExpiry(cmd, rd.Opened())
	}
	return rd, err
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
			rd, err := cc.open(cmd, ctx, caps, args[0], server)
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
			rd, err := cc.open(cmd, ctx, caps, args[0], server)
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
