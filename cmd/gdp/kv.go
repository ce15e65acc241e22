package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/caapi/kv"
	"github.com/gdpnet/gdpnet/pdu"
)

// kvCmd is `gdp kv`: a key–value store with time travel on a capsule
// (caapi/kv, docs/PROTOCOL.md §10). It reaches the overlay as `gdp
// capsule` does (the same connection flags and --config).
type kvCmd struct {
	capsuleCmd
	server string
	asOf   string
}

func init() {
	kc := &kvCmd{}
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "A key–value store with time travel on a capsule: put, get (--as-of), del, ls, history",
		Long: `kv keeps a key–value store in a capsule (caapi/kv): every put and delete is
a record, so every past state stays readable — get and ls take --as-of, a
capsule seqno (the state right after that record) or an RFC 3339 time (the
state after the newest record written at or before it). Reads verify every
record against the writer-signed heartbeats; they start from the newest
checkpoint record and read the older log only for a point before it.

Create the capsule first with ` + "`gdp capsule create`" + `; put and del with its
writer key (they take the capsule's writer lock beside the keystore).
The connection flags and --config are those of ` + "`gdp capsule`" + `.`,
		Example: `  gdp capsule create --owner alice --writer alice-writer --servers $S1,$S2 --w 2   # prints $CAPSULE
  gdp kv put $CAPSULE colour red --writer alice-writer      # colour  seqno 1
  gdp kv put $CAPSULE colour green --writer alice-writer
  gdp kv get $CAPSULE colour                                # green
  gdp kv get $CAPSULE colour --as-of 1                      # red
  gdp kv get $CAPSULE colour --as-of 2026-12-05T10:00:00Z
  gdp kv ls $CAPSULE col
  gdp kv history $CAPSULE colour`,
	}
	cmd.PersistentFlags().StringVarP(&kc.cfgPath, "config", "c", "", "connection settings (YAML)")
	cmd.PersistentFlags().BoolVar(&kc.json, "json", false, "print JSON")
	cmd.PersistentFlags().DurationVar(&kc.timeout, "timeout", time.Minute, "give up after this long")
	kc.attach.flags(cmd)
	for _, f := range []string{"router", "router-name", "admin", "keystore", "identity", "member", "domain"} {
		cmd.PersistentFlags().AddFlag(cmd.Flags().Lookup(f))
	}
	cmd.AddCommand(kc.putCmd(), kc.getCmd(), kc.delCmd(), kc.lsCmd(), kc.historyCmd())
	addCommand(cmd)
}

// parseAsOf reads --as-of: a seqno (digits) or an RFC 3339 time; empty:
// the newest state.
func parseAsOf(s string) (kv.At, error) {
	if s == "" {
		return kv.Latest, nil
	}
	if strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return kv.Latest, fmt.Errorf("--as-of %q: a seqno from 1", s)
		}
		return kv.AtSeqno(n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return kv.Latest, fmt.Errorf("--as-of %q: want a seqno or an RFC 3339 time (2026-12-05T10:00:00Z)", s)
	}
	return kv.AtTime(t), nil
}

func (kc *kvCmd) readFlags(cmd *cobra.Command, asOf bool) {
	cmd.Flags().StringVar(&kc.server, "server", "", "read from this replica (default: the nearest)")
	if asOf {
		cmd.Flags().StringVar(&kc.asOf, "as-of", "", "the state as of a capsule seqno or an RFC 3339 time (default: the newest)")
	}
}

// open connects and reads capsule arg's store once (no subscription).
func (kc *kvCmd) open(cmd *cobra.Command, arg string) (context.Context, *kv.Store, func(), error) {
	name, err := pdu.ParseName(arg)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := kv.Options{NoFollow: true}
	if kc.server != "" {
		if opts.Reader.Server, err = pdu.ParseName(kc.server); err != nil {
			return nil, nil, nil, fmt.Errorf("--server: %w", err)
		}
	}
	ctx, caps, _, done, err := kc.session(cmd, false)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := kv.Open(ctx, caps, name, opts)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return ctx, st, func() { _ = st.Close(); done() }, nil
}

// write opens capsule arg's KV writer under the writer lock, runs fn, and
// returns once the capsule's W replicas hold what it wrote.
func (kc *kvCmd) write(cmd *cobra.Command, arg, writer string, fn func(ctx context.Context, w *kv.Writer) (uint64, error)) (uint64, bool, error) {
	name, err := pdu.ParseName(arg)
	if err != nil {
		return 0, false, err
	}
	ctx, caps, at, done, err := kc.session(cmd, false)
	if err != nil {
		return 0, false, err
	}
	defer done()
	wid, err := at.ks.Load(writer)
	if err != nil {
		return 0, false, fmt.Errorf("writer %q: %w", writer, err)
	}
	unlock, err := lockWriter(at.ks.Dir(), name)
	if err != nil {
		return 0, false, err
	}
	defer unlock()
	if in, err := caps.Info(ctx, name, name); err == nil {
		warnExpiry(cmd, in)
	}
	if err := refuseFilesCapsule(ctx, caps, name, "a KV record"); err != nil {
		return 0, false, err
	}
	w, err := kv.OpenWriter(ctx, caps, name, wid.Key, kv.WriterOptions{})
	if err != nil {
		return 0, false, err
	}
	seq, err := fn(ctx, w)
	if err != nil {
		_ = w.Close(ctx)
		return 0, false, err
	}
	d, err := w.Flush(ctx)
	if cerr := w.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, false, err
	}
	return seq, d.Met, nil
}

// kvValueJSON is a value as the commands print it: as the gateway's API
// shows it.
type kvValueJSON = kv.JSONValue

func toKVJSON(v kv.Value) kvValueJSON { return v.JSON() }

// shown is a value on one line: as it is when it is printable text
// without tabs or newlines, else Go-quoted.
func shown(b []byte) string {
	s := string(b)
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '\t' }) &&
		!strings.HasPrefix(s, `"`) {
		return s
	}
	return strconv.Quote(s)
}

type kvWriteJSON struct {
	Key     string `json:"key"`
	Seqno   uint64 `json:"seqno"`
	Durable bool   `json:"durable"`
}

func (kc *kvCmd) putCmd() *cobra.Command {
	var writer string
	cmd := &cobra.Command{
		Use:   "put CAPSULE KEY VALUE --writer ALIAS",
		Short: "Set a key (VALUE - reads it from stdin)",
		Long: `put sets KEY to VALUE (- reads the value's bytes from stdin) and prints
the seqno of the record: a point to read as of later. It returns once the
capsule's W replicas hold it.`,
		Example: `  gdp kv put $CAPSULE colour red --writer alice-writer
  gdp kv put $CAPSULE blob - --writer alice-writer < blob.bin`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			val := []byte(args[2])
			if args[2] == "-" {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), kv.MaxValue+1))
				if err != nil {
					return err
				}
				val = b
			}
			if args[1] == "" {
				return fmt.Errorf("an empty key")
			}
			seq, durable, err := kc.write(cmd, args[0], writer, func(ctx context.Context, w *kv.Writer) (uint64, error) {
				return w.Put(ctx, args[1], val)
			})
			if err != nil {
				return err
			}
			out := kvWriteJSON{Key: args[1], Seqno: seq, Durable: durable}
			return kc.print(cmd.OutOrStdout(), out, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tseqno %d\n", args[1], seq)
			})
		},
	}
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the capsule's writer key")
	_ = cmd.MarkFlagRequired("writer")
	return cmd
}

func (kc *kvCmd) delCmd() *cobra.Command {
	var writer string
	cmd := &cobra.Command{
		Use:     "del CAPSULE KEY --writer ALIAS",
		Aliases: []string{"rm", "delete"},
		Short:   "Delete a key (its past values stay readable with --as-of)",
		Example: `  gdp kv del $CAPSULE colour --writer alice-writer
  gdp kv get $CAPSULE colour --as-of 41     # the value before the delete`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, durable, err := kc.write(cmd, args[0], writer, func(ctx context.Context, w *kv.Writer) (uint64, error) {
				seq, err := w.Delete(ctx, args[1])
				if err == nil && seq == 0 {
					err = fmt.Errorf("key %q: %w (nothing to delete)", args[1], kv.ErrNotFound)
				}
				return seq, err
			})
			if err != nil {
				return err
			}
			out := kvWriteJSON{Key: args[1], Seqno: seq, Durable: durable}
			return kc.print(cmd.OutOrStdout(), out, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tdeleted\tseqno %d\n", args[1], seq)
			})
		},
	}
	cmd.Flags().StringVar(&writer, "writer", "", "keystore alias of the capsule's writer key")
	_ = cmd.MarkFlagRequired("writer")
	return cmd
}

func (kc *kvCmd) getCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get CAPSULE KEY [--as-of SEQNO|TIME]",
		Short: "Print a key's value, now or as of a seqno or a time",
		Long: `get prints KEY's value bytes as they are (--json: with the seqno and time of
the record that set it, and the point the read resolved to). A key with no
value at that point is an error (exit status 1).`,
		Example: `  gdp kv get $CAPSULE colour
  gdp kv get $CAPSULE colour --as-of 41
  gdp kv get $CAPSULE colour --as-of 2026-12-05T10:00:00Z --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			at, err := parseAsOf(kc.asOf)
			if err != nil {
				return err
			}
			ctx, st, done, err := kc.open(cmd, args[0])
			if err != nil {
				return err
			}
			defer done()
			v, err := st.GetAt(ctx, args[1], at)
			if err != nil {
				return fmt.Errorf("key %q as of %s: %w", args[1], at, err)
			}
			return kc.print(cmd.OutOrStdout(), toKVJSON(v), func() {
				_, _ = cmd.OutOrStdout().Write(v.Value)
			})
		},
	}
	kc.readFlags(cmd, true)
	return cmd
}

func (kc *kvCmd) lsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls CAPSULE [PREFIX] [--as-of SEQNO|TIME]",
		Short: "List the keys under a prefix with their values",
		Long: `ls prints one line per key under PREFIX (default: every key) in byte
order: the key, the seqno that set its value, and the value (quoted when it
is not one line of printable text).`,
		Example: `  gdp kv ls $CAPSULE
  gdp kv ls $CAPSULE col --as-of 2026-12-05T10:00:00Z --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			at, err := parseAsOf(kc.asOf)
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 2 {
				prefix = args[1]
			}
			ctx, st, done, err := kc.open(cmd, args[0])
			if err != nil {
				return err
			}
			defer done()
			vs, err := st.ListAt(ctx, prefix, at)
			if err != nil {
				return fmt.Errorf("keys under %q as of %s: %w", prefix, at, err)
			}
			out := []kvValueJSON{}
			for _, v := range vs {
				out = append(out, toKVJSON(v))
			}
			return kc.print(cmd.OutOrStdout(), out, func() {
				for _, v := range vs {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%d\t%s\n", v.Key, v.Seqno, shown(v.Value))
				}
			})
		},
	}
	kc.readFlags(cmd, true)
	return cmd
}

func (kc *kvCmd) historyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history CAPSULE KEY",
		Short: "Every version of a key, oldest first (puts and deletes)",
		Example: `  gdp kv history $CAPSULE colour
  gdp kv history $CAPSULE colour --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, st, done, err := kc.open(cmd, args[0])
			if err != nil {
				return err
			}
			defer done()
			vs, err := st.History(ctx, args[1])
			if err != nil {
				return fmt.Errorf("history of %q: %w", args[1], err)
			}
			if len(vs) == 0 {
				return fmt.Errorf("key %q: %w (never set)", args[1], kv.ErrNotFound)
			}
			out := []kvValueJSON{}
			for _, v := range vs {
				out = append(out, toKVJSON(v))
			}
			return kc.print(cmd.OutOrStdout(), out, func() {
				for _, v := range vs {
					val := shown(v.Value)
					if v.Deleted {
						val = "(deleted)"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%d\t%s\t%s\n", v.Seqno, v.Time.UTC().Format(time.RFC3339Nano), val)
				}
			})
		},
	}
	kc.readFlags(cmd, false)
	return cmd
}
