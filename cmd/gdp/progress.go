package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/gdpnet/gdpnet/capsule"
)

// Progress bars for the long `gdp capsule` commands (read over a range,
// append from stdin). A bar only ever goes to stderr, so stdout stays what
// scripts parse; by default it is shown only to a person watching a
// terminal.

// --progress values.
const (
	progressAuto   = "auto"
	progressAlways = "always"
	progressNever  = "never"
)

// progressFlags are a command's --progress and --quiet.
type progressFlags struct {
	mode  string
	quiet bool
}

func addProgressFlags(cmd *cobra.Command) *progressFlags {
	pf := &progressFlags{}
	cmd.Flags().StringVar(&pf.mode, "progress", progressAuto,
		"progress bar on stderr: auto (only when stderr is a terminal, stdout is not one the records scroll on, and neither --json nor --quiet is set), always, never")
	cmd.Flags().BoolVarP(&pf.quiet, "quiet", "q", false, "no progress bar (same as --progress=never)")
	return pf
}

// progressEnv is what the auto mode looks at.
type progressEnv struct {
	stderrTTY bool // stderr is a terminal
	// stdoutTTY: stdout is a terminal that the command writes to while the
	// bar runs (read streams records); the two would overwrite each other.
	stdoutTTY bool
	json      bool
	quiet     bool
}

// showProgress decides whether to draw a bar.
func showProgress(mode string, env progressEnv) (bool, error) {
	switch mode {
	case progressNever:
		return false, nil
	case progressAlways:
		if env.quiet {
			return false, fmt.Errorf("--progress=always contradicts --quiet")
		}
		return true, nil
	case progressAuto, "":
		return env.stderrTTY && !env.stdoutTTY && !env.json && !env.quiet, nil
	default:
		return false, fmt.Errorf("--progress %q: want auto, always or never", mode)
	}
}

// progress is one bar; a nil *progress draws nothing, so callers need no
// branches.
type progress struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

// start draws a bar named label on the command's stderr when pf and the
// terminals say so. streamsStdout says whether the command prints to stdout
// while the bar runs. total <= 0 means unknown (a counter without a
// percentage).
func (pf *progressFlags) start(cmd *cobra.Command, jsonOut, streamsStdout bool, label string, total int64) (*progress, error) {
	stderr := cmd.ErrOrStderr()
	on, err := showProgress(pf.mode, progressEnv{
		stderrTTY: isTerminal(stderr),
		stdoutTTY: streamsStdout && isTerminal(cmd.OutOrStdout()),
		json:      jsonOut,
		quiet:     pf.quiet,
	})
	if err != nil || !on {
		return nil, err
	}
	return newProgress(stderr, label, total), nil
}

func newProgress(w io.Writer, label string, total int64) *progress {
	// AutoRefresh: with --progress=always into a file or pipe, mpb would
	// otherwise draw nothing until the end.
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(72), mpb.WithAutoRefresh())
	name := decor.Name(label, decor.WC{C: decor.DindentRight | decor.DextraSpace})
	var bar *mpb.Bar
	if total > 0 {
		bar = p.AddBar(total,
			mpb.PrependDecorators(name, decor.CountersNoUnit("%d / %d", decor.WCSyncWidth)),
			mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5}), decor.Name(" "), decor.AverageSpeed(nil, "%.0f/s")))
	} else {
		bar = p.AddSpinner(0,
			mpb.PrependDecorators(name, decor.CurrentNoUnit("%d records")),
			mpb.AppendDecorators(decor.AverageSpeed(nil, "%.0f/s")))
	}
	return &progress{p: p, bar: bar}
}

// inc counts one record.
func (pr *progress) inc() {
	if pr != nil {
		pr.bar.Increment()
	}
}

// finish ends the bar: complete at its current count when err is nil,
// aborted (left as drawn) otherwise. It returns once the last frame is
// written, so output printed afterwards never lands inside the bar.
func (pr *progress) finish(err error) {
	if pr == nil {
		return
	}
	if err == nil {
		pr.bar.SetTotal(-1, true)
	} else {
		pr.bar.Abort(false)
	}
	pr.p.Wait()
}

// readTotal is how many records `capsule read --from --to` will print: to
// 0 means up to the head the reader's heartbeat shows (0: unknown).
func readTotal(from, to uint64, hb *capsule.Heartbeat) int64 {
	if to == 0 && hb != nil {
		to = hb.Seqno
	}
	if to == 0 || to < from {
		return 0
	}
	return int64(to - from + 1)
}

// startBytes is start for a bar counting bytes (a file put or got):
// total <= 0 means unknown.
func (pf *progressFlags) startBytes(cmd *cobra.Command, jsonOut, streamsStdout bool, label string, total int64) (*progress, error) {
	stderr := cmd.ErrOrStderr()
	on, err := showProgress(pf.mode, progressEnv{
		stderrTTY: isTerminal(stderr),
		stdoutTTY: streamsStdout && isTerminal(cmd.OutOrStdout()),
		json:      jsonOut,
		quiet:     pf.quiet,
	})
	if err != nil || !on {
		return nil, err
	}
	p := mpb.New(mpb.WithOutput(stderr), mpb.WithWidth(72), mpb.WithAutoRefresh())
	name := decor.Name(label, decor.WC{C: decor.DindentRight | decor.DextraSpace})
	var bar *mpb.Bar
	if total > 0 {
		bar = p.AddBar(total,
			mpb.PrependDecorators(name, decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncWidth)),
			mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5}), decor.Name(" "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")))
	} else {
		bar = p.AddSpinner(0,
			mpb.PrependDecorators(name, decor.Current(decor.SizeB1024(0), "% .1f")),
			mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f")))
	}
	return &progress{p: p, bar: bar}, nil
}

// set moves the bar to n (bytes or records done).
func (pr *progress) set(n int64) {
	if pr != nil {
		pr.bar.SetCurrent(n)
	}
}
