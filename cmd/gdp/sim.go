package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gdpnet/gdpnet/sim"
	"github.com/gdpnet/gdpnet/sim/gdplayer"
)

func init() {
	c := &cobra.Command{
		Use:   "sim",
		Short: "Simulate gdpnet experiments on emulated links (docs/SIMULATOR.md)",
		Long: `sim runs Mininet-style experiments on the real router and client code:
a topology YAML names routers, capsule servers and clients, the links between
them (bandwidth, delay, jitter, loss, MTU) and what to do (pings, streams,
capsule workloads, failures). "gdp sim topo" prints a built-in topology to
start from.`,
		Example: `  gdp sim topo linear --n 5 > linear.yaml
  gdp sim validate linear.yaml
  gdp sim run linear.yaml --out results/`,
	}
	c.AddCommand(simTopoCmd(), simValidateCmd(), simRunCmd(), simDecodeCmd())
	addCommand(c)
}

func simTopoCmd() *cobra.Command {
	var p sim.Params
	var seed int
	c := &cobra.Command{
		Use:   "topo NAME",
		Short: "Print a built-in topology's YAML",
		Long:  "topo prints a built-in topology as YAML, ready to edit and run. Built-ins:\n" + builtinHelp(),
		Example: `  gdp sim topo tree --depth 3 --fanout 2
  gdp sim topo waxman --n 50 --alpha 0.3 --beta 0.5 --seed 7 > waxman.yaml
  gdp sim topo edgecloud --sites 4 --clients 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Seed = uint64(seed)
			var given []string
			cmd.Flags().Visit(func(f *pflag.Flag) { given = append(given, f.Name) })
			if err := sim.CheckBuiltinSettings(args[0], given); err != nil {
				return err
			}
			t, err := sim.Builtin(args[0], p)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(t.Marshal())
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&p.N, "n", 0, "routers (linear, star, ring, waxman)")
	f.IntVar(&p.Depth, "depth", 0, "tree depth")
	f.IntVar(&p.Fanout, "fanout", 0, "tree fanout")
	f.IntVar(&p.Rows, "rows", 0, "grid rows")
	f.IntVar(&p.Cols, "cols", 0, "grid columns")
	f.Float64Var(&p.Alpha, "alpha", 0, "waxman alpha (default 0.4)")
	f.Float64Var(&p.Beta, "beta", 0, "waxman beta (default 0.4)")
	f.IntVar(&p.Sites, "sites", 0, "edgecloud edge sites")
	f.IntVar(&p.Clients, "clients", 0, "edgecloud clients per site")
	f.DurationVar(&p.Delay, "delay", 5*time.Millisecond, "per-link delay (waxman: delay per tenth of the square)")
	f.IntVar(&seed, "seed", 0, "random seed (loss, jitter, waxman placement)")
	return c
}

func builtinHelp() string {
	var b strings.Builder
	for _, n := range sim.BuiltinNames() {
		fmt.Fprintf(&b, "  %-10s %s\n", n, sim.Builtins[n])
	}
	return b.String()
}

func simValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "validate FILE",
		Short:   "Check a topology file; every problem is named with its line and field",
		Example: `  gdp sim validate topo.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := sim.Load(args[0])
			if err != nil {
				return err
			}
			routers := 0
			for _, n := range t.Nodes {
				if n.Kind == sim.KindRouter {
					routers++
				}
			}
			mode := t.Mode
			if mode == "" {
				mode = sim.ModeInProcess
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d nodes (%d routers), %d links, %d workloads, %d failures: ok; needs about %s of memory (%s)\n",
				args[0], len(t.Nodes), routers, len(t.Links), len(t.Workloads), len(t.Failures), sim.FormatBytes(t.MemoryEstimate(mode)), mode)
			if err := t.CheckMemory(mode); err != nil {
				// The file is valid; running it here is not.
				fmt.Fprintf(cmd.OutOrStdout(), "warning: %v\n", err)
			}
			return nil
		},
	}
}

func simRunCmd() *cobra.Command {
	var out, mode, bin string
	var quiet, plots, cli, ignoreMem bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "run FILE",
		Short: "Run an experiment: every node the real code on emulated links (in-process, or --mode netns: router processes in namespaces)",
		Long: `run builds the topology in this process — every router, capsule server and
client on its own address of an emulated underlay whose links have the
configured bandwidth, delay, jitter, loss and MTU — runs its workloads and
failures on schedule, and prints a line per workload and a summary:
"Results: 0% dropped (90/90 received)". With --out the results directory
gets results.json (with the seed, resolver and mode), topology.yaml (the
topology as run: gdp sim run DIR/topology.yaml runs it again),
samples.csv, links.csv, events.csv, summary.txt, the plots and report.html
(one self-contained page: topology drawing, plots, tables).
In-process (the default) no root is needed and nothing leaves the process.
A topology that needs more memory than the machine has available is
refused before anything starts (--ignore-memory). Ctrl-C stops the run:
its results so far are printed and written, marked interrupted, and the
exit status is 1.

--mode netns (or "mode: netns" in the file) runs every router as a real
"gdp router" process in its own network namespace instead, joined through
veth pairs to a hub namespace where this process applies the same link
emulation to every datagram (delay, jitter, loss, bandwidth, MTU — the
kernel's netem is not used). The routers find names through a kad-dht of
their own; servers and clients run here, each on a socket inside its own
namespace. It needs root and one trust domain. Ctrl-C tears everything
down; after a crash of the simulator "gdp sim clean" removes what is left
(namespaces gdpsim-*, processes, the state file in /run/gdpnet-sim).`,
		Example: `  gdp sim run sim/examples/partition.yaml
  gdp sim run sim/examples/convergence.yaml --cli
  gdp sim topo linear --n 6 > l.yaml && gdp sim run l.yaml --out results/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := sim.Load(args[0])
			if err != nil {
				return err
			}
			// Ctrl-C or SIGTERM stops the experiment and tears it down (a
			// second one kills at once: then gdp sim clean).
			sctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-sctx.Done(); stop() }()
			ctx, cancel := context.WithTimeout(sctx, timeout)
			defer cancel()
			opts := sim.Options{Out: out, Plots: plots, Mode: mode, Binary: bin, IgnoreMemory: ignoreMem}
			if !quiet {
				opts.Progress = cmd.ErrOrStderr()
			}
			if cli {
				s, err := sim.Start(sctx, t, opts)
				if err != nil {
					return err
				}
				defer s.Close()
				fmt.Fprintln(cmd.OutOrStdout(), "type help for the commands; run starts the file's workloads and failures")
				return s.CLI(sctx, cmd.InOrStdin(), cmd.OutOrStdout())
			}
			res, err := sim.Run(ctx, t, opts)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), res.Text())
			if out != "" && !quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "results in %s\n", out)
			}
			if res.Interrupted != "" {
				// The partial results are written and printed; the exit
				// status says they are not a whole run's.
				kept := ""
				if out != "" {
					kept = " (partial results kept in " + out + ")"
				}
				return fmt.Errorf("run %s%s", res.Interrupted, kept)
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "results directory (JSON, CSV, plots, pcaps)")
	c.Flags().BoolVar(&plots, "plots", true, "with --out: latency CDF, throughput and outage plots (PNG, SVG)")
	c.Flags().BoolVar(&cli, "cli", false, "build the topology and take commands (nodes, ping, trace, cut, restore, kill, restart, routes, run)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the results")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	c.Flags().StringVar(&mode, "mode", "", `inprocess (default) or netns: real "gdp router" processes in network namespaces (root)`)
	c.Flags().StringVar(&bin, "gdp", "", "netns mode: the gdp binary the routers run (default: this one)")
	c.Flags().BoolVar(&ignoreMem, "ignore-memory", false, "start a topology that needs more memory than the machine has available (by default it is refused before anything starts)")
	return c
}

func simDecodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "decode FILE.pcap",
		Short: "Print the gdpnet PDUs of a simulator capture, one line each",
		Long: `decode reads a pcap written by "gdp sim run" (measure.pcap) and prints each
PDU with the gopacket layer of package sim/gdplayer: time, addresses, type,
TTL, sequence, source and destination names, payload length.`,
		Example: `  gdp sim decode results/c1-r1.pdu.pcap`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			n := 0
			var first time.Time
			err = gdplayer.Scan(f, func(p gdplayer.Packet) error {
				if n == 0 {
					first = p.Time
				}
				n++
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%10.6f %s > %s %s\n", p.Time.Sub(first).Seconds(), p.Src.Addr(), p.Dst.Addr(), p.GDP)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d PDUs\n", n)
			return nil
		},
	}
}
