package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

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

// name is the stage's short name: the title up to its colon ("Tunnels").
func (s demoStage) name() string {
	if i := strings.IndexByte(s.title, ':'); i > 0 {
		return s.title[:i]
	}
	return s.title
}

// key is the stage's name for --only: its first word, lower case
// ("tunnels", "vm").
func (s demoStage) key() string {
	return strings.ToLower(strings.Fields(s.name())[0])
}

// demoFigure is one measured figure of a stage, as the summary shows it.
type demoFigure struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// demoResult is one row of the summary: what a stage showed, the figures
// it measured, and whether it behaved as narrated.
type demoResult struct {
	Stage   string       `json:"stage"`
	Key     string       `json:"key"`
	Showed  string       `json:"showed"`
	Figures []demoFigure `json:"figures"`
	Result  string       `json:"result"` // ok, FAILED, not run
	Seconds float64      `json:"seconds"`
	Error   string       `json:"error,omitempty"`
}

// demoEnv is what stages share: a scratch directory and a narrator.
type demoEnv struct {
	Dir string
	Out io.Writer
	// Shared carries values one stage leaves for later ones (identities,
	// running daemons). Keys are stage-private strings.
	Shared map[string]any
	// Keep is set by --keep: stages that leave part of the overlay running
	// for the operator to explore serve their admin APIs and register what
	// to explore with Explore.
	Keep bool
	// cleanups run in reverse order when the demo ends.
	cleanups []func()
	// cur is the summary row of the running stage.
	cur *demoResult
	// explore holds the copy-pasteable commands the stages registered for
	// --keep, in order.
	explore []demoCommand
}

// demoCommand is one thing an operator can try on a kept overlay.
type demoCommand struct {
	What string // what it shows
	Cmd  string // a shell command line, or a URL
}

// Say narrates one step.
func (d *demoEnv) Say(format string, a ...any) { fmt.Fprintf(d.Out, "  "+format+"\n", a...) }

// Showed sets what the running stage showed, in a few words, for the
// summary table.
func (d *demoEnv) Showed(what string) {
	if d.cur != nil {
		d.cur.Showed = what
	}
}

// Figure records a figure the running stage measured, for the summary
// table. The value must be the measured one, formatted as the narration
// shows it (the demo test checks the two agree).
func (d *demoEnv) Figure(name, format string, a ...any) {
	if d.cur != nil {
		d.cur.Figures = append(d.cur.Figures, demoFigure{Name: name, Value: fmt.Sprintf(format, a...)})
	}
}

// Explore registers a command for the operator of a kept overlay (--keep).
func (d *demoEnv) Explore(what, cmd string) {
	d.explore = append(d.explore, demoCommand{What: what, Cmd: cmd})
}

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

// errDemoInterrupted is what the demo returns when Ctrl-C (SIGINT) or
// SIGTERM stopped it.
var errDemoInterrupted = errors.New("demo interrupted")

// demoForceAfter is how long the demo waits, after Ctrl-C, for the running
// stage to notice and for the cleanups to finish, before it removes its
// directory and exits regardless (everything it runs is in this process,
// so exiting stops all of it).
const demoForceAfter = 5 * time.Second

func init() {
	var keep, asJSON bool
	var only []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo [--keep] [--json] [--only STAGE,...]",
		Short: "Run a small gdpnet overlay on loopback and narrate what it does",
		Long: `demo builds everything it needs in a temporary directory (keys, a trust
domain, certificates, routers, capsule servers) and runs it on loopback,
explaining each step, and ends with a summary table: one row per stage,
what it showed, the figures it measured and whether it behaved as
narrated. It needs no configuration and no network access beyond
127.0.0.1, and it exits non-zero if any step does not behave as narrated.

Everything runs inside this one process. When it ends, or on Ctrl-C, it
stops every router and server it started and removes its directory.

With --keep the overlay of the routers and capsules stages (three routers
with their admin APIs and dashboards, three capsule servers holding a
capsule of 3000 records) stays up after the summary, in the foreground,
and the demo prints the gdp commands to explore it; Ctrl-C stops it and
removes everything.`,
		Example: `  gdp demo
  gdp demo --keep                      # then try the commands it prints; Ctrl-C stops it
  gdp demo --json > summary.json       # narration on stderr, the summary as JSON on stdout
  gdp demo --only identities,routers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stages, err := selectDemoStages(only)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				out = cmd.ErrOrStderr()
			}
			dir, err := os.MkdirTemp("", "gdp-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)

			// Ctrl-C: cancel the stages; the deferred cleanups stop the
			// overlay and remove dir. If that has not happened within
			// demoForceAfter, or on a second Ctrl-C, remove dir and exit.
			sigs := make(chan os.Signal, 2)
			// SIGHUP (the terminal went away) stops it as Ctrl-C does.
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			// SIGPIPE: caught, so that a write to a closed stdout (gdp demo
			// | head ended) returns EPIPE instead of killing the demo
			// before its cleanups; demoOut turns that error into a stop. A
			// closed socket inside a stage raises it too, harmlessly.
			pipes := make(chan os.Signal, 16)
			signal.Notify(pipes, syscall.SIGPIPE)
			defer signal.Stop(pipes)
			go func() {
				for range pipes {
				}
			}()
			defer signal.Stop(sigs)
			sigCtx, interrupt := context.WithCancel(cmd.Context())
			defer interrupt()
			finished := make(chan struct{})
			defer close(finished)
			go func() {
				select {
				case <-sigs:
					interrupt()
				case <-finished:
					return
				}
				select {
				case <-sigs:
				case <-time.After(demoForceAfter):
				case <-finished:
					return
				}
				_ = os.RemoveAll(dir)
				fmt.Fprintf(cmd.ErrOrStderr(), "gdp: %v; cleanup did not finish within %s, exiting (removed %s)\n", errDemoInterrupted, demoForceAfter, dir)
				os.Exit(130)
			}()

			out = &demoOut{w: out, broken: func() {
				select {
				case sigs <- syscall.SIGPIPE:
				default:
				}
			}}
			d := &demoEnv{Dir: dir, Out: out, Shared: map[string]any{}, Keep: keep}
			results, err := runDemo(sigCtx, timeout, d, stages, func() error {
				printDemoExplore(out, d, os.Getpid())
				<-sigCtx.Done()
				fmt.Fprintln(out, "\nstopping the kept overlay…")
				return nil
			})
			if sigCtx.Err() != nil && cmd.Context().Err() == nil && !(keep && err == nil) {
				return fmt.Errorf("%w during stage %q: stopped its routers and servers and removed %s", errDemoInterrupted, demoRunning(results), dir)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(results); jerr != nil && err == nil {
					err = jerr
				}
			}
			if err == nil && keep {
				fmt.Fprintf(out, "overlay stopped; removed %s\n", dir)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the overlay running after the summary, in the foreground, and print the commands to explore it (Ctrl-C stops it and removes its directory)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON on stdout (the narration and the table go to stderr)")
	cmd.Flags().StringSliceVar(&only, "only", nil, "run only these stages (their first word: identities, tunnels, routers, …); later stages need the earlier ones they build on")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up if the stages have not finished by then (--keep waits beyond it)")
	addCommand(cmd)
}

// selectDemoStages returns the registered stages in order, only those
// named in only when it is not empty.
func selectDemoStages(only []string) ([]demoStage, error) {
	all := append([]demoStage(nil), demoStages...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].order < all[j].order })
	if len(only) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	for _, k := range only {
		want[strings.ToLower(strings.TrimSpace(k))] = true
	}
	var keys []string
	var out []demoStage
	for _, s := range all {
		keys = append(keys, s.key())
		if want[s.key()] {
			out = append(out, s)
			delete(want, s.key())
		}
	}
	for k := range want {
		return nil, fmt.Errorf("--only: no stage %q (stages: %s)", k, strings.Join(keys, ", "))
	}
	return out, nil
}

// runDemo runs stages in order within timeout, then prints the summary
// table. When d.Keep is set and every stage passed, it calls hold (which
// returns when the operator stops the kept overlay) before the cleanups.
// It returns one result per stage, stages not reached as "not run".
func runDemo(ctx context.Context, timeout time.Duration, d *demoEnv, stages []demoStage, hold func() error) ([]demoResult, error) {
	defer d.Close()
	// The stages' context ends with ctx (Ctrl-C) or when the stages have
	// not finished within timeout — not when they have and --keep holds
	// the overlay: servers started under it must outlive the timeout.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(timeout, func() {
		cancel(fmt.Errorf("the stages did not finish within --timeout %s: %w", timeout, context.DeadlineExceeded))
	})
	defer timer.Stop()
	results := make([]demoResult, len(stages))
	for i, s := range stages {
		results[i] = demoResult{Stage: s.name(), Key: s.key(), Result: "not run", Figures: []demoFigure{}}
	}
	var failed error
	fmt.Fprintf(d.Out, "gdp demo: %d stages of a gdpnet overlay, all on 127.0.0.1 inside this process (files in %s, removed at the end).\n", len(stages), d.Dir)
	fmt.Fprintln(d.Out, "Each stage says what it does and checks that it happened; \"ok\" means it behaved as narrated. Names such as")
	fmt.Fprintln(d.Out, "Fc1EyVXE… are 256-bit gdpnet names (base64url): a hash of a key's signed metadata, the address PDUs are routed by.")
	for i, s := range stages {
		if ctx.Err() != nil {
			return results, ctx.Err() // interrupted between stages
		}
		r := &results[i]
		fmt.Fprintf(d.Out, "\n[%d/%d] %s\n", i+1, len(stages), s.title)
		d.cur, r.Result = r, "running"
		start := time.Now()
		err := s.run(sctx, d)
		d.cur = nil
		r.Seconds = time.Since(start).Seconds()
		if err == nil && ctx.Err() != nil {
			// The stage finished although it was interrupted: say so
			// rather than start the next one.
			return results, ctx.Err()
		}
		if err != nil {
			r.Result, r.Error = "FAILED", err.Error()
			if ctx.Err() != nil {
				// Interrupted: the caller says so in one line.
				return results, err
			}
			failed = fmt.Errorf("demo stage %q: %w", s.name(), err)
			fmt.Fprintf(d.Out, "  FAILED (%s): %v\n", time.Since(start).Round(time.Millisecond), err)
			break
		}
		r.Result = "ok"
		fmt.Fprintf(d.Out, "  ok (%s)\n", time.Since(start).Round(time.Millisecond))
	}
	timer.Stop()
	printDemoSummary(d.Out, results)
	if failed != nil {
		return results, failed
	}
	fmt.Fprintln(d.Out, "\ndemo finished: every step behaved as narrated")
	if !d.Keep {
		fmt.Fprintln(d.Out, "next: gdp demo --keep (make demo DEMO_FLAGS=--keep) leaves this overlay running and prints the gdp commands")
		fmt.Fprintln(d.Out, "to explore it; docs/OPERATIONS.md runs the daemons for real (§1 certificates, §3 a router, §6.5.1 the .deb).")
	}
	if d.Keep && hold != nil {
		if err := hold(); err != nil {
			return results, err
		}
	}
	return results, nil
}

// demoRunning names the stage that was running (or the last one started).
func demoRunning(results []demoResult) string {
	name := ""
	for _, r := range results {
		if r.Result != "not run" {
			name = r.Stage
		}
	}
	if name == "" {
		return "setup"
	}
	return name
}

// printDemoSummary prints the summary table: per stage a row with its
// result and what it showed, then a row per figure it measured, figure
// names and values in aligned columns.
func printDemoSummary(w io.Writer, results []demoResult) {
	width := func(s string) int { return utf8.RuneCountInString(s) }
	pad := func(s string, n int) string { return s + strings.Repeat(" ", max(0, n-width(s))) }
	res := make([]string, len(results))
	stageW, resW, figW := width("STAGE"), width("RESULT"), width("SHOWED / FIGURE")-2
	for i, r := range results {
		res[i] = r.Result
		if r.Result == "ok" || r.Result == "FAILED" {
			res[i] = fmt.Sprintf("%s %.1fs", r.Result, r.Seconds)
		}
		stageW, resW = max(stageW, width(r.Stage)), max(resW, width(res[i]))
		for _, f := range r.Figures {
			figW = max(figW, width(f.Name))
		}
	}
	fmt.Fprintln(w, "\nsummary: what each stage showed and the figures it measured")
	fmt.Fprintf(w, "  %s  %s  %s  VALUE\n", pad("STAGE", stageW), pad("RESULT", resW), pad("SHOWED / FIGURE", figW+2))
	for i, r := range results {
		fmt.Fprintf(w, "  %s  %s  %s\n", pad(r.Stage, stageW), pad(res[i], resW), r.Showed)
		for _, f := range r.Figures {
			fmt.Fprintf(w, "  %s  %s    %s  %s\n", pad("", stageW), pad("", resW), pad(f.Name, figW), f.Value)
		}
	}
}

// printDemoExplore tells the operator of a kept overlay what runs, the
// commands to explore it and how to stop it.
func printDemoExplore(w io.Writer, d *demoEnv, pid int) {
	fmt.Fprintf(w, "\nthe overlay is kept running (process %d); its files are in %s\n", pid, d.Dir)
	if len(d.explore) == 0 {
		fmt.Fprintln(w, "  (no stage that leaves an overlay ran: try without --only)")
	}
	fmt.Fprintln(w, "explore it from another terminal (copy and paste):")
	for _, c := range d.explore {
		fmt.Fprintf(w, "  # %s\n  %s\n", c.What, c.Cmd)
	}
	fmt.Fprintf(w, "stop it: press Ctrl-C here, or from another terminal:\n  kill -INT %d\n", pid)
}

// demoOut is the narration's writer: when the reader of the demo's output
// has gone (gdp demo | head ended), it stops the demo as Ctrl-C does, once,
// and swallows further writes.
type demoOut struct {
	w      io.Writer
	broken func()
	once   sync.Once
	dead   atomic.Bool
}

func (o *demoOut) Write(p []byte) (int, error) {
	if o.dead.Load() {
		return len(p), nil
	}
	n, err := o.w.Write(p)
	if err != nil && errors.Is(err, syscall.EPIPE) {
		o.dead.Store(true)
		o.once.Do(o.broken)
		return len(p), nil
	}
	return n, err
}
