package conformance

// Attacker review of the Shared Signals transmitter and receiver (issue
// 20, items 3–5). Each test here FAILS on the code as it landed, for the
// reason its comment names; none changes production code.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// Finding 1 (high): a received credential-compromise only sets a flag that
// the next interactive sign-in reads. Whoever already signed in with the
// stolen password keeps the refresh token they got: the thief's app access
// outlives the report indefinitely (refresh rotation keeps it alive), so
// "its next use is refused" never reaches the party it is meant for.
// Expected: a credential-compromise for the password revokes the user's
// refresh families (and ends the sessions that proved that password), as a
// password change in the portal already does.
func TestReviewSSFCompromiseLeavesRefreshTokenLive(t *testing.T) {
	e := newEnv(t)
	r, _ := e.addBackchannelRP("app-a", "RS256")
	tok := r.login(e.browser(), nil) // the thief, with alice's password
	tx := newTransmitter(e, "https://fraud.example")
	tx.register()
	if code, errc := tx.push(tx.set(storage.SETCredentialCompromise, map[string]any{"credential_type": "password"}, issSub(e.issuer, "u-alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, errc)
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); !u.PasswordCompromised {
		t.Fatal("not marked compromised")
	}
	if _, err := r.refresh(tok.token.RefreshToken); err == nil {
		t.Error("the refresh token obtained with the compromised password still works after credential-compromise")
	}
	if ss, _ := e.store.ListUserSessions(t.Context(), "u-alice", e.clock.Now()); len(ss) != 0 {
		t.Errorf("%d session(s) signed in with the compromised password are still live", len(ss))
	}
}

// Finding 2 (medium, subject confusion): an iss_sub subject is resolved as
// a Keystep user ID first, then as a username, whatever its iss says. A
// transmitter naming ITS user "u-alice" (iss = the transmitter, so the sub
// is in the transmitter's namespace, here matching Keystep's username
// "u-alice") hits a different person: the Keystep user whose ID is
// "u-alice". account-disabled then locks out the wrong user.
// Expected: the sub of an iss_sub is read in the namespace its iss names —
// Keystep's issuer → user ID; the transmitter's issuer → username — and an
// identifier that matches two users is ignored, never guessed.
func TestReviewSSFIssSubUsernameCollidesWithUserID(t *testing.T) {
	e := newEnv(t)
	other := e.addUser("u-alice", "the other user's long password") // ID u-u-alice, username u-alice
	tx := newTransmitter(e, "https://idp.partner.example")
	tx.register()
	if code, errc := tx.push(tx.set(storage.SETAccountDisabled, map[string]any{}, issSub(tx.iss, "u-alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, errc)
	}
	alice, _ := e.store.UserByID(t.Context(), "u-alice")
	o, _ := e.store.UserByID(t.Context(), other.ID)
	if alice.Disabled {
		t.Errorf("alice (ID u-alice) was disabled by a SET naming the transmitter's user %q (Keystep username of %s); other disabled=%v",
			"u-alice", other.ID, o.Disabled)
	}
}

// Finding 3 (medium, subject confusion): an iss_sub whose iss is neither
// Keystep nor the transmitter (a third issuer's namespace) is still
// resolved against Keystep's users. A registered transmitter relaying
// "sub alice at https://elsewhere.example" disables Keystep's alice, who
// need not be that person.
// Expected: an iss_sub of a foreign iss is ignored ("the subject is not a
// user here").
func TestReviewSSFIssSubForeignIssuerIgnored(t *testing.T) {
	e := newEnv(t)
	tx := newTransmitter(e, "https://idp.partner.example")
	tx.register()
	if code, errc := tx.push(tx.set(storage.SETAccountDisabled, map[string]any{}, issSub("https://elsewhere.example", "alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, errc)
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); u.Disabled {
		t.Error("a subject in a third issuer's namespace disabled Keystep's alice")
	}
}

// Finding 4 (medium, subject confusion): an email subject acts on the first
// user ListUsers returns with that address. Emails are not unique in
// Keystep, so a SET about one person's email acts on whichever account
// sorts first — possibly an attacker's account that copied the victim's
// address, so the victim's sessions are NOT revoked while the attacker's
// decoy is.
// Expected: an email matching more than one user is ignored (audited as
// ambiguous) rather than guessed.
func TestReviewSSFEmailSubjectMatchingTwoUsers(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, _ := e.store.UserByID(ctx, "u-alice")
	alice.Email = "alice@example.com"
	if err := e.store.UpdateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	decoy := e.addUser("aaa-decoy", "the decoy's long password")
	decoy.Email = "Alice@Example.com"
	if err := e.store.UpdateUser(ctx, decoy); err != nil {
		t.Fatal(err)
	}
	tx := newTransmitter(e, "https://idp.partner.example")
	tx.register()
	if code, errc := tx.push(tx.set(storage.SETAccountDisabled, map[string]any{},
		map[string]any{"format": "email", "email": "alice@example.com"}, nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, errc)
	}
	a, _ := e.store.UserByID(ctx, "u-alice")
	d, _ := e.store.UserByID(ctx, decoy.ID)
	if a.Disabled || d.Disabled {
		t.Errorf("an email shared by two users was resolved to one of them: alice disabled=%v, decoy disabled=%v", a.Disabled, d.Disabled)
	}
}

// Finding 5 (low, spec): SSF 1.0 §4 (and RFC 8417 as profiled by SSF): the
// events claim of a SET MUST contain exactly one event. Keystep acts on
// every member, so one SET (one jti) both ends alice's sessions and
// disables her; and since the jti is spent before the actions, a failure
// half-way leaves some events applied and the rest unreplayable.
// Expected: a SET with more than one event is refused (400
// invalid_request) and changes nothing.
func TestReviewSSFSETWithTwoEventsRefused(t *testing.T) {
	e := newEnv(t)
	tx := newTransmitter(e, "https://idp.partner.example")
	tx.register()
	set := tx.set(storage.SETSessionRevoked, nil, issSub(e.issuer, "u-alice"), map[string]any{"events": map[string]any{
		storage.SETSessionRevoked:  map[string]any{},
		storage.SETAccountDisabled: map[string]any{},
	}})
	code, errc := tx.push(set)
	if code != http.StatusBadRequest || errc != "invalid_request" {
		t.Errorf("a SET with two events: %d %q, want 400 invalid_request", code, errc)
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); u.Disabled {
		t.Error("a SET with two events disabled alice")
	}
}

// Finding 6 (medium, unauthenticated storage amplification): /ssf/receive
// audits every refused SET with the issuer read from the UNVERIFIED claims,
// unbounded, in both Details["issuer"] and the Reason ("issuer %q is not
// registered"). Anyone, with any key, posts a 64 KiB body (base64: ~47 KiB of claims) whose iss is ~45
// KiB and Keystep writes ~90 KiB of audit per request (200/s per address
// under the "token" limit: ~18 MB/s), and the refusals also crowd the
// console's "last received" out of the 500 newest rows it reads.
// Expected: an unregistered issuer is audited truncated (a few hundred
// characters at most) — or an iss longer than a registered issuer can be
// (ReceiverSpec bounds nothing either) is refused without echoing it.
func TestReviewSSFRefusedIssuerBoundedInAudit(t *testing.T) {
	e := newEnv(t)
	tx := newTransmitter(e, "https://nobody.example") // never registered
	long := "https://nobody.example/" + strings.Repeat("a", 45<<10)
	code, errc := tx.push(tx.set(storage.SETAccountDisabled, map[string]any{}, issSub("https://x.example", "alice"), map[string]any{"iss": long}))
	if code != http.StatusBadRequest || errc != "invalid_issuer" {
		t.Fatalf("push: %d %s", code, errc)
	}
	ev := e.lastEvent(storage.EventSSFRefused)
	if n := len(ev.Details["issuer"]) + len(ev.Reason); n > 2048 {
		t.Errorf("an unauthenticated request wrote %d bytes of attacker text into the audit row", n)
	}
}

// Finding 7 (low, spec): with the password marked compromised, a
// prompt=none request over a session that already meets the floor (the
// second factor proved earlier) is answered by sending the browser to the
// portal's password page — UI, where OIDC Core §3.1.2.1 says prompt=none
// MUST NOT show any, and the RP (often in a hidden iframe) never hears
// back. Expected: prompt=none returns interaction_required to the RP (and
// the audit row says why).
func TestReviewSSFCompromisedPromptNoneShowsNoUI(t *testing.T) {
	e := newEnv(t)
	totp := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(url.Values{"acr_values": {stepup.ACRMultiFactor}})
	p := b.signIn(b.get(a.url), alice, alicePass)
	p = b.submitCode(p, "/login/otp", e.totp(totp))
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if r.code(p, a) == "" {
		t.Fatal("no code")
	}
	tx := newTransmitter(e, "https://fraud.example")
	tx.register()
	if code, errc := tx.push(tx.set(storage.SETCredentialCompromise, map[string]any{"credential_type": "password"}, issSub(e.issuer, "u-alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, errc)
	}
	a = r.authURL(url.Values{"prompt": {"none"}})
	p = b.get(a.url)
	// The report ended the session (finding 1's fix), so the answer is
	// login_required; either way no page is shown.
	if p.redirect == nil || p.redirect.Query().Get("error") != "interaction_required" && p.redirect.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none with a compromised password: want interaction_required or login_required at the RP, got redirect=%v status=%d at %s", p.redirect, p.status, p.url)
	}
}

// Finding 8 (low–medium, privacy): a third-party stream is gated only by
// the user's consent (mayKnow), not by the session. Once alice consented
// to "third" once, "third" receives a session-revoked SET — with the sid —
// for every session of hers that ends, including sessions she only ever
// used at other apps: it learns when and how often she signs in and out
// elsewhere, and the sids of those sessions. Back-channel logout, by
// contrast, goes only to the apps with a session under the sid (issue 20
// item 1). Expected: a session-scoped event (session-revoked,
// assurance-level-change) goes to a non-first-party stream only when its
// client had a grant under that session.
func TestReviewSSFThirdPartyHearsOfOtherAppsSessions(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "third", Name: "Third", SecretHash: factor.HashToken("s3cret-third"), RedirectURIs: []string{rpRedirect},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, IDTokenAlg: "RS256"})
	third := newSETReceiver(e, "third")
	e.createStream("third", "s3cret-third", map[string]any{
		"delivery": map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": third.srv.URL}, "events_requested": []string{storage.SETSessionRevoked},
	})
	if err := e.store.SaveConsent(t.Context(), "u-alice", "third", []string{"openid"}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// A session used only at the first-party RP, never at "third".
	e.rp(rpClient, e.rpSecret).login(e.browser(), nil)
	ss, err := e.store.ListUserSessions(t.Context(), "u-alice", e.clock.Now())
	if err != nil || len(ss) != 1 {
		t.Fatalf("sessions: %v %v", ss, err)
	}
	if err := admin.EndSessions(t.Context(), e.store, e.clock.Now(), ss[0].End()); err != nil {
		t.Fatal(err)
	}
	e.deliver()
	if acc, _ := third.got(); len(acc) != 0 {
		t.Errorf("third-party stream heard of a session it never had: %+v", acc[0].SubID)
	}
}
