package chrome

import (
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// serve answers each path with its page; a path not listed is a 404 page.
func serve(t *testing.T, pages map[string]string, headers map[string]http.Header) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers[r.URL.Path] {
			w.Header()[k] = v
		}
		body, ok := pages[r.URL.Path]
		switch {
		case strings.HasSuffix(r.URL.Path, ".js"):
			w.Header().Set("Content-Type", "text/javascript")
		case strings.HasSuffix(r.URL.Path, ".png"):
			w.Header().Set("Content-Type", "image/png")
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			body = `<!doctype html><html lang="en"><title>Not found</title><h1>Not found</h1>`
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The checks of Look find what they are there to find: each page below
// breaks one rule, and its check reports it. A page that keeps the rules
// gets no report, so the checks do not pass Keystep's pages by reporting
// nothing at all.
func TestChecksFindWhatIsWrong(t *testing.T) {
	const head = `<!doctype html><html lang="en"><title>T</title><script src="/static/app.js"></script><h1>T</h1>`
	url := serve(t, map[string]string{
		"/static/app.js": "",
		"/good":          head + `<form action="/x"><label for="q">Search</label><input id="q" name="q"><button>Go</button></form>`,
		"/bare":          `<!doctype html><p>no heading</p><form action="/x"><input name="q"></form><div style="color: red">x</div><script>1</script>`,
		"/otp":           head + `<form action="/login/otp"><label for="code">Code</label><input id="code" name="code"><button>Go</button></form>`,
		"/jargon":        head + `<p>Your acr is mfa, from TOTP.</p>`,
		"/wide":          head + `<div id="wide" style="width: 2000px">wide</div>`,
		"/tiny":          head + `<button id="tiny" style="width: 20px; height: 20px; padding: 0">x</button>`,
		"/grey":          head + `<p style="color: #aaa">grey text</p>`,
		"/no-ring":       head + `<a id="go" href="#" style="outline: none">go</a>`,
	}, nil)
	b := New(t)
	for _, tc := range []struct {
		name, path, check string
		tab               bool // press Tab first, as checkFocus does
		want              []string
	}{
		{name: "a page that keeps the rules has no report", path: "/good", check: jsStructure},
		{name: "a bare page lacks a heading, title, language, labels, a submit button and the app's script", path: "/bare", check: jsStructure, want: []string{
			"0 <h1> elements, want 1", "no <title>", "no lang on <html>", "input[name=q] has no label",
			"form /x has no submit button", `div "x" has a style attribute`, "an inline <script>", "no /static/app.js",
		}},
		{name: "a code field says how it is filled", path: "/otp", check: jsStructure, want: []string{
			"autocomplete=null, want one-time-code", "inputmode=null, want numeric", "pattern=null, want [0-9]{6}",
		}},
		{name: "protocol words are jargon on a page for people", path: "/jargon", check: jsStructure, want: []string{"jargon on a page for people: acr, TOTP"}},
		{name: "a page wider than the window scrolls sideways", path: "/wide", check: jsOverflow, want: []string{"px wide in a 1280 px window", `div#wide "wide" ends at`}},
		{name: "a button smaller than 44×44 is too small a target", path: "/tiny", check: jsTargets, want: []string{`button#tiny "x" is 20×20`}},
		{name: "light grey text on white is below AA", path: "/grey", check: jsContrast, want: []string{`"grey text" 2.32:1, needs 4.5:1 (rgb(170,170,170) on rgb(255,255,255))`}},
		{name: "a link without a focus ring is reported", path: "/no-ring", check: jsFocus, tab: true, want: []string{`no outline`}},
	} {
		b.Open(url + tc.path)
		var got []string
		if tc.tab {
			b.Must(chromedp.MouseClickXY(1, 1), chromedp.KeyEvent("\t"))
			s := Eval[struct{ Ring string }](b, jsHelpers+tc.check)
			if s.Ring != "" {
				got = []string{s.Ring}
			}
		} else {
			got = Eval[[]string](b, jsHelpers+tc.check)
		}
		if len(tc.want) == 0 && len(got) != 0 {
			t.Errorf("%s: reports %q, want none", tc.name, got)
		}
		for _, w := range tc.want {
			if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
				t.Errorf("%s: no report says %q; reports:\n%s", tc.name, w, strings.Join(got, "\n"))
			}
		}
	}
}

// The tab records what CheckProblems reports: console errors, uncaught
// exceptions, CSP violations and failed loads, but not a page shown with
// a 4xx status on purpose.
func TestProblemsAreRecorded(t *testing.T) {
	url := serve(t, map[string]string{
		"/noisy": `<!doctype html><html lang="en"><title>T</title><h1>T</h1><img src="/nothing.png" alt="">` +
			`<script>console.error("boom"); throw new Error("bang");</script>`,
		"/csp": `<!doctype html><html lang="en"><title>T</title><h1>T</h1><script>1</script>`,
	}, map[string]http.Header{
		"/csp": {"Content-Security-Policy": {"script-src 'self'"}},
	})
	b := New(t)
	// waitProblems waits until every one of want is in a recorded problem.
	waitProblems := func(want ...string) []string {
		t.Helper()
		deadline := time.Now().Add(ActionTimeout)
		for {
			b.mu.Lock()
			got := slices.Clone(b.problems)
			b.mu.Unlock()
			missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool {
				return slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) })
			})
			if len(missing) == 0 {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("problems %q were not recorded; recorded:\n%s", missing, strings.Join(got, "\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if status := b.Open(url + "/missing"); status != http.StatusNotFound {
		t.Fatalf("/missing: status %d", status)
	}
	b.Open(url + "/noisy")
	got := waitProblems("console.error: boom", "uncaught exception", "/nothing.png")
	if slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, "/missing") }) {
		t.Errorf("a page shown with 404 on purpose is a problem:\n%s", strings.Join(got, "\n"))
	}

	b.DropProblems(func(string) bool { return true })
	b.Open(url + "/csp")
	waitProblems("CSP violation: script-src")
	b.DropProblems(func(string) bool { return true })
}

// Axe reports WCAG violations, each with its rule, impact and element, and
// nothing on a page that keeps the rules.
func TestAxeFindsViolations(t *testing.T) {
	url := serve(t, map[string]string{
		"/good": `<!doctype html><html lang="en"><title>T</title><main><h1>T</h1>` +
			`<form action="/x"><label for="q">Search</label><input id="q" name="q"><button>Go</button></form></main>`,
		"/bad": `<!doctype html><html><title>T</title><main><h1>T</h1>` +
			`<img src="/nothing.png"><input id="q" name="q"><button id="empty"></button>` +
			`<p style="color: #aaa">grey text</p></main>`,
	}, map[string]http.Header{
		"/good": {"Content-Security-Policy": {"script-src 'self'"}},
	})
	b := New(t)
	if _, err := axeSource(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core is not installed: %v", err)
		}
		t.Skipf("axe-core is not installed (npm ci in conformance/node): %v", err)
	}
	b.Open(url + "/good")
	if got := b.Axe(); len(got) != 0 {
		t.Errorf("a page that keeps the rules (under a CSP without inline script): axe reports\n%s", strings.Join(got, "\n"))
	}
	b.Open(url + "/bad")
	got := b.Axe()
	for _, want := range []string{"html-has-lang [serious]", "image-alt [critical]", "label [critical]", "button-name [critical]", "#empty", "color-contrast [serious]"} {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, want) }) {
			t.Errorf("no axe report says %q; reports:\n%s", want, strings.Join(got, "\n"))
		}
	}
	b.DropProblems(func(string) bool { return true })
}

// CheckTabOrder's work finds a page whose Tab order is not the page's
// order, and a stop without a ring; a page that keeps the rules has none.
func TestTabOrderFindsWhatIsWrong(t *testing.T) {
	const head = `<!doctype html><html lang="en"><title>T</title><style>:focus-visible { outline: 3px solid #1c6fd1 }</style><h1>T</h1>`
	url := serve(t, map[string]string{
		"/good":      head + `<form action="/x"><label for="q">Search</label><input id="q" name="q"><button>Go</button></form><a href="/y">Help</a>`,
		"/reordered": head + `<a href="/a">First</a><a id="jump" href="/b" tabindex="2">Second</a>`,
		"/no-ring":   head + `<a href="/a">First</a><a id="bare" href="/b" style="outline: none">Second</a>`,
	}, nil)
	b := New(t)
	for _, tc := range []struct {
		path  string
		stops int
		want  []string
	}{
		{path: "/good", stops: 3},
		{path: "/reordered", want: []string{`tabindex 2 on a#jump "Second" reorders the page`}},
		{path: "/no-ring", stops: 2, want: []string{`keyboard focus on a#bare "Second": no outline`}},
	} {
		b.Open(url + tc.path)
		got, problems := b.tabOrder()
		if len(got) != tc.stops {
			t.Errorf("%s: %d stops %q, want %d", tc.path, len(got), got, tc.stops)
		}
		if len(tc.want) == 0 && len(problems) != 0 {
			t.Errorf("%s: reports %q, want none", tc.path, problems)
		}
		for _, w := range tc.want {
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
				t.Errorf("%s: no report says %q; reports:\n%s", tc.path, w, strings.Join(problems, "\n"))
			}
		}
	}
}
