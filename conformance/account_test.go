package conformance

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// portalLogin signs the browser in through the account portal.
func (b *browser) portalLogin() page {
	b.e.t.Helper()
	p := b.get(b.e.issuer + "/account")
	p = b.signIn(p, alice, alicePass)
	if !strings.Contains(p.body, "Hello, alice") {
		b.e.t.Fatalf("portal did not open after sign-in: %d %s\n%.2000s", p.status, p.url, p.body)
	}
	return p
}

var secretRE = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)

// Bootstrap (DESIGN §3.3): no second factor yet, password entered in the
// last 10 minutes → the first authenticator app can be added, and recovery
// codes are shown once.
func TestPortalBootstrapFirstFactor(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.portalLogin()
	p := b.get(e.issuer + "/account/totp")
	m := secretRE.FindStringSubmatch(p.body)
	if m == nil || !strings.Contains(p.body, "otpauth://totp/") || !strings.Contains(p.body, "data:image/png;base64,") {
		t.Fatalf("enrollment page lacks secret, link or QR:\n%.3000s", p.body)
	}
	// A wrong code does not enroll.
	bad := b.post("/account/totp", url.Values{"code": {"000000"}, "name": {"Phone"}})
	if bad.status != 400 {
		t.Fatalf("wrong code: %d", bad.status)
	}
	code, _ := factor.TOTPCode(m[1], e.clock.Now())
	p = b.post("/account/totp", url.Values{"code": {code}, "name": {"Phone"}})
	if n := strings.Count(p.body, "<li><code>"); n != 10 {
		t.Fatalf("%d recovery codes shown, want 10:\n%.3000s", n, p.body)
	}
	fs, _ := e.store.ListFactors(context.Background(), "u-alice")
	if len(fs) != 1 || fs[0].Name != "Phone" {
		t.Fatalf("factors %+v", fs)
	}
	// The code that confirmed enrollment is spent.
	if err := e.store.UseTOTPStep(context.Background(), "u-alice", factor.TOTPStep(e.clock.Now()), e.clock.Now()); err == nil {
		t.Fatal("the enrollment code's step was not marked used")
	}
	// Enrolling added nothing to the session: the RP asking for mfa still
	// gets the code page, not a free pass.
	r := e.rp(rpClient, e.rpSecret)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	if p := b.get(a.url); !p.has("/login/otp") {
		t.Fatalf("enrollment satisfied a step-up: %+v", p.redirect)
	}
}

// Bootstrap needs a password entered in the last 10 minutes.
func TestPortalBootstrapNeedsFreshPassword(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.portalLogin()
	e.clock.Advance(11 * time.Minute)
	p := b.get(e.issuer + "/account/totp")
	if secretRE.MatchString(p.body) || !p.has("/login/password") {
		t.Fatalf("enrollment without a fresh password: %d\n%.2000s", p.status, p.body)
	}
	p = b.signIn(p, alice, alicePass)
	if !secretRE.MatchString(p.body) {
		t.Fatalf("no enrollment page after re-entering the password:\n%.2000s", p.body)
	}
}

// With a second factor, a password-only session can neither add, replace
// nor remove one: the portal asks for the existing factor first.
func TestPortalChangesNeedTheFactorsLevel(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	b := e.browser()
	b.portalLogin()

	p := b.get(e.issuer + "/account/totp")
	if secretRE.MatchString(p.body) || !p.has("/login/otp") {
		t.Fatalf("add with a password-only session: %d\n%.2000s", p.status, p.body)
	}
	p = b.post("/account/totp", url.Values{"code": {"123456"}})
	if fs, _ := e.store.ListFactors(context.Background(), "u-alice"); len(fs) != 1 {
		t.Fatalf("a factor was added: %d", len(fs))
	}
	p = b.post("/account/totp/delete", url.Values{"factor": {"f-u-alice"}})
	if fs, _ := e.store.ListFactors(context.Background(), "u-alice"); len(fs) != 1 {
		t.Fatal("a factor was removed with a password-only session")
	}
	p = b.post("/account/recovery", nil)
	if n, _ := e.store.CountRecoveryCodes(context.Background(), "u-alice"); n != 0 {
		t.Fatal("recovery codes were made with a password-only session")
	}
	// After the step-up with the existing app, removal works.
	p = b.get(e.issuer + "/account/totp")
	p = b.submitCode(p, "/login/otp", e.totp(secret))
	if !secretRE.MatchString(p.body) {
		t.Fatalf("no enrollment page after step-up:\n%.2000s", p.body)
	}
	b.post("/account/totp/delete", url.Values{"factor": {"f-u-alice"}})
	if fs, _ := e.store.ListFactors(context.Background(), "u-alice"); len(fs) != 0 {
		t.Fatal("removal after step-up failed")
	}
	// And the change is in the user's activity.
	home := b.get(e.issuer + "/account")
	if !strings.Contains(home.body, "Removed a way to sign in") {
		t.Fatalf("activity does not show the removal:\n%.3000s", home.body)
	}
}

// A pending step-up cannot be satisfied by enrolling: the portal refuses to
// enroll for a user who has a factor, and enrollment never adds to the session.
func TestEnrollingCannotSatisfyPendingStepUp(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	pending := b.get(a.url)
	if !pending.has("/login/otp") {
		t.Fatal("no step-up")
	}
	// The attacker with the password tries to add their own app instead.
	p := b.get(e.issuer + "/account/totp")
	if secretRE.MatchString(p.body) {
		t.Fatal("portal offered enrollment to a password-only session of a user with a second factor")
	}
	// The pending request is still pending: the callback gives no code.
	cb := b.get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(pending.hidden("id")))
	if cb.redirect != nil && cb.redirect.Query().Get("code") != "" {
		t.Fatal("code issued")
	}
}

func TestPortalPasswordChange(t *testing.T) {
	e := newEnv(t)
	other := e.browser()
	other.portalLogin()
	b := e.browser()
	b.portalLogin()
	p := b.post("/account/password", url.Values{"new_password": {"short"}, "confirm_password": {"short"}})
	if p.status != 400 {
		t.Fatalf("short password: %d", p.status)
	}
	p = b.post("/account/password", url.Values{"new_password": {"a much better passphrase"}, "confirm_password": {"a much better passphrase"}})
	if !strings.Contains(p.body, "Your password was changed") {
		t.Fatalf("no confirmation:\n%.2000s", p.body)
	}
	// The other browser is signed out.
	if p := other.get(e.issuer + "/account"); strings.Contains(p.body, "Hello, alice") {
		t.Fatal("the other session survived a password change")
	}
	// The new password works, the old does not.
	b3 := e.browser()
	p = b3.signIn(b3.get(e.issuer+"/account"), alice, alicePass)
	if strings.Contains(p.body, "Hello, alice") {
		t.Fatal("old password still works")
	}
	p = b3.signIn(p, alice, "a much better passphrase")
	if !strings.Contains(p.body, "Hello, alice") {
		t.Fatal("new password does not work")
	}
}

func TestSetupLinkCreatesFirstAdminOnce(t *testing.T) {
	e := newEnvNoUsers(t)
	link, err := setupLink(e)
	if err != nil || link == "" {
		t.Fatalf("link %q %v", link, err)
	}
	u, _ := url.Parse(link)
	b := e.browser()
	p := b.get(link)
	if !p.has("/setup") {
		t.Fatalf("no setup form:\n%s", p.body)
	}
	p = b.post("/setup", url.Values{"token": {u.Query().Get("token")}, "username": {"root"}, "password": {"a long admin passphrase"}})
	users, _ := e.store.ListUsers(context.Background())
	if len(users) != 1 || !users[0].Admin || users[0].Username != "root" {
		t.Fatalf("users %+v", users)
	}
	p = e.browser().post("/setup", url.Values{"token": {u.Query().Get("token")}, "username": {"evil"}, "password": {"a long admin passphrase"}})
	if p.status != 404 {
		t.Fatalf("second setup: %d", p.status)
	}
}

// Removing the last phishing-resistant factor while an app requires phr
// warns the user and needs a phr session.
func TestRemovingTheLastPasskeyWarnsAndNeedsPHR(t *testing.T) {
	e := newEnv(t, onLocalhost)
	e.addClient(storage.Client{ID: "bank", Name: "Acme Bank", SecretHash: factor.HashToken("x"), RedirectURIs: []string{rpRedirect},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, MinACR: "phr", FirstParty: true})
	e.enrollTOTP("u-alice")
	cred := `{"id":"AQID","publicKey":"pQECAyYgASFYIA","flags":{"userPresent":true,"userVerified":true,"backupEligible":false},"authenticator":{"signCount":3}}`
	if err := e.store.CreateFactor(context.Background(), storage.Factor{ID: "key1", UserID: "u-alice", Kind: "webauthn", Name: "YubiKey", Secret: []byte(cred), CreatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	home := b.portalLogin()
	if !strings.Contains(home.body, "Acme Bank needs one to let you in") {
		t.Fatalf("no warning on the last key:\n%.3000s", home.body)
	}
	p := b.post("/account/totp/delete", url.Values{"factor": {"key1"}})
	if fs, _ := e.store.ListFactors(context.Background(), "u-alice"); len(fs) != 2 {
		t.Fatal("the last passkey was removed without a phr session")
	}
	if strings.Contains(p.body, "Hello, alice") || !strings.Contains(p.body, "data-passkey") {
		t.Fatalf("removal did not ask for the passkey: %d %v %s\n%.2000s", p.status, p.redirect, p.url, p.body)
	}
}

// Where passkeys are off (an IP-address issuer), a user's passkey is not
// offered: the step-up falls back to what can be completed.
func TestPasskeysOffFallsBackToOtherFactors(t *testing.T) {
	e := newEnv(t) // http://127.0.0.1:PORT: WebAuthn needs a host name
	e.enrollTOTP("u-alice")
	cred := `{"id":"AQID","publicKey":"pQECAyYgASFYIA","flags":{"userPresent":true,"userVerified":true,"backupEligible":false},"authenticator":{"signCount":3}}`
	if err := e.store.CreateFactor(context.Background(), storage.Factor{ID: "key1", UserID: "u-alice", Kind: "webauthn", Name: "YubiKey", Secret: []byte(cred), CreatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	p := b.get(r.authURL(url.Values{"acr_values": {acrMFA}}).url)
	if p.status != 200 || !p.has("/login/otp") {
		t.Fatalf("want the code page, got %d", p.status)
	}
}
