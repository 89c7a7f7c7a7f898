package main

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is the browser the page is tested in: Debian's chromium,
// or $CHROMIUM_PATH.
func chromiumPath(t *testing.T) string {
	path := os.Getenv("CHROMIUM_PATH")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the playground's browser test needs Chromium at %s (apt-get install chromium, or set CHROMIUM_PATH): %v", path, err)
	}
	return path
}

// startChromium starts headless Chromium and returns a context for its
// first tab. A browser that exits before it answers is started again, up to
// three times: a CI run once saw Chromium exit within a second of starting
// with nothing in its output but the usual D-Bus noise, which says more
// about the machine than about the page. Each failed start is logged with
// what the browser printed; a browser that never starts fails the test.
func startChromium(t *testing.T, parent context.Context) context.Context {
	t.Helper()
	const attempts = 3
	path := chromiumPath(t)
	for attempt := 1; attempt <= attempts; attempt++ {
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path),
			chromedp.Headless,
			chromedp.NoSandbox, // the tests may run as root
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			// A fresh profile each time: a browser that died may leave its lock.
			chromedp.UserDataDir(t.TempDir()),
			// The machine has no network: nothing may try to reach one.
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-breakpad", true),
			// Errors and failed checks go to the output a failed start shows.
			chromedp.Flag("enable-logging", "stderr"),
		}
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
		browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
		err := chromedp.Do(browserCtx) // no steps: it only starts the browser
		if err == nil {
			t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
			return browserCtx
		}
		cancelBrowser()
		cancelAlloc()
		t.Logf("Chromium did not start (attempt %d of %d): %v", attempt, attempts, err)
		if parent.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * time.Second)
	}
	t.Fatalf("Chromium at %s did not start in %d attempts (each one's output is above); try it by hand with --headless --no-sandbox", path, attempts)
	return nil
}

// TestPlaygroundInBrowser drives the page in headless Chromium as a user
// would: it waits for the first example's preview, then types into the
// template editor and waits for the output and the warnings to follow.
func TestPlaygroundInBrowser(t *testing.T) {
	// Cleanups run last first: the browser closes before the page's server.
	srv := httptest.NewServer(newTestPlayground(t))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	ctx = startChromium(t, ctx)

	// waitFor polls a JavaScript condition; a failure says what was
	// awaited and what the page showed instead.
	waitFor := func(what, condition string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](condition, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			show, stop := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			defer stop()
			page, _ := chromedp.Run(show, chromedp.Evaluate[map[string]string](
				`Object.fromEntries(["output", "errors", "warnings", "status"].map(id => [id, document.getElementById(id).textContent]))`))
			t.Fatalf("waiting for %s: %v\nthe page shows: %q", what, err, page)
		}
	}
	// typeIntoTemplate types text at the end of the template editor, key
	// by key, as a user does.
	typeIntoTemplate := func(text string) {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.Focus(chromedp.CSS("#template")),
			chromedp.Evaluate[chromedp.Void](`(t => { t.selectionStart = t.selectionEnd = t.value.length; })(document.getElementById("template"))`),
			chromedp.SendKeys(chromedp.CSS("#template"), text),
		)
		if err != nil {
			t.Fatalf("typing %q into the template: %v", text, err)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatalf("opening %s in Chromium: %v", srv.URL, err)
	}
	waitFor("the examples in #example, partner-wallet chosen", `document.getElementById("example").value === "partner-wallet"`)
	waitFor("partner-wallet's output with Ana's 1350 points", `document.getElementById("output").textContent.includes("1350")`)
	waitFor("one Connected Content call answered 200 in #calls", `(rows => rows.length === 1 && rows[0].cells[2].textContent === "200")(document.querySelectorAll("#calls tbody tr"))`)

	typeIntoTemplate("\nHello {{${first_name}}}")
	waitFor(`"Hello Ana" in #output after typing`, `document.getElementById("output").textContent.includes("Hello Ana")`)

	typeIntoTemplate(`{{ "x" | lstrip }}`)
	waitFor(`a warning about lstrip in #warnings`, `document.getElementById("warnings").textContent.includes("lstrip")`)
	waitFor(`"Hello Anax" in #output: lstrip renders, with a warning`, `document.getElementById("output").textContent.includes("Hello Anax")`)
}
