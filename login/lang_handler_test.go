package login_test

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/keystep/keystep/storage"
)

// untranslated returns the texts of page body a reader sees (text nodes
// outside script, style, code and pre; alt, title, aria-label,
// placeholder and data-*-label attributes) that are not in the en-XA
// pseudo-locale: each translated text there is bracketed ("[Šíĝñ íñ ~~]").
// allow lists texts that are data, not messages (a username, an app's
// name, the product's name).
func untranslated(t *testing.T, body string, allow ...string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	check := func(s string) {
		s = strings.TrimSpace(s)
		for _, a := range allow {
			s = strings.ReplaceAll(s, a, "")
		}
		// Brackets hold translated text; strip them, with what they hold,
		// innermost first (a translation may hold another: a risk reason
		// in its sentence). A text a bracket opens or closes outside of
		// (around markup: "[Signed in as <strong>alice</strong> ~]") is
		// stripped to the text node's end or from its start.
		for {
			j := strings.IndexByte(s, ']')
			i := strings.LastIndexByte(s[:max(j, 0)], '[')
			if j < 0 || i < 0 {
				break
			}
			s = s[:i] + s[j+1:]
		}
		if i := strings.IndexByte(s, '['); i >= 0 {
			s = s[:i]
		}
		if j := strings.LastIndexByte(s, ']'); j >= 0 {
			s = s[j+1:]
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
