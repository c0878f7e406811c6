package conformance

// Issue 15, item 9: sessions and tokens end when they must. A password
// change, a factor reset and a disable end every session and every token
// family of the user (a password change keeps only the browser session
// that made it); "sign out other sessions" needs a fresh factor; sessions
// end after an idle timeout as well as after their absolute lifetime.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// ssCLI is the admin.Service the CLI builds (cmd/keystep newAdmin), on the
// running server's database, as an operator's `keystep users …` is.
func ssCLI(e *env) *admin.Service {
	key, err := storage.NewAuditKey(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return &admin.Service{Store: e.store, Policies: defaultPolicies(e.t), BuiltIn: idp.AccountClientID,
		Audit: &web.Auditor{Store: e.store, Key: key, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: e.clock.Now}}
}

// ssTokensDead checks that every token in list is dead everywhere: refresh
// gives invalid_grant, userinfo refuses the access token and introspection
// says it is inactive.
func ssTokensDead(t *testing.T, e *env, r *rp, list ...tokens) {
	t.Helper()
	for i, tok := range list {
		if _, err := r.refresh(tok.token.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("token set %d: refresh err = %v, want invalid_grant", i, err)
		}
		if _, err := r.provider.UserInfo(t.Context(), oauthSource(tok)); err == nil {
			t.Errorf("token set %d: userinfo still accepts the access token", i)
		}
		status, intro, _ := e.postForm("/oauth/introspect", url.Values{"token": {tok.token.AccessToken}}, rpClient, e.rpSecret)
		if status != http.StatusOK || intro["active"] != false {
			t.Errorf("token set %d: introspection %d %v, want active false", i, status, intro)
		}
	}
}

// ssSignedOut checks that the browser's session is gone: prompt=none gets
// login_required.
func ssSignedOut(t *testing.T, r *rp, b *browser) {
	t.Helper()
	a := r.authURL(url.Values{"prompt": {"none"}})
	if got := r.rpError(b.get(a.url), a); got != "login_required" {
		t.Errorf("prompt=none: %q, want login_required", got)
	}
}

func ssSessions(t *testing.T, e *env, userID string) []storage.Session {
	t.Helper()
	ss, err := e.store.ListUserSessions(context.Background(), userID, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// A password change ends every other session and every refresh family of
// the user — a thief's stolen refresh token included — and keeps only the
// browser session that made the change.
func TestSessionsPasswordChangeEndsEveryOtherSessionAndToken(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	thief := e.browser()
	stolen := r.login(thief, nil)
	b := e.browser()
	own := r.login(b, nil) // an app signed in from the browser that will change the password
	if p := b.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
		t.Fatalf("portal: %d\n%.2000s", p.status, p.body)
	}
	p := b.post("/account/password", url.Values{"new_password": {"a much better passphrase"}, "confirm_password": {"a much better passphrase"}})
	if !strings.Contains(p.body, "Your password was changed") {
		t.Fatalf("no confirmation: %d\n%.2000s", p.status, p.body)
	}
	ssTokensDead(t, e, r, stolen, own)
	ssSignedOut(t, r, thief)
	if p := b.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
		t.Fatal("the session that changed the password was signed out")
	}
	if n := len(ssSessions(t, e, "u-alice")); n != 1 {
		t.Fatalf("%d sessions left, want 1", n)
	}
	ev := e.lastEvent("session.revoked_others")
	if ev.UserID != "u-alice" || ev.ActorID != "u-alice" || ev.Reason != "password changed" || ev.Details["sessions"] != "1" {
		t.Fatalf("audited as %+v", ev)
	}
	// New sign-ins still get tokens.
	b2 := e.browser()
	a := r.authURL(nil)
	fresh := r.mustExchange(r.code(b2.signIn(b2.get(a.url), alice, "a much better passphrase"), a), a)
	if _, err := r.refresh(fresh.token.RefreshToken); err != nil {
		t.Fatalf("a token issued after the change: %v", err)
	}
}

// An admin's factor reset, from the console or the CLI, ends every
// session and every token of the user.
func TestSessionsResetFactorsEndsEveryToken(t *testing.T) {
	for _, via := range []string{"console", "cli"} {
		t.Run(via, func(t *testing.T) {
			e, secret := adminEnv(t)
			e.enrollTOTP("u-alice")
			r := e.rp(rpClient, e.rpSecret)
			user := e.browser()
			tok := r.login(user, nil)
			switch via {
			case "console":
				console := e.browser()
				console.adminLogin(secret)
				console.post("/admin/users/u-alice/reset-factors", url.Values{"reason": {"ticket 9: lost phone"}})
			case "cli":
				if err := ssCLI(e).ResetFactors(context.Background(), admin.Actor{ID: "cli", Reason: "ticket 9"}, "u-alice", e.clock.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if fs, _ := e.store.ListFactors(context.Background(), "u-alice"); len(fs) != 0 {
				t.Fatal("factors not reset")
			}
			ssTokensDead(t, e, r, tok)
			ssSignedOut(t, r, user)
			if ev := e.lastEvent("session.revoked_all"); ev.UserID != "u-alice" || ev.Reason != "factors reset" {
				t.Fatalf("audited as %+v", ev)
			}
		})
	}
}

// Disabling a user, from the console or the CLI, kills their tokens at
// userinfo, introspection and refresh — by revocation, so enabling the
// user again does not bring the old tokens back.
func TestSessionsDisableEndsEveryToken(t *testing.T) {
	for _, via := range []string{"console", "cli"} {
		t.Run(via, func(t *testing.T) {
			e, secret := adminEnv(t)
			r := e.rp(rpClient, e.rpSecret)
			user := e.browser()
			tok := r.login(user, nil)
			var console *browser
			set := func(action string) {
				switch via {
				case "console":
					if console == nil {
						console = e.browser()
						console.adminLogin(secret)
					}
					console.post("/admin/users/u-alice/"+action, nil)
				case "cli":
					if _, err := ssCLI(e).SetDisabled(context.Background(), admin.Actor{ID: "cli"}, "u-alice", action == "disable", e.clock.Now()); err != nil {
						t.Fatal(err)
					}
				}
			}
			set("disable")
			if u, _ := e.store.UserByID(context.Background(), "u-alice"); !u.Disabled {
				t.Fatal("not disabled")
			}
			ssTokensDead(t, e, r, tok)
			if ev := e.lastEvent("session.revoked_all"); ev.UserID != "u-alice" || ev.Reason != "account disabled" {
				t.Fatalf("audited as %+v", ev)
			}
			set("enable")
			ssTokensDead(t, e, r, tok)
			ssSignedOut(t, r, user)
		})
	}
}

// A code minted for the user before their access was ended cannot be
// redeemed after it: the user's completed authorization requests die with
// their sessions (otherwise a thief who keeps a fresh code in hand gets a
// new refresh family right after the password change).
func TestSessionsCodeInFlightDiesWithTheUsersAccess(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	thief := e.browser()
	r.login(thief, nil)
	a := r.authURL(nil)
	code := r.code(thief.get(a.url), a) // SSO: a code without a prompt, kept in hand
	b := e.browser()
	b.portalLogin()
	b.post("/account/password", url.Values{"new_password": {"a much better passphrase"}, "confirm_password": {"a much better passphrase"}})
	if _, err := r.exchange(code, a); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("the code in flight was redeemed after the password change: %v", err)
	}
}

// "Sign out other sessions" needs a fresh factor like the other sensitive
// portal actions: a session whose factors are older than 10 minutes is sent
// through the step-up first, and the post alone changes nothing.
func TestSessionsSignOutOthersNeedsAFreshFactor(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	other := e.browser()
	otherTok := r.login(other, nil)
	b := e.browser()
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	r.code(b.submitCode(b.signIn(b.get(a.url), alice, alicePass), "/login/otp", e.totp(secret)), a)
	p := b.get(e.issuer + "/account")
	if !strings.Contains(p.body, "Hello, alice") {
		t.Fatalf("portal: %d\n%.2000s", p.status, p.body)
	}
	e.clock.Advance(11 * time.Minute)
	p = b.post("/account/sessions/revoke-others", nil)
	if strings.Contains(p.body, "Hello, alice") || !p.has("/login/password") {
		t.Fatalf("sign-out of others without a fresh factor: %d %s\n%.2000s", p.status, p.url, p.body)
	}
	if n := len(ssSessions(t, e, "u-alice")); n != 2 {
		t.Fatalf("%d sessions after the refused post, want 2", n)
	}
	if _, err := r.provider.UserInfo(t.Context(), oauthSource(otherTok)); err != nil {
		t.Fatalf("the refused post revoked a token: %v", err)
	}
	if len(e.adminEvents("session.revoked_others")) != 0 {
		t.Fatal("the refused post was audited as done")
	}
	// After the step-up the portal opens again and the post works.
	p = b.submitCode(b.signIn(p, alice, alicePass), "/login/otp", e.totp(secret))
	if !strings.Contains(p.body, "Hello, alice") {
		t.Fatalf("after the step-up: %d %s\n%.2000s", p.status, p.url, p.body)
	}
	p = b.post("/account/sessions/revoke-others", nil)
	if !strings.Contains(p.body, "Your other sessions were signed out") {
		t.Fatalf("sign-out of others: %d\n%.2000s", p.status, p.body)
	}
	ssSignedOut(t, r, other)
	ssTokensDead(t, e, r, otherTok)
	if n := len(ssSessions(t, e, "u-alice")); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

// sessionConfig sets the session lifetimes, and every level's factor
// freshness to maxAge: with the default 12 h freshness a session older than
// that asks for the password again anyway.
func sessionConfig(idle, maxAge time.Duration) envOption {
	return func(c *idp.Config) {
		c.SessionIdleTimeout, c.SessionMaxAge = idle, maxAge
		levels := stepup.DefaultLevels()
		for i := range levels {
			levels[i].DefaultFreshness, levels[i].Freshness = maxAge, nil
		}
		p, err := stepup.NewPolicy(levels)
		if err != nil {
			panic(err)
		}
		c.Policy = p
	}
}

// A session ends after 12 h without use (the default idle timeout) even
// when its absolute lifetime is longer, and the absolute lifetime still
// holds for a session in constant use.
func TestSessionsIdleTimeout(t *testing.T) {
	e := newEnv(t, sessionConfig(0, 48*time.Hour)) // idle: the default
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	b.portalLogin()
	e.clock.Advance(11 * time.Hour)
	a := r.authURL(nil)
	r.code(b.get(a.url), a) // an app's single sign-on is use too
	e.clock.Advance(11 * time.Hour)
	if p := b.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
		t.Fatalf("signed out after 11 h idle: %d %s\n%.1500s", p.status, p.url, p.body) // 22 h old: use moved the idle clock on
	}
	e.clock.Advance(11 * time.Hour)
	if p := b.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
		t.Fatal("signed out after 11 h idle")
	}
	e.clock.Advance(13 * time.Hour)
	if p := b.get(e.issuer + "/account"); strings.Contains(p.body, "Hello, alice") || !p.has("/login/password") {
		t.Fatalf("still signed in after 13 h idle: %d\n%.2000s", p.status, p.body)
	}
	if n := len(ssSessions(t, e, "u-alice")); n != 0 {
		t.Fatalf("the idle session was kept: %d sessions", n)
	}
	// The absolute lifetime holds for a session used every hour.
	b = e.browser()
	b.portalLogin()
	for range 47 {
		e.clock.Advance(time.Hour)
		if p := b.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
			t.Fatalf("signed out at %s", e.clock.Now())
		}
	}
	e.clock.Advance(time.Hour + time.Second)
	ssSignedOut(t, r, b)
}

// With the defaults a session lasts at most 12 h, used or not.
func TestSessionsDefaultLifetimes(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	b.portalLogin()
	for range 11 {
		e.clock.Advance(time.Hour)
		if p := b.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
			t.Fatalf("signed out at %s", e.clock.Now())
		}
	}
	e.clock.Advance(time.Hour + time.Second)
	ssSignedOut(t, r, b)
}

// Use moves LastSeen on, at most once a minute, so a busy session does not
// cost a write per request.
func TestSessionsLastSeenIsTouchedAtMostOnceAMinute(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.portalLogin()
	start := ssSessions(t, e, "u-alice")[0].LastSeen
	e.clock.Advance(30 * time.Second)
	b.get(e.issuer + "/account")
	if got := ssSessions(t, e, "u-alice")[0].LastSeen; !got.Equal(start) {
		t.Fatalf("LastSeen moved after 30 s: %s → %s", start, got)
	}
	e.clock.Advance(31 * time.Second)
	b.get(e.issuer + "/account")
	if got := ssSessions(t, e, "u-alice")[0].LastSeen; !got.Equal(e.clock.Now()) {
		t.Fatalf("LastSeen = %s after 61 s, want %s", got, e.clock.Now())
	}
}

func defaultPolicies(t *testing.T) *policy.Live {
	t.Helper()
	s, err := policy.Complete(policy.Snapshot{Levels: stepup.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	return policy.Static(s)
}
