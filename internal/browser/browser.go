// Package browser starts a real headless Chromium (Debian's chromium
// package) for the web UI's tests and drives it with chromedp: load a
// page, read the DOM, type, click, take screenshots. It is for tests and
// benchmarks only.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds the browser: $CHROMIUM, or chromium on $PATH.
func Path() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium is not installed (scripts/test.sh installs Debian's chromium package)")
}

// Start opens a headless Chromium for the test, sized like a laptop
// screen, and closes it when the test ends. It skips the test when no
// browser is installed.
func Start(t testing.TB) context.Context {
	t.Helper()
	path, err := Path()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1366, 900),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// the first Run starts the browser, and its context is the browser's
	// lifetime (so no timeout here): fail now, clearly, if it cannot start
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// OutDir is where screenshots go: $VANTAGE_TEST_OUT/name, or a folder
// under the system's temporary directory that outlives the test.
func OutDir(t testing.TB, name string) string {
	t.Helper()
	base := os.Getenv("VANTAGE_TEST_OUT")
	if base == "" {
		base = filepath.Join(os.TempDir(), "vantage-test-out")
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves the whole page as dir/name.png.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 gives PNG, less JPEG
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Error(err)
		return
	}
	t.Logf("screenshot: %s", p)
}

// Page is one browser tab driven by a test; every method fails the test
// when the browser does.
type Page struct {
	t   testing.TB
	ctx context.Context
	out string // where screenshots go
}

// Open starts a browser (or skips the test without one) and gives its tab,
// with actions bounded by timeout and screenshots going to OutDir(out).
func Open(t testing.TB, out string, timeout time.Duration) *Page {
	t.Helper()
	ctx, cancel := context.WithTimeout(Start(t), timeout)
	t.Cleanup(cancel)
	return &Page{t: t, ctx: ctx, out: OutDir(t, out)}
}

// Context is the tab's context, for chromedp calls of one's own.
func (p *Page) Context() context.Context { return p.ctx }

// Do runs actions; what names them in a failure.
func (p *Page) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// String evaluates a JavaScript expression that gives a string.
func (p *Page) String(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// Counts evaluates a JavaScript expression that gives an object of numbers.
func (p *Page) Counts(js string) map[string]int64 {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[map[string]int64](js))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// WaitFor polls a JavaScript condition for up to 30 s. It polls from here,
// not in the page: a navigation ends an in-page poll.
func (p *Page) WaitFor(what, js string) {
	p.t.Helper()
	var err error
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var ok bool
		if ok, err = chromedp.Run(p.ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
			return
		}
	}
	p.t.Fatalf("waiting for %s (%s): %v; page: %.400s", what, js, err, p.String(`document.body.innerText`))
}

// Screenshot saves the whole page under the page's output folder.
func (p *Page) Screenshot(name string) {
	p.t.Helper()
	Screenshot(p.t, p.ctx, p.out, name)
}
