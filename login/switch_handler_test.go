package login_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/storage"
)

// switchForm is the "Use another account" post of request id.
func switchForm(id string) url.Values { return url.Values{"id": {id}} }

// sessionEnded lists the reasons of the session.ended events of a user.
func sessionEnded(f *fixture, userID string) []string {
	var out []string
	for _, e := range f.audit(storage.EventSessionEnded) {
		if e.UserID == userID {
			out = append(out, e.Reason)
		}
	}
	return out
}

// At a browser where bob is signed in with a password and a code, alice
// signs in through "Use another account": bob's session ends in this
// browser (audited, its cookie gone, its row gone), the page says so, and
// alice gets a session of her own with a new ID that holds only her
// password, so the app gets sfa and pwd, never bob's code.
func TestUseAnotherAccountStartsANewSessionWithOnlyTheNewPersonsFactors(t *testing.T) {
	f := newFixture(t)
	bobSecret := f.enrollTOTP(bobID)
	b := f.browser()
	f.signInMFA(b, bob, bobPass, bobSecret)
	bobSessions := f.sessions(bobID)
	if len(bobSessions) != 1 {
		t.Fatalf("bob has %d sessions, want 1", len(bobSessions))
	}
	bobCookie := b.cookies()[sessionCookie]
	f.clock.Advance(time.Minute)

	// An app that needs mfa asks bob for nothing more; one that asks
	// for the password again shows bob's page, with the way to switch.
	id := f.request(b, appClient, prompt("login"))
	page := b.open(id)
	if !hasForm(page.body, "/login/password") || !says(page.body, "Signed in as <strong>bob</strong>") || !hasForm(page.body, "/login/switch") || !says(page.body, "Use another account") {
		t.Fatalf("want bob's password page with Use another account, got %d\n%.2000s", page.status, page.body)
	}
	got := b.post("/login/switch", switchForm(id))
	if want := "/login?id=" + id + "&switched=1"; got.status != http.StatusSeeOther || got.location != want {
		t.Fatalf("switch: got %d %q, want 303 to %s", got.status, got.location, want)
	}
	if _, ok := b.cookies()[sessionCookie]; ok {
		t.Error("bob's session cookie is still in the browser")
	}
	if n := len(f.sessions(bobID)); n != 0 {
		t.Errorf("bob still has %d sessions", n)
	}
	if reasons := sessionEnded(f, bobID); len(reasons) != 1 || !strings.Contains(reasons[0], "another account") {
		t.Errorf("session.ended for bob: %q, want one for the switch", reasons)
	}
	page = b.get(got.location)
	if page.status != http.StatusOK || !hasForm(page.body, "/login/password") || !says(page.body, `autocomplete="username webauthn"`) ||
		!says(page.body, "The other account is signed out in this browser.") || hasForm(page.body, "/login/switch") {
		t.Fatalf("want the sign-in page saying bob was signed out, got %d\n%.2000s", page.status, page.body)
	}

	f.mustContinue(b.password(id, alice, alicePass), id)
	f.mustComplete(b.open(id), id)
	ar, _ := f.authRequest(id)
	if diff := cmp.Diff(completion{acr: acrSFA, amr: []string{"pwd"}, authTime: f.clock.Now()}, completion{acr: ar.ACR, amr: ar.AMR, authTime: ar.AuthTime.UTC()}, cmp.AllowUnexported(completion{})); ar.Subject != aliceID || diff != "" {
		t.Errorf("alice's result: subject %s (-want +got):\n%s", ar.Subject, diff)
	}
	aliceSessions := f.sessions(aliceID)
	if len(aliceSessions) != 1 {
		t.Fatalf("alice has %d sessions, want 1", len(aliceSessions))
	}
	s := aliceSessions[0]
	if s.ID == bobSessions[0].ID || s.SID() == bobSessions[0].SID() || ar.SessionID != s.SID() {
		t.Errorf("alice's session %s (sid %s, token sid %s) is not new next to bob's %s (sid %s)", s.ID, s.SID(), ar.SessionID, bobSessions[0].ID, bobSessions[0].SID())
	}
	if len(s.Factors) != 1 || s.Factors[0].Method != "pwd" {
		t.Errorf("alice's session holds %+v, want her password only", s.Factors)
	}

	// bob's old cookie no longer answers: the portal asks to sign in.
	stale := f.browser()
	stale.jar.SetCookies(mustURL(t, f.srv.URL), []*http.Cookie{{Name: sessionCookie, Value: bobCookie, Path: "/"}})
	if p := stale.get("/account"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/authorize?") {
		t.Errorf("bob's old cookie at the portal: %d %q, want a redirect to sign in", p.status, p.location)
	}
}

// prompt=select_account shows the account choice first when the browser
// holds a session: "Continue as bob" goes on with it, and "Use another
// account" is the switch. Without a session the sign-in page is the
// choice. A sign-in made for the request is itself the choice.
func TestSelectAccount(t *testing.T) {
	t.Run("continue as the signed-in person", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		f.signIn(b, bob, bobPass)
		id := f.request(b, appClient, prompt("select_account"))
		page := b.open(id)
		if page.status != http.StatusOK || !hasForm(page.body, "/login/select") || !hasForm(page.body, "/login/switch") ||
			!says(page.body, "Continue as bob") || !says(page.body, "to continue to Acme Payroll") || !says(page.body, "Cancel and go back to Acme Payroll") {
			t.Fatalf("want the account choice, got %d %q\n%.2000s", page.status, page.location, page.body)
		}
		// Opening it again without choosing still shows the choice.
		if again := b.open(id); !hasForm(again.body, "/login/select") {
			t.Fatalf("the choice was skipped on a second visit: %d %q", again.status, again.location)
		}
		f.mustContinue(b.post("/login/select", url.Values{"id": {id}}), id)
		f.mustComplete(b.open(id), id)
		if ar, _ := f.authRequest(id); ar.Subject != bobID {
			t.Errorf("subject %s, want bob", ar.Subject)
		}
		if r := sessionEnded(f, bobID); len(r) != 0 {
			t.Errorf("bob's session ended: %q", r)
		}
		// The choice was for that request: the next one asks again.
		next := f.request(b, appClient, prompt("select_account"))
		if p := b.open(next); !hasForm(p.body, "/login/select") {
			t.Errorf("the next request skipped the choice: %d %q", p.status, p.location)
		}
	})
	t.Run("use another account", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		f.signIn(b, bob, bobPass)
		id := f.request(b, appClient, prompt("select_account"))
		if p := b.open(id); !hasForm(p.body, "/login/switch") {
			t.Fatalf("no switch on the choice:\n%.2000s", p.body)
		}
		got := b.post("/login/switch", switchForm(id))
		page := b.get(got.location)
		if !hasForm(page.body, "/login/password") || hasForm(page.body, "/login/select") {
			t.Fatalf("want the sign-in page after the switch, got %d\n%.2000s", page.status, page.body)
		}
		f.mustContinue(b.password(id, alice, alicePass), id)
		// Alice's sign-in for this request was her choice: no second one.
		f.mustComplete(b.open(id), id)
		if ar, _ := f.authRequest(id); ar.Subject != aliceID {
			t.Errorf("subject %s, want alice", ar.Subject)
		}
		if n := len(f.sessions(bobID)); n != 0 {
			t.Errorf("bob still has %d sessions", n)
		}
	})
	t.Run("without a session the sign-in page is the choice", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		id := f.request(b, appClient, prompt("select_account"))
		if p := b.open(id); p.status != http.StatusOK || !hasForm(p.body, "/login/password") || hasForm(p.body, "/login/select") {
			t.Fatalf("want the sign-in page, got %d\n%.2000s", p.status, p.body)
		}
	})
	t.Run("a switch for another browser's request is refused and ends nothing", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		f.signIn(b, bob, bobPass)
		other := f.browser()
		id := f.request(other, appClient, prompt("select_account"))
		if got := b.post("/login/switch", switchForm(id)); got.status != http.StatusForbidden {
			t.Errorf("switch with another browser's request: %d, want 403", got.status)
		}
		if n := len(f.sessions(bobID)); n != 1 {
			t.Errorf("bob has %d sessions, want his one", n)
		}
	})
}

// A login_hint naming someone else than the session's user behaves like
// "Use another account": the session does not count, the sign-in page
// (filled in with the hint) says who is signed in and that signing in
// ends it, and the hinted person's sign-in starts a session of their own
// while the other one ends, audited. The same as an id_token_hint for
// someone else; prompt=none then gets login_required.
func TestLoginHintForAnotherPerson(t *testing.T) {
	t.Run("the hinted person signs in afresh and the other session ends", func(t *testing.T) {
		f := newFixture(t)
		bobSecret := f.enrollTOTP(bobID)
		b := f.browser()
		f.signInMFA(b, bob, bobPass, bobSecret)
		id := f.request(b, appClient, loginHint(alice))
		page := b.open(id)
		if page.status != http.StatusOK || !says(page.body, `value="alice"`) || !says(page.body, `autocomplete="username webauthn"`) ||
			!says(page.body, "bob is signed in in this browser. Signing in with another account signs bob out here.") {
			t.Fatalf("want the sign-in page for alice saying bob is signed in, got %d %q\n%.2000s", page.status, page.location, page.body)
		}
		f.mustContinue(b.password(id, alice, alicePass), id)
		f.mustComplete(b.open(id), id)
		ar, _ := f.authRequest(id)
		if ar.Subject != aliceID || ar.ACR != acrSFA || !slices.Equal(ar.AMR, []string{"pwd"}) {
			t.Errorf("result %s %s %v, want alice at sfa with pwd only", ar.Subject, ar.ACR, ar.AMR)
		}
		if n := len(f.sessions(bobID)); n != 0 {
			t.Errorf("bob still has %d sessions", n)
		}
		if r := sessionEnded(f, bobID); len(r) != 1 || !strings.Contains(r[0], "another account signed in") {
			t.Errorf("session.ended for bob: %q", r)
		}
	})
	t.Run("a hint naming the session's user, in any case, uses the session", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		f.signIn(b, bob, bobPass)
		id := f.request(b, appClient, loginHint("BOB"))
		f.mustComplete(b.open(id), id)
	})
	t.Run("prompt=none with a hint for someone else gets login_required", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		f.signIn(b, bob, bobPass)
		id := f.request(b, appClient, loginHint(alice), prompt("none"))
		checkDispatch(t, f, id, b.open(id), dispatchWant{oauthErr: "login_required"})
		if n := len(f.sessions(bobID)); n != 1 {
			t.Errorf("bob has %d sessions, want his one untouched", n)
		}
	})
	t.Run("an id_token_hint for someone else says the same", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		f.signIn(b, bob, bobPass)
		id := f.request(b, appClient, hintSubject(aliceID))
		if p := b.open(id); !says(p.body, "bob is signed in in this browser.") {
			t.Fatalf("want the notice about bob, got %d\n%.2000s", p.status, p.body)
		}
	})
}
