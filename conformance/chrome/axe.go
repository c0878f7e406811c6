package chrome

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/chromedp/chromedp"
)

// axeTags are the rules Axe runs: every WCAG 2.0, 2.1 and 2.2 rule at
// levels A and AA, and none of axe-core's best practices or AAA rules.
const axeTags = `["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]`

// axeFile is axe-core's browser build, installed by npm ci in
// conformance/node at the version pinned in its package-lock.json.
func axeFile() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "node", "node_modules", "axe-core", "axe.min.js")
}

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(axeFile())
	return string(b), err
})

// Axe runs axe-core on the current page, at its current size and colour
// scheme, and returns one line for each WCAG A/AA violation: the rule, its
// impact, what it asks for, and the elements that break it.
//
// Without axe-core installed (npm ci in conformance/node) the audit fails
// the test under CI=true, and is skipped with a note otherwise, as the
// other Node-based tests are.
func (b *Browser) Axe() []string {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.t.Fatalf("axe-core is not installed (%v): run npm ci in conformance/node (.ci/run does)", err)
		}
		b.axeMissing.Do(func() {
			b.t.Logf("axe-core is not installed (%v); skipping the accessibility audit (npm ci in conformance/node)", err)
		})
		return nil
	}
	// DevTools' evaluation is not subject to the page's CSP, so axe-core
	// goes in as it is, without a script tag the pages would have to allow.
	if !Eval[bool](b, "typeof window.axe === 'object'") {
		Eval[bool](b, src+"\n;true")
	}
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](jsAxe, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe-core at %s: %v", b.Location(), err)
	}
	return v
}

// jsAxe runs axe-core on the whole document and describes each violation.
const jsAxe = `
axe.run(document, {runOnly: {type: "tag", values: ` + axeTags + `}, resultTypes: ["violations"]}).then(function (r) {
  return r.violations.map(function (v) {
    var nodes = v.nodes.map(function (n) {
      var s = n.target.join(" ");
      var why = (n.failureSummary || "").replace(/^Fix (any|all) of the following:\s*/, "").replace(/\s+/g, " ").trim();
      return why ? s + " (" + why + ")" : s;
    });
    return v.id + " [" + v.impact + "] " + v.help + ": " + nodes.join("; ");
  });
})
`
