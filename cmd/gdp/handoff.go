package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/handoffd"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
)

// defaultHandoffCache is where both the agent and the operator's command
// keep base images unless told otherwise.
const defaultHandoffCache = "/var/lib/gdp/handoff/bases"

func init() {
	var cache string
	cmd := &cobra.Command{
		Use:   "handoff",
		Short: "Hand a VM's disk and memory (or an image pair) to another cloudlet's agent; manage base images",
		Long: `handoff sends what changed in one or more images against a base both
cloudlets hold (gdp handoff base add on each) to the handoff agent of another
cloudlet (gdp handoffd), over the overlay by the agent's name. Blocks that are
zero, equal to any base block or already sent are not sent; the rest are
optionally XORed against the base block at the same offset and compressed in
independent blobs whose mode adapts to the measured CPU cost and network
rate. See docs/HANDOFF.md.`,
		Example: `  gdp handoff base add --label "debian-12 disk" base.img
  gdp handoff send --to AGENT_NAME --disk cur.img --disk-base 3f2a9c1e`,
	}
	cmd.PersistentFlags().StringVar(&cache, "cache", defaultHandoffCache, "base image cache directory")
	cmd.AddCommand(handoffBaseCmd(&cache), handoffSendCmd(&cache), handoffVMCmd(&cache))
	addCommand(cmd)
}

func handoffBaseCmd(cache *string) *cobra.Command {
	base := &cobra.Command{Use: "base", Short: "Manage the base image cache (add, ls, rm, verify)",
		Example: "  gdp handoff base add base.img\n  gdp handoff base ls\n  gdp handoff base verify"}
	var label string
	add := &cobra.Command{
		Use: "add FILE", Short: "Copy an image into the cache, indexed by content hash (a 4 KiB block hash index beside it)",
		Example: `  gdp handoff base add --label "debian-12 disk" /srv/images/debian-12.img`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := handoffd.OpenBaseCache(*cache)
			if err != nil {
				return err
			}
			m, err := c.Add(args[0], label)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), m.ID)
			return nil
		},
	}
	add.Flags().StringVar(&label, "label", "", "free text shown by ls")
	ls := &cobra.Command{
		Use: "ls", Short: "List cached bases", Args: cobra.NoArgs, Example: "  gdp handoff base ls --cache /var/lib/gdp/handoff/bases",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := handoffd.OpenBaseCache(*cache)
			if err != nil {
				return err
			}
			ms, err := c.List()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSIZE\tADDED\tLABEL")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.ID, m.Size, m.Added.Format(time.RFC3339), m.Label)
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use: "rm ID...", Short: "Remove cached bases (an ID prefix of 8+ hex digits will do)", Args: cobra.MinimumNArgs(1),
		Example: "  gdp handoff base rm 3f2a9c1e",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := handoffd.OpenBaseCache(*cache)
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.Remove(id); err != nil {
					return err
				}
			}
			return nil
		},
	}
	verify := &cobra.Command{
		Use: "verify [ID...]", Short: "Re-read cached bases and check image, index and ID agree (all when none named)",
		Example: "  gdp handoff base verify\n  gdp handoff base verify 3f2a9c1e",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := handoffd.OpenBaseCache(*cache)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				ms, err := c.List()
				if err != nil {
					return err
				}
				for _, m := range ms {
					args = append(args, m.ID)
				}
			}
			bad := 0
			for _, id := range args {
				if err := c.Verify(id); err != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "BAD %s: %v\n", id, err)
					bad++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "ok  %s\n", id)
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d bases failed verification", bad, len(args))
			}
			return nil
		},
	}
	base.AddCommand(add, ls, rm, verify)
	return base
}

type handoffSendOpts struct {
	to, tcp, id        string
	disk, diskBase     string
	diskFS             string
	memory, memoryBase string
	mode               string
	linkMbit           float64
	report, plot       string
	json               bool
	timeout            time.Duration
	cfgPath            string
	attach             attachConfig
	progress           *progressFlags
}

func handoffSendCmd(cache *string) *cobra.Command {
	o := &handoffSendOpts{}
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Hand an image pair (disk and/or memory against cached bases) to a cloudlet agent",
		Long: `send scans each image against its base (both in the cache), sends what the
destination cannot rebuild and waits until the destination agent has verified
every block and each image's digest and committed the result. It prints a
summary (or the JSON report with --json), and writes the report and a plot of
throughput and mode over time when asked.

The agent is reached over the overlay by its name (--to), attached as the
endpoint of --identity like the capsule commands, or over plain TCP (--tcp)
on a trusted network.`,
		Example: `  gdp handoff send --to AGENT_NAME --disk cur.img --disk-base 3f2a9c1e --report r.json --plot r.svg
  gdp handoff send --tcp 10.0.0.2:8040 --disk cur.img --disk-base 3f2a9c1e --mode zstd-2 --link-mbit 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, *cache) },
	}
	f := cmd.Flags()
	f.StringVar(&o.disk, "disk", "", "current disk image (raw)")
	f.StringVar(&o.diskBase, "disk-base", "", "base of the disk image (cache ID or prefix)")
	f.StringVar(&o.diskFS, "disk-fs", "", `"ext4": the disk image is a cleanly unmounted ext4 file system; its free blocks are not sent (the destination keeps its base's bytes there)`)
	f.StringVar(&o.memory, "memory", "", "current memory image (raw)")
	f.StringVar(&o.memoryBase, "memory-base", "", "base of the memory image (cache ID or prefix)")
	o.transferFlags(cmd)
	return cmd
}

// transferFlags are the flags of every command that sends a handoff: where
// to, how, and what to report.
func (o *handoffSendOpts) transferFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "the destination agent's name")
	f.StringVar(&o.tcp, "tcp", "", "the destination agent's TCP address (instead of --to)")
	f.StringVar(&o.id, "id", "", "the handoff's name, its directory at the destination ([a-z0-9-], at most 32); default random. Retrying a failed handoff under its name is safe: nothing of the failed one is kept")
	f.StringVar(&o.mode, "mode", "", "fixed mode (none, lz4, zstd-1..4, gzip-1..9, xz, each optionally +xor); default adaptive")
	f.Float64Var(&o.linkMbit, "link-mbit", 0, "emulate a bottleneck of this many Mbit/s on the stream (tests, demos)")
	f.StringVar(&o.report, "report", "", "write the JSON report to this file")
	f.StringVar(&o.plot, "plot", "", "write a plot of throughput and mode over time (.png or .svg)")
	f.BoolVar(&o.json, "json", false, "print the JSON report instead of the summary")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	f.StringVarP(&o.cfgPath, "config", "c", "", "connection settings (YAML, as for gdp capsule)")
	o.attach.flags(cmd)
	o.progress = addProgressFlags(cmd)
}

func (o *handoffSendOpts) run(cmd *cobra.Command, cacheDir string) error {
	if (o.to == "") == (o.tcp == "") {
		return fmt.Errorf("give exactly one of --to and --tcp")
	}
	if err := o.checkID(); err != nil {
		return err
	}
	cache, err := handoffd.OpenBaseCache(cacheDir)
	if err != nil {
		return err
	}
	h := &handoffd.Handoff{}
	for _, im := range []struct{ name, path, base, fs string }{{"disk", o.disk, o.diskBase, o.diskFS}, {"memory", o.memory, o.memoryBase, ""}} {
		if im.path == "" && im.base == "" {
			continue
		}
		if im.path == "" || im.base == "" {
			return fmt.Errorf("--%s and --%s-base go together", im.name, im.name)
		}
		id, err := cache.Resolve(im.base)
		if err != nil {
			return err
		}
		h.Images = append(h.Images, handoffd.Image{Name: im.name, Base: id, Path: im.path, FS: im.fs})
	}
	if len(h.Images) == 0 {
		return fmt.Errorf("nothing to send: give --disk/--disk-base and/or --memory/--memory-base")
	}
	ctx, stop := interruptContext(cmd.Context())
	defer stop()
	rep, err := o.transfer(ctx, cmd, cache, h)
	if err != nil {
		return err
	}
	return writeHandoffReport(cmd, rep, o.report, o.plot, o.json)
}

// errInterrupted is the cause of a send's context ended by a signal.
var errInterrupted = errors.New("interrupted")

// interruptContext ends with SIGINT, SIGTERM or SIGHUP, its cause naming
// the signal. The signals stay caught until stop: a second Ctrl-C, or the
// SIGTERM of a service manager's stop, cannot end the process while it
// resumes the source VM a handoff stopped (handoffd.Send does that when
// its context ends before the destination was told to run its copy).
func interruptContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("%w by %v", errInterrupted, sig))
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// checkID refuses a --id the destination would refuse, before anything
// is read, stopped or dialled.
func (o *handoffSendOpts) checkID() error {
	if o.id == "" {
		return nil
	}
	if err := handoffd.CheckName(o.id); err != nil {
		return fmt.Errorf("--id %w", err)
	}
	return nil
}

// transfer connects to the destination (--tcp or --to), sends h with a
// progress bar and returns the report.
func (o *handoffSendOpts) transfer(ctx context.Context, cmd *cobra.Command, cache *handoffd.BaseCache, h *handoffd.Handoff) (*handoffd.Report, error) {
	if (o.to == "") == (o.tcp == "") {
		return nil, fmt.Errorf("give exactly one of --to and --tcp")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var st handoffd.Stream
	if o.tcp != "" {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", o.tcp)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", o.tcp, err)
		}
		st = c
	} else {
		name, err := pdu.ParseName(o.to)
		if err != nil {
			return nil, fmt.Errorf("--to: %w", err)
		}
		a := o.attach
		if o.cfgPath != "" {
			var file attachConfig
			if err := config.Load(o.cfgPath, &file); err != nil {
				return nil, err
			}
			a.merge(file)
		}
		a.withDefaults("client")
		at, err := a.attach(ctx, client.Options{InboxSize: 8192})
		if err != nil {
			return nil, err
		}
		defer at.Close()
		session, err := at.client.Session()
		if err != nil {
			return nil, err
		}
		if _, err := at.client.Advertise(ctx, at.client.Self(), session); err != nil {
			return nil, fmt.Errorf("advertise %s: %w", at.id.Name, err)
		}
		if st, err = handoffd.DialOverlay(ctx, at.client, name, nil); err != nil {
			return nil, err
		}
	}
	defer st.Close()
	if o.linkMbit > 0 {
		st = handoffd.NewLink(o.linkMbit * 1e6).Stream(st)
	}
	bar, err := o.startBar(cmd)
	if err != nil {
		return nil, err
	}
	if h.ID == "" {
		h.ID = o.id
	}
	cfg := handoffd.SendConfig{Cache: cache, Mode: o.mode, Logger: zap.NewNop(), Progress: bar.update}
	rep, err := handoffd.Send(ctx, st, h, cfg)
	bar.finish(err)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, errInterrupted) {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	if err != nil {
		// One line: which handoff, what went wrong, what to do. A handoff
		// that failed left nothing at the destination (its partial
		// directory is removed there, or at the agent's next start), so
		// the same name can be sent again; one that did commit before its
		// answer was lost is refused "already committed here".
		return rep, handoffFailed(h.ID, err)
	}
	return rep, err
}

// handoffFailed is the sender's one line for a failed handoff: which, what
// went wrong, what to do. Sending again under the same id is the fix for
// every failure but one: the destination already committed that id (its
// answer to the first send was lost), where sending again can only be
// refused again.
func handoffFailed(id string, err error) error {
	if errors.Is(err, handoffd.ErrAgentSilent) {
		return fmt.Errorf("handoff %s: %w; nothing of it is kept there: once the agent is back, send again with --id %s", id, err, id)
	}
	if strings.Contains(err.Error(), "already committed here") {
		return fmt.Errorf("handoff %s: %w; the destination holds it already: nothing to send again (a new handoff needs a new --id)", id, err)
	}
	return fmt.Errorf("handoff %s: %w; fix the cause, then send again with --id %s", id, err, id)
}

func writeHandoffReport(cmd *cobra.Command, rep *handoffd.Report, reportPath, plotPath string, asJSON bool) error {
	b, _ := json.MarshalIndent(rep, "", "  ")
	if reportPath != "" {
		if err := os.WriteFile(reportPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if plotPath != "" {
		if err := rep.Plot(plotPath); err != nil {
			return err
		}
	}
	if asJSON {
		_, err := fmt.Fprintln(cmd.OutOrStdout(), string(b))
		return err
	}
	printHandoffSummary(cmd.OutOrStdout(), rep)
	return nil
}

func printHandoffSummary(w interface{ Write([]byte) (int, error) }, rep *handoffd.Report) {
	fmt.Fprintf(w, "handoff %s committed at %s\n", rep.ID, filepath.Base(rep.Dest))
	fmt.Fprintf(w, "  total %.2fs, downtime %.2fs, %d round(s)\n", rep.TotalSec, rep.DowntimeSec, len(rep.Rounds))
	fmt.Fprintf(w, "  changed %.2f MB -> unique %.2f MB -> %.2f MB on the wire (ratio %.3f)\n",
		float64(rep.ChangedBytes)/1e6, float64(rep.UniqueBytes)/1e6, float64(rep.WireBytes)/1e6, rep.Ratio)
	fmt.Fprintf(w, "  blocks: %d zero, %d base, %d duplicate, %d sent\n", rep.Blocks.Zero, rep.Blocks.Base, rep.Blocks.Dup, rep.Blocks.Data)
	if rep.FreeSkippedBytes > 0 {
		fmt.Fprintf(w, "  %.2f MB of blocks the file system leaves free not sent (the destination keeps its base's bytes there)\n", float64(rep.FreeSkippedBytes)/1e6)
	}
	for _, s := range rep.Stages {
		fmt.Fprintf(w, "  stage %-8s in %9.2f MB  out/in %.3f  %.1f MB/s per busy worker\n", s.Name, float64(s.In)/1e6, s.Ratio, s.MBps)
	}
	fmt.Fprintf(w, "  %d mode switch(es)\n", rep.ModeSwitches)
	for _, m := range rep.Modes {
		fmt.Fprintf(w, "  mode at %6.2fs: %-10s %s\n", m.AtSec, m.Mode, m.Reason)
	}
}

// handoffBar is the operator's view while a handoff runs: scan progress of
// the current round, bytes on the wire, ratio and mode.
type handoffBar struct {
	p    *mpb.Progress
	bar  *mpb.Bar
	last atomic.Pointer[handoffd.Progress] // written by the sender, read by mpb's goroutine
}

func (hb *handoffBar) now() handoffd.Progress {
	if p := hb.last.Load(); p != nil {
		return *p
	}
	return handoffd.Progress{}
}

func (o *handoffSendOpts) startBar(cmd *cobra.Command) (*handoffBar, error) {
	on, err := showProgress(o.progress.mode, progressEnv{stderrTTY: isTerminal(cmd.ErrOrStderr()), json: o.json, quiet: o.progress.quiet})
	if err != nil || !on {
		return nil, err
	}
	hb := &handoffBar{p: mpb.New(mpb.WithOutput(cmd.ErrOrStderr()), mpb.WithWidth(40), mpb.WithAutoRefresh())}
	hb.bar = hb.p.AddBar(1,
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			p := hb.now()
			return fmt.Sprintf("round %d%s", p.Round, map[bool]string{true: " (final)", false: ""}[p.Final])
		}, decor.WC{W: 16, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			p := hb.now()
			return fmt.Sprintf("%.1f MB changed, %.2f MB sent, ratio %.3f, %s, %.1f Mbit/s",
				float64(p.Scanned)/1e6, float64(p.Wire)/1e6, p.Ratio, p.Mode, p.Bandwidth*8/1e6)
		})))
	return hb, nil
}

func (hb *handoffBar) update(p handoffd.Progress) {
	if hb == nil {
		return
	}
	hb.last.Store(&p)
	if p.Planned > 0 {
		hb.bar.SetTotal(p.Planned, false)
		hb.bar.SetCurrent(p.ScanDone)
	}
}

func (hb *handoffBar) finish(err error) {
	if hb == nil {
		return
	}
	if err == nil {
		hb.bar.SetTotal(-1, true)
	} else {
		hb.bar.Abort(false)
	}
	hb.p.Wait()
}
