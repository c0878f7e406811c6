package login_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestSessionLifetimes pins when a browser session stops counting: after
// its idle timeout without use, or its absolute lifetime used or not
// (NIST SP 800-63B §4.2.3). A session that no longer counts is met by the
// sign-in page, as no session is.
func TestSessionLifetimes(t *testing.T) {
	const idle, maxAge = time.Hour, 4 * time.Hour
	for _, tt := range []struct {
		name  string
		uses  []time.Duration // visits of the portal, each this long after the one before
		then  time.Duration   // the last wait before the sign-in is tried
		count bool            // whether the session still counts
	}{
		{name: "a session used within its idle timeout counts", then: idle - time.Minute, count: true},
		{name: "a session idle past its timeout no longer counts", then: idle + time.Minute},
		{name: "each use starts the idle timeout again", uses: []time.Duration{50 * time.Minute, 50 * time.Minute}, then: 50 * time.Minute, count: true},
		{name: "a session past its absolute lifetime no longer counts however it is used",
			uses: []time.Duration{50 * time.Minute, 50 * time.Minute, 50 * time.Minute, 50 * time.Minute}, then: 41 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, withSessionLifetimes(idle, maxAge))
			b := f.browser()
			f.signIn(b, alice, alicePass)
			for i, d := range tt.uses {
				f.clock.Advance(d)
				if got := b.get("/account"); got.status != http.StatusOK {
					t.Fatalf("use %d: the portal answered %d %q", i+1, got.status, got.location)
				}
			}
			f.clock.Advance(tt.then)
			id := f.request(b, appClient)
			got := b.open(id)
			if tt.count {
				f.mustComplete(got, id)
				return
			}
			if got.status != http.StatusOK || !hasForm(got.body, "/login/password") || says(got.body, "Signed in as") {
				t.Fatalf("want the sign-in page, got %d %q\n%.1500s", got.status, got.location, got.body)
			}
		})
	}
}

// Signing out ends the session in the store, audited, and the browser's
// next request is met by the sign-in page.
func TestSignOut(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	got := b.post("/logout", url.Values{})
	if got.status != http.StatusSeeOther || got.location != "/logged-out" {
		t.Fatalf("got %d %q, want 303 to /logged-out", got.status, got.location)
	}
	if ss := f.sessions(aliceID); len(ss) != 0 {
		t.Errorf("%d sessions after signing out", len(ss))
	}
	if evs := f.audit("session.logout"); len(evs) != 1 || evs[0].UserID != aliceID {
		t.Errorf("session.logout %+v, want one for alice", evs)
	}
	if _, ok := b.cookies()[sessionCookie]; ok {
		t.Error("the session cookie is still in the browser")
	}
	id := f.request(b, appClient)
	if p := b.open(id); !hasForm(p.body, "/login/password") || says(p.body, "Signed in as") {
		t.Errorf("after signing out: got %d, want the sign-in page", p.status)
	}
	// Signing out without a session is not an error.
	if again := b.post("/logout", url.Values{}); again.status != http.StatusSeeOther {
		t.Errorf("a second sign-out answered %d", again.status)
	}
}
