package login_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// Issue 24, item 1: every text of the sign-in and step-up pages comes
// from the catalogs. Each page is opened in the en-XA pseudo-locale, in
// which every translated text is bracketed; what is left outside brackets
// is data (a username, an app's name, the product's name) or a text that
// was never translated.

// pseudo is what the pages may show untranslated: the fixture's people and
// apps, and the product's name.
var pseudo = []string{"Keystep", "Acme Payroll", "Acme HR", "Acme Shop", alice, bob}

// speaksPseudo fails t when page r, which must be want (a form's action or
// a text), shows a text not in the pseudo-locale.
func speaksPseudo(t *testing.T, page string, r response, status int, form string) {
	t.Helper()
	if r.status != status || form != "" && !hasForm(r.body, form) {
		t.Fatalf("%s: want %d with a form to %q, got %d %q\n%.3000s", page, status, form, r.status, r.location, r.body)
	}
	if !strings.Contains(r.body, `<html lang="en-XA" dir="ltr">`) {
		t.Fatalf("%s: not in en-XA:\n%.1000s", page, r.body)
	}
	if left := untranslated(t, r.body, pseudo...); len(left) > 0 {
		t.Errorf("%s: untranslated: %q", page, left)
	}
}

// pseudoBrowser is a browser that asks for en-XA.
func pseudoBrowser(f *fixture) *browser {
	b := f.browser()
	b.lang = "en-XA"
	return b
}

func TestSignInPagesSpeakThePseudoLocale(t *testing.T) {
	t.Run("password page of a known user, and its problem", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t))
		b := pseudoBrowser(f)
		f.signIn(b, alice, alicePass)
		f.clock.Advance(time.Minute)
		id := f.request(b, appClient, prompt("login"))
		speaksPseudo(t, "password page", b.open(id), http.StatusOK, "/login/password")
		speaksPseudo(t, "wrong password", b.password(id, alice, "not it at all"), http.StatusUnauthorized, "/login/password")
	})
	t.Run("sign-in page with passkeys and another person's session", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t), withPasskeys(t))
		b := pseudoBrowser(f)
		f.signIn(b, alice, alicePass)
		r := b.open(f.request(b, appClient, loginHint(bob)))
		speaksPseudo(t, "sign-in page", r, http.StatusOK, "/login/password")
		if !strings.Contains(r.body, "data-passkey-button") || !strings.Contains(r.body, `role="status"`) {
			t.Fatalf("want the passkey button and the switch notice:\n%.3000s", r.body)
		}
	})
	t.Run("code page of a step-up for risk, with the other ways", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t), suspicious(t, elsewhereIP))
		f.enrollTOTP(aliceID)
		f.recoveryCodes(aliceID)
		b := pseudoBrowser(f)
		f.signIn(b, alice, alicePass)
		f.clock.Advance(time.Minute)
		b.ip = elsewhereIP
		id := f.request(b, appClient)
		r := b.open(id)
		speaksPseudo(t, "code page", r, http.StatusOK, "/login/otp")
		// The risk engine's reason, in the page's language.
		cats, err := i18n.Load(i18n.Options{Pseudo: true})
		if err != nil {
			t.Fatal(err)
		}
		if reason := cats.Printer(i18n.PseudoAccented).T(risk.Reason(risk.IPSuspicious)); !says(r.body, reason) {
			t.Errorf("the risk reason %q is not on the page:\n%.3000s", reason, r.body)
		}
		speaksPseudo(t, "wrong code", b.code("/login/otp", id, "000000"), http.StatusUnauthorized, "/login/otp")
	})
	t.Run("passkey page", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t), withPasskeys(t))
		if err := f.store.CreateFactor(f.ctx(), storage.Factor{ID: "pk-alice", UserID: aliceID, Kind: storage.FactorWebAuthn, Name: "Key",
			Secret: []byte(`{"flags":{"userVerified":true}}`), CreatedAt: t0, TrustedAt: t0}); err != nil {
			t.Fatal(err)
		}
		b := pseudoBrowser(f)
		f.signIn(b, alice, alicePass)
		r := b.open(f.request(b, appClient, acrValues(acrPHR)))
		speaksPseudo(t, "passkey page", r, http.StatusOK, "")
		if !strings.Contains(r.body, "data-passkey-step") {
			t.Fatalf("want the passkey step:\n%.3000s", r.body)
		}
	})
	t.Run("recovery-code page", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t), suspicious(t, elsewhereIP))
		f.enrollTOTP(aliceID)
		f.recoveryCodes(aliceID)
		b := pseudoBrowser(f)
		f.signIn(b, alice, alicePass)
		f.clock.Advance(time.Minute)
		b.ip = elsewhereIP
		id := f.request(b, appClient)
		speaksPseudo(t, "recovery page", b.get("/login?id="+url.QueryEscape(id)+"&method=recovery"), http.StatusOK, "/login/recovery")
	})
	t.Run("consent page", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t))
		b := pseudoBrowser(f)
		f.signIn(b, alice, alicePass)
		r := b.open(f.request(b, shopClient, scopes("openid", "profile", "email", "offline_access")))
		speaksPseudo(t, "consent page", r, http.StatusOK, "/login/consent")
	})
	t.Run("account choice", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t))
		b := pseudoBrowser(f)
		f.signIn(b, alice, alicePass)
		speaksPseudo(t, "select_account", b.open(f.request(b, appClient, prompt("select_account"))), http.StatusOK, "/login/select")
	})
	t.Run("enroll during step-up, and its steps", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t), withPasskeys(t), enrollAt(mfaClient))
		b := pseudoBrowser(f)
		id := f.stepUpTo(b, mfaClient)
		r := b.open(id)
		speaksPseudo(t, "enroll page", r, http.StatusOK, "/login/enroll/back")
		if !strings.Contains(r.body, "data-passkey-register") || !strings.Contains(r.body, "/login/enroll/totp?id=") {
			t.Fatalf("want both ways offered:\n%.3000s", r.body)
		}
		setup := b.get("/login/enroll/totp?id=" + url.QueryEscape(id))
		speaksPseudo(t, "enroll_totp page", setup, http.StatusOK, "/login/enroll/totp")
		m := secretRE.FindStringSubmatch(setup.body)
		if m == nil {
			t.Fatalf("no secret on the setup page:\n%.3000s", setup.body)
		}
		speaksPseudo(t, "wrong code", b.post("/login/enroll/totp", url.Values{"id": {id}, "code": {f.wrongTOTP(m[1])}}), http.StatusBadRequest, "/login/enroll/totp")
		speaksPseudo(t, "enroll_codes page", b.post("/login/enroll/totp", url.Values{"id": {id}, "code": {f.totp(m[1])}, "name": {"Phone"}}), http.StatusOK, "")
	})
	t.Run("out of reach", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t))
		b := pseudoBrowser(f)
		speaksPseudo(t, "can't continue page", b.open(f.stepUpTo(b, mfaClient)), http.StatusOK, "/login/enroll/back")
	})
	t.Run("error page", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t))
		b := pseudoBrowser(f)
		speaksPseudo(t, "expired link", b.open("no-such-request"), http.StatusBadRequest, "")
		speaksPseudo(t, "setup done", b.get("/setup"), http.StatusNotFound, "")
	})
	t.Run("too many attempts", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t), withStuffingLimit(2))
		b := pseudoBrowser(f)
		id := f.request(b, appClient)
		b.password(id, "u1", "not the password")
		b.password(id, "u2", "not the password")
		speaksPseudo(t, "slow down", b.password(id, alice, alicePass), http.StatusTooManyRequests, "")
	})
	t.Run("signed out", func(t *testing.T) {
		f := newFixture(t, withPseudoLocales(t))
		speaksPseudo(t, "logged_out", pseudoBrowser(f).get("/logged-out"), http.StatusOK, "")
	})
}

// TestRecoveryPageCountsInTheLanguage: the codes left are counted with the
// language's plural forms, the numbers in its digits.
func TestRecoveryPageCountsInTheLanguage(t *testing.T) {
	f := newFixture(t, suspicious(t, elsewhereIP))
	f.enrollTOTP(aliceID)
	codes := f.recoveryCodes(aliceID)
	b := f.browser()
	b.lang = "de"
	f.signIn(b, alice, alicePass)
	f.clock.Advance(time.Minute)
	b.ip = elsewhereIP
	id := f.request(b, appClient)
	path := "/login?id=" + url.QueryEscape(id) + "&method=recovery"
	if r := b.get(path); !says(r.body, "Sie haben 10 unbenutzte Codes. Jeder Code funktioniert nur einmal; danach haben Sie noch 9.") {
		t.Fatalf("ten codes in German:\n%.3000s", r.body)
	}
	if err := f.store.ReplaceRecoveryCodes(f.ctx(), aliceID, []string{factor.RecoveryCodeMAC(f.sealer, aliceID, codes[0])}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r := b.get(path); !says(r.body, "Sie haben 1 unbenutzten Code. Jeder Code funktioniert nur einmal; danach haben Sie noch 0.") {
		t.Fatalf("one code in German:\n%.3000s", r.body)
	}
	b.lang = ""
	if r := b.get(path); !says(r.body, "You have 1 unused code. Each code works once; after this you'll have 0 left.") {
		t.Fatalf("one code in English:\n%.3000s", r.body)
	}
}

// TestStepUpReasonsSpeakTheLanguage: the headline, the risk engine's
// reason, the other ways, the cancel label and a wrong code's problem are
// all in the browser's language.
func TestStepUpReasonsSpeakTheLanguage(t *testing.T) {
	f := newFixture(t, suspicious(t, elsewhereIP))
	f.enrollTOTP(aliceID)
	f.recoveryCodes(aliceID)
	b := f.browser()
	b.lang = "fr-FR,fr;q=0.9"
	f.signIn(b, alice, alicePass)
	f.clock.Advance(time.Minute)
	b.ip = elsewhereIP
	id := f.request(b, appClient)
	r := b.open(id)
	for _, want := range []string{
		"Confirmez votre identité",
		"Votre réseau a été signalé par l’administrateur. Pour protéger votre compte, nous avons besoin d’une vérification de plus.",
		"Utiliser un code de récupération",
		"Annuler et revenir à Acme Payroll",
		"Connecté en tant que <strong>alice</strong>",
	} {
		if !says(r.body, want) {
			t.Errorf("the code page in French does not say %q", want)
		}
	}
	r = b.code("/login/otp", id, "000000")
	if !says(r.body, "Ce code n’a pas fonctionné. Vérifiez l’heure de votre téléphone et réessayez.") {
		t.Errorf("a wrong code in French:\n%.3000s", r.body)
	}
}

// TestPasskeyErrorsSpeakTheLanguage: the passkey endpoints answer in JSON
// in the page's language, and the scripts' texts are on the page.
func TestPasskeyErrorsSpeakTheLanguage(t *testing.T) {
	f := newFixture(t, withPasskeys(t))
	b := f.browser()
	b.lang = "es"
	id := f.request(b, appClient)
	r := b.open(id)
	if !says(r.body, `data-msg-signin-cancelled="Se canceló la solicitud de la llave de acceso. Inténtalo de nuevo o usa otro método."`) {
		t.Errorf("the sign-in page does not hold the script's texts in Spanish:\n%.2000s", r.body)
	}
	r = b.postJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": map[string]any{}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "Esta solicitud de llave de acceso ha caducado. Inténtalo de nuevo.") {
		t.Errorf("a verify without a ceremony: %d %s", r.status, r.body)
	}
}
