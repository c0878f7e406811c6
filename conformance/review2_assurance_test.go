package conformance

// Issue 15, the assurance model: the acr claim never says less than was
// enforced (item 5); a phishable session cannot mint phishing resistance
// (design rule A); the first second factor is added only at low risk
// (design rule B). Each test drives a real server through real RPs.

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// Item 5: a client whose minimum is mfa makes the user do mfa; an RP that
// asks for sfa (or lists sfa first) still gets an acr of at least mfa, as
// the RP spelled it when it asked for that level too, else the canonical
// name. Before the fix the token said acr=sfa after the code was demanded.
func TestReview2ACRNeverBelowWhatWasEnforced(t *testing.T) {
	for _, c := range []struct {
		name   string
		params url.Values
		want   string
	}{
		{"acr_values=sfa", url.Values{"acr_values": {acrSFA}}, acrMFA},
		{"acr_values=sfa then the mfa alias", url.Values{"acr_values": {acrSFA + " " + papeMF}}, papeMF},
		{"claims essential acr sfa", url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + acrSFA + `"]}}}`}}, acrMFA},
		{"no acr requested", nil, acrMFA},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			secret := e.enrollTOTP("u-alice")
			e.addClient(storage.Client{ID: "bank", Name: "Bank", SecretHash: factor.HashToken("x"), RedirectURIs: []string{rpRedirect},
				AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, MinACR: acrMFA, FirstParty: true})
			r := e.rp("bank", "x")
			b := e.browser()
			a := r.authURL(c.params)
			p := b.signIn(b.get(a.url), alice, alicePass)
			// The client's floor asks for the code: mfa is enforced.
			p = b.submitCode(p, "/login/otp", e.totp(secret))
			tok := r.mustExchange(r.code(p, a), a)
			if tok.claims.ACR != c.want || !hasAll(tok.claims.AMR, "pwd", "otp", "mfa") {
				t.Fatalf("acr %q amr %q, want acr %q: never below the enforced mfa", tok.claims.ACR, tok.claims.AMR, c.want)
			}
			if ev := e.lastAudit("login.completed"); ev.Details["achieved_acr"] != c.want || ev.Details["target"] != acrMFA {
				t.Fatalf("audit %+v", ev.Details)
			}
		})
	}
}

// ---- design rule A: a phishable session cannot mint phishing resistance ----

// r2Register adds k in the portal from b, with b's address and agent.
func (b *browser) r2Register(k *softKey, name string) (int, map[string]any) {
	b.e.t.Helper()
	status, options := b.rvPostJSON("/account/passkey/options", map[string]any{})
	if status != http.StatusOK {
		return status, options
	}
	return b.rvPostJSON("/account/passkey/verify", map[string]any{"name": name, "credential": k.attestation(b.e, options, softTweak{})})
}

// r2Assert answers the passkey step of request id with k, from b.
func (b *browser) r2Assert(id string, k *softKey) (int, map[string]any) {
	b.e.t.Helper()
	status, out := b.rvPostJSON("/login/webauthn/options", map[string]string{"id": id})
	pk, _ := out["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	if status != http.StatusOK || challenge == "" {
		b.e.t.Fatalf("assertion options: %d %v", status, out)
	}
	return b.rvPostJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": k.assertion(b.e, challenge, softTweak{})})
}

// r2Follow goes where a successful verify points and returns where the
// browse ended (at the RP, or a page of ours).
func (b *browser) r2Follow(status int, out map[string]any) page {
	b.e.t.Helper()
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || next == "" {
		b.e.t.Fatalf("verify: %d %v", status, out)
	}
	return b.get(b.e.issuer + next)
}

// r2Passwordless signs in to a new request of r with k alone, from b.
func (b *browser) r2Passwordless(r *rp, k *softKey, extra url.Values) (authRequest, page) {
	b.e.t.Helper()
	a, id := b.softPasswordless(r, extra)
	return a, b.r2Follow(b.r2Assert(id, k))
}

func (e *env) r2Key(userID string) storage.Factor {
	e.t.Helper()
	keys, _ := e.passkeys(userID)
	if len(keys) != 1 {
		e.t.Fatalf("%s has %d passkeys, want 1", userID, len(keys))
	}
	return keys[0]
}

const (
	r2Home   = "198.51.100.10" // Alice's own network
	r2MITM   = "203.0.113.66"  // the adversary in the middle
	r2Thief  = "192.0.2.77"    // the adversary again, elsewhere
	r2Far    = "100.64.9.9"    // a network nobody used before
	r2Vault  = "vault"         // a client whose minimum is phr
	r2Secret = "vault-secret"
)

// coolingOff sets the passkey cooling-off. The tests that go through a
// real RP use a short one: the OP library dates ID tokens by the wall
// clock, so a simulated day would expire them; the first-admin test keeps
// the default day.
func coolingOff(d time.Duration) envOption { return func(c *idp.Config) { c.PasskeyCoolingOff = d } }

const r2Cool = 30 * time.Minute

// r2Vault is a client that needs phr whatever the RP asks.
func (e *env) r2AddVault() *rp {
	e.t.Helper()
	e.addClient(storage.Client{ID: r2Vault, Name: "Vault", SecretHash: factor.HashToken(r2Secret), RedirectURIs: []string{rpRedirect},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, MinACR: acrPHR, FirstParty: true})
	return e.rp(r2Vault, r2Secret)
}

// The attack of issue 15: an adversary in the middle relays Alice's
// password and authenticator code in real time into his own browser, then
// registers his own security key on her account. Before the fix that key
// reached phr at once: a passwordless sign-in with it alone gave acr=phr,
// and a client requiring phr let him in. Now it is a valid second factor
// that counts as mfa only; phr is never reached with it — not voluntarily,
// not as an essential claim, not as a client's minimum, and not a day
// later from a device and network Alice never used.
func TestReview2PhishableSessionCannotMintPhishingResistance(t *testing.T) {
	e := newEnv(t, behindProxy, onLocalhost, coolingOff(r2Cool))
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	vault := e.r2AddVault()
	home := e.browser().from(r2Home)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	r.mustExchange(r.code(home.submitCode(home.signIn(home.get(a.url), alice, alicePass), "/login/otp", e.totp(secret)), a), a)

	// The relay: password and code, from the adversary's machine.
	e.clock.Advance(10 * time.Minute)
	mitm := e.browser().from(r2MITM)
	p := mitm.signIn(mitm.get(e.issuer+"/account/passkey"), alice, alicePass)
	p = mitm.submitCode(p, "/login/otp", e.totp(secret))
	if !strings.Contains(p.body, "Add a passkey or security key") {
		t.Fatalf("the relayed session did not reach the passkey page: %d %s\n%.2000s", p.status, p.url, p.body)
	}
	k := newSoftKey(t)
	status, out := mitm.r2Register(k, "not Alice's")
	if status != http.StatusOK || out["redirect"] != "/account?notice=passkey-pending" {
		t.Fatalf("registration from an mfa session: %d %v", status, out)
	}
	if f := e.r2Key("u-alice"); !f.TrustedAt.IsZero() {
		t.Fatalf("a key added from a password+code session is trusted at %v", f.TrustedAt)
	}
	if ev := e.lastAudit("factor.enrolled"); ev.Details["phishing_resistant"] != "false" {
		t.Fatalf("enrollment audit %+v", ev.Details)
	}
	// The portal says so, calmly.
	if p := mitm.get(e.issuer + "/account?notice=passkey-pending"); !strings.Contains(p.body, "accept it after 30 minutes") ||
		!strings.Contains(html.UnescapeString(p.body), "Apps that need your strongest sign-in accept it from") {
		t.Fatalf("the portal does not say when the key counts:\n%.3000s", p.body)
	}

	thief := e.browser().from(r2Thief)
	// acr_values=phr (voluntary): the real level, mfa, with a truthful amr.
	a, p = thief.r2Passwordless(r, k, url.Values{"acr_values": {acrPHR}})
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrMFA || !hasAll(tok.claims.AMR, "pop", "hwk", "user", "mfa") {
		t.Fatalf("voluntary phr with the relayed key: acr %q amr %q, want mfa", tok.claims.ACR, tok.claims.AMR)
	}
	if ev := e.lastAudit("stepup.factor"); ev.Details["phishing_resistant"] != "false" {
		t.Fatalf("assertion audit %+v", ev.Details)
	}
	// acr phr as an essential claim: unmet.
	b := e.browser().from(r2Thief)
	a, p = b.r2Passwordless(r, k, url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`}})
	if got := r.rpError(b.goBack(p), a); got != "unmet_authentication_requirements" {
		t.Fatalf("essential phr with the relayed key: %q", got)
	}
	// A client whose minimum is phr: unmet.
	b = e.browser().from(r2Thief)
	a, p = b.r2Passwordless(vault, k, nil)
	if got := vault.rpError(b.goBack(p), a); got != "unmet_authentication_requirements" {
		t.Fatalf("a phr client with the relayed key: %q", got)
	}
	// In the relayed session itself (password and code): its real mfa.
	a = r.authURL(url.Values{"acr_values": {acrPHR}})
	if tok := r.mustExchange(r.code(mitm.get(a.url), a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("phr asked in the relayed session: %+v", tok.claims)
	}

	// After the cooling-off, from a device and a network Alice never used:
	// still mfa.
	e.clock.Advance(r2Cool + time.Minute)
	a, p = e.browser().from(r2Far).r2Passwordless(r, k, url.Values{"acr_values": {acrPHR}})
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("after the cooling-off from elsewhere: acr %q, want mfa", tok.claims.ACR)
	}
	if f := e.r2Key("u-alice"); !f.TrustedAt.IsZero() || len(e.audits("factor.trusted")) != 0 {
		t.Fatalf("the relayed key was trusted from a place Alice never used: %v", f.TrustedAt)
	}

	// After the cooling-off, back on the adversary's own machine and
	// network — which the relayed sign-in recorded as Alice's — in a new
	// session: still mfa, because that place was first seen in the very
	// session that added the key (found by keystep simulate's relay attack).
	mitm.dropSession()
	a, p = mitm.r2Passwordless(r, k, url.Values{"acr_values": {acrPHR}})
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("after the cooling-off from the relaying machine: acr %q, want mfa", tok.claims.ACR)
	}
	if f := e.r2Key("u-alice"); !f.TrustedAt.IsZero() || len(e.audits("factor.trusted")) != 0 {
		t.Fatalf("the relayed key was trusted from the relaying machine: %v", f.TrustedAt)
	}
}

// dropSession forgets the browser's session cookie and keeps the rest
// (the device cookie): the same machine, signed out.
func (b *browser) dropSession() {
	u, _ := url.Parse(b.e.issuer)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "ks_session", Value: "", Path: "/", MaxAge: -1}})
}

// Alice adds a passkey at home after her password and code. It signs her
// in at once (mfa) but counts as phishing-resistant only once the
// cooling-off is over and she uses it from a device and network she had
// signed in from before: then a phr request asks for it and gets phr, and
// from then on it is phr anywhere.
func TestReview2PasskeyTrustedAfterCoolingOffFromAKnownPlace(t *testing.T) {
	e := newEnv(t, behindProxy, onLocalhost, coolingOff(r2Cool))
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	home := e.browser().from(r2Home)
	a := r.authURL(nil)
	r.mustExchange(r.code(home.signIn(home.get(a.url), alice, alicePass), a), a)
	e.clock.Advance(time.Minute)
	p := home.get(e.issuer + "/account/passkey")
	if p.has("/login/otp") {
		p = home.submitCode(p, "/login/otp", e.totp(secret))
	}
	k := newSoftKey(t)
	if status, out := home.r2Register(k, "Laptop"); status != http.StatusOK || out["redirect"] != "/account?notice=passkey-pending" {
		t.Fatalf("registration: %d %v", status, out)
	}

	// Just before the cooling-off ends, signing in again at home: phr is
	// out of reach, so the passkey is not even asked for. (Each sign-in is
	// a new session: the one that first brought this device and network
	// does not vouch for them.)
	e.clock.Advance(r2Cool - 2*time.Minute)
	home.post("/account/signout", nil)
	a = r.authURL(url.Values{"acr_values": {acrPHR}})
	if tok := r.mustExchange(r.code(home.signIn(home.get(a.url), alice, alicePass), a), a); tok.claims.ACR != acrSFA {
		t.Fatalf("before the cooling-off: %+v", tok.claims)
	}

	// After it, at home: the passkey is asked for, and its use trusts it.
	e.clock.Advance(2 * time.Minute)
	home.post("/account/signout", nil)
	a, id := home.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
	p = home.r2Follow(home.r2Assert(id, k))
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrPHR || !hasAll(tok.claims.AMR, "pwd", "pop", "hwk") {
		t.Fatalf("after the cooling-off at home: %+v", tok.claims)
	}
	if f := e.r2Key("u-alice"); !f.TrustedAt.Equal(e.clock.Now()) {
		t.Fatalf("trusted at %v, want now", f.TrustedAt)
	}
	if ev := e.lastAudit("factor.trusted"); ev.UserID != "u-alice" || ev.Outcome != "success" || ev.IP != r2Home {
		t.Fatalf("trust audit %+v", ev)
	}

	// Trusted for good: phr with it alone, from anywhere.
	e.clock.Advance(time.Minute)
	a, p = e.browser().from(r2Far).r2Passwordless(r, k, url.Values{"acr_values": {acrPHR}})
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrPHR {
		t.Fatalf("after the trust, from elsewhere: %+v", tok.claims)
	}
}

// A device that first signs in during the very session that would use the
// key does not count as known: a new browser on a known network, after
// the cooling-off, signs in with the password (low risk, so it is recorded) and uses
// the key; the key stays untrusted.
func TestReview2ASignInDoesNotVouchForItself(t *testing.T) {
	e := newEnv(t, behindProxy, onLocalhost, coolingOff(r2Cool))
	r := e.rp(rpClient, e.rpSecret)
	k := e.r2EnrollPendingAtHome(r)
	e.clock.Advance(r2Cool + time.Minute)
	fresh := e.browser().from(r2Home)
	a := r.authURL(url.Values{"acr_values": {acrPHR}})
	p := fresh.signIn(fresh.get(a.url), alice, alicePass)
	if p.redirect == nil {
		// A passkey page: use it; it must not make the key trusted.
		p = fresh.r2Follow(fresh.r2Assert(softRequestID(t, p), k))
	}
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR == acrPHR {
		t.Fatalf("phr from a device first seen in this session: %+v", tok.claims)
	}
	if f := e.r2Key("u-alice"); !f.TrustedAt.IsZero() {
		t.Fatalf("trusted from a device first seen in this session")
	}
}

// r2EnrollPendingAtHome gives Alice a sign-in history at home and a passkey
// added there from a password-only session (bootstrap, low risk): it waits
// for trust.
func (e *env) r2EnrollPendingAtHome(r *rp) *softKey {
	e.t.Helper()
	home := e.browser().from(r2Home)
	a := r.authURL(nil)
	r.mustExchange(r.code(home.signIn(home.get(a.url), alice, alicePass), a), a)
	e.clock.Advance(time.Minute)
	if p := home.get(e.issuer + "/account/passkey"); !strings.Contains(p.body, "Add a passkey or security key") {
		e.t.Fatalf("no passkey page at home:\n%.2000s", p.body)
	}
	k := newSoftKey(e.t)
	if status, out := home.r2Register(k, "Laptop"); status != http.StatusOK || out["redirect"] != "/account/recovery/new" {
		e.t.Fatalf("bootstrap registration at home: %d %v", status, out)
	}
	return k
}

// A key added from a session that is itself at phr (password and a
// trusted passkey, just now) is trusted at once: phr with it alone.
func TestReview2PasskeyFromAPHRSessionIsTrustedAtOnce(t *testing.T) {
	e := newEnv(t, onLocalhost)
	r := e.rp(rpClient, e.rpSecret)
	first := e.softEnroll(alice, alicePass) // trusted
	b := e.browser()
	p := b.signIn(b.get(e.issuer+"/account/passkey"), alice, alicePass)
	status, out, _ := b.softAssert(softRequestID(t, p), first, softTweak{})
	p = b.r2Follow(status, out)
	if !strings.Contains(p.body, "Add another") {
		t.Fatalf("no passkey page after the phr step-up:\n%.2000s", p.body)
	}
	second := newSoftKey(t)
	if status, out := b.softRegister(second, "Second", softTweak{}); status != http.StatusOK || out["redirect"] != "/account?notice=passkey-added" {
		t.Fatalf("registration from a phr session: %d %v", status, out)
	}
	keys, _ := e.passkeys("u-alice")
	if len(keys) != 2 || keys[1].TrustedAt.IsZero() {
		t.Fatalf("the second key is not trusted: %+v", keys)
	}
	if ev := e.lastAudit("factor.enrolled"); ev.Details["phishing_resistant"] != "true" {
		t.Fatalf("enrollment audit %+v", ev.Details)
	}
	pb := e.browser()
	a, id := pb.softPasswordless(r, url.Values{"acr_values": {acrPHR}})
	status, out, _ = pb.softAssert(id, second, softTweak{})
	if tok := pb.softFinish(r, a, status, out); tok.claims.ACR != acrPHR {
		t.Fatalf("the key added from a phr session: %+v", tok.claims)
	}
}

// An administrator confirms a user's waiting passkey in the console (the
// user page's button, audited with who and why): it counts as phr at once.
// A factor of another user, a made-up ID, or an authenticator app is
// refused and changes nothing.
func TestReview2AdminConfirmsAPasskeyInTheConsole(t *testing.T) {
	e, adaSecret := adminEnv(t, onLocalhost)
	r := e.rp(rpClient, e.rpSecret)
	k := e.softEnrollPending(alice, alicePass)
	aliceKey := e.r2Key("u-alice")
	e.enrollTOTP("u-bob-none") // a factor of nobody's, to try to confirm
	console := e.browser()
	console.adminLogin(adaSecret)

	p := console.get(e.issuer + "/admin/users/u-alice")
	if !strings.Contains(p.body, "not yet trusted") || !p.has("/admin/users/u-alice/confirm-passkey") || !strings.Contains(p.body, aliceKey.ID) {
		t.Fatalf("the user page does not offer to confirm the key:\n%.3000s", p.body)
	}
	for _, bad := range []string{"nope", "f-u-bob-none", ""} {
		p = console.post("/admin/users/u-alice/confirm-passkey", url.Values{"factor": {bad}, "reason": {"checked"}})
		if p.status != http.StatusNotFound {
			t.Fatalf("confirming %q: %d", bad, p.status)
		}
	}
	if f := e.r2Key("u-alice"); !f.TrustedAt.IsZero() || len(e.adminEvents("admin.user_confirm_passkey")) != 0 {
		t.Fatalf("a refused confirmation changed something: %v", f.TrustedAt)
	}

	p = console.post("/admin/users/u-alice/confirm-passkey", url.Values{"factor": {aliceKey.ID}, "reason": {"ticket 42: checked on a call"}})
	if !strings.Contains(p.body, "The passkey now counts as phishing-resistant.") {
		t.Fatalf("after confirming: %d\n%.2000s", p.status, p.body)
	}
	if f := e.r2Key("u-alice"); !f.TrustedAt.Equal(e.clock.Now()) {
		t.Fatalf("trusted at %v", f.TrustedAt)
	}
	ev := e.lastEvent("admin.user_confirm_passkey")
	if ev.ActorID != adaID || ev.UserID != "u-alice" || ev.Reason != "ticket 42: checked on a call" || ev.Details["factor"] != aliceKey.ID || !strings.Contains(ev.Details["after"], `"trusted":true`) {
		t.Fatalf("audit %+v", ev)
	}
	// Twice is harmless.
	if p = console.post("/admin/users/u-alice/confirm-passkey", url.Values{"factor": {aliceKey.ID}}); !strings.Contains(p.body, "already counted") {
		t.Fatalf("confirming again: %d\n%.2000s", p.status, p.body)
	}

	b := e.browser()
	a, id := b.softPasswordless(r, url.Values{"acr_values": {acrPHR}})
	status, out, _ := b.softAssert(id, k, softTweak{})
	if tok := b.softFinish(r, a, status, out); tok.claims.ACR != acrPHR {
		t.Fatalf("after the confirmation: %+v", tok.claims)
	}
}

// The first administrator comes from the setup link and adds a first
// passkey from a password-only session (bootstrap at low risk: a first
// sign-in). That passkey cannot open the console (phr) yet; the page says
// when it will and how another administrator can confirm it. A day later,
// signing in again from the same browser and network, the console asks for
// the passkey and opens: that use trusts it. From a browser the server
// never saw before, it does not.
func TestReview2FirstAdminPasskeyFollowsTheRule(t *testing.T) {
	e := newEnvWith(t, true, false, onLocalhost)
	link, err := setupLink(e)
	if err != nil || link == "" {
		t.Fatalf("link %q %v", link, err)
	}
	u, _ := url.Parse(link)
	b := e.browser()
	if p := b.get(link); !strings.Contains(html.UnescapeString(p.body), "1 day later, or at once after you confirm it on the server with <code>keystep users confirm-passkey</code>") {
		t.Fatalf("the setup page does not say what comes after:\n%.3000s", p.body)
	}
	p := b.post("/setup", url.Values{"token": {u.Query().Get("token")}, "username": {"root"}, "password": {"a long admin passphrase"}})
	p = b.signIn(p, "root", "a long admin passphrase")
	if !strings.Contains(p.body, "Hello, root") {
		t.Fatalf("the first admin's portal: %d\n%.2000s", p.status, p.body)
	}
	b.get(e.issuer + "/account/passkey")
	k := newSoftKey(t)
	if status, out := b.softRegister(k, "Root's key", softTweak{}); status != http.StatusOK || out["redirect"] != "/account/recovery/new" {
		t.Fatalf("the first admin's first passkey: %d %v", status, out)
	}
	root, err := e.store.UserByUsername(context.Background(), "root")
	if err != nil {
		t.Fatal(err)
	}
	key := e.r2Key(root.ID)

	p = b.get(e.issuer + "/admin")
	body := html.UnescapeString(p.body)
	if p.status != http.StatusForbidden || !strings.Contains(body, "Your passkey isn't trusted for the admin console yet") ||
		!strings.Contains(body, "keystep users confirm-passkey root --credential "+key.ID) {
		t.Fatalf("the console with an untrusted first passkey: %d\n%.3000s", p.status, p.body)
	}

	e.clock.Advance(24*time.Hour + time.Minute)
	// A browser the server never saw: still refused, and it stays untrusted.
	other := e.browser()
	p = other.signIn(other.get(e.issuer+"/admin"), "root", "a long admin passphrase")
	if p.status != http.StatusForbidden || !strings.Contains(html.UnescapeString(p.body), "isn't trusted for the admin console yet") {
		t.Fatalf("the console from a new browser: %d\n%.3000s", p.status, p.body)
	}
	// The browser of the setup, signing in again: the passkey is asked for.
	p = b.signIn(b.get(e.issuer+"/admin"), "root", "a long admin passphrase")
	status, out, _ := b.softAssert(softRequestID(t, p), k, softTweak{})
	p = b.r2Follow(status, out)
	if !strings.Contains(p.body, "<h1>Admin console</h1>") {
		t.Fatalf("the console after the cooling-off: %d\n%.3000s", p.status, p.body)
	}
	if f := e.r2Key(root.ID); !f.TrustedAt.Equal(e.clock.Now()) {
		t.Fatalf("trusted at %v", f.TrustedAt)
	}
}

// ---- design rule B: bootstrap only at low risk ----

// Alice has no second factor and signs in from home. A thief with her
// password signs in from a new device on a new network (medium risk: the
// floor, mfa, is waived for a user who has nothing more to prove). Before
// the fix the portal let him add his own authenticator app or passkey as
// her first second factor. Now the portal explains who can help and shows
// no enrollment form; the JSON passkey endpoints refuse too; and signing
// in again from the same place does not make it look like home. From
// home (low risk) the same pages work.
func TestReview2BootstrapOnlyAtLowRisk(t *testing.T) {
	e := newEnv(t, behindProxy, onLocalhost)
	r := e.rp(rpClient, e.rpSecret)
	home := e.browser().from(r2Home)
	a := r.authURL(nil)
	r.mustExchange(r.code(home.signIn(home.get(a.url), alice, alicePass), a), a)

	thief := e.browser().from(r2Thief)
	for attempt := range 2 {
		e.clock.Advance(time.Minute)
		a := r.authURL(nil)
		if tok := r.mustExchange(r.code(thief.signIn(thief.get(a.url), alice, alicePass), a), a); tok.claims.ACR != acrSFA {
			t.Fatalf("attempt %d: the thief's sign-in: %+v", attempt, tok.claims)
		}
		if ev := e.lastAudit("login.completed"); ev.Details["risk_band"] != "medium" || ev.Details["risk_waived"] != "true" {
			t.Fatalf("attempt %d: the thief's sign-in was not medium risk with the floor waived: %+v", attempt, ev.Details)
		}
		for _, path := range []string{"/account/totp", "/account/passkey"} {
			p := thief.get(e.issuer + path)
			body := html.UnescapeString(p.body)
			if p.status != http.StatusForbidden || !strings.Contains(body, "Your administrator can help you set one up") ||
				p.has("/account/totp") || strings.Contains(body, "data-passkey-register") || strings.Contains(body, "otpauth://") {
				t.Fatalf("attempt %d: %s at medium risk: %d\n%.3000s", attempt, path, p.status, p.body)
			}
		}
		if status, out := thief.r2Register(newSoftKey(t), "thief"); status != http.StatusForbidden {
			t.Fatalf("attempt %d: passkey registration at medium risk: %d %v", attempt, status, out)
		}
		p := thief.post("/account/totp", url.Values{"code": {"123456"}})
		if p.status != http.StatusForbidden {
			t.Fatalf("attempt %d: POST /account/totp at medium risk: %d", attempt, p.status)
		}
		thief.post("/account/signout", nil) // and sign in again from there
	}
	if fs, _ := e.store.ListFactors(context.Background(), "u-alice"); len(fs) != 0 {
		t.Fatalf("a factor was added at medium risk: %+v", fs)
	}
	if ev := e.lastAudit("factor.enroll_refused"); ev.UserID != "u-alice" || ev.Outcome != "denied" || ev.Details["risk_band"] != "medium" {
		t.Fatalf("refusal audit %+v", ev)
	}

	// At home the first factor may be added.
	p := home.get(e.issuer + "/account/totp")
	if p.status != http.StatusOK || !p.has("/account/totp") || !strings.Contains(p.body, "otpauth://") {
		t.Fatalf("bootstrap at home: %d\n%.3000s", p.status, p.body)
	}
	if status, out := home.r2Register(newSoftKey(t), "Laptop"); status != http.StatusOK || out["redirect"] != "/account/recovery/new" {
		t.Fatalf("passkey bootstrap at home: %d %v", status, out)
	}
}

// The page a person sees when the first second factor cannot be added from
// where they are, in Chromium at every size and scheme: calm words, who can
// help, no enrollment form. Chromium always comes from 127.0.0.1, so the
// operator's suspicious list names it: every sign-in is medium risk.
func TestBrowserBootstrapHelpPage(t *testing.T) {
	c := newTab(t)
	e := newEnv(t, onLocalhost, withRisk(func(rc *signin.RiskConfig) {
		p, err := risk.ParsePrefixes([]string{"127.0.0.0/8"})
		if err != nil {
			t.Fatal(err)
		}
		rc.Suspicious = p
	}))
	c.portalSignIn(e, alice, alicePass)
	c.Open(e.issuer + "/account/totp")
	c.See("Ask for help to add this")
	c.See("Your administrator can help you set one up.")
	if n := chrome.Eval[int](c.Browser, `document.querySelectorAll("form[action='/account/totp'], [data-passkey-register]").length`); n != 0 {
		t.Fatalf("the help page has %d enrollment forms", n)
	}
	c.Look("account-bootstrap-help")
	c.CheckProblems("bootstrap help")
}
