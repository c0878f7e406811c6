// Package chrome drives a real headless Chromium through Keystep's pages,
// for the browser tests (UI.md "Tested as people see it"): they click and
// type into the real forms, take screenshots at phone and desktop sizes in
// light and dark, and check what a person relies on: a heading, labels,
// autofill hints, no sideways scrolling, big enough targets, visible focus,
// AA contrast, no script errors or CSP violations, and no WCAG 2.2 A/AA
// violation that axe-core finds (axe.go). Keyboard-only runs use the
// helpers of keyboard.go.
//
// It is a library for tests only: conformance's browser tests and the
// demo's TestBrowserDemo use it, each adding what only it needs (the
// conformance RP's interception, the demo's flows). It imports testing and
// fails the test it is given. The provider never imports it
// (TestDependencyDirection in deps_test.go).
//
// A missing Chromium skips the test locally and fails it under CI=true: New
// is the one place that decides.
package chrome

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ActionTimeout bounds one step, so a page that never comes fails fast.
const ActionTimeout = 15 * time.Second

// Browser is one headless Chromium with one tab, tied to one test.
type Browser struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots go here

	mu         sync.Mutex
	problems   []string        // console errors, exceptions, CSP violations
	documents  map[string]bool // URLs loaded as documents (their 4xx is on purpose)
	shots      int
	noAutofill cdppage.ScriptIdentifier // the script that turns passkey autofill off, while it does
	axeMissing sync.Once                // the note that axe-core is not installed, once a test
}

// chromiumPath finds Debian's or Ubuntu's Chromium.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts Chromium for t and stops it when t ends. Screenshots go to
// $KEYSTEP_SCREENSHOTS, or to a directory of t's that is removed after it.
func New(t *testing.T) *Browser {
	t.Helper()
	return NewIn(t, "")
}

// NewIn is New for a browser set to the languages accept, most wanted
// first ("de-DE,de"; "" for Chromium's default): its Accept-Language
// header (Chromium adds the q-values) and navigator.languages.
func NewIn(t *testing.T, accept string) *Browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium is not installed (chromium or chromium-browser); CI must run the browser tests")
		}
		t.Skip("no Chromium on PATH (chromium or chromium-browser); skipping the browser tests")
	}
	dir := os.Getenv("KEYSTEP_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	profile := t.TempDir()
	base, cancelBase := context.WithTimeout(context.Background(), 3*time.Minute)
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path)}
	if accept != "" {
		opts = append(opts, chromedp.Flag("accept-lang", accept), chromedp.Flag("lang", strings.SplitN(accept, ",", 2)[0]))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(base, append(opts,
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(profile),
	)...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	// Cleanups run last-in first-out: the browser stops before its profile
	// directory is removed.
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelBase() })

	b := &Browser{t: t, ctx: ctx, dir: dir, documents: map[string]bool{}}
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("starting Chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, b.event); err != nil {
		t.Fatal(err)
	}
	b.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		// A CSP violation is logged by Chromium too; the listener also names
		// the directive and the source, which makes the failure readable.
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline code") + " in " + e.sourceFile + ":" + e.lineNumber);
});`})
		if err != nil {
			return err
		}
		// The copy button writes to the clipboard; a headless tab has no
		// focus unless emulated, and no permission unless granted.
		if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
			return err
		}
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
				Permission: &cdpbrowser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true}, Setting: cdpbrowser.PermissionSettingGranted,
			}); err != nil {
				return err
			}
		}
		return nil
	}))
	b.setViewport(desktop)
	return b
}

// Context is the tab's context, for chromedp calls of a test's own.
// Listeners added with chromedp.Listen run next to the Browser's.
func (b *Browser) Context() context.Context { return b.ctx }

// Dir is where the screenshots go.
func (b *Browser) Dir() string { return b.dir }

// event runs in the tab's read loop: it records and returns at once.
func (b *Browser) event(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				if a.Value != nil {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.problems = append(b.problems, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		if e.Level != cdplog.EntryLevelError {
			return
		}
		// A page shown with a 4xx status (wrong password, error page) is
		// on purpose; a failed stylesheet, script or image is not.
		if e.Source == cdplog.EntrySourceNetwork && b.documents[e.URL] {
			return
		}
		b.problems = append(b.problems, fmt.Sprintf("%s error: %s (%s)", e.Source, e.Text, e.URL))
	case *network.EventRequestWillBeSent:
		if ev.Type == network.ResourceTypeDocument {
			b.documents[ev.Request.URL] = true
		}
	}
}

// Documents lists the URLs the tab loaded as documents so far, sorted.
func (b *Browser) Documents() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.documents))
	for u := range b.documents {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// Must runs actions and fails the test, with the page's text, if one fails.
func (b *Browser) Must(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v\nat %s:\n%s", err, b.Location(), b.BodyText())
	}
}

// BodyText is the page's visible text, or why there is none, for messages.
func (b *Browser) BodyText() string {
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	if err != nil {
		return "(no text: " + err.Error() + ")"
	}
	return text
}

// Location is the page's URL, or "?".
func (b *Browser) Location() string {
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// Eval runs a JavaScript expression and decodes its result.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate: %v\n%s", err, expr)
	}
	return v
}

// Open loads a URL and returns the HTTP status of the page.
func (b *Browser) Open(u string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		b.t.Fatalf("open %s: %v", u, err)
	}
	return resp.Status
}

// TypeIn replaces the value of a field by typing into it, as a person does.
func (b *Browser) TypeIn(sel, text string) {
	b.t.Helper()
	b.Must(chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// Click clicks an element that does not load a new page.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.Must(chromedp.Click(chromedp.CSS(sel)))
}

// Follow clicks an element and waits for the page it loads.
func (b *Browser) Follow(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("click %s: %v\nat %s:\n%s", sel, err, b.Location(), b.BodyText())
	}
}

// See fails unless the page's visible text contains s.
func (b *Browser) See(s string) {
	b.t.Helper()
	if text := Eval[string](b, "document.body.innerText"); !strings.Contains(text, s) {
		b.t.Fatalf("%s does not say %q; it says:\n%s", b.Location(), s, text)
	}
}

// WaitFor polls a JavaScript condition until it holds, for at most
// ActionTimeout. Errors while a page is being replaced by the next one are
// part of waiting.
func (b *Browser) WaitFor(cond string) {
	b.t.Helper()
	deadline := time.Now().Add(ActionTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: %v\nat %s:\n%s", cond, err, b.Location(), b.BodyText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CheckProblems fails the test with every console error, exception and CSP
// violation seen since the last call.
func (b *Browser) CheckProblems(where string) {
	b.t.Helper()
	b.mu.Lock()
	p := b.problems
	b.problems = nil
	b.mu.Unlock()
	for _, s := range p {
		b.t.Errorf("%s: %s", where, s)
	}
}

// DropProblems forgets the problems seen so far that match, for errors a
// test caused on purpose (a request it made the server refuse).
func (b *Browser) DropProblems(match func(problem string) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = slices.DeleteFunc(b.problems, match)
}

// Snap saves one screenshot at the current size, for a state too short
// for Look (a ceremony in progress).
func (b *Browser) Snap(name string) {
	b.t.Helper()
	b.screenshot(name + ".png")
}

func (b *Browser) screenshot(file string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, file), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
