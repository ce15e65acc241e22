package main

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"

	"github.com/gdpnet/gdpnet/capsule"
)

func TestShowProgress(t *testing.T) {
	tty := progressEnv{stderrTTY: true}
	tests := []struct {
		name    string
		mode    string
		env     progressEnv
		want    bool
		wantErr string
	}{
		{"auto on a terminal", "auto", tty, true, ""},
		{"auto, default flag value", "", tty, true, ""},
		{"auto, stderr redirected", "auto", progressEnv{}, false, ""},
		{"auto with --json", "auto", progressEnv{stderrTTY: true, json: true}, false, ""},
		{"auto with --quiet", "auto", progressEnv{stderrTTY: true, quiet: true}, false, ""},
		{"auto, records scroll on the same terminal", "auto", progressEnv{stderrTTY: true, stdoutTTY: true}, false, ""},
		{"always, stderr redirected", "always", progressEnv{}, true, ""},
		{"always with --json", "always", progressEnv{json: true}, true, ""},
		{"always with --quiet", "always", progressEnv{quiet: true}, false, "contradicts --quiet"},
		{"never on a terminal", "never", tty, false, ""},
		{"unknown mode", "sometimes", tty, false, `want auto, always or never`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := showProgress(tt.mode, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("showProgress(%q, %+v) = %v, %v; want error containing %q", tt.mode, tt.env, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("showProgress(%q, %+v) = %v, %v; want %v", tt.mode, tt.env, got, err, tt.want)
			}
		})
	}
}

func TestReadTotal(t *testing.T) {
	hb := &capsule.Heartbeat{Seqno: 40}
	tests := []struct {
		from, to uint64
		hb       *capsule.Heartbeat
		want     int64
	}{
		{1, 10, nil, 10},
		{5, 0, hb, 36},
		{1, 0, nil, 0},
		{50, 0, hb, 0},
		{7, 7, hb, 1},
	}
	for _, tt := range tests {
		if got := readTotal(tt.from, tt.to, tt.hb); got != tt.want {
			t.Errorf("readTotal(%d, %d, %v) = %d, want %d", tt.from, tt.to, tt.hb, got, tt.want)
		}
	}
}

// TestProgressStaysOnStderr: with --progress=always the bar is drawn on
// stderr and stdout holds exactly the command's own output; auto draws
// nothing when stderr is not a terminal (a buffer here, a pipe in scripts).
func TestProgressStaysOnStderr(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	run := func(mode string, total int64, n int) (stdout, stderr string) {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := &cobra.Command{Use: "x"}
		pf := addProgressFlags(cmd)
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		if err := cmd.Flags().Set("progress", mode); err != nil {
			t.Fatal(err)
		}
		bar, err := pf.start(cmd, false, true, "read", total)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= n; i++ {
			cmd.Printf("%d\trecord\n", i)
			bar.inc()
		}
		bar.finish(nil)
		return out.String(), errb.String()
	}
	wantOut := "1\trecord\n2\trecord\n3\trecord\n4\trecord\n5\trecord\n"

	out, errs := run(progressAlways, 5, 5)
	if out != wantOut {
		t.Errorf("always: stdout = %q, want only the records %q", out, wantOut)
	}
	if !strings.Contains(errs, "read") || !strings.Contains(errs, "5 / 5") || !strings.Contains(errs, "100 %") {
		t.Errorf("always: stderr has no finished bar: %q", errs)
	}

	out, errs = run(progressAlways, 0, 3) // unknown total: a counter
	if !strings.Contains(errs, "3 records") || strings.Contains(out, "records") {
		t.Errorf("always, unknown total: stdout %q, stderr %q", out, errs)
	}

	for _, mode := range []string{progressAuto, progressNever} {
		out, errs = run(mode, 5, 5)
		if out != wantOut || errs != "" {
			t.Errorf("%s without a terminal: stdout %q, stderr %q; want the records and an empty stderr", mode, out, errs)
		}
	}
}

// TestIsTerminal: buffers, files and /dev/null are not terminals.
func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if runtime.GOOS != "linux" {
		return // elsewhere a character device counts as a terminal
	}
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		defer null.Close()
		if isTerminal(null) {
			t.Error("/dev/null is a terminal")
		}
	}
}
