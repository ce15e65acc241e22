package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// replicaJSON is one replica's state as info and verify print it.
type replicaJSON struct {
	Server   string `json:"server"`
	Head     uint64 `json:"head"`
	Root     string `json:"root,omitempty"`
	Time     string `json:"heartbeat_time,omitempty"`
	Epoch    uint64 `json:"epoch,omitempty"`
	Verified uint64 `json:"verified,omitempty"`
	Forked   bool   `json:"forked,omitempty"`
	// ForkAt is the first seqno the writer forked at (evidence); the
	// entries before it stay readable.
	ForkAt uint64 `json:"fork_at,omitempty"`
	// AdCertExpires is when this server's AdCert expires.
	AdCertExpires string `json:"adcert_not_after,omitempty"`
	Error         string `json:"error,omitempty"`
}

type capsuleJSON struct {
	Capsule     string        `json:"capsule"`
	Description string        `json:"description"`
	Writer      string        `json:"writer_key"`
	W           int           `json:"w"`
	Replicas    []replicaJSON `json:"replicas"`
	OK          bool          `json:"ok"`
}

func replicaState(server pdu.Name, in *client.CapsuleInfo, err error) replicaJSON {
	r := replicaJSON{Server: server.String()}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Head = in.Head.Seqno
	if hb := in.Heartbeat; hb != nil {
		r.Root, r.Time, r.Epoch = hb.Root.String(), time.Unix(0, hb.Time).UTC().Format(time.RFC3339Nano), hb.Epoch
	}
	r.Forked = in.Evidence != nil
	if in.Evidence != nil {
		r.ForkAt = in.Evidence.Size
	}
	if in.AdCert != nil {
		r.AdCertExpires = in.AdCert.NotAfter.UTC().Format(time.RFC3339)
	}
	return r
}

// survey asks the nearest replica for the placement, then every replica
// for its head.
func survey(cmd *cobra.Command, ctx context.Context, caps *client.CapsuleClient, name pdu.Name) (*client.CapsuleInfo, capsuleJSON, error) {
	in, err := caps.Info(ctx, name, name)
	if err != nil {
		return nil, capsuleJSON{}, err
	}
	out := capsuleJSON{Capsule: name.String(), Description: in.Meta.Description, W: in.W,
		Writer: fmt.Sprintf("%x", []byte(in.Meta.WriterKey)), OK: true}
	replicas := in.Replicas
	if len(replicas) == 0 {
		replicas = []pdu.Name{in.Server}
	}
	for _, s := range replicas {
		ri, err := caps.Info(ctx, name, s)
		if err == nil {
			warnExpiry(cmd, ri)
		}
		st := replicaState(s, ri, err)
		if st.Error != "" || st.Forked {
			out.OK = false
		}
		out.Replicas = append(out.Replicas, st)
	}
	return in, out, nil
}

func (cc *capsuleCmd) infoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info CAPSULE",
		Short: "Show a capsule's metadata, placement and each replica's head",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := pdu.ParseName(args[0])
			if err != nil {
				return err
			}
			ctx, caps, _, done, err := cc.session(cmd, false)
			if err != nil {
				return err
			}
			defer done()
			_, out, err := survey(cmd, ctx, caps, name)
			if err != nil {
				return err
			}
			return cc.print(cmd.OutOrStdout(), out, func() {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "capsule     %s\ndescription %s\nwriter key  %s\nreplicas    %d (w=%d)\n", out.Capsule, out.Description, out.Writer, len(out.Replicas), out.W)
				for _, r := range out.Replicas {
					switch {
					case r.Error != "":
						fmt.Fprintf(w, "  %s  unreachable: %s\n", r.Server, r.Error)
					default:
						fmt.Fprintf(w, "  %s  head %d  heartbeat %s  adcert until %s  forked=%t\n", r.Server, r.Head, r.Time, r.AdCertExpires, r.Forked)
					}
				}
			})
		},
	}
}

func (cc *capsuleCmd) verifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify CAPSULE",
		Short: "Read every record from every replica, verify it, and check the replicas agree",
		Long: `verify reads the whole capsule from each replica in turn with one reader, so
every replica's heartbeats must be consistent with those seen before
(a forked writer or a replica serving another log fails with
"writer equivocation"). It exits non-zero when any replica fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := pdu.ParseName(args[0])
			if err != nil {
				return err
			}
			ctx, caps, _, done, err := cc.session(cmd, false)
			if err != nil {
				return err
			}
			defer done()
			_, out, err := survey(cmd, ctx, caps, name)
			if err != nil {
				return err
			}
			rd, err := caps.NewReader(ctx, name, client.ReaderOptions{})
			if err != nil {
				return err
			}
			for i := range out.Replicas {
				r := &out.Replicas[i]
				if r.Error != "" {
					continue
				}
				s, _ := pdu.ParseName(r.Server)
				rd.SetServer(s)
				var n uint64
				err := rd.Scan(ctx, 1, r.Head, func(capsule.Record) error { n++; return nil })
				r.Verified = n
				if err != nil {
					r.Error, out.OK = err.Error(), false
					r.Forked = r.Forked || errors.Is(err, capsule.ErrEquivocation)
				} else if n != r.Head {
					r.Error, out.OK = fmt.Sprintf("verified %d of %d entries", n, r.Head), false
				}
			}
			if err := cc.print(cmd.OutOrStdout(), out, func() {
				w := cmd.OutOrStdout()
				for _, r := range out.Replicas {
					if r.Error != "" {
						fmt.Fprintf(w, "FAIL %s: %s\n", r.Server, r.Error)
						continue
					}
					fmt.Fprintf(w, "ok   %s: %d entries verified (root %.16s…)\n", r.Server, r.Verified, r.Root)
				}
			}); err != nil {
				return err
			}
			if !out.OK {
				return errors.New("verification failed")
			}
			return nil
		},
	}
}
