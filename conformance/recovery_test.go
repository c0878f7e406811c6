package conformance

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// verifyEmail gives the user a confirmed address, as the portal's link does.
func (e *env) verifyEmail(userID, addr string) {
	e.t.Helper()
	u, err := e.store.UserByID(e.t.Context(), userID)
	if err != nil {
		e.t.Fatal(err)
	}
	u.Email, u.EmailVerified, u.EmailVerifiedAt = addr, true, e.clock.Now()
	if err := e.store.UpdateUser(e.t.Context(), u); err != nil {
		e.t.Fatal(err)
	}
}

// linkTo is the first link in text that starts with prefix.
func linkTo(t *testing.T, text, prefix string) string {
	t.Helper()
	i := strings.Index(text, prefix)
	if i < 0 {
		t.Fatalf("no %s link in:\n%s", prefix, text)
	}
	return strings.Fields(text[i:])[0]
}

// Issue 22, forgot password, end to end through the server and a real
// SMTP relay: the same answer for an unknown name; the link works in the
// browser that asked only, asks for the authenticator app before the new
// password, works once, ends every session, tells the owner, and signs
// nobody in; the next sign-in from a new device needs the code.
func TestPasswordResetThroughTheRelay(t *testing.T) {
	sink := startSMTPSink(t)
	e := newEnv(t, withSMTP(sink))
	e.verifyEmail("u-alice", "alice@example.com")
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	r.login(e.browser(), nil) // a session the reset ends

	b := e.browser()
	if p := b.get(e.issuer + "/recover"); p.status != 200 || !p.has("/recover") {
		t.Fatalf("GET /recover: %d\n%.1500s", p.status, p.body)
	}
	known := b.post("/recover", url.Values{"account": {alice}})
	unknown := e.browser().post("/recover", url.Values{"account": {"nobody"}})
	if known.status != 200 || known.status != unknown.status || known.body != unknown.body {
		t.Fatalf("the answers differ: %d vs %d\n%s\n---\n%s", known.status, unknown.status, known.body, unknown.body)
	}
	got := sink.deliver(t, e)
	if len(got) != 1 || got[0].to != "alice@example.com" || got[0].subject != "Reset your Keystep password" {
		t.Fatalf("relay received %+v, want one reset link to alice", got)
	}
	link := linkTo(t, got[0].text, e.issuer+"/recover/reset?")
	token, _ := url.Parse(link)

	if p := e.browser().get(link); p.status != 403 || p.has("/recover/reset/password") {
		t.Fatalf("the link in another browser: %d\n%.1500s", p.status, p.body)
	}
	p := b.get(link)
	if !p.has("/recover/reset/code") || p.has("/recover/reset/password") {
		t.Fatalf("the link must ask for the code first:\n%.1500s", p.body)
	}
	const newPass = "a brand new long password"
	pw := url.Values{"token": {token.Query().Get("token")}, "new_password": {newPass}, "confirm_password": {newPass}}
	if p := b.post("/recover/reset/password", pw); p.status != 403 {
		t.Fatalf("a new password without the code: %d", p.status)
	}
	e.clock.Advance(30 * time.Second)
	p = b.post("/recover/reset/code", url.Values{"token": pw["token"], "method": {"totp"}, "code": {e.totp(secret)}})
	if !p.has("/recover/reset/password") {
		t.Fatalf("after the code: %d\n%.1500s", p.status, p.body)
	}
	if p = b.post("/recover/reset/password", pw); p.status != 200 || !strings.Contains(p.body, "sign in with your new password") {
		t.Fatalf("the new password: %d\n%.1500s", p.status, p.body)
	}
	if ss, err := e.store.ListUserSessions(t.Context(), "u-alice", e.clock.Now()); err != nil || len(ss) != 0 {
		t.Fatalf("sessions after the reset: %+v %v", ss, err)
	}
	if got := sink.deliver(t, e); len(got) != 1 || got[0].subject != "Your Keystep password was reset" {
		t.Fatalf("the owner was not told: %+v", got)
	}
	if p := b.get(link); p.status != 410 {
		t.Fatalf("the link again: %d", p.status)
	}
	if ev := e.lastEvent(storage.EventRecoveryPasswordReset); ev.UserID != "u-alice" {
		t.Fatalf("audit: %+v", ev)
	}

	// Signing in now, at the lowest level, from a browser new to the
	// account: the password is the new one, and the code is asked.
	nb := e.browser()
	a := r.authURL(nil)
	p = nb.signIn(nb.get(a.url), alice, newPass)
	if !p.has("/login/otp") {
		t.Fatalf("a new device after the reset: want the code page, got %d %s\n%.1500s", p.status, p.url, p.body)
	}
}

// Issue 22, lost second factor: a request waits for the cooling-off and
// is cancelled from the notice that reached the relay.
func TestRecoveryRequestThroughTheRelay(t *testing.T) {
	sink := startSMTPSink(t)
	e := newEnv(t, withSMTP(sink))
	e.verifyEmail("u-alice", "alice@example.com")
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	stuck := func() {
		t.Helper()
		a := r.authURL(url.Values{"acr_values": {acrMFA}})
		p := b.get(a.url)
		if p.has("/login/password") {
			p = b.signIn(p, alice, alicePass)
		}
		if !p.has("/login/otp") || !strings.Contains(p.body, `href="/recover/factors"`) {
			t.Fatalf("want the code page with a lost-factor link:\n%.1500s", p.body)
		}
	}
	stuck()
	// The page asks for the password again when it is not fresh, and
	// comes back.
	lost := func() page {
		t.Helper()
		p := b.get(e.issuer + "/recover/factors")
		if p.has("/login/password") {
			p = b.signIn(p, alice, alicePass)
		}
		if p.status != 200 || !strings.Contains(p.body, "Signed in with the password of") {
			t.Fatalf("lost-factor page: %d %s\n%.1500s", p.status, p.url, p.body)
		}
		return p
	}
	if p := lost(); !p.has("/recover/factors") {
		t.Fatalf("no way to file a request:\n%.1500s", p.body)
	}
	if p := b.post("/recover/factors", nil); p.status != 200 || !strings.Contains(p.body, "Your request was filed.") {
		t.Fatalf("filing: %d\n%.1500s", p.status, p.body)
	}
	got := sink.deliver(t, e)
	if len(got) != 1 || got[0].to != "alice@example.com" || !strings.Contains(got[0].subject, "replace the sign-in methods") {
		t.Fatalf("relay received %+v", got)
	}
	cancel := linkTo(t, got[0].text, e.issuer+"/recover/cancel?")

	e.clock.Advance(71 * time.Hour)
	stuck()
	lost()
	if p := b.post("/recover/factors/use", nil); p.status != 403 {
		t.Fatalf("using the request before the cooling-off: %d", p.status)
	}
	// The owner, from the mailbox: opening changes nothing, the button cancels.
	owner := e.browser()
	p := owner.get(cancel)
	if !p.has("/recover/cancel") {
		t.Fatalf("cancel page:\n%.1500s", p.body)
	}
	if p = owner.post("/recover/cancel", url.Values{"request": {p.hidden("request")}, "token": {p.hidden("token")}}); p.status != 200 {
		t.Fatalf("cancel: %d\n%.1500s", p.status, p.body)
	}
	e.clock.Advance(2 * time.Hour)
	lost()
	if p := b.post("/recover/factors/use", nil); p.status != 403 {
		t.Fatalf("using a cancelled request: %d", p.status)
	}
	if fs, _ := e.store.ListFactors(t.Context(), "u-alice"); len(fs) != 1 {
		t.Fatalf("factors changed: %+v", fs)
	}
	if ev := e.lastEvent(storage.EventRecoveryCancelled); ev.UserID != "u-alice" {
		t.Fatalf("audit: %+v", ev)
	}
}

// A passkey as the second factor of a reset: the sign-in's ceremony,
// bound to the reset and to the browser that asked for it.
func TestPasswordResetWithAPasskey(t *testing.T) {
	sink := startSMTPSink(t)
	e := newEnv(t, onLocalhost, withSMTP(sink))
	key := e.softEnroll(alice, alicePass)
	e.verifyEmail("u-alice", "alice@example.com")
	sink.deliver(t, e)

	b := e.browser()
	b.post("/recover", url.Values{"account": {alice}})
	got := sink.deliver(t, e)
	if len(got) != 1 {
		t.Fatalf("relay received %+v", got)
	}
	link := linkTo(t, got[0].text, e.issuer+"/recover/reset?")
	u, _ := url.Parse(link)
	token := u.Query().Get("token")
	p := b.get(link)
	if !strings.Contains(p.body, `data-passkey-path="/recover/reset/webauthn"`) || p.has("/recover/reset/password") {
		t.Fatalf("the link must offer the passkey and not the password:\n%.1500s", p.body)
	}
	// Another browser gets no challenge.
	if status, _ := e.browser().postJSON("/recover/reset/webauthn/options", map[string]string{"id": token}); status != 403 {
		t.Fatalf("options in another browser: %d", status)
	}
	options := func() string {
		t.Helper()
		status, out := b.postJSON("/recover/reset/webauthn/options", map[string]string{"id": token})
		pk, _ := out["publicKey"].(map[string]any)
		challenge, _ := pk["challenge"].(string)
		if status != 200 || challenge == "" {
			t.Fatalf("options: %d %v", status, out)
		}
		return challenge
	}
	// Another key's assertion is refused, and the reset still asks.
	other := newSoftKey(t)
	if status, _ := b.postJSON("/recover/reset/webauthn/verify", map[string]any{"id": token, "credential": other.assertion(e, options(), softTweak{})}); status != 401 {
		t.Fatalf("another key: %d", status)
	}
	if p := b.get(link); p.has("/recover/reset/password") {
		t.Fatal("a refused key counted")
	}
	e.clock.Advance(time.Second)
	status, out := b.postJSON("/recover/reset/webauthn/verify", map[string]any{"id": token, "credential": key.assertion(e, options(), softTweak{})})
	if next, _ := out["redirect"].(string); status != 200 || !strings.HasPrefix(next, "/recover/reset?") {
		t.Fatalf("verify: %d %v", status, out)
	}
	const newPass = "a brand new long password"
	if p := b.post("/recover/reset/password", url.Values{"token": {token}, "new_password": {newPass}, "confirm_password": {newPass}}); p.status != 200 {
		t.Fatalf("the new password: %d\n%.1500s", p.status, p.body)
	}
	if ev := e.lastEvent(storage.EventRecoveryPasswordReset); ev.UserID != "u-alice" || ev.Details["factor"] != "second factor" {
		t.Fatalf("audit: %+v", ev)
	}
}
