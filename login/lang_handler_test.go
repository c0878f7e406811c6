package login_test

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/keystep/keystep/storage"
)

// translatedRun is one text of the en-XA pseudo-locale, bracketed, with
// any markup an argument put inside it ("[Šíĝñéð íñ <strong>alice</strong> ~]").
var translatedRun = regexp.MustCompile(`\[[^\[\]]*\]`)

// untranslated returns the texts of page body a reader sees (text nodes
// outside script, style, code and pre; alt, title, aria-label,
// placeholder, data-confirm and data-*-label attributes) that are not
// in the en-XA pseudo-locale: each translated text there is bracketed,
// and the brackets are taken out first, innermost first (a translation
// may hold another: a risk reason in its sentence). allow lists texts
// that are data, not messages (a username, an app's name, the product's
// name); the longest is taken out first, so one inside another counts.
func untranslated(t *testing.T, body string, allow ...string) []string {
	t.Helper()
	for {
		next := translatedRun.ReplaceAllString(body, "")
		if next == body {
			break
		}
		body = next
	}
	allow = slices.Clone(allow)
	slices.SortFunc(allow, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	check := func(s string) {
		for _, a := range allow {
			s = strings.ReplaceAll(s, a, "")
		}
		if strings.ContainsFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) {
			out = append(out, strings.TrimSpace(s))
		}
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if slices.Contains([]string{"script", "style", "code", "pre", "textarea"}, n.Data) {
				return
			}
			for _, a := range n.Attr {
				if slices.Contains([]string{"alt", "title", "aria-label", "placeholder"}, a.Key) ||
					strings.HasPrefix(a.Key, "data-") && strings.HasSuffix(a.Key, "-label") ||
					a.Key == "data-confirm" {
					check(a.Val)
				}
			}
		}
		if n.Type == html.TextNode {
			check(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// TestSignInPageSpeaksTheBrowsersLanguage: the sign-in page follows
// Accept-Language, ui_locales wins over it, and in the en-XA
// pseudo-locale no text of the page is left untranslated.
func TestSignInPageSpeaksTheBrowsersLanguage(t *testing.T) {
	f := newFixture(t, withPseudoLocales(t))
	b := f.browser()
	b.lang = "de-DE,de;q=0.9"
	r := b.open(f.request(b, appClient))
	if !strings.Contains(r.body, `<html lang="de" dir="ltr">`) || !strings.Contains(r.body, "Benutzername") {
		t.Fatalf("Accept-Language de: not German:\n%s", r.body)
	}
	r = b.open(f.request(b, appClient, func(ar *authRequest) { ar.UILocales = []string{"fr"} }))
	if !strings.Contains(r.body, `<html lang="fr" dir="ltr">`) || !strings.Contains(r.body, "Nom d’utilisateur") {
		t.Fatalf("ui_locales=fr: not French:\n%s", r.body)
	}
	r = b.open(f.request(b, appClient, func(ar *authRequest) { ar.UILocales = []string{"ar-XB"} }))
	if !strings.Contains(r.body, `<html lang="ar-XB" dir="rtl">`) {
		t.Fatalf("ui_locales=ar-XB: not right to left:\n%s", r.body)
	}
	r = b.open(f.request(b, appClient, func(ar *authRequest) { ar.UILocales = []string{"en-XA"} }))
	if left := untranslated(t, r.body, "Keystep", appClient); len(left) > 0 {
		t.Errorf("untranslated on the sign-in page: %q", left)
	}
	_ = storage.User{}
}
