package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"time"

	"github.com/spf13/cobra"
)

// demoStage is one chapter of "gdp demo". Each part of the system adds its
// own stage from its own file (demo_<part>.go) with an order number, so the
// demo grows with the system without one file knowing all of it.
type demoStage struct {
	order int
	title string
	run   func(ctx context.Context, d *demoEnv) error
}

// demoEnv is what stages share: a scratch directory and a narrator.
type demoEnv struct {
	Dir string
	Out io.Writer
	// Shared carries values one stage leaves for later ones (identities,
	// running daemons). Keys are stage-private strings.
	Shared map[string]any
	// cleanups run in reverse order when the demo ends.
	cleanups []func()
}

// Say narrates one step.
func (d *demoEnv) Say(format string, a ...any) { fmt.Fprintf(d.Out, "  "+format+"\n", a...) }

// Defer registers a cleanup that runs when the demo ends.
func (d *demoEnv) Defer(f func()) { d.cleanups = append(d.cleanups, f) }

// Close runs the registered cleanups, newest first, once.
func (d *demoEnv) Close() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
}

var demoStages []demoStage

func addDemoStage(order int, title string, run func(ctx context.Context, d *demoEnv) error) {
	demoStages = append(demoStages, demoStage{order, title, run})
}

func init() {
	var keep bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a small gdpnet overlay on loopback and narrate what it does",
		Long: `demo builds everything it needs in a temporary directory (keys, a trust
domain, certificates, routers, capsule servers) and runs it on loopback,
explaining each step. It needs no configuration and no network access
beyond 127.0.0.1, and it exits non-zero if any step does not behave as
narrated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			dir, err := os.MkdirTemp("", "gdp-demo-")
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(cmd.OutOrStdout(), "demo directory (kept): %s\n", dir)
			} else {
				defer os.RemoveAll(dir)
			}
			return runDemo(ctx, &demoEnv{Dir: dir, Out: cmd.OutOrStdout(), Shared: map[string]any{}})
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo directory (keys, certificates, stores) for inspection")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up if the demo has not finished by then")
	addCommand(cmd)
}

func runDemo(ctx context.Context, d *demoEnv) error {
	defer d.Close()
	sort.SliceStable(demoStages, func(i, j int) bool { return demoStages[i].order < demoStages[j].order })
	for i, s := range demoStages {
		fmt.Fprintf(d.Out, "\n[%d/%d] %s\n", i+1, len(demoStages), s.title)
		start := time.Now()
		if err := s.run(ctx, d); err != nil {
			return fmt.Errorf("demo stage %q: %w", s.title, err)
		}
		fmt.Fprintf(d.Out, "  ok (%s)\n", time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintln(d.Out, "\ndemo finished: every step behaved as narrated")
	return nil
}
