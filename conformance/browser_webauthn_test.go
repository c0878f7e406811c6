package conformance

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/storage"
)

// Passkeys and security keys, as people use them: Chromium's virtual
// authenticators (CDP WebAuthn domain) stand in for a laptop's platform
// authenticator and for a USB security key, and the real pages and
// static/webauthn.js run the ceremonies. The issuer is http://localhost:PORT:
// WebAuthn needs a host name (not 127.0.0.1), and localhost is a secure
// context. Every ID token is checked through the real RP, as in
// browser_test.go.

const (
	acrPHR  = "phr"
	acrPHRH = "phrh"

	passkeyError = "[data-passkey-step] [data-passkey-error]"
)

// authenticator is one virtual authenticator in the test's tab.
type authenticator struct {
	c  *tab
	id cdpwebauthn.AuthenticatorID
}

func (c *tab) addAuthenticator(o cdpwebauthn.VirtualAuthenticatorOptions) *authenticator {
	c.t.Helper()
	return &authenticator{c: c, id: c.AddAuthenticator(o)}
}

// credential is the authenticator's credential for userID.
func (a *authenticator) credential(userID string) *cdpwebauthn.Credential {
	a.c.t.Helper()
	creds := a.credentials()
	for _, cr := range creds {
		if string(cr.UserHandle) == userID {
			return cr
		}
	}
	a.c.t.Fatalf("the authenticator holds no credential for %s (%d credentials)", userID, len(creds))
	return nil
}

// setSignCount winds the credential's signature counter back, as a copy
// of the key made earlier would have it.
func (a *authenticator) setSignCount(credID []byte, n float64) {
	a.c.t.Helper()
	a.c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpwebauthn.SetCredentialProperties, cdpwebauthn.SetCredentialPropertiesParams{AuthenticatorID: a.id, CredentialID: credID, SignCount: &n})
		return err
	}))
}

// clearUV makes the authenticator's answers say the user was not
// verified (the UV bit of the signed authenticator data is cleared).
func (a *authenticator) clearUV(on bool) {
	a.c.t.Helper()
	a.c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpwebauthn.SetResponseOverrideBits, cdpwebauthn.SetResponseOverrideBitsParams{AuthenticatorID: a.id, IsBadUV: &on})
		return err
	}))
}

// failUV makes user verification fail on the authenticator, as a wrong
// fingerprint or a dismissed prompt does.
func (a *authenticator) failUV(fail bool) {
	a.c.t.Helper()
	a.c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: a.id, IsUserVerified: !fail})
		return err
	}))
}

// passkeyProblem waits for the passkey error box and returns its text.
func (c *tab) passkeyProblem(sel string) string {
	c.t.Helper()
	c.WaitFor(fmt.Sprintf(`(function () { var e = document.querySelector(%q); return !!e && !e.hidden && e.textContent !== ""; })()`, sel))
	c.refusedOnPurpose()
	return chrome.Eval[string](c.Browser, fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
}

// refusedOnPurpose drops the console's "Failed to load resource" lines for
// the passkey endpoints, after a test made the server refuse a request.
func (c *tab) refusedOnPurpose() {
	c.DropProblems(func(p string) bool {
		return strings.Contains(p, "Failed to load resource") && strings.Contains(p, "/login/webauthn/")
	})
}

// portalSignIn opens the account portal and signs in with the password.
func (c *tab) portalSignIn(e *env, user, pass string) {
	c.t.Helper()
	c.Open(e.issuer + "/account")
	c.SignIn(user, pass)
	c.See("Hello, " + user)
}

func (c *tab) signOut() {
	c.t.Helper()
	c.Follow("form[action='/account/signout'] button")
	c.See("You're signed out")
}

// storedCredential is the webauthn credential of a factor, as stored.
type storedCredential struct {
	ID    []byte `json:"id"`
	Flags struct {
		UserVerified   bool `json:"userVerified"`
		BackupEligible bool `json:"backupEligible"`
		BackupState    bool `json:"backupState"`
	} `json:"flags"`
	Authenticator struct {
		SignCount    uint32 `json:"signCount"`
		CloneWarning bool   `json:"cloneWarning"`
		Attachment   string `json:"attachment"`
	} `json:"authenticator"`
}

// passkeys returns the user's WebAuthn factors and their credentials.
func (e *env) passkeys(userID string) ([]storage.Factor, []storedCredential) {
	e.t.Helper()
	fs, err := e.store.ListFactors(context.Background(), userID)
	if err != nil {
		e.t.Fatal(err)
	}
	var keys []storage.Factor
	var creds []storedCredential
	for _, f := range fs {
		if f.Kind != "webauthn" {
			continue
		}
		var c storedCredential
		if err := json.Unmarshal(f.Secret, &c); err != nil {
			e.t.Fatalf("factor %s: %v", f.ID, err)
		}
		keys, creds = append(keys, f), append(creds, c)
	}
	return keys, creds
}

// audits lists the audit events of a type, oldest first.
func (e *env) audits(typ storage.EventType) []storage.AuditEvent {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ, Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func hasAll(list []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(list, w) {
			return false
		}
	}
	return true
}

func hasAny(list []string, unwanted ...string) bool {
	return slices.ContainsFunc(unwanted, func(s string) bool { return slices.Contains(list, s) })
}

// A person adds a passkey in the portal (bootstrap: no second factor yet,
// password entered just now), saves the recovery codes, and then signs in
// to an app with the passkey alone: a user-verified passkey is mfa on its
// own; a synced one says swk and reaches phr, not phrh.
func TestBrowserPasskeyEnrollAndSignIn(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost, coolingOff(time.Minute))
	auth := c.addAuthenticator(chrome.SyncedPasskey)
	r := e.rp(rpClient, e.rpSecret)

	c.Open(e.issuer + "/account")
	c.See("Sign in with a passkey")
	if got := chrome.Eval[string](c.Browser, "document.querySelector('[data-passkey-autofill] input').getAttribute('autocomplete')"); got != "username webauthn" {
		t.Fatalf("the autofill container's field has autocomplete=%q", got)
	}
	c.Look("passkey-signin")
	c.SignIn(alice, alicePass)
	c.See("Hello, alice")
	c.See("Add a passkey or an authenticator app so that a stolen password is not enough to get in.")
	c.Look("passkey-account-none")

	c.Follow(".actions a[href='/account/passkey']")
	c.See("After this you'll get recovery codes")
	c.Look("passkey-add-first")
	c.AddPasskey("Alice's laptop")
	c.See("Your passkey is ready. Save these recovery codes now.")
	if n := chrome.Eval[int](c.Browser, "document.querySelectorAll('ul.codes li code').length"); n != 10 {
		t.Fatalf("%d recovery codes shown after the first passkey", n)
	}
	c.Look("passkey-recovery-codes")

	keys, creds := e.passkeys("u-alice")
	if len(keys) != 1 || keys[0].Name != "Alice's laptop" {
		t.Fatalf("stored passkeys %+v", keys)
	}
	if cr := creds[0]; !cr.Flags.BackupEligible || !cr.Flags.UserVerified {
		t.Fatalf("a synced, user-verifying passkey was stored with flags %+v", cr.Flags)
	}
	if ev := e.lastAudit("factor.enrolled"); ev.Details["factor"] != "webauthn" || ev.Details["bootstrap"] != "true" || ev.Details["device_bound"] != "false" {
		t.Fatalf("enrollment audit %+v", ev)
	}

	c.Follow("a.button.primary[href='/account']")
	c.See("Alice's laptop")
	c.See("Passkey, synced across your devices")
	c.See("not used yet")
	// Added after the password alone, it waits before it counts as
	// phishing-resistant (DESIGN §3.3), and the list says until when.
	c.See("Apps that need your strongest sign-in accept it from")
	c.Look("passkey-account")

	// Adding the passkey added nothing to the session: an app asking for
	// mfa gets the passkey prompt, not a free pass.
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.See("Acme Payroll needs you to confirm it's you")
	if chrome.Eval[int](c.Browser, "document.querySelectorAll('[data-passkey-step]').length") != 1 {
		t.Fatalf("the step-up page does not offer the passkey:\n%s", c.BodyText())
	}

	c.Open(e.issuer + "/account")
	c.signOut()

	// Passwordless: the sign-in page's passkey button, nothing typed.
	a = r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.See("Sign in with a passkey")
	c.Follow(".passkey-alt [data-passkey-button]")
	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrMFA {
		t.Fatalf("a user-verified passkey alone gave acr %q, want %s", tok.claims.ACR, acrMFA)
	}
	if !hasAll(tok.claims.AMR, "pop", "swk", "user", "mfa") || hasAny(tok.claims.AMR, "pwd", "hwk", "otp") {
		t.Fatalf("amr %q, want pop, swk, user and mfa only", tok.claims.AMR)
	}
	if tok.claims.Sub != "u-alice" {
		t.Fatalf("sub %q", tok.claims.Sub)
	}
	if ev := e.lastAudit("stepup.factor"); ev.Outcome != "success" || ev.Details["passwordless"] != "true" || ev.Details["user_verified"] != "true" || ev.Details["device_bound"] != "false" {
		t.Fatalf("passkey audit %+v", ev)
	}

	// Passkey autofill: the username field offers the passkey, and picking
	// it signs in (the virtual authenticator picks it at once).
	c.Open(e.issuer + "/account")
	c.signOut()
	c.Autofill(true)
	a = r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.WaitFor(`location.href.indexOf("` + rpRedirect + `") === 0`)
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrMFA || !hasAll(tok.claims.AMR, "pop", "user") {
		t.Fatalf("autofill sign-in: %+v", tok.claims)
	}
	c.Autofill(false)

	// With no acr asked for, the session's best: while the passkey waits
	// it is mfa. After the cooling-off, signed in with it again from this
	// browser (which signed in before), it becomes phishing-resistant: a
	// synced passkey is phr but not device-bound (phrh).
	a = r.authURL(nil)
	c.Open(a.url)
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("best acr of a waiting passkey: %q, want %s", tok.claims.ACR, acrMFA)
	}
	e.clock.Advance(2 * time.Minute)
	c.Open(e.issuer + "/account")
	c.signOut()
	a = r.authURL(nil)
	c.Open(a.url)
	c.Follow(".passkey-alt [data-passkey-button]")
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrPHR {
		t.Fatalf("best acr of a synced passkey: %q, want %s", tok.claims.ACR, acrPHR)
	}

	// The portal shows when it was last used.
	c.Open(e.issuer + "/account")
	c.See("last used")
	if keys, _ := e.passkeys("u-alice"); keys[0].LastUsedAt.IsZero() {
		t.Fatal("last use not recorded")
	}
	if n := len(auth.credentials()); n != 1 {
		t.Fatalf("the authenticator holds %d credentials", n)
	}

	// Removing it asks first, and needs the level it grants, which this
	// passkey session has. With no second factor left, the recovery codes
	// go too.
	c.Follow("form[action='/account/totp/delete'] button")
	c.mu.Lock()
	asked := slices.Clone(c.dialogs)
	c.mu.Unlock()
	if len(asked) == 0 || !strings.Contains(asked[len(asked)-1], "Remove Alice's laptop?") {
		t.Fatalf("removing did not ask first: %q", asked)
	}
	c.See("The passkey or security key was removed.")
	if keys, _ := e.passkeys("u-alice"); len(keys) != 0 {
		t.Fatalf("still stored: %+v", keys)
	}
	if ev := e.lastAudit("factor.removed"); ev.Details["factor"] != "webauthn" || ev.Details["name"] != "Alice's laptop" {
		t.Fatalf("removal audit %+v", ev)
	}
	if n, _ := e.store.CountRecoveryCodes(context.Background(), "u-alice"); n != 0 {
		t.Fatalf("%d recovery codes left without a second factor", n)
	}
	c.CheckProblems("passkey enroll and sign-in")
}

// credentials lists what the authenticator holds.
func (a *authenticator) credentials() []*cdpwebauthn.Credential {
	a.c.t.Helper()
	var creds []*cdpwebauthn.Credential
	a.c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		res, err := chromedp.Call(ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: a.id})
		creds = res.Credentials
		return err
	}))
	return creds
}

// A user with a password and an authenticator app adds a passkey (the
// portal first asks for the app's code: adding a factor needs the level the
// user can reach, fresh), and then an app asking for phr gets it from the
// password and the passkey. The step-up page offers the passkey first, and
// shows that it is working while the ceremony runs.
func TestBrowserPasskeyStepUpToPHR(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost, coolingOff(time.Minute))
	secret := e.enrollTOTP("u-alice")
	c.addAuthenticator(chrome.DeviceBoundPasskey)
	r := e.rp(rpClient, e.rpSecret)

	c.portalSignIn(e, alice, alicePass)
	c.See("Add a passkey or security key")
	c.Follow("nav a[href='/account/passkey']")
	// The gate: the code page before the passkey page.
	if chrome.Eval[int](c.Browser, "document.querySelectorAll(\"form[action='/login/otp']\").length") != 1 {
		t.Fatalf("adding a passkey did not ask for the authenticator app first; at %s:\n%s", c.Location(), c.BodyText())
	}
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	c.See("Add a passkey or security key")
	c.AddPasskey("Work laptop")
	// Added from a password-and-code session, it signs in at once but
	// waits before it counts as phishing-resistant (DESIGN §3.3).
	c.See("Your passkey is ready, and you can sign in with it now.")
	c.See("Passkey, kept on one device")
	c.Look("passkey-added-pending")
	if _, creds := e.passkeys("u-alice"); len(creds) != 1 || creds[0].Flags.BackupEligible {
		t.Fatalf("stored credentials %+v", creds)
	}
	if ev := e.lastAudit("factor.enrolled"); ev.Details["bootstrap"] != "false" || ev.Details["device_bound"] != "true" {
		t.Fatalf("enrollment audit %+v", ev)
	}
	c.signOut()
	// The cooling-off passes; this browser signed in before.
	e.clock.Advance(2 * time.Minute)

	// The app asks for phr: password, then the passkey (an authenticator
	// app does not reach phr, so it is not offered). This use makes it
	// phishing-resistant.
	a := r.authURL(url.Values{"acr_values": {acrPHR}})
	c.Open(a.url)
	c.SignIn(alice, alicePass)
	c.See("Acme Payroll needs you to confirm it's you")
	c.See("Use a passkey or security key")
	if n := chrome.Eval[int](c.Browser, "document.querySelectorAll(\"details.others a[href*='method=totp']\").length"); n != 0 {
		t.Fatal("the authenticator app is offered for phr")
	}
	c.Look("passkey-stepup-phr")

	// While the ceremony runs, the button says so; the server is slow to
	// answer so that a person (and this test) can see it.
	verify := e.issuer + "/login/webauthn/verify"
	c.mu.Lock()
	c.holds[verify], c.hold = nil, 1500*time.Millisecond
	c.mu.Unlock()
	c.Click(chrome.PasskeyButton)
	c.WaitFor(`document.querySelector("[data-passkey-button]").getAttribute("aria-busy") === "true"`)
	if label := chrome.Eval[string](c.Browser, `document.querySelector("[data-passkey-button]").textContent`); label != "Waiting for your passkey…" {
		t.Fatalf("busy button says %q", label)
	}
	if !chrome.Eval[bool](c.Browser, `document.querySelector("[data-passkey-button]").disabled`) {
		t.Fatal("the busy button can be pressed again")
	}
	c.Snap("passkey-stepup-busy")
	c.WaitFor(`location.href.indexOf("` + rpRedirect + `") === 0`)
	c.mu.Lock()
	sent := len(c.holds[verify])
	delete(c.holds, verify)
	c.hold = 0
	c.mu.Unlock()
	if sent != 1 {
		t.Fatalf("the assertion was sent %d times", sent)
	}
	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrPHR {
		t.Fatalf("acr %q, want %s", tok.claims.ACR, acrPHR)
	}
	if !hasAll(tok.claims.AMR, "pwd", "pop", "hwk", "mfa") || hasAny(tok.claims.AMR, "swk", "otp") {
		t.Fatalf("amr %q, want pwd, pop, hwk and mfa, and no otp or swk", tok.claims.AMR)
	}

	// Signing in again for mfa: the passkey comes first (it does it in one
	// step), the password is another way; after the password, the passkey
	// again comes first, with the authenticator app as another way.
	e.clock.Advance(time.Minute)
	a = r.authURL(url.Values{"acr_values": {acrMFA}, "prompt": {"login"}})
	c.Open(a.url)
	c.See("Use a passkey or security key")
	c.Click("details.others summary")
	c.Follow("details.others a[href*='method=pwd']")
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	c.See("Use a passkey or security key")
	c.Click("details.others summary")
	if n := chrome.Eval[int](c.Browser, "document.querySelectorAll(\"details.others a[href*='method=totp']\").length"); n != 1 {
		t.Fatalf("the authenticator app is not offered as another way:\n%s", c.BodyText())
	}
	c.Look("passkey-stepup-mfa")
	c.Follow(chrome.PasskeyButton)
	tok = r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrMFA || !hasAll(tok.claims.AMR, "pwd", "pop", "hwk") {
		t.Fatalf("claims %+v", tok.claims)
	}
	c.CheckProblems("passkey step-up")
}

// A USB security key without a PIN as the second factor: bootstrap in the
// portal, then password + key. The key is device-bound, so amr says hwk
// and the session reaches phrh; it did not verify the user, so no "user".
func TestBrowserSecurityKeySecondFactor(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost, coolingOff(time.Minute))
	c.addAuthenticator(chrome.USBSecurityKey)
	r := e.rp(rpClient, e.rpSecret)

	c.portalSignIn(e, alice, alicePass)
	c.Follow("nav a[href='/account/passkey']")
	c.AddPasskey("Blue key")
	c.See("Save these recovery codes now")
	_, creds := e.passkeys("u-alice")
	if len(creds) != 1 || creds[0].Flags.BackupEligible || creds[0].Flags.UserVerified || creds[0].Authenticator.Attachment != "cross-platform" {
		t.Fatalf("stored security key %+v", creds)
	}
	c.Follow("a.button.primary[href='/account']")
	c.See("Blue key")
	c.See("Security key")
	c.Look("security-key-account")
	c.signOut()
	e.clock.Advance(2 * time.Minute) // the cooling-off (DESIGN §3.3)

	a := r.authURL(url.Values{"acr_values": {acrPHR}})
	c.Open(a.url)
	c.SignIn(alice, alicePass)
	c.See("Use a passkey or security key")
	c.Look("security-key-stepup")
	c.Follow(chrome.PasskeyButton)
	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrPHR {
		t.Fatalf("acr %q, want %s", tok.claims.ACR, acrPHR)
	}
	if !hasAll(tok.claims.AMR, "pwd", "pop", "hwk", "mfa") || hasAny(tok.claims.AMR, "user", "swk") {
		t.Fatalf("amr %q, want pwd, pop, hwk and mfa, and not user or swk", tok.claims.AMR)
	}

	// The same session is device-bound phishing-resistant: phrh at once.
	a = r.authURL(url.Values{"acr_values": {acrPHRH}})
	c.Open(a.url)
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrPHRH {
		t.Fatalf("acr %q, want %s", tok.claims.ACR, acrPHRH)
	}
	c.CheckProblems("security key")
}

// ceremonyJS runs an assertion for the auth request on the page, as
// webauthn.js does, and returns the body it would post to verify. tamper
// runs on the decoded options (pk) before the authenticator is asked.
const ceremonyJS = `(async function (id) {
  function u2b(s) { s = s.replace(/-/g, "+").replace(/_/g, "/"); while (s.length %% 4) s += "="; var b = atob(s), u = new Uint8Array(b.length); for (var i = 0; i < b.length; i++) u[i] = b.charCodeAt(i); return u.buffer; }
  function b2u(buf) { var u = new Uint8Array(buf), s = ""; for (var i = 0; i < u.length; i++) s += String.fromCharCode(u[i]); return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""); }
  var resp = await fetch("/login/webauthn/options", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: id }) });
  if (!resp.ok) throw new Error("options: " + resp.status + " " + await resp.text());
  var pk = (await resp.json()).publicKey;
  pk.challenge = u2b(pk.challenge);
  (pk.allowCredentials || []).forEach(function (c) { c.id = u2b(c.id); });
  %s
  var cred = await navigator.credentials.get({ publicKey: pk });
  return JSON.stringify({ id: id, credential: {
    id: cred.id, rawId: b2u(cred.rawId), type: cred.type,
    response: { clientDataJSON: b2u(cred.response.clientDataJSON), authenticatorData: b2u(cred.response.authenticatorData),
      signature: b2u(cred.response.signature), userHandle: cred.response.userHandle ? b2u(cred.response.userHandle) : undefined },
    clientExtensionResults: cred.getClientExtensionResults() } });
})(document.querySelector("[data-passkey-step]").getAttribute("data-passkey-step"))`

// assertion runs ceremonyJS on the current page.
func (c *tab) assertion(tamper string) string {
	c.t.Helper()
	body, err := chromedp.Run(c.Context(), chromedp.Evaluate[string](fmt.Sprintf(ceremonyJS, tamper), chromedp.EvalAwaitPromise))
	if err != nil {
		c.t.Fatalf("ceremony: %v", err)
	}
	return body
}

type verifyAnswer struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// postVerify sends a verify body from the page, with the page's cookies.
func (c *tab) postVerify(body string) verifyAnswer {
	c.t.Helper()
	js := fmt.Sprintf(`fetch("/login/webauthn/verify", { method: "POST", headers: { "Content-Type": "application/json" }, body: %q })
  .then(function (r) { return r.text().then(function (t) { return { status: r.status, body: t }; }); })`, body)
	v, err := chromedp.Run(c.Context(), chromedp.Evaluate[verifyAnswer](js, chromedp.EvalAwaitPromise))
	if err != nil {
		c.t.Fatalf("verify: %v", err)
	}
	return v
}

// cookie returns a cookie of the issuer's origin (HttpOnly ones too).
func (c *tab) cookie(issuer, name string) *network.Cookie {
	c.t.Helper()
	var found *network.Cookie
	c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{issuer + "/"}})
		for _, ck := range res.Cookies {
			if ck.Name == name {
				found = ck
			}
		}
		return err
	}))
	return found
}

func (c *tab) setCookie(issuer string, ck *network.Cookie) {
	c.t.Helper()
	c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: ck.Name, Value: ck.Value, URL: issuer + "/", Path: ck.Path, HTTPOnly: &ck.HTTPOnly, SameSite: ck.SameSite})
		return err
	}))
}

// enrollFirstPasskey signs user in to the portal, adds a passkey as their
// first second factor, and signs out. The passkey is then trusted as an
// administrator confirming it would: added after the password alone, it
// would otherwise count as mfa only for a while (DESIGN §3.3;
// review2_assurance_test.go tests that rule).
func (c *tab) enrollFirstPasskey(e *env, user, pass, name string) {
	c.t.Helper()
	c.portalSignIn(e, user, pass)
	c.Open(e.issuer + "/account/passkey")
	c.AddPasskey(name)
	c.See("Save these recovery codes now")
	c.Open(e.issuer + "/account")
	c.signOut()
	u, err := e.store.UserByUsername(context.Background(), user)
	if err != nil {
		c.t.Fatal(err)
	}
	keys, _ := e.passkeys(u.ID)
	for _, k := range keys {
		if err := e.store.TrustFactor(context.Background(), u.ID, k.ID, e.clock.Now()); err != nil && !errors.Is(err, storage.ErrConflict) {
			c.t.Fatal(err)
		}
	}
}

// The ceremony's safety rules, attacked from the browser: a verify body
// replayed is refused (its challenge is spent, with or without the ceremony
// cookie put back); another user's credential does not pass a step-up; a
// signature counter that went backwards blocks the key, is audited once,
// and leaves the key out of what the user can use.
func TestBrowserPasskeyCeremonySafety(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost)
	e.addUser("bob", "bob's long passphrase")
	auth := c.addAuthenticator(chrome.DeviceBoundPasskey)
	r := e.rp(rpClient, e.rpSecret)

	c.enrollFirstPasskey(e, alice, alicePass, "Alice's passkey")
	c.enrollFirstPasskey(e, "bob", "bob's long passphrase", "Bob's passkey")

	_, aliceCreds := e.passkeys("u-alice")
	onlyAlice := fmt.Sprintf(`pk.allowCredentials = [{ type: "public-key", id: u2b(%q) }];`, base64.RawURLEncoding.EncodeToString(aliceCreds[0].ID))

	// Replay. Alice signs in with her passkey; the body is captured, sent
	// once, and sent again.
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	body := c.assertion(onlyAlice)
	ceremony := c.cookie(e.issuer, "ks_webauthn")
	if ceremony == nil {
		t.Fatal("no ceremony cookie after the options request")
	}
	first := c.postVerify(body)
	if first.Status != 200 || !strings.Contains(first.Body, `"redirect"`) {
		t.Fatalf("first verify: %+v", first)
	}
	if again := c.postVerify(body); again.Status != 400 || !strings.Contains(again.Body, "expired") {
		t.Fatalf("replayed verify: %+v", again)
	}
	c.setCookie(e.issuer, ceremony)
	if again := c.postVerify(body); again.Status != 400 || !strings.Contains(again.Body, "expired") {
		t.Fatalf("replayed verify with the ceremony cookie put back: %+v", again)
	}
	c.refusedOnPurpose()
	var redirect struct{ Redirect string }
	_ = json.Unmarshal([]byte(first.Body), &redirect)
	c.Open(e.issuer + redirect.Redirect)
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.Sub != "u-alice" || tok.claims.ACR != acrMFA {
		t.Fatalf("after the replays: %+v", tok.claims)
	}
	c.Open(e.issuer + "/account")
	c.signOut()

	// Another user's credential. Bob signs in with his password; the page
	// is made to ask the authenticator for Alice's credential instead of his.
	a = r.authURL(url.Values{"acr_values": {acrPHR}})
	c.Open(a.url)
	c.SignIn("bob", "bob's long passphrase")
	c.See("Use a passkey or security key")
	forged := c.assertion(onlyAlice)
	if !strings.Contains(forged, `"userHandle":"`+base64.RawURLEncoding.EncodeToString([]byte("u-alice"))+`"`) {
		t.Fatalf("the forged assertion is not Alice's: %s", forged)
	}
	if v := c.postVerify(forged); v.Status != 401 || !strings.Contains(v.Body, "wasn't accepted") {
		t.Fatalf("Alice's credential in Bob's step-up: %+v", v)
	}
	c.refusedOnPurpose()
	if ev := e.lastAudit("stepup.factor"); ev.UserID != "u-bob" || ev.Outcome != "failure" {
		t.Fatalf("audit of the refused assertion: %+v", ev)
	}
	// Bob's own passkey still works for this request.
	c.Open(c.Location())
	c.Follow(chrome.PasskeyButton)
	bobTok := r.mustExchange(c.rpCode(r, a), a)
	if bobTok.claims.Sub != "u-bob" || bobTok.claims.ACR != acrPHR {
		t.Fatalf("Bob after the refused assertion: %+v", bobTok.claims)
	}
	c.Open(e.issuer + "/account")
	c.signOut()

	// The app expects Bob (id_token_hint); Alice's passkey does not sign
	// in to that request, and leaves no session behind.
	hint, _ := bobTok.token.Extra("id_token").(string)
	a = r.authURL(url.Values{"id_token_hint": {hint}})
	c.Open(a.url)
	if v := c.postVerify(c.assertion(onlyAlice)); v.Status != 403 || !strings.Contains(v.Body, "another account") {
		t.Fatalf("Alice's passkey for a request that expects Bob: %+v", v)
	}
	c.refusedOnPurpose()
	if ck := c.cookie(e.issuer, "ks_session"); ck != nil {
		t.Fatal("a refused passkey left a session")
	}

	// A signature counter that went backwards: a copy of Alice's key made
	// before her last sign-in, used in a step-up.
	_, aliceCreds = e.passkeys("u-alice")
	if aliceCreds[0].Authenticator.SignCount == 0 {
		t.Fatal("the stored signature counter did not move")
	}
	auth.setSignCount(auth.credential("u-alice").CredentialID, 0)
	a = r.authURL(url.Values{"acr_values": {acrPHR}})
	c.Open(a.url)
	c.SignIn(alice, alicePass)
	c.Click(chrome.PasskeyButton)
	if msg := c.passkeyProblem(passkeyError); !strings.Contains(msg, "may have been copied") {
		t.Fatalf("message for a cloned key: %q", msg)
	}
	c.Look("passkey-copied")
	regressions := e.audits("factor.sign_count_regression")
	if len(regressions) != 1 || regressions[0].UserID != "u-alice" || regressions[0].Outcome != "denied" {
		t.Fatalf("sign-count audit %+v", regressions)
	}
	if _, creds := e.passkeys("u-alice"); !creds[0].Authenticator.CloneWarning {
		t.Fatal("the credential was not flagged")
	}
	// A blocked key is nothing Alice can use: this request (phr asked
	// for, not required) is not held at a passkey prompt she cannot pass.
	c.Open(c.Location())
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR == acrPHR || tok.claims.Sub != "u-alice" {
		t.Fatalf("with her only key blocked: %+v", tok.claims)
	}
	// Blocked from now on, even with the counter moving forward again,
	// and not flagged (or audited as a regression) a second time.
	c.Open(e.issuer + "/account")
	c.signOut()
	a = r.authURL(nil)
	c.Open(a.url)
	if v := c.postVerify(c.assertion(onlyAlice)); v.Status != 403 || !strings.Contains(v.Body, "has been blocked") {
		t.Fatalf("a blocked key: %+v", v)
	}
	c.refusedOnPurpose()
	if n := len(e.audits("factor.sign_count_regression")); n != 1 {
		t.Fatalf("%d sign-count regressions audited, want 1", n)
	}
	c.portalSignIn(e, alice, alicePass)
	c.Open(e.issuer + "/account")
	c.See("Blocked")
	c.Look("passkey-account-blocked")
	c.CheckProblems("ceremony safety")
}

// User verification is asked for, and enforced, when the level needs it: a
// passwordless sign-in refuses an assertion without UV; so does a step-up
// for a user with no password, where the passkey is the only way. A user
// with a password may use a key without UV toward phr, and amr then has
// no "user".
func TestBrowserPasskeyUserVerification(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost)
	auth := c.addAuthenticator(chrome.DeviceBoundPasskey)
	r := e.rp(rpClient, e.rpSecret)
	c.enrollFirstPasskey(e, alice, alicePass, "Laptop")

	// Passwordless without UV: refused, and said so.
	auth.clearUV(true)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.Click(".passkey-alt [data-passkey-button]")
	if msg := c.passkeyProblem(".passkey-alt [data-passkey-error]"); !strings.Contains(msg, "wasn't accepted") {
		t.Fatalf("passwordless without UV: %q", msg)
	}
	if ev := e.lastAudit("stepup.factor"); ev.Outcome != "failure" {
		t.Fatalf("audit %+v", ev)
	}

	// With a password first, phr needs a WebAuthn factor but not UV.
	c.SignIn(alice, alicePass)
	c.Follow(chrome.PasskeyButton)
	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrMFA || hasAny(tok.claims.AMR, "user") || !hasAll(tok.claims.AMR, "pwd", "pop", "hwk") {
		t.Fatalf("password + key without UV: %+v", tok.claims)
	}
	auth.clearUV(false)
	c.Open(e.issuer + "/account")
	c.signOut()

	// Alice without a password: her passkey is her only way in, so signing
	// in again (prompt=login) needs UV.
	u, err := e.store.UserByID(context.Background(), "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = ""
	if err := e.store.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	a = r.authURL(nil)
	c.Open(a.url)
	c.Follow(".passkey-alt [data-passkey-button]")
	r.mustExchange(c.rpCode(r, a), a)

	e.clock.Advance(time.Minute)
	auth.clearUV(true)
	a = r.authURL(url.Values{"acr_values": {acrMFA}, "prompt": {"login"}})
	c.Open(a.url)
	c.See("Use a passkey or security key")
	c.Click(chrome.PasskeyButton)
	if msg := c.passkeyProblem(passkeyError); !strings.Contains(msg, "wasn't accepted") {
		t.Fatalf("step-up without UV for a user with no password: %q", msg)
	}
	auth.clearUV(false)
	c.Open(c.Location())
	c.Follow(chrome.PasskeyButton)
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrMFA || !hasAll(tok.claims.AMR, "pop", "hwk", "user", "mfa") {
		t.Fatalf("after UV: %+v", tok.claims)
	}
	c.CheckProblems("user verification")
}

// What a person reads when a passkey cannot be used: the ceremony was
// cancelled (the authenticator could not verify them), or the browser has
// no passkeys at all. Each message points to another way.
func TestBrowserPasskeyMessages(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost)
	secret := e.enrollTOTP("u-alice")
	auth := c.addAuthenticator(chrome.DeviceBoundPasskey)
	r := e.rp(rpClient, e.rpSecret)

	// Cancelled on the sign-in page.
	auth.failUV(true)
	a := r.authURL(nil)
	c.Open(a.url)
	c.Click(".passkey-alt [data-passkey-button]")
	if msg := c.passkeyProblem(".passkey-alt [data-passkey-error]"); msg != "The passkey request was cancelled. Try again, or use another way." {
		t.Fatalf("cancelled: %q", msg)
	}
	if busy := chrome.Eval[bool](c.Browser, `document.querySelector(".passkey-alt [data-passkey-button]").disabled`); busy {
		t.Fatal("the button stays busy after a cancel")
	}
	c.Look("passkey-cancelled")
	auth.failUV(false)

	// A browser without WebAuthn: the step-up page says so and the other
	// ways are open.
	c.portalSignIn(e, alice, alicePass)
	c.Open(e.issuer + "/account/passkey")
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	c.AddPasskey("Laptop")
	c.See("Your passkey is ready")
	c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: "delete window.PublicKeyCredential;"})
		return err
	}))
	e.clock.Advance(time.Minute)
	a = r.authURL(url.Values{"acr_values": {acrMFA}, "prompt": {"login"}})
	c.Open(a.url)
	if msg := c.passkeyProblem(passkeyError); msg != "This browser can't use passkeys. Use another way to sign in." {
		t.Fatalf("unsupported: %q", msg)
	}
	if !chrome.Eval[bool](c.Browser, `document.querySelector("details.others").open`) {
		t.Fatal("the other ways are not shown")
	}
	if !chrome.Eval[bool](c.Browser, `document.querySelector("[data-passkey-button]").disabled`) {
		t.Fatal("the passkey button works without passkeys")
	}
	c.Look("passkey-unsupported")
	c.Follow("details.others a[href*='method=pwd']")
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	c.passkeyProblem(passkeyError)
	c.Follow("details.others a[href*='method=totp']")
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("acr %q", tok.claims.ACR)
	}
	c.CheckProblems("passkey messages")
}

// postJSON sends a JSON body as the passkey pages' fetch does.
func (b *browser) postJSON(path string, v any) (int, map[string]any) {
	b.e.t.Helper()
	raw, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, b.e.issuer+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// The passkey endpoints without a browser: the relying party is the
// issuer's host, user verification is required without a session, the
// challenge is bound to the browser and the ceremony, the portal's gate
// holds on the JSON endpoints too, and an issuer on an IP address has no
// passkeys at all. Nothing here needs Chromium.
func TestPasskeyEndpoints(t *testing.T) {
	t.Run("an IP-address issuer has no passkeys", func(t *testing.T) {
		e := newEnv(t)
		b := e.browser()
		r := e.rp(rpClient, e.rpSecret)
		p := b.get(r.authURL(nil).url)
		if strings.Contains(p.body, "data-passkey") || strings.Contains(p.body, "webauthn.js") {
			t.Fatal("the sign-in page offers passkeys on an IP-address issuer")
		}
		if status, out := b.postJSON("/login/webauthn/options", map[string]string{"id": p.hidden("id")}); status != http.StatusNotFound || out["error"] == nil {
			t.Fatalf("options: %d %v", status, out)
		}
	})

	e := newEnv(t, onLocalhost)
	e.addUser("bob", "bob's long passphrase")
	e.enrollTOTP("u-bob")
	r := e.rp(rpClient, e.rpSecret)

	t.Run("sign-in options name the issuer and require user verification", func(t *testing.T) {
		b := e.browser()
		p := b.get(r.authURL(nil).url)
		if !strings.Contains(p.body, `data-passkey-step="`+p.hidden("id")+`"`) || !strings.Contains(p.body, `data-passkey-autofill="`) || !strings.Contains(p.body, `src="/static/webauthn.js"`) {
			t.Fatalf("the sign-in page lacks the passkey wiring:\n%.3000s", p.body)
		}
		status, out := b.postJSON("/login/webauthn/options", map[string]string{"id": p.hidden("id")})
		pk, _ := out["publicKey"].(map[string]any)
		if status != http.StatusOK || pk["rpId"] != "localhost" || pk["userVerification"] != "required" || pk["challenge"] == "" {
			t.Fatalf("options: %d %v", status, out)
		}
		if allow, _ := pk["allowCredentials"].([]any); len(allow) != 0 {
			t.Fatalf("passwordless options list credentials: %v", allow)
		}
		// The challenge is bound to this browser's request.
		if status, _ := e.browser().postJSON("/login/webauthn/options", map[string]string{"id": p.hidden("id")}); status != http.StatusForbidden {
			t.Fatalf("options from another browser: %d", status)
		}
		// A made-up assertion is refused; the challenge it was for is then
		// spent, so a second try needs new options.
		bogus := map[string]any{"id": p.hidden("id"), "credential": map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key",
			"response": map[string]string{"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA"}}}
		if status, out := b.postJSON("/login/webauthn/verify", bogus); status != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(out["error"]), "wasn't accepted") {
			t.Fatalf("bogus assertion: %d %v", status, out)
		}
		if status, out := b.postJSON("/login/webauthn/verify", bogus); status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "expired") {
			t.Fatalf("second try on a spent challenge: %d %v", status, out)
		}
		if ev := e.lastAudit("stepup.factor"); ev.Outcome != "failure" || ev.Details["factor"] != "webauthn" {
			t.Fatalf("audit %+v", ev)
		}
	})

	t.Run("the portal's gate holds on the JSON endpoints", func(t *testing.T) {
		anon := e.browser()
		if status, _ := anon.postJSON("/account/passkey/options", map[string]string{}); status != http.StatusUnauthorized {
			t.Fatalf("options without a session: %d", status)
		}
		// Bob has an authenticator app, so adding a passkey needs mfa,
		// not just the password.
		bob := e.browser()
		p := bob.get(e.issuer + "/account")
		bob.signIn(p, "bob", "bob's long passphrase")
		if status, out := bob.postJSON("/account/passkey/options", map[string]string{}); status != http.StatusForbidden {
			t.Fatalf("bob's options at sfa: %d %v", status, out)
		}
		// Alice has no second factor: bootstrap, with the issuer as RP.
		alice := e.browser()
		alice.portalLogin()
		status, out := alice.postJSON("/account/passkey/options", map[string]string{})
		pk, _ := out["publicKey"].(map[string]any)
		rpEntity, _ := pk["rp"].(map[string]any)
		user, _ := pk["user"].(map[string]any)
		if status != http.StatusOK || rpEntity["id"] != "localhost" || user["id"] != base64.RawURLEncoding.EncodeToString([]byte("u-alice")) {
			t.Fatalf("alice's options: %d %v", status, out)
		}
		// Each challenge is bound to its ceremony: the registration's does
		// not verify a sign-in, and a sign-in's does not add a passkey.
		e.clock.Advance(time.Second) // prompt=login: factors from before the request do not count
		p = alice.get(r.authURL(url.Values{"prompt": {"login"}}).url)
		id := p.hidden("id")
		if id == "" {
			t.Fatalf("no sign-in page: %d %s %v", p.status, p.url, p.redirect)
		}
		bogus := map[string]any{"id": id, "credential": map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key",
			"response": map[string]string{"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA"}}}
		if status, out := alice.postJSON("/login/webauthn/verify", bogus); status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "expired") {
			t.Fatalf("a sign-in verified on the registration's challenge: %d %v", status, out)
		}
		if status, _ := alice.postJSON("/login/webauthn/options", map[string]string{"id": id}); status != http.StatusBadRequest {
			// Alice has no passkey yet, so there is nothing to sign in with.
			t.Fatalf("options for a user without passkeys: %d", status)
		}
		if status, _ := alice.postJSON("/account/passkey/options", map[string]string{}); status != http.StatusOK {
			t.Fatalf("options again: %d", status)
		}
		other := e.browser()
		other.portalLogin()
		for _, c := range alice.client.Jar.Cookies(mustParse(t, e.issuer)) {
			if c.Name == "ks_webauthn" {
				other.client.Jar.SetCookies(mustParse(t, e.issuer), []*http.Cookie{c})
			}
		}
		reg := map[string]any{"name": "Stolen", "credential": map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key",
			"response": map[string]string{"clientDataJSON": "e30", "attestationObject": "oA"}}}
		if status, out := other.postJSON("/account/passkey/verify", reg); status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "expired") {
			t.Fatalf("alice's registration challenge in another session: %d %v", status, out)
		}
	})
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
