package login_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/storage"
)

// portalData is what a portal page shows that is data, not a message:
// the product, names, addresses, the languages' own names, the apps'
// names, and the dates (the pseudo-locale writes them as English does).
func portalData(f *fixture, userID string) []string {
	f.t.Helper()
	allow := []string{"Keystep", aliceMail, alice, "English", "Deutsch", "Français", "Español", "Acme Payroll", "Acme HR", appClient, mfaClient, "UTC",
		"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Go-http-client/1.1",
		// The error page's own frame is another area's (error.html).
		"Reference for your administrator:"}
	factors, err := f.store.ListFactors(f.ctx(), userID)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, fa := range factors {
		allow = append(allow, fa.Name)
	}
	return allow
}

// innermost is a translated text holding no other: the pseudo-locale
// brackets a message, and a message in another's argument ("The link
// works once, for [15 minutes]") nests.

// Every portal page, and the recovery codes shown once, has no text
// left untranslated in the en-XA pseudo-locale.
func TestPortalPagesAreTranslated(t *testing.T) {
	f := newFixture(t, withPseudoLocales(t), withMail(), withPasskeys(t))
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	f.recoveryCodes(aliceID)
	b := f.browser()
	b.lang = "en-XA"
	f.signInMFA(b, alice, alicePass, secret)
	allow := portalData(f, aliceID)
	pages := map[string]string{"/account": f.portalHome(b)}
	for _, path := range []string{"/account/password", "/account/email", "/account/totp", "/account/passkey"} {
		got := b.get(path)
		if got.status != http.StatusOK {
			t.Fatalf("%s: %d %s\n%.2000s", path, got.status, got.location, got.body)
		}
		pages[path] = got.body
	}
	got := b.post("/account/recovery", nil)
	if got.status != http.StatusOK || !strings.Contains(got.body, `class="codes"`) {
		t.Fatalf("new recovery codes: %d %s\n%.2000s", got.status, got.location, got.body)
	}
	pages["/account/recovery"] = got.body
	// A refused change and an error page.
	pages["password problem"] = b.post("/account/password", url.Values{"new_password": {"short"}, "confirm_password": {"short"}}).body
	pages["bad language"] = b.post("/account/language", url.Values{"locale": {"xx"}}).body
	for name, body := range pages {
		if !strings.Contains(body, `<html lang="en-XA"`) {
			t.Errorf("%s: not in en-XA:\n%.1500s", name, body)
		}
		if left := untranslated(t, body, allow...); len(left) > 0 {
			t.Errorf("%s: untranslated %q", name, left)
		}
	}
}

// The /recover pages (ask, sent, second factor, new password, done) and
// the reset mail have no text left untranslated in en-XA.
func TestRecoverPagesAreTranslated(t *testing.T) {
	f := newFixture(t, withPseudoLocales(t), withMail())
	f.verify(aliceID, aliceMail)
	// The mail is in the recipient's saved language (mailTr).
	if err := f.store.SetUserLocale(f.ctx(), aliceID, "en-XA"); err != nil {
		t.Fatal(err)
	}
	secret := f.enrollTOTP(aliceID)
	allow := portalData(f, aliceID)
	b := f.browser()
	b.lang = "en-XA"
	pages := map[string]string{"ask": b.get("/recover").body, "empty": b.post("/recover", url.Values{"account": {""}}).body}
	sent := b.post("/recover", url.Values{"account": {alice}})
	if sent.status != http.StatusOK {
		t.Fatalf("asking for a reset: %d\n%.2000s", sent.status, sent.body)
	}
	pages["sent"] = sent.body
	ms := f.mails()
	if len(ms) != 1 || !strings.HasPrefix(ms[0].Message.Subject, "[") {
		t.Fatalf("want one reset mail in en-XA, got %+v", ms)
	}
	for _, line := range strings.Split(ms[0].Message.Text, "\n") {
		if left := untranslated(t, "<p>"+line+"</p>", append(allow, f.srv.URL)...); len(left) > 0 && !strings.Contains(line, "/recover/reset?") {
			t.Errorf("reset mail: untranslated %q", left)
		}
	}
	link := linkIn(t, f, ms[0], "/recover/reset?")
	token := tokenOf(t, link)
	pages["factor"] = b.get(link).body
	pages["wrong code"] = b.resetCode(token, "totp", f.wrongTOTP(secret)).body
	if got := b.resetCode(token, "totp", f.totp(secret)); got.status != http.StatusSeeOther {
		t.Fatalf("the code: %d %s\n%.2000s", got.status, got.location, got.body)
	}
	pages["password"] = b.get(link).body
	pages["done"] = b.newPassword(token, newPass).body
	pages["used link"] = b.get(link).body
	for name, body := range pages {
		if !strings.Contains(body, `<html lang="en-XA"`) {
			t.Errorf("%s: not in en-XA:\n%.1500s", name, body)
		}
		if left := untranslated(t, body, allow...); len(left) > 0 {
			t.Errorf("%s: untranslated %q", name, left)
		}
	}
}

// A saved language: the next portal page speaks it, and so does a
// sign-in page at a browser asking for French; a sign-in's ui_locales
// still wins over it. The change is audited.
func TestSavedLanguageWinsOverTheBrowser(t *testing.T) {
	f := newFixture(t)
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	b.lang = "fr-FR,fr;q=0.9"
	f.signIn(b, alice, alicePass)
	if home := f.portalHome(b); !strings.Contains(home, `<html lang="fr"`) {
		t.Fatalf("before saving, the portal follows the browser (fr):\n%.1500s", home)
	}
	got := b.post("/account/language", url.Values{"locale": {"de"}})
	if got.status != http.StatusSeeOther || got.location != "/account?notice=language" {
		t.Fatalf("saving de: %d %q\n%.2000s", got.status, got.location, got.body)
	}
	if u := f.user(aliceID); u.Locale != "de" {
		t.Fatalf("stored locale %q, want de", u.Locale)
	}
	ev := f.audit(storage.EventAccountLocaleChanged)
	if len(ev) != 1 || ev[0].Details["locale"] != "de" || ev[0].Details["previous"] != "" || ev[0].ActorID != aliceID {
		t.Fatalf("audit: %+v", ev)
	}
	home := b.get("/account?notice=language")
	if !strings.Contains(home.body, `<html lang="de"`) || !says(home.body, "Ihre Sprache ist gespeichert.") || !says(home.body, `<option value="de" lang="de" selected>Deutsch</option>`) {
		t.Fatalf("the next page is not German:\n%.3000s", home.body)
	}
	// A step-up at the same browser: the session's saved language beats
	// Accept-Language: fr.
	id := f.request(b, appClient, acrValues(acrMFA))
	if p := b.open(id); !hasForm(p.body, "/login/otp") || !strings.Contains(p.body, `<html lang="de"`) {
		t.Fatalf("step-up with a saved language de and Accept-Language fr: want German\n%.2000s", p.body)
	}
	// ui_locales of the sign-in beats the saved language.
	id = f.request(b, appClient, acrValues(acrMFA), func(ar *authRequest) { ar.UILocales = []string{"es"} })
	if p := b.open(id); !hasForm(p.body, "/login/otp") || !strings.Contains(p.body, `<html lang="es"`) {
		t.Fatalf("ui_locales=es: want Spanish\n%.2000s", p.body)
	}
	_ = secret
	// Automatic again: the browser decides.
	if got := b.post("/account/language", url.Values{"locale": {""}}); got.status != http.StatusSeeOther {
		t.Fatalf("saving Automatic: %d", got.status)
	}
	if u := f.user(aliceID); u.Locale != "" {
		t.Fatalf("stored locale %q after Automatic", u.Locale)
	}
	if home := f.portalHome(b); !strings.Contains(home, `<html lang="fr"`) {
		t.Fatalf("Automatic: want the browser's French:\n%.1500s", home)
	}
}

// A language not offered (or a pseudo-locale, or a regional variant) is
// refused with 400, and nothing is stored or audited.
func TestSavingAnUnknownLanguageChangesNothing(t *testing.T) {
	f := newFixture(t, withPseudoLocales(t))
	b := f.browser()
	f.signIn(b, alice, alicePass)
	for _, v := range []string{"xx", "en-XA", "de-CH", "DE", "de ", "<script>"} {
		got := b.post("/account/language", url.Values{"locale": {v}})
		if got.status != http.StatusBadRequest || !says(got.body, "That language isn't offered") {
			t.Errorf("locale %q: %d %q\n%.1500s", v, got.status, got.location, got.body)
		}
	}
	if u := f.user(aliceID); u.Locale != "" {
		t.Errorf("stored locale %q after refusals", u.Locale)
	}
	if ev := f.audit(storage.EventAccountLocaleChanged); len(ev) != 0 {
		t.Errorf("audited: %+v", ev)
	}
}

// A reset mail is in the recipient's saved language whatever the browser
// that asked for it speaks; without one, in English: anyone may ask for
// a reset link, and the asker must not choose the language of a warning
// to someone else.
func TestResetMailSpeaksTheRecipientsLanguage(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	f.verify(bobID, bobMail)
	u := f.user(aliceID)
	u.Locale = "fr"
	if err := f.store.UpdateUser(f.ctx(), u); err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	b.lang = "de"
	if got := b.post("/recover", url.Values{"account": {alice}}); got.status != http.StatusOK || !says(got.body, "Prüfen Sie Ihre E-Mails") {
		t.Fatalf("asking from a German browser: %d\n%.1500s", got.status, got.body)
	}
	ms := f.mails()
	if len(ms) != 1 || ms[0].Message.Subject != "Réinitialisez votre mot de passe Keystep" || !strings.Contains(ms[0].Message.Text, "Bonjour alice,") ||
		!strings.Contains(ms[0].Message.HTML, `<html lang="fr"`) || !strings.Contains(ms[0].Message.Text, "02/03/2026 09:00 UTC") {
		t.Fatalf("saved fr: want a French mail, got %+v", ms)
	}
	b.lang = "es-ES,es;q=0.9"
	b.post("/recover", url.Values{"account": {bob}})
	if ms = f.mails(); len(ms) != 1 || ms[0].Message.Subject != "Reset your Keystep password" {
		t.Fatalf("no saved language, asked from a Spanish browser: want English, got %+v", ms)
	}
	// Saved es: Spanish, with its words for the link's lifetime.
	if err := f.store.SetUserLocale(f.ctx(), bobID, "es"); err != nil {
		t.Fatal(err)
	}
	b.lang = ""
	b.post("/recover", url.Values{"account": {bob}})
	ms = f.mails()
	if len(ms) != 1 || ms[0].Message.Subject != "Restablece tu contraseña de Keystep" || !strings.Contains(ms[0].Message.Text, "Hola, bob:") ||
		!strings.Contains(ms[0].Message.Text, "15 minutos") {
		t.Fatalf("saved es: want a Spanish mail, got %+v", ms)
	}
}
