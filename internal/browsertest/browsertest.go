// Package browsertest drives a headless Chromium (Debian's chromium
// package) with chromedp for tests that look at a page as a person would:
// the web dashboards and the simulator's report.html.
//
// New skips the test, saying why, when no Chromium is installed (.ci/run
// installs it). Each Browser records what the page requested, its console
// errors and uncaught exceptions, so a test can assert that a page made no
// request it should not have and ran without errors.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is one headless Chromium with one tab.
type Browser struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	requests []string // URLs the page asked for, in order
	errors   []string // console errors and uncaught exceptions
}

// Options change how New starts the browser.
type Options struct {
	// Offline: every network request fails (a proxy that is not there, no
	// name resolves); file: and data: URLs still load.
	Offline bool
	// Width and Height of the window; 0: 1400 × 1000.
	Width, Height int
}

// ExecPath is the Chromium binary New starts: $GDP_CHROMIUM, else the
// first of chromium, chromium-browser, google-chrome on $PATH ("" if
// none).
func ExecPath() string {
	if p := os.Getenv("GDP_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium for t, or skips t when none is
// installed. The browser is stopped when t ends.
func New(t testing.TB, o Options) *Browser {
	t.Helper()
	path := ExecPath()
	if path == "" {
		t.Skip("no Chromium: install Debian's chromium package (apt-get install chromium; .ci/run does) or set GDP_CHROMIUM")
	}
	if o.Width == 0 {
		o.Width, o.Height = 1400, 1000
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
	)
	if o.Offline {
		opts = append(opts,
			chromedp.Flag("proxy-server", "http://127.0.0.1:9"),
			chromedp.Flag("proxy-bypass-list", "<-loopback>"),
			chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{t: t}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	// The first Run starts the browser; no timeout on it (a timeout would
	// stop the browser with it), so a stuck start is bounded here instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", path, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("starting %s: no answer in 60 s", path)
	}
	return b
}

func (b *Browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request != nil {
			b.requests = append(b.requests, e.Request.URL)
		}
	case *runtime.EventExceptionThrown:
		if d := e.ExceptionDetails; d != nil {
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			b.errors = append(b.errors, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		}
	case *log.EventEntryAdded:
		if e.Entry != nil && e.Entry.Level == log.EntryLevelError {
			b.errors = append(b.errors, fmt.Sprintf("console %s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	}
}

// Context is the tab's chromedp context, for actions this package has no
// helper for.
func (b *Browser) Context() context.Context { return b.ctx }

// Requests are the URLs the page asked for so far.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// Errors are the console errors and uncaught exceptions so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Navigate loads url and waits for its load event (at most 30 s).
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("navigate %s: %v", url, err)
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// into T.
func Eval[T any](b *Browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// MustEval is Eval that fails the test on an error.
func MustEval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := Eval[T](b, expr)
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor evaluates expr (a JavaScript expression whose value is a
// boolean) every 100 ms until it is true, and fails the test with what
// and the page's text when it is not within d.
func (b *Browser) WaitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for {
		ok, err := Eval[bool](b, expr)
		if err == nil && ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			text, _ := Eval[string](b, "document.body ? document.body.innerText : ''")
			b.t.Fatalf("waited %s for %s (%s): last error %v; page errors %v; page text:\n%s", d, what, expr, last, b.Errors(), text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot saves a PNG of the whole page to path and returns its size
// in bytes.
func (b *Browser) Screenshot(path string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return len(png)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ArtifactDir is where a test keeps what it produced for people to look
// at (screenshots): $GDP_ARTIFACTS/<test name> when that is set (CI keeps
// it), else a directory of t.TempDir. The path is logged.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if root := os.Getenv("GDP_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, unsafeChars.ReplaceAllString(strings.ReplaceAll(t.Name(), "/", "_"), "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("artifacts: %s", dir)
	return dir
}
