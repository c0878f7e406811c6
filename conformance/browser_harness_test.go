package conformance

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive a real headless Chromium through the pages people
// see (UI.md "Tested as people see it"): they click and type into the real
// forms, take screenshots at phone and desktop sizes in light and dark, and
// check what a person relies on: a heading, labels, autofill hints, no
// sideways scrolling, big enough targets, visible focus, AA contrast, and no
// script errors or CSP violations.

// chrome is one headless Chromium with one tab.
type chrome struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots go here

	mu        sync.Mutex
	problems  []string            // console errors, exceptions, CSP violations
	documents map[string]bool     // URLs loaded as documents (their 4xx is on purpose)
	rpLoads   []string            // URLs the browser tried to load at the RP
	holds     map[string][]string // request URL prefix held back → URLs seen
	hold      time.Duration
	dialogs   []string // messages of confirm() dialogs
	accept    bool     // answer to the next dialogs
	shots     int
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

func newChrome(t *testing.T) *chrome {
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
	alloc, cancelAlloc := chromedp.NewExecAllocator(base,
		chromedp.ExecPath(path),
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
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	// Cleanups run last-in first-out: the browser stops before its profile
	// directory is removed.
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelBase() })

	c := &chrome{t: t, ctx: ctx, dir: dir, documents: map[string]bool{}, holds: map[string][]string{}, accept: true}
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("starting Chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, c.event); err != nil {
		t.Fatal(err)
	}
	c.must(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		// A CSP violation is logged by Chromium too; the listener also names
		// the directive and the source, which makes the failure readable.
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline code") + " in " + e.sourceFile + ":" + e.lineNumber);
});`})
		if err != nil {
			return err
		}
		// The RP is https://rp.example, which does not exist: the browser's
		// request to it is answered here, and its URL recorded.
		_, err = chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: "https://rp.example/*"},
			{URLPattern: "*/login/*"},
		}})
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
	c.setViewport(desktop)
	return c
}

// event runs in the tab's read loop: it records and returns at once, and
// anything that needs a command runs on its own goroutine.
func (c *chrome) event(ev any) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
			c.problems = append(c.problems, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		c.problems = append(c.problems, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		if e.Level != cdplog.EntryLevelError {
			return
		}
		// A page shown with a 4xx status (wrong password, error page) is
		// on purpose; a failed stylesheet, script or image is not.
		if e.Source == cdplog.EntrySourceNetwork && c.documents[e.URL] {
			return
		}
		c.problems = append(c.problems, fmt.Sprintf("%s error: %s (%s)", e.Source, e.Text, e.URL))
	case *network.EventRequestWillBeSent:
		if ev.Type == network.ResourceTypeDocument {
			c.documents[ev.Request.URL] = true
		}
	case *fetch.EventRequestPaused:
		u := ev.Request.URL
		id := ev.RequestID
		if strings.HasPrefix(u, "https://rp.example/") {
			if ev.ResourceType != network.ResourceTypeDocument { // its favicon
				go func() {
					_, _ = chromedp.Call(c.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: id, ResponseCode: http.StatusNoContent})
				}()
				return
			}
			c.rpLoads = append(c.rpLoads, u)
			go func() {
				_, _ = chromedp.Call(c.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
					RequestID: id, ResponseCode: 200,
					ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
					Body:            []byte("<!doctype html><title>Acme Payroll</title><h1>Back at the app</h1>"),
				})
			}()
			return
		}
		hold := time.Duration(0)
		if ev.Request.Method == http.MethodPost {
			for prefix := range c.holds {
				if strings.HasPrefix(u, prefix) {
					c.holds[prefix] = append(c.holds[prefix], u)
					hold = c.hold
				}
			}
		}
		go func() {
			time.Sleep(hold)
			// A request the page gave up on can no longer continue; that is fine.
			_, _ = chromedp.Call(c.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: id})
		}()
	case *cdppage.EventJavascriptDialogOpening:
		c.dialogs = append(c.dialogs, ev.Message)
		accept := c.accept
		go func() {
			_, _ = chromedp.Call(c.ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: accept})
		}()
	}
}

// waitHeld waits until a POST to a URL starting with prefix is held back
// (see holds), and fails the test if none comes within actionTimeout.
func (c *chrome) waitHeld(prefix string) {
	c.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for {
		c.mu.Lock()
		n := len(c.holds[prefix])
		c.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no request to %s within %s; at %s", prefix, actionTimeout, c.location())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// actionTimeout bounds one step, so a page that never comes fails fast.
const actionTimeout = 15 * time.Second

func (c *chrome) must(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		c.t.Fatalf("browser: %v\nat %s:\n%s", err, c.location(), c.bodyText())
	}
}

func (c *chrome) bodyText() string {
	ctx, cancel := context.WithTimeout(c.ctx, actionTimeout)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	if err != nil {
		return "(no text: " + err.Error() + ")"
	}
	return text
}

func (c *chrome) location() string {
	ctx, cancel := context.WithTimeout(c.ctx, actionTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// eval runs a JavaScript expression and decodes its result.
func eval[T any](c *chrome, expr string) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		c.t.Fatalf("evaluate: %v\n%s", err, expr)
	}
	return v
}

// open loads a URL and returns the HTTP status of the page.
func (c *chrome) open(u string) int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		c.t.Fatalf("open %s: %v", u, err)
	}
	return resp.Status
}

// typeIn replaces the value of a field by typing into it, as a person does.
func (c *chrome) typeIn(sel, text string) {
	c.t.Helper()
	c.must(chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// click clicks an element that does not load a new page.
func (c *chrome) click(sel string) {
	c.t.Helper()
	c.must(chromedp.Click(chromedp.CSS(sel)))
}

// follow clicks an element and waits for the page it loads.
func (c *chrome) follow(sel string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		c.t.Fatalf("click %s: %v\nat %s:\n%s", sel, err, c.location(), c.bodyText())
	}
}

// see fails unless the page's visible text contains s.
func (c *chrome) see(s string) {
	c.t.Helper()
	if text := eval[string](c, "document.body.innerText"); !strings.Contains(text, s) {
		c.t.Fatalf("%s does not say %q; it says:\n%s", c.location(), s, text)
	}
}

// rpCode expects the browser to be at the RP's redirect URI and returns the
// code, checking state and the absence of an error.
func (c *chrome) rpCode(r *rp, a authRequest) string {
	c.t.Helper()
	loc := c.location()
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, rpRedirect) {
		c.t.Fatalf("expected the browser at the app (%s), it is at %s:\n%s", rpRedirect, loc, eval[string](c, "document.body.innerText"))
	}
	c.mu.Lock()
	seen := slices.Contains(c.rpLoads, loc)
	loads := slices.Clone(c.rpLoads)
	c.mu.Unlock()
	if !seen {
		c.t.Fatalf("the app's page %s was not loaded through the network; loads: %q", loc, loads)
	}
	return r.code(page{status: http.StatusSeeOther, redirect: u}, a)
}

// checkProblems fails the test with every console error, exception and CSP
// violation seen since the last call.
func (c *chrome) checkProblems(where string) {
	c.t.Helper()
	c.mu.Lock()
	p := c.problems
	c.problems = nil
	c.mu.Unlock()
	for _, s := range p {
		c.t.Errorf("%s: %s", where, s)
	}
}

// viewport is one size the pages are looked at in. Only some are saved as
// screenshots; the others are checked for sideways scrolling.
type viewport struct {
	w, h   int64
	mobile bool
	shot   bool
}

var viewports = []viewport{
	{320, 640, true, false},   // the narrowest phone UI.md names
	{390, 844, true, true},    // a current phone
	{640, 800, false, false},  // 1280 at 200 % zoom
	{1280, 800, false, true},  // a laptop
	{1024, 768, false, false}, // between the portal's two layouts
}

func (c *chrome) setViewport(v viewport) {
	c.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if v.mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	c.must(chromedp.EmulateViewport(v.w, v.h, opts...))
}

func (c *chrome) setScheme(scheme string) {
	c.t.Helper()
	c.must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

var desktop = viewport{1280, 800, false, false}

// look saves screenshots of the current page at every size and scheme and
// checks it as a person would use it. name is the screenshot's file name.
func (c *chrome) look(name string) { c.lookSkipping(name, nil) }

// lookSkipping is look less the structure checks whose reports start with
// one of skip (for pages that are not Keystep's own, such as the demo app).
func (c *chrome) lookSkipping(name string, skip []string) {
	c.t.Helper()
	c.mu.Lock()
	c.shots++
	n := c.shots
	c.mu.Unlock()
	where := fmt.Sprintf("%s (%s)", name, c.location())

	for _, p := range eval[[]string](c, jsHelpers+jsStructure) {
		if !slices.ContainsFunc(skip, func(s string) bool { return strings.HasPrefix(p, s) }) {
			c.t.Errorf("%s: %s", where, p)
		}
	}
	for _, scheme := range []string{"light", "dark"} {
		c.setScheme(scheme)
		for _, v := range viewports {
			c.setViewport(v)
			size := fmt.Sprintf("%dx%d", v.w, v.h)
			for _, p := range eval[[]string](c, jsHelpers+jsOverflow) {
				c.t.Errorf("%s at %d px: sideways scrolling: %s", where, v.w, p)
			}
			for _, p := range eval[[]string](c, jsHelpers+jsTargets) {
				c.t.Errorf("%s at %d px: target smaller than 44×44: %s", where, v.w, p)
			}
			if v.shot {
				png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
				if err != nil {
					c.t.Fatalf("screenshot: %v", err)
				}
				file := filepath.Join(c.dir, fmt.Sprintf("%02d-%s-%s-%s.png", n, name, size, scheme))
				if err := os.WriteFile(file, png, 0o644); err != nil {
					c.t.Fatal(err)
				}
			}
		}
		for _, p := range eval[[]string](c, jsHelpers+jsContrast) {
			c.t.Errorf("%s, %s: contrast below AA: %s", where, scheme, p)
		}
		c.checkFocus(where + ", " + scheme)
	}
	c.setScheme("light")
	c.setViewport(desktop)
	c.checkProblems(where)
}

// checkFocus tabs through the page and checks that every stop shows a ring
// a person can see.
func (c *chrome) checkFocus(where string) {
	c.t.Helper()
	type stop struct {
		Done bool   `json:"done"`
		What string `json:"what"`
		Ring string `json:"ring"`
	}
	// Start where a person would: at the top, after clicking the page.
	eval[bool](c, "(window.scrollTo(0, 0), true)")
	c.must(chromedp.MouseClickXY(1, 1))
	seen := map[string]bool{}
	for range 30 {
		c.must(chromedp.KeyEvent("\t"))
		s := eval[stop](c, jsHelpers+jsFocus)
		if s.Done || seen[s.What] {
			return
		}
		seen[s.What] = true
		if s.Ring != "" {
			c.t.Errorf("%s: focus on %s: %s", where, s.What, s.Ring)
		}
	}
}

// jsHelpers are shared by the checks below: colour parsing, WCAG contrast,
// and a short description of an element for messages.
const jsHelpers = `
var ks = (function () {
  function parse(c) {
    var m = /^rgba?\(([^)]*)\)$/.exec(c);
    if (m) { var v = m[1].split(/[\s,\/]+/).filter(Boolean).map(parseFloat); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; }
    m = /^color\(srgb\s+([^)]*)\)$/.exec(c);
    if (m) { var w = m[1].split(/[\s\/]+/).filter(Boolean).map(parseFloat); return [w[0] * 255, w[1] * 255, w[2] * 255, w.length > 3 ? w[3] : 1]; }
    return null;
  }
  function over(top, bottom) {
    var a = top[3] + bottom[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    var out = [0, 1, 2].map(function (i) { return (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a; });
    out.push(a);
    return out;
  }
  function background(el) {
    var layers = [];
    for (var n = el; n && n.nodeType === 1; n = n.parentElement) {
      var c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) layers.push(c);
      if (c && c[3] >= 1) break;
    }
    var bg = [255, 255, 255, 1];
    for (var i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  }
  function lum(c) {
    function f(v) { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  function ratio(a, b) { var x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  function rgb(c) { return "rgb(" + c.slice(0, 3).map(Math.round).join(",") + ")"; }
  function describe(el) {
    var s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.getAttribute("name")) s += "[name=" + el.getAttribute("name") + "]";
    if (el.className && typeof el.className === "string") s += "." + el.className.trim().split(/\s+/).join(".");
    var text = (el.innerText || el.value || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return text ? s + " \"" + text + "\"" : s;
  }
  function shown(el) { return el.getClientRects().length > 0 && getComputedStyle(el).visibility === "visible"; }
  return { parse: parse, over: over, background: background, ratio: ratio, rgb: rgb, describe: describe, shown: shown };
})();
`

// jsStructure checks what does not depend on size or colour.
const jsStructure = `
(function () {
  var out = [];
  var h1 = document.querySelectorAll("h1");
  if (h1.length !== 1) out.push(h1.length + " <h1> elements, want 1");
  if (!document.title) out.push("no <title>");
  if (!document.documentElement.lang) out.push("no lang on <html>");
  document.querySelectorAll("input, select, textarea").forEach(function (el) {
    if (el.type === "hidden") return;
    var named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) out.push(ks.describe(el) + " has no label");
  });
  document.querySelectorAll("input[name=code]").forEach(function (el) {
    if (el.getAttribute("autocomplete") !== "one-time-code") out.push(ks.describe(el) + ": autocomplete=" + el.getAttribute("autocomplete") + ", want one-time-code");
    var action = el.form ? el.form.getAttribute("action") : "";
    if (action === "/login/otp" || action === "/account/totp") {
      if (el.getAttribute("inputmode") !== "numeric") out.push(ks.describe(el) + ": inputmode=" + el.getAttribute("inputmode") + ", want numeric");
      if (el.getAttribute("pattern") !== "[0-9]{6}") out.push(ks.describe(el) + ": pattern=" + el.getAttribute("pattern") + ", want [0-9]{6}");
    }
  });
  document.querySelectorAll("form[action='/login/password'] input[name=username]:not([type=hidden])").forEach(function (el) {
    if (el.getAttribute("autocomplete") !== "username webauthn") out.push("username field: autocomplete=" + el.getAttribute("autocomplete") + ", want \"username webauthn\"");
  });
  document.querySelectorAll("form").forEach(function (f) {
    if (!f.querySelector("button[type=submit], button:not([type]), input[type=submit]")) out.push("form " + f.getAttribute("action") + " has no submit button");
  });
  if (document.querySelector("[style]")) out.push(ks.describe(document.querySelector("[style]")) + " has a style attribute (CSP style-src 'self')");
  if (document.querySelector("style")) out.push("a <style> element (CSP style-src 'self')");
  Array.prototype.forEach.call(document.scripts, function (s) { if (!s.src) out.push("an inline <script> (CSP script-src 'self')"); });
  document.querySelectorAll("*").forEach(function (el) {
    Array.prototype.forEach.call(el.attributes, function (a) { if (/^on/i.test(a.name)) out.push(ks.describe(el) + " has an inline " + a.name + " handler"); });
  });
  if (!document.querySelector("script[src='/static/app.js']")) out.push("no /static/app.js");
  var words = document.body.innerText.match(/\b(TOTP|acr|ACR|AAL|amr|AMR|OIDC|OTP)\b/g);
  if (words) out.push("jargon on a page for people: " + words.join(", "));
  return out;
})()
`

// jsOverflow lists what sticks out sideways, when the page scrolls sideways.
const jsOverflow = `
(function () {
  var d = document.documentElement;
  if (d.scrollWidth <= d.clientWidth) return [];
  var out = ["the page is " + d.scrollWidth + " px wide in a " + d.clientWidth + " px window"];
  document.querySelectorAll("body *").forEach(function (el) {
    if (out.length < 6 && el.getBoundingClientRect().right > d.clientWidth + 0.5) out.push(ks.describe(el) + " ends at " + Math.round(el.getBoundingClientRect().right) + " px");
  });
  return out;
})()
`

// jsTargets lists controls smaller than 44×44 CSS px (UI.md). Links inside
// running text are exempt, as in WCAG 2.5.8.
const jsTargets = `
(function () {
  var out = [];
  document.querySelectorAll("button, input:not([type=hidden]), select, textarea, summary, a.button, nav a").forEach(function (el) {
    if (!ks.shown(el)) return;
    var r = el.getBoundingClientRect();
    if (r.height < 43.5 || r.width < 43.5) out.push(ks.describe(el) + " is " + Math.round(r.width) + "×" + Math.round(r.height));
  });
  return out;
})()
`

// jsContrast checks every piece of visible text, and the text in fields,
// against WCAG 2.2 AA: 4.5:1, or 3:1 for large text.
const jsContrast = `
(function () {
  var out = [], seen = new Set();
  function check(el, label) {
    if (seen.has(el) || !ks.shown(el) || el.closest("[disabled]")) return;
    seen.add(el);
    var cs = getComputedStyle(el);
    var bg = ks.background(el), fg = ks.parse(cs.color);
    if (!fg) { out.push("cannot read the colour " + cs.color); return; }
    fg = ks.over(fg, bg);
    var size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
    var need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    var r = ks.ratio(fg, bg);
    if (r < need) out.push(label + " " + r.toFixed(2) + ":1, needs " + need + ":1 (" + ks.rgb(fg) + " on " + ks.rgb(bg) + ")");
  }
  var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (var t = walker.nextNode(); t; t = walker.nextNode()) {
    if (t.nodeValue.trim() && t.parentElement) check(t.parentElement, "\"" + t.nodeValue.trim().slice(0, 40) + "\"");
  }
  document.querySelectorAll("input:not([type=hidden]), textarea, select").forEach(function (el) { check(el, ks.describe(el)); });
  // Borders of fields and buttons are what shows where to type and press:
  // WCAG 1.4.11 asks 3:1 against what is around them.
  document.querySelectorAll("input:not([type=hidden]), textarea, select").forEach(function (el) {
    if (!ks.shown(el)) return;
    var cs = getComputedStyle(el), border = ks.parse(cs.borderTopColor);
    if (!border || parseFloat(cs.borderTopWidth) === 0) return;
    var around = ks.background(el.parentElement);
    var r = Math.max(ks.ratio(ks.over(border, around), around), ks.ratio(ks.background(el), around));
    if (r < 3) out.push(ks.describe(el) + " border " + r.toFixed(2) + ":1 against " + ks.rgb(around) + ", needs 3:1");
  });
  return out;
})()
`

// jsFocus describes the focused element and whether its ring can be seen:
// an outline or box shadow of at least 2 px with 3:1 against the page.
const jsFocus = `
(function () {
  var el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return { done: true, what: "", ring: "" };
  var cs = getComputedStyle(el), what = ks.describe(el);
  if (!el.matches(":focus-visible")) return { done: false, what: what, ring: "not :focus-visible after Tab" };
  var width = cs.outlineStyle === "none" ? 0 : parseFloat(cs.outlineWidth);
  if (width < 2) return { done: false, what: what, ring: "no outline (outline " + cs.outlineStyle + " " + cs.outlineWidth + ")" };
  var ring = ks.parse(cs.outlineColor), around = ks.background(el.parentElement || el);
  if (!ring) return { done: false, what: what, ring: "cannot read the colour " + cs.outlineColor };
  var r = ks.ratio(ks.over(ring, around), around);
  if (r < 3) return { done: false, what: what, ring: "ring " + r.toFixed(2) + ":1 against " + ks.rgb(around) + ", needs 3:1" };
  return { done: false, what: what, ring: "" };
})()
`
