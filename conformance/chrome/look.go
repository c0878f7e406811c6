package chrome

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

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

var desktop = viewport{1280, 800, false, false}

func (b *Browser) setViewport(v viewport) {
	b.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if v.mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	b.Must(chromedp.EmulateViewport(v.w, v.h, opts...))
}

func (b *Browser) setScheme(scheme string) {
	b.t.Helper()
	b.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// Look saves screenshots of the current page at every size and scheme and
// checks it as a person would use it. name is the screenshot's file name,
// after a number that orders the test's screenshots.
func (b *Browser) Look(name string) { b.LookSkipping(name) }

// LookSkipping is Look less the structure checks whose reports start with
// one of skip: for pages that are not Keystep's own (the demo app) or not
// for people at large (the admin console may use protocol words).
func (b *Browser) LookSkipping(name string, skip ...string) {
	b.t.Helper()
	b.mu.Lock()
	b.shots++
	n := b.shots
	b.mu.Unlock()
	where := fmt.Sprintf("%s (%s)", name, b.Location())

	for _, p := range Eval[[]string](b, jsHelpers+jsStructure) {
		if !slices.ContainsFunc(skip, func(s string) bool { return strings.HasPrefix(p, s) }) {
			b.t.Errorf("%s: %s", where, p)
		}
	}
	for _, scheme := range []string{"light", "dark"} {
		b.setScheme(scheme)
		for _, v := range viewports {
			b.setViewport(v)
			for _, p := range Eval[[]string](b, jsHelpers+jsOverflow) {
				b.t.Errorf("%s at %d px: sideways scrolling: %s", where, v.w, p)
			}
			for _, p := range Eval[[]string](b, jsHelpers+jsTargets) {
				b.t.Errorf("%s at %d px: target smaller than 44×44: %s", where, v.w, p)
			}
			if v.shot {
				b.screenshot(fmt.Sprintf("%02d-%s-%dx%d-%s.png", n, name, v.w, v.h, scheme))
				for _, p := range b.Axe() {
					b.t.Errorf("%s at %d px, %s: axe-core: %s", where, v.w, scheme, p)
				}
			}
		}
		for _, p := range Eval[[]string](b, jsHelpers+jsContrast) {
			b.t.Errorf("%s, %s: contrast below AA: %s", where, scheme, p)
		}
		b.checkFocus(where + ", " + scheme)
	}
	b.setScheme("light")
	b.setViewport(desktop)
	b.CheckProblems(where)
}

// checkFocus tabs through the page and checks that every stop shows a ring
// a person can see.
func (b *Browser) checkFocus(where string) {
	b.t.Helper()
	type stop struct {
		Done bool   `json:"done"`
		What string `json:"what"`
		Ring string `json:"ring"`
	}
	// Start where a person would: at the top, after clicking the page.
	Eval[bool](b, "(window.scrollTo(0, 0), true)")
	b.Must(chromedp.MouseClickXY(1, 1))
	seen := map[string]bool{}
	for range 30 {
		b.Must(chromedp.KeyEvent("\t"))
		s := Eval[stop](b, jsHelpers+jsFocus)
		if s.Done || seen[s.What] {
			return
		}
		seen[s.What] = true
		if s.Ring != "" {
			b.t.Errorf("%s: focus on %s: %s", where, s.What, s.Ring)
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
