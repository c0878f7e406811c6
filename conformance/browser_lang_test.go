package conformance

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/i18n"
)

func pseudoLocales(c *idp.Config) { c.PseudoLocales = true }

// The acceptance test of issue 24's languages, in Chromium: a browser
// asking for German sees the sign-in, step-up, portal and admin pages in
// German; ui_locales=fr wins over it; a browser asking for Spanish gets
// Spanish; and the right-to-left pseudo-locale lays the pages out
// mirrored. Each page is looked at (screenshots light and dark, 390 and
// 1280 px, axe-core) under a name that says its language.
func TestBrowserLanguages(t *testing.T) {
	c := newTabIn(t, "de-DE,de,en")
	e := newEnv(t, pseudoLocales, adminAt(acrMFA))
	secret := e.enrollTOTP("u-alice")
	u, err := e.store.UserByUsername(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	u.Admin = true
	if err := e.store.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	cats, err := i18n.Load(i18n.Options{})
	if err != nil {
		t.Fatal(err)
	}
	de, fr, es := cats.Printer(i18n.German), cats.Printer(i18n.French), cats.Printer(i18n.Spanish)
	r := e.rp(rpClient, e.rpSecret)

	// lang checks the page's language and that it shows want, a text of
	// the catalog in that language.
	lang := func(c *tab, code string, want ...string) {
		t.Helper()
		if got := chrome.Eval[string](c.Browser, "document.documentElement.lang"); got != code {
			t.Fatalf("page language %q, want %q at %s:\n%s", got, code, c.Location(), c.BodyText())
		}
		for _, w := range want {
			c.See(w)
		}
	}

	// German, from the browser's Accept-Language.
	a := r.authURL(nil)
	c.Open(a.url)
	lang(c, "de", de.T("Username"), de.T("Password"))
	c.Look("de-signin")
	c.TypeIn("#username", alice)
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	r.mustExchange(c.rpCode(r, a), a)

	// Step-up to mfa: the code page.
	a = r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	lang(c, "de", de.T("Use another account"))
	c.Look("de-code")
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("acr after the German step-up: %q", tok.claims.ACR)
	}

	// The portal and the console.
	c.Open(e.issuer + "/account")
	lang(c, "de", de.T("Overview"), de.T("Sign out"))
	c.Look("de-account")
	c.Open(e.issuer + "/admin/clients")
	lang(c, "de")
	if text := c.BodyText(); !strings.Contains(text, "rp") {
		t.Fatalf("the console's clients page:\n%s", text)
	}
	c.lookAdmin("de-admin-clients")

	// ui_locales=fr wins over the browser's German.
	e.clock.Advance(time.Minute)
	a = r.authURL(url.Values{"ui_locales": {"fr"}, "prompt": {"login"}})
	c.Open(a.url)
	lang(c, "fr", fr.T("Password"))
	c.Look("fr-password")

	// Spanish, from another browser's Accept-Language.
	sp := newTabIn(t, "es-ES,es")
	a = r.authURL(nil)
	sp.Open(a.url)
	lang(sp, "es", es.T("Username"), es.T("Forgot your password?"))
	sp.Look("es-signin")
	sp.TypeIn("#username", alice)
	sp.TypeIn("#password", alicePass)
	sp.Follow(chrome.SignInButton)
	r.mustExchange(sp.rpCode(r, a), a)
	sp.Open(e.issuer + "/account")
	lang(sp, "es", es.T("Overview"))
	sp.Look("es-account")

	// Right to left: the pseudo-locale ar-XB mirrors the layout.
	a = r.authURL(url.Values{"ui_locales": {"ar-XB"}, "prompt": {"login"}})
	c.Open(a.url)
	lang(c, "ar-XB")
	if dir := chrome.Eval[string](c.Browser, "getComputedStyle(document.querySelector('main')).direction"); dir != "rtl" {
		t.Fatalf("ar-XB: the page is laid out %q", dir)
	}
	// Mirrored: the first field's label text sits at the card's right edge.
	if !chrome.Eval[bool](c.Browser, `(function () {
  var r = document.createRange();
  r.selectNodeContents(document.querySelector("label"));
  var l = r.getBoundingClientRect(), m = document.querySelector("main").getBoundingClientRect();
  return m.right - l.right < l.left - m.left;
})()`) {
		t.Fatal("ar-XB: the labels are not on the right")
	}
	c.Look("rtl-password")
}
