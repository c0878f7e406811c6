package chrome

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The keyboard-only helpers below use nothing but Tab, Shift+Tab, Enter,
// Space and typed characters, sent as key events to the focused element,
// as a person without a mouse does. Each stop of the focus is checked for a
// ring a person can see (jsFocus).

// Focused describes the focused element, or "" when nothing is.
func (b *Browser) Focused() string {
	b.t.Helper()
	return Eval[string](b, jsHelpers+`(function () {
  var el = document.activeElement;
  return !el || el === document.body || el === document.documentElement ? "" : ks.describe(el);
})()`)
}

// focusRing is why the focused element's ring cannot be seen, or "".
func (b *Browser) focusRing() string {
	b.t.Helper()
	s := Eval[struct {
		Done bool   `json:"done"`
		What string `json:"what"`
		Ring string `json:"ring"`
	}](b, jsHelpers+jsFocus)
	if s.Done {
		return "nothing has the focus"
	}
	return s.Ring
}

// Tab moves the focus forward (or back, with Shift+Tab, when back is true)
// until it is on the element sel selects, and returns the descriptions of
// the elements it stopped on, the last one sel's. It fails the test when a
// stop shows no visible focus ring, or when sel is not reached within 30
// stops.
func (b *Browser) Tab(sel string, back bool) []string {
	b.t.Helper()
	var opts []chromedp.KeyOption
	if back {
		opts = append(opts, chromedp.KeyModifiers(chromedp.ModifierShift))
	}
	var stops []string
	for range 30 {
		b.Must(chromedp.KeyEvent(kb.Tab, opts...))
		what := b.Focused()
		stops = append(stops, what)
		if ring := b.focusRing(); ring != "" {
			b.t.Errorf("%s: keyboard focus on %s: %s", b.Location(), what, ring)
		}
		if Eval[bool](b, fmt.Sprintf("!!document.activeElement && document.activeElement.matches(%q)", sel)) {
			return stops
		}
	}
	b.t.Fatalf("%s: 30 presses of Tab never reached %s; the focus went through:\n%s", b.Location(), sel, strings.Join(stops, "\n"))
	return nil
}

// FocusIs fails the test unless the focused element matches sel and shows
// a visible ring.
func (b *Browser) FocusIs(sel string) {
	b.t.Helper()
	if !Eval[bool](b, fmt.Sprintf("!!document.activeElement && document.activeElement.matches(%q)", sel)) {
		b.t.Fatalf("%s: the focus is on %q, want %s", b.Location(), b.Focused(), sel)
	}
	if ring := b.focusRing(); ring != "" {
		b.t.Errorf("%s: keyboard focus on %s: %s", b.Location(), b.Focused(), ring)
	}
}

// Type types text into the focused element, key by key.
func (b *Browser) Type(text string) {
	b.t.Helper()
	b.Must(chromedp.KeyEvent(text))
}

// Press presses a key (kb.Enter, " ") on the focused element when it does
// not load a new page.
func (b *Browser) Press(key string) {
	b.t.Helper()
	b.Must(chromedp.KeyEvent(key))
}

// PressFollow presses a key on the focused element and waits for the page
// it loads.
func (b *Browser) PressFollow(key string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	what := b.Focused()
	if _, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(key)); err != nil {
		b.t.Fatalf("pressing %q on %s: %v\nat %s:\n%s", key, what, err, b.Location(), b.BodyText())
	}
}

// CheckTabOrder presses Tab from where the focus is to the end of the page
// and fails the test unless the focus went through every control a person
// can reach after it, in the order they appear on the page (no positive
// tabindex, nothing hidden takes the focus), each with a visible ring. It
// returns the stops.
func (b *Browser) CheckTabOrder() []string {
	b.t.Helper()
	got, problems := b.tabOrder()
	for _, p := range problems {
		b.t.Errorf("%s: %s", b.Location(), p)
	}
	return got
}

// tabOrder is CheckTabOrder's work: the stops and what is wrong with them.
func (b *Browser) tabOrder() (got, problems []string) {
	b.t.Helper()
	want := Eval[[]string](b, jsHelpers+jsTabbable)
	if len(want) > 0 && strings.HasPrefix(want[0], "tabindex ") {
		return nil, want[:1]
	}
	for range len(want) + 1 {
		b.Must(chromedp.KeyEvent(kb.Tab))
		what := b.Focused()
		if what == "" {
			break
		}
		got = append(got, what)
		if ring := b.focusRing(); ring != "" {
			problems = append(problems, "keyboard focus on "+what+": "+ring)
		}
	}
	if !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("Tab went through\n  %s\nwant the page's order\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  ")))
	}
	return got, problems
}

// jsTabbable lists, in document order, the controls after the focused one
// that Tab should reach: shown, enabled, not taken out with tabindex=-1.
// A positive tabindex, which reorders them, is reported instead.
const jsTabbable = `
(function () {
  var all = Array.from(document.querySelectorAll("a[href], button, input, select, textarea, summary, [tabindex], [contenteditable]"));
  var bad = all.find(function (el) { return el.tabIndex > 0; });
  if (bad) return ["tabindex " + bad.tabIndex + " on " + ks.describe(bad) + " reorders the page"];
  var list = all.filter(function (el) {
    if (el.tabIndex < 0 || el.disabled || el.type === "hidden" || !ks.shown(el)) return false;
    if (el.tagName === "SUMMARY" && el.parentElement.tagName !== "DETAILS") return false;
    return !el.closest("[inert]");
  });
  var at = list.indexOf(document.activeElement);
  return list.slice(at + 1).map(ks.describe);
})()
`
