package main

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sample = `package sample

import "errors"

var ErrBad = errors.New("bad")

// Check guards a value: positive, at most 10, and not 7.
func Check(v int) error {
	if v <= 0 ||
		v > 10 {
		return ErrBad
	}
	switch {
	case v == 7:
		return ErrBad
	}
	return nil
}

func valid(v int) bool { return Check(v) == nil }

func Wrap(v int) error {
	if !valid(v) && v != 3 {
		return ErrBad
	}
	return Check(v)
}
`

// TestMutants: the operators find the guards of sample, and a rendered file
// parses, keeps its line count and names each mutant once.
func TestMutants(t *testing.T) {
	ms, err := Mutants("sample/s.go", []byte(sample), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.ID] {
			t.Fatalf("id %s twice", m.ID)
		}
		seen[m.ID] = true
		ids = append(ids, m.ID)
	}
	want := []string{
		"sample/s.go:9:5:skip-if", "sample/s.go:9:5:drop-or-left", "sample/s.go:9:5:boundary",
		"sample/s.go:10:3:drop-or-right", "sample/s.go:10:3:boundary",
		"sample/s.go:14:7:skip-case",
		"sample/s.go:23:5:skip-if", "sample/s.go:23:6:call-true",
		"sample/s.go:26:9:ret-nil",
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no mutant %s; have %s", w, strings.Join(ids, " "))
		}
	}
	if len(ms) != len(want) {
		t.Errorf("%d mutants, want %d: %s", len(ms), len(want), strings.Join(ids, " "))
	}
	for i := range ms {
		ms[i].N = i + 1
	}
	out := Render([]byte(sample), ms)
	if _, err := parser.ParseFile(token.NewFileSet(), "r.go", out, 0); err != nil {
		t.Fatalf("rendered file does not parse: %v\n%s", err, out)
	}
	if strings.Count(out, "\n") != strings.Count(sample, "\n") {
		t.Fatalf("rendered file has %d lines, the source %d", strings.Count(out, "\n"), strings.Count(sample, "\n"))
	}
	for _, m := range ms {
		if !strings.Contains(out, "("+strconv.Itoa(m.N)+")") && !strings.Contains(out, "("+strconv.Itoa(m.N)+",") {
			t.Errorf("mutant %d (%s) not rendered", m.N, m.ID)
		}
	}
	// -funcs and -ops select.
	some, _ := Mutants("sample/s.go", []byte(sample), mustRe(t, "^Wrap$"), map[string]bool{"ret-nil": true})
	if len(some) != 1 || some[0].Op != "ret-nil" {
		t.Fatalf("Wrap's ret-nil only: %+v", some)
	}
}

// TestSweep runs a sweep over sample with a test that misses two checks:
// those mutants survive, the others are killed, and results resume.
func TestSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.22\n")
	write("sample/s.go", sample)
	// Checks 0, 1, 11 and Wrap(3), but never 10 (the > 10 edge) nor 7.
	write("sample/s_test.go", `package sample

import "testing"

func TestCheck(t *testing.T) {
	for v, ok := range map[int]bool{0: false, 1: true, 11: false} {
		if (Check(v) == nil) != ok {
			t.Fatalf("Check(%d)", v)
		}
	}
	if Wrap(3) != nil || Wrap(-1) == nil {
		t.Fatal("Wrap")
	}
}
`)
	res := filepath.Join(t.TempDir(), "res.tsv")
	c := sweepConfig{pkg: "./sample", tree: dir, results: res, timeout: time.Minute, work: t.TempDir()}
	if err := sweep(c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(res)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "\t")
		status[f[0]] = f[4]
	}
	for id, want := range map[string]string{
		"sample/s.go:9:5:skip-if":        "killed",
		"sample/s.go:10:3:drop-or-right": "killed",
		"sample/s.go:10:3:boundary":      "survived", // 10 never checked
		"sample/s.go:14:7:skip-case":     "survived", // 7 never checked
		"sample/s.go:23:5:skip-if":       "survived", // equivalent: Check refuses -1 too
	} {
		if status[id] != want {
			t.Errorf("%s: %q, want %s", id, status[id], want)
		}
	}
	// A second run finds everything recorded and runs nothing.
	if err := sweep(c); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(res)
	if len(b2) != len(b) {
		t.Fatal("a resumed sweep ran recorded mutants again")
	}
}

func mustRe(t *testing.T, s string) *regexp.Regexp {
	t.Helper()
	return regexp.MustCompile(s)
}
