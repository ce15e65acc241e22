// Command mutsweep checks that a package's tests catch a silently skipped
// check: it makes one small change at a time to the package's source (an error
// guard that never fires, one of two checks dropped, an off-by-one at a
// limit, a signature or hash comparison replaced by true, an error return
// replaced by nil), runs the package's tests against it and records the
// mutants the tests did not notice.
//
// The source is never edited: the mutants are compiled in with go test
// -overlay (all of a package's at once, each live only when GDPNET_MUTANT is
// its number), so the tree, a copy or the work tree, stays as it was, and a
// sweep builds one test binary and runs it once per mutant.
//
//	go run ./internal/mutsweep -pkg ./certs -files verify.go,chain.go -list
//	go run ./internal/mutsweep -pkg ./certs -files verify.go -results /tmp/m/certs.tsv
//	go run ./internal/mutsweep -pkg ./certs -only certs/verify.go:120:5:skip-if
//
// Results are appended as tab-separated lines (id, function, original,
// change, status, seconds, the first failing test); a run skips the ids
// already recorded, so a stopped sweep resumes. Status is killed, survived or
// timeout (the tests ran past -timeout: counted as caught).
// docs/SECURITY.md, "Mutation sweep", says what was swept.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		pkg     = flag.String("pkg", "", "package directory, relative to -tree (e.g. ./certs)")
		tree    = flag.String("tree", ".", "module root the tests run in")
		files   = flag.String("files", "", "comma-separated files of the package to mutate (default: every non-test .go file)")
		funcs   = flag.String("funcs", "", "regexp: mutate only functions whose name (Type.Method or Func) matches")
		ops     = flag.String("ops", "", "comma-separated operators (default all: "+strings.Join(allOps, ",")+")")
		list    = flag.Bool("list", false, "list the mutants and stop")
		only    = flag.String("only", "", "comma-separated mutant ids to run (even if already recorded)")
		results = flag.String("results", "", "file the results are appended to (default: stdout only)")
		timeout = flag.Duration("timeout", 120*time.Second, "go test -timeout for one mutant")
		run     = flag.String("run", "", "go test -run for each mutant (default: all the package's tests)")
		workdir = flag.String("work", os.TempDir(), "directory for the mutated files and overlays")
	)
	flag.Parse()
	if *pkg == "" {
		fmt.Fprintln(os.Stderr, "mutsweep: -pkg is required")
		os.Exit(2)
	}
	if err := sweep(sweepConfig{
		pkg: *pkg, tree: *tree, files: split(*files), funcs: *funcs, ops: split(*ops),
		list: *list, only: split(*only), results: *results, timeout: *timeout, run: *run, work: *workdir,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "mutsweep:", err)
		os.Exit(1)
	}
}

type sweepConfig struct {
	pkg, tree, funcs, results, run, work string
	files, ops, only                     []string
	list                                 bool
	timeout                              time.Duration
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func sweep(c sweepConfig) error {
	tree, err := filepath.Abs(c.tree)
	if err != nil {
		return err
	}
	dir := filepath.Join(tree, c.pkg)
	files := c.files
	if files == nil {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
				files = append(files, n)
			}
		}
	}
	var fre *regexp.Regexp
	if c.funcs != "" {
		if fre, err = regexp.Compile(c.funcs); err != nil {
			return fmt.Errorf("-funcs: %w", err)
		}
	}
	var opset map[string]bool
	if c.ops != nil {
		opset = map[string]bool{}
		for _, o := range c.ops {
			opset[o] = true
		}
	}
	rel := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(c.pkg)), "./")
	var all []Mutant
	srcs := map[string][]byte{}
	pkgName := ""
	for _, f := range files {
		path := filepath.Join(dir, f)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if pkgName == "" {
			pf, err := parser.ParseFile(token.NewFileSet(), path, src, parser.PackageClauseOnly)
			if err != nil {
				return err
			}
			pkgName = pf.Name.Name
		}
		ms, err := Mutants(rel+"/"+f, src, fre, opset)
		if err != nil {
			return err
		}
		srcs[path] = src
		for i := range ms {
			ms[i].File = path
		}
		all = append(all, ms...)
	}
	if c.only != nil {
		want := map[string]bool{}
		for _, id := range c.only {
			want[id] = true
		}
		var sel []Mutant
		for _, m := range all {
			if want[m.ID] {
				sel = append(sel, m)
				delete(want, m.ID)
			}
		}
		if len(want) > 0 {
			var missing []string
			for id := range want {
				missing = append(missing, id)
			}
			sort.Strings(missing)
			return fmt.Errorf("no such mutant: %s (list them with -list)", strings.Join(missing, ", "))
		}
		all = sel
	}
	if c.list {
		for _, m := range all {
			fmt.Printf("%s\t%s\t%s\t%s\n", m.ID, m.Func, oneLine(m.Orig), oneLine(m.Change))
		}
		fmt.Printf("%d mutants\n", len(all))
		return nil
	}
	var out *os.File
	if c.results != "" {
		done := map[string]bool{}
		if c.only == nil {
			if b, err := os.ReadFile(c.results); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if id, _, ok := strings.Cut(line, "\t"); ok {
						done[id] = true
					}
				}
			}
		}
		todo := all[:0]
		for _, m := range all {
			if !done[m.ID] {
				todo = append(todo, m)
			}
		}
		all = todo
		if out, err = os.OpenFile(c.results, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return err
		}
		defer out.Close()
	}
	if len(all) == 0 {
		fmt.Println("no mutants to run")
		return nil
	}
	for i := range all {
		all[i].N = i + 1
	}
	bin, err := build(c, tree, dir, pkgName, srcs, all)
	if err != nil {
		return err
	}
	// The package must pass unmutated, or every mutant would count as caught.
	st, secs, fail := runTests(c, dir, bin, 0)
	if st != "survived" {
		return fmt.Errorf("%s does not pass unmutated (%s after %.0f s: %s)", c.pkg, st, secs, fail)
	}
	fmt.Printf("baseline %s passes in %.0f s; %d mutants\n", c.pkg, secs, len(all))
	counts := map[string]int{}
	for i, m := range all {
		st, secs, fail := runTests(c, dir, bin, m.N)
		counts[st]++
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%.0f\t%s", m.ID, m.Func, oneLine(m.Orig), oneLine(m.Change), st, secs, fail)
		fmt.Printf("[%d/%d] %s\n", i+1, len(all), line)
		if out != nil {
			fmt.Fprintln(out, line)
		}
	}
	fmt.Printf("killed %d, survived %d, timeout %d\n", counts["killed"], counts["survived"], counts["timeout"])
	return nil
}

// build compiles the package's test binary with every mutant in it.
func build(c sweepConfig, tree, dir, pkgName string, srcs map[string][]byte, all []Mutant) (string, error) {
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return "", err
	}
	byFile := map[string][]Mutant{}
	for _, m := range all {
		byFile[m.File] = append(byFile[m.File], m)
	}
	replace := map[string]string{}
	for path, ms := range byFile {
		mf := filepath.Join(c.work, filepath.Base(path))
		if err := os.WriteFile(mf, []byte(Render(srcs[path], ms)), 0o644); err != nil {
			return "", err
		}
		replace[path] = mf
	}
	hf := filepath.Join(c.work, "zz_mutsweep.go")
	if err := os.WriteFile(hf, []byte(Helper(pkgName)), 0o644); err != nil {
		return "", err
	}
	replace[filepath.Join(dir, "zz_mutsweep.go")] = hf
	ov := filepath.Join(c.work, "overlay.json")
	b, _ := json.Marshal(map[string]map[string]string{"Replace": replace})
	if err := os.WriteFile(ov, b, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(c.work, "pkg.test")
	cmd := exec.Command("go", "test", "-c", "-vet=off", "-overlay", ov, "-o", bin, c.pkg)
	cmd.Dir = tree
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("the mutants do not compile (the rendered files are in %s; leave the culprit out with -funcs or -ops):\n%s", c.work, b)
	}
	return bin, nil
}

var failLine = regexp.MustCompile(`--- FAIL: (\S+)`)

// runTests runs the package's tests with mutant n live (0: none) and says
// whether they passed (survived), failed (killed) or ran out of time.
func runTests(c sweepConfig, dir, bin string, n int) (status string, secs float64, fail string) {
	args := []string{"-test.failfast", "-test.timeout", c.timeout.String()}
	if c.run != "" {
		args = append(args, "-test.run", c.run)
	}
	// A hung mutant is stopped a little after the test binary's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("GDPNET_MUTANT=%d", n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	b, err := cmd.CombinedOutput()
	secs = time.Since(start).Seconds()
	outs := string(b)
	if m := failLine.FindStringSubmatch(outs); m != nil {
		fail = m[1]
	}
	switch {
	case err == nil:
		return "survived", secs, ""
	case strings.Contains(outs, "panic: test timed out") || ctx.Err() != nil:
		return "timeout", secs, fail
	case fail == "":
		fail = firstPanic(outs)
	}
	return "killed", secs, fail
}

func firstPanic(s string) string {
	if i := strings.Index(s, "panic: "); i >= 0 {
		s = s[i:]
		if j := strings.IndexByte(s, '\n'); j >= 0 {
			s = s[:j]
		}
		return oneLine(s)
	}
	return "exit status"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
