package login_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// gateCase is one visit of a page behind a gate (the account portal, the
// admin console, the passkey pages) by a browser in a given state.
type gateCase struct {
	name    string
	opts    func(t *testing.T) []option
	admin   bool   // alice has the admin role
	enroll  string // "totp"
	session string // "" none, "pwd", "mfa" (password and code), made at t0
	after   time.Duration
	moveTo  string     // the browser's address for the visit, when not home
	path    string     // GET path, or POST path with form or jsonBody
	form    url.Values // POST a form
	json    bool       // POST an empty JSON object (the passkey ceremony endpoints)
	want    gateWant
	check   func(t *testing.T, f *fixture) // what must (not) have changed
}

// gateWant is a page (status and a phrase it shows) or a step-up: the
// browser sent through /authorize as the portal's client.
type gateWant struct {
	status int
	text   string
	stepUp *stepUp
}

// stepUp is the portal's request: the level (essential), the freshness
// (max_age, "" for none) and where the browser comes back to after it.
type stepUp struct {
	acr, maxAge, returnTo string
}

func runGates(t *testing.T, cases []gateCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var opts []option
			if tt.opts != nil {
				opts = tt.opts(t)
			}
			f := newFixture(t, opts...)
			if tt.admin {
				f.makeAdmin(aliceID)
			}
			var secret string
			if strings.Contains(tt.enroll, "totp") {
				secret = f.enrollTOTP(aliceID)
			}
			b := f.browser()
			switch tt.session {
			case "pwd":
				f.signIn(b, alice, alicePass)
			case "mfa":
				f.signInMFA(b, alice, alicePass, secret)
			}
			f.clock.Advance(tt.after)
			if tt.moveTo != "" {
				b.ip = tt.moveTo
			}
			var got response
			switch {
			case tt.form != nil:
				got = b.post(tt.path, tt.form)
			case tt.json:
				got = b.postJSON(tt.path, struct{}{})
			default:
				got = b.get(tt.path)
			}
			if tt.want.stepUp != nil {
				checkStepUp(t, f, b, got, *tt.want.stepUp)
			} else {
				if got.status != tt.want.status {
					t.Fatalf("status %d, want %d (location %q)\n%.2000s", got.status, tt.want.status, got.location, got.body)
				}
				if !says(got.body, tt.want.text) {
					t.Errorf("response does not say %q:\n%.2000s", tt.want.text, got.body)
				}
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

// checkStepUp checks that the gate sent the browser through /authorize as
// the account client, asking for want.acr as an essential claim within
// want.maxAge, and that the callback brings it back to want.returnTo.
func checkStepUp(t *testing.T, f *fixture, b *browser, got response, want stepUp) {
	t.Helper()
	if got.status != http.StatusSeeOther {
		t.Fatalf("want a 303 step-up, got %d %q\n%.2000s", got.status, got.location, got.body)
	}
	u := mustURL(t, got.location)
	q := u.Query()
	if u.Path != "/authorize" || q.Get("client_id") != accountClient || q.Get("redirect_uri") != f.srv.URL+"/account/callback" {
		t.Fatalf("step-up to %s, want /authorize as %s", got.location, accountClient)
	}
	if q.Get("acr_values") != want.acr || q.Get("max_age") != want.maxAge {
		t.Errorf("step-up asks acr_values=%q max_age=%q, want %q and %q", q.Get("acr_values"), q.Get("max_age"), want.acr, want.maxAge)
	}
	// Essential: the portal must never go ahead below its level.
	need, err := parseRequirement(q.Get("claims"), q["acr_values"])
	if err != nil || !need.Essential || len(need.ACR) == 0 || need.ACR[0] != want.acr {
		t.Errorf("claims %q: requirement %+v (%v), want %s essential", q.Get("claims"), need, err, want.acr)
	}
	back := b.get("/account/callback?state=" + url.QueryEscape(q.Get("state")))
	if back.status != http.StatusSeeOther || back.location != want.returnTo {
		t.Errorf("the callback goes to %d %q, want %s", back.status, back.location, want.returnTo)
	}
}

// A password change from a stale session changes nothing.
func passwordUnchanged(t *testing.T, f *fixture) {
	t.Helper()
	u, err := f.store.UserByID(f.ctx(), aliceID)
	if err != nil {
		t.Fatal(err)
	}
	if u.UpdatedAt != t0 {
		t.Errorf("the user was changed at %s", u.UpdatedAt)
	}
	if evs := f.audit("account.password_changed"); len(evs) != 0 {
		t.Errorf("password change audited: %+v", evs)
	}
}

func factorsLeft(n int) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		fs, err := f.store.ListFactors(f.ctx(), aliceID)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != n {
			t.Errorf("%d factors, want %d", len(fs), n)
		}
	}
}

func sessionsLeft(n int) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		if got := len(f.sessions(aliceID)); got != n {
			t.Errorf("%d sessions, want %d", got, n)
		}
	}
}

func audited(typ storage.EventType, outcome string) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		evs := f.audit(typ)
		if len(evs) != 1 || evs[0].Outcome != outcome || evs[0].UserID != aliceID {
			t.Errorf("%s audit %+v, want one %s for %s", typ, evs, outcome, aliceID)
		}
	}
}

func both(checks ...func(t *testing.T, f *fixture)) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		for _, c := range checks {
			c(t, f)
		}
	}
}

// TestPortalGate pins the account portal's gates: a session to see it,
// and for a change a session at the change's level with factors done in
// the last 10 minutes (DESIGN §3.3), reached through the dispatcher.
func TestPortalGate(t *testing.T) {
	change := url.Values{"new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}}
	runGates(t, []gateCase{
		{
			name: "the account page without a session sends the browser to sign in at sfa",
			path: "/account",
			want: gateWant{stepUp: &stepUp{acr: acrSFA, returnTo: "/account"}},
		},
		{
			name:    "the account page with an hours-old session shows the account",
			session: "pwd", after: 3 * time.Hour, path: "/account",
			want: gateWant{status: http.StatusOK, text: "Hello, alice"},
		},
		{
			name:    "the account page after the session's idle timeout sends the browser to sign in",
			session: "pwd", after: 12*time.Hour + time.Minute, path: "/account",
			want: gateWant{stepUp: &stepUp{acr: acrSFA, returnTo: "/account"}},
		},
		{
			name:    "the password page with a password from the last 10 minutes opens",
			session: "pwd", after: 9 * time.Minute, path: "/account/password",
			want: gateWant{status: http.StatusOK, text: "Change password"},
		},
		{
			name:    "the password page with an older password steps up at sfa within 10 minutes",
			session: "pwd", after: 11 * time.Minute, path: "/account/password",
			want: gateWant{stepUp: &stepUp{acr: acrSFA, maxAge: "600", returnTo: "/account/password"}},
		},
		{
			name:   "the password page of a user with an app steps up to mfa",
			enroll: "totp", session: "pwd", after: time.Minute, path: "/account/password",
			want: gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "600", returnTo: "/account/password"}},
		},
		{
			name:   "the password page of a user with an app opens with a fresh password and code",
			enroll: "totp", session: "mfa", after: time.Minute, path: "/account/password",
			want: gateWant{status: http.StatusOK, text: "Change password"},
		},
		{
			name:    "a password change posted from an older session steps up, comes back to the account and changes nothing",
			session: "pwd", after: 11 * time.Minute, path: "/account/password", form: change,
			want:  gateWant{stepUp: &stepUp{acr: acrSFA, maxAge: "600", returnTo: "/account"}},
			check: passwordUnchanged,
		},
		{
			name:    "a password change posted from a fresh session is made and ends the other sessions",
			session: "pwd", after: time.Minute, path: "/account/password", form: change,
			want:  gateWant{status: http.StatusSeeOther},
			check: both(audited("account.password_changed", "success"), audited("session.revoked_others", "success"), sessionsLeft(1)),
		},
		{
			name:    "signing out other sessions from an older session steps up",
			session: "pwd", after: 11 * time.Minute, path: "/account/sessions/revoke-others", form: url.Values{},
			want:  gateWant{stepUp: &stepUp{acr: acrSFA, maxAge: "600", returnTo: "/account"}},
			check: sessionsLeft(1),
		},
		{
			name:   "new recovery codes need mfa",
			enroll: "totp", session: "pwd", after: time.Minute, path: "/account/recovery", form: url.Values{},
			want: gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "600", returnTo: "/account"}},
		},
		{
			name:    "new recovery codes without a second factor are refused",
			session: "pwd", after: time.Minute, path: "/account/recovery", form: url.Values{},
			want: gateWant{status: http.StatusBadRequest, text: "Add an authenticator app first"},
		},
		{
			name:   "removing the app from a password session steps up to mfa and removes nothing",
			enroll: "totp", session: "pwd", after: time.Minute, path: "/account/totp/delete", form: url.Values{"factor": {"totp-" + aliceID}},
			want:  gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "600", returnTo: "/account"}},
			check: factorsLeft(1),
		},
		{
			name:   "removing the app from a fresh mfa session removes it",
			enroll: "totp", session: "mfa", after: time.Minute, path: "/account/totp/delete", form: url.Values{"factor": {"totp-" + aliceID}},
			want:  gateWant{status: http.StatusSeeOther},
			check: both(factorsLeft(0), audited("factor.removed", "success")),
		},
		{
			name:   "removing a factor that is not the user's is not found",
			enroll: "totp", session: "mfa", after: time.Minute, path: "/account/totp/delete", form: url.Values{"factor": {"totp-" + bobID}},
			want:  gateWant{status: http.StatusNotFound, text: "That factor doesn't exist"},
			check: factorsLeft(1),
		},
		{
			name:    "the account page from a denied network ends the session",
			opts:    func(t *testing.T) []option { return []option{denied(t, elsewhereIP)} },
			session: "pwd", after: time.Minute, moveTo: elsewhereIP, path: "/account",
			want:  gateWant{status: http.StatusForbidden, text: "We couldn't confirm it's you"},
			check: sessionsLeft(0),
		},
	})
}

// TestBootstrapGate pins DESIGN §3.3's one exception: a user with no
// second factor adds the first with a password from the last 10 minutes,
// from the portal, at low risk only.
func TestBootstrapGate(t *testing.T) {
	runGates(t, []gateCase{
		{
			name:    "a user without a second factor may add an app with a password from the last 10 minutes",
			session: "pwd", after: 9 * time.Minute, path: "/account/totp",
			want: gateWant{status: http.StatusOK, text: "Set up an authenticator app"},
		},
		{
			name:    "a user without a second factor and an older password is asked for it again",
			session: "pwd", after: 11 * time.Minute, path: "/account/totp",
			want: gateWant{stepUp: &stepUp{acr: acrSFA, maxAge: "600", returnTo: "/account/totp"}},
		},
		{
			name:    "a user without a second factor signed in from a risky place is told who can help",
			opts:    func(t *testing.T) []option { return []option{suspicious(t, elsewhereIP)} },
			session: "pwd", after: time.Minute, moveTo: elsewhereIP, path: "/account/totp",
			want:  gateWant{status: http.StatusForbidden, text: "can only be added when you sign in from a device and network you've used before"},
			check: audited("factor.enroll_refused", "denied"),
		},
		{
			name:    "an app posted from a risky place is not added",
			opts:    func(t *testing.T) []option { return []option{suspicious(t, elsewhereIP)} },
			session: "pwd", after: time.Minute, moveTo: elsewhereIP, path: "/account/totp", form: url.Values{"code": {"123456"}},
			want:  gateWant{status: http.StatusForbidden, text: "Your administrator can help you set one up."},
			check: factorsLeft(0),
		},
		{
			name:   "a user with an app adds another only at mfa",
			enroll: "totp", session: "pwd", after: time.Minute, path: "/account/totp",
			want: gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "600", returnTo: "/account/totp"}},
		},
		{
			name:   "a user with an app adds another from a fresh mfa session",
			enroll: "totp", session: "mfa", after: time.Minute, path: "/account/totp",
			want: gateWant{status: http.StatusOK, text: "Set up an authenticator app"},
		},
	})
}

var totpSecret = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)

// The whole bootstrap: the first app is confirmed with its code, the
// recovery codes that back it up are shown once, and the code used to
// confirm it is spent.
func TestBootstrapAddsFirstAppAndRecoveryCodes(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	f.clock.Advance(time.Minute)
	page := b.get("/account/totp")
	m := totpSecret.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		t.Fatalf("want the enrollment page with its key, got %d\n%.2000s", page.status, page.body)
	}
	code := f.totp(m[1])
	if bad := b.post("/account/totp", url.Values{"code": {f.wrongTOTP(m[1])}}); bad.status != http.StatusBadRequest || !says(bad.body, "That code didn't work") {
		t.Fatalf("a wrong code: got %d, want 400", bad.status)
	}
	got := b.post("/account/totp", url.Values{"code": {code}, "name": {"Pixel"}})
	if got.status != http.StatusOK || !says(got.body, "Save these recovery codes now") {
		t.Fatalf("want the recovery codes, got %d\n%.2000s", got.status, got.body)
	}
	fs, err := f.store.ListFactors(f.ctx(), aliceID)
	if err != nil || len(fs) != 1 || fs[0].Kind != "totp" || fs[0].Name != "Pixel" {
		t.Fatalf("factors %+v (%v), want the one app", fs, err)
	}
	if n, _ := f.store.CountRecoveryCodes(f.ctx(), aliceID); n != 10 {
		t.Errorf("%d recovery codes, want 10", n)
	}
	evs := f.audit("factor.enrolled")
	if len(evs) != 1 || evs[0].Details["bootstrap"] != "true" {
		t.Errorf("factor.enrolled %+v, want one bootstrap", evs)
	}
	// A factor is never added to the session by enrolling it: the session
	// still holds the password alone.
	if ss := f.sessions(aliceID); len(ss) != 1 || len(ss[0].Factors) != 1 {
		t.Errorf("sessions %+v, want one with the password only", ss)
	}
	// The confirming code is spent: it does not pass a sign-in as well.
	id := f.request(b, appClient, acrValues(acrMFA))
	if p := b.open(id); !hasForm(p.body, "/login/otp") {
		t.Fatalf("want the code page, got %d", p.status)
	}
	if replay := b.code("/login/otp", id, code); replay.status != http.StatusUnauthorized {
		t.Errorf("the enrollment code passed a sign-in: %d %q", replay.status, replay.location)
	}
}

// TestAdminGate pins the console's gate: a session first, then the admin
// role, then the console's level within its freshness (15 minutes), or a
// page saying what to add when the level is out of reach.
func TestAdminGate(t *testing.T) {
	atMFA := func(*testing.T) []option { return []option{withAdminACR(acrMFA)} }
	runGates(t, []gateCase{
		{
			name: "the console without a session sends the browser to sign in at sfa",
			path: "/admin",
			want: gateWant{stepUp: &stepUp{acr: acrSFA, returnTo: "/admin"}},
		},
		{
			name:   "a user who is not an admin is refused and the refusal audited",
			opts:   atMFA,
			enroll: "totp", session: "mfa", after: time.Minute, path: "/admin",
			want:  gateWant{status: http.StatusForbidden, text: "You don't have access to the admin console"},
			check: audited("admin.denied", "denied"),
		},
		{
			name:  "an admin below phr with passkeys off is told the console cannot be reached here",
			admin: true, enroll: "totp", session: "mfa", after: time.Minute, path: "/admin",
			want: gateWant{status: http.StatusForbidden, text: "The admin console needs a passkey, and passkeys are off"},
		},
		{
			name:  "an admin with no passkey is told to add one",
			opts:  func(t *testing.T) []option { return []option{withPasskeys(t)} },
			admin: true, enroll: "totp", session: "mfa", after: time.Minute, path: "/admin",
			want: gateWant{status: http.StatusForbidden, text: `href="/account/passkey"`},
		},
		{
			name:  "an admin with only a password and the console at mfa is told to add an app",
			opts:  atMFA,
			admin: true, session: "pwd", after: time.Minute, path: "/admin",
			want: gateWant{status: http.StatusForbidden, text: "Add a second way to sign in"},
		},
		{
			name:  "an admin at the console's level opens it",
			opts:  atMFA,
			admin: true, enroll: "totp", session: "mfa", after: 14 * time.Minute, path: "/admin",
			want: gateWant{status: http.StatusOK, text: "Admin console"},
		},
		{
			name:  "an admin below the console's level steps up within 15 minutes and comes back",
			opts:  atMFA,
			admin: true, enroll: "totp", session: "pwd", after: time.Minute, path: "/admin/users",
			want: gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "900", returnTo: "/admin/users"}},
		},
		{
			name:  "an admin whose factors are older than 15 minutes steps up again",
			opts:  atMFA,
			admin: true, enroll: "totp", session: "mfa", after: 16 * time.Minute, path: "/admin",
			want: gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "900", returnTo: "/admin"}},
		},
		{
			name:  "a console post that must step up comes back to the console's home and changes nothing",
			opts:  atMFA,
			admin: true, enroll: "totp", session: "pwd", after: time.Minute, path: "/admin/users/" + bobID + "/disable", form: url.Values{"reason": {"test"}},
			want: gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "900", returnTo: "/admin"}},
			check: func(t *testing.T, f *fixture) {
				if u, err := f.store.UserByID(f.ctx(), bobID); err != nil || u.Disabled {
					t.Errorf("bob disabled=%v (%v) by a post below the console's level", u.Disabled, err)
				}
			},
		},
		{
			name: "an admin from a denied network is refused and the session ended",
			opts: func(t *testing.T) []option {
				return []option{withAdminACR(acrMFA), denied(t, elsewhereIP)}
			},
			admin: true, enroll: "totp", session: "mfa", after: time.Minute, moveTo: elsewhereIP, path: "/admin",
			want:  gateWant{status: http.StatusForbidden, text: "We couldn't confirm it's you"},
			check: sessionsLeft(0),
		},
	})
}

// TestPasskeyGate pins the gate of adding a passkey: off without WebAuthn;
// the bootstrap rule for a first second factor; else the highest level
// the user can reach up to phr, fresh within 10 minutes. The ceremony's
// JSON endpoints apply the same gate without redirecting.
func TestPasskeyGate(t *testing.T) {
	passkeys := func(t *testing.T) []option { return []option{withPasskeys(t)} }
	risky := func(t *testing.T) []option { return []option{withPasskeys(t), suspicious(t, elsewhereIP)} }
	runGates(t, []gateCase{
		{
			name:    "with passkeys off the passkey page says they are not available",
			session: "pwd", after: time.Minute, path: "/account/passkey",
			want: gateWant{status: http.StatusNotFound, text: "Passkeys are not available"},
		},
		{
			name:    "with passkeys off the ceremony is not available either",
			session: "pwd", after: time.Minute, path: "/account/passkey/options", json: true,
			want: gateWant{status: http.StatusNotFound, text: `"error":"Passkeys are not available here.`},
		},
		{
			name: "the passkey page without a session sends the browser to sign in",
			opts: passkeys, path: "/account/passkey",
			want: gateWant{stepUp: &stepUp{acr: acrSFA, returnTo: "/account/passkey"}},
		},
		{
			name: "a user without a second factor may add a first passkey with a password from the last 10 minutes",
			opts: passkeys, session: "pwd", after: 9 * time.Minute, path: "/account/passkey",
			want: gateWant{status: http.StatusOK, text: "Add a passkey or security key"},
		},
		{
			name: "a user without a second factor and an older password is asked for it again",
			opts: passkeys, session: "pwd", after: 11 * time.Minute, path: "/account/passkey",
			want: gateWant{stepUp: &stepUp{acr: acrSFA, maxAge: "600", returnTo: "/account/passkey"}},
		},
		{
			name: "a user with an app adds a passkey at mfa, the most the user can reach",
			opts: passkeys, enroll: "totp", session: "pwd", after: time.Minute, path: "/account/passkey",
			want: gateWant{stepUp: &stepUp{acr: acrMFA, maxAge: "600", returnTo: "/account/passkey"}},
		},
		{
			name: "a first passkey from a risky place is refused with who can help",
			opts: risky, session: "pwd", after: time.Minute, moveTo: elsewhereIP, path: "/account/passkey",
			want:  gateWant{status: http.StatusForbidden, text: "Your administrator can help you set one up."},
			check: audited("factor.enroll_refused", "denied"),
		},
		{
			name: "the ceremony without a session is refused as signed out",
			opts: passkeys, path: "/account/passkey/options", json: true,
			want: gateWant{status: http.StatusUnauthorized, text: `"error":"You're signed out.`},
		},
		{
			name: "the ceremony with an older password is refused until the page steps up",
			opts: passkeys, session: "pwd", after: 11 * time.Minute, path: "/account/passkey/options", json: true,
			want: gateWant{status: http.StatusForbidden, text: `"error":"Reload the page to confirm it's you, then add the passkey."`},
		},
		{
			name: "the ceremony of a user with an app from a password session is refused",
			opts: passkeys, enroll: "totp", session: "pwd", after: time.Minute, path: "/account/passkey/options", json: true,
			want: gateWant{status: http.StatusForbidden, text: `then add the passkey.`},
		},
		{
			name: "the ceremony of a first passkey from a risky place is refused with who can help",
			opts: risky, session: "pwd", after: time.Minute, moveTo: elsewhereIP, path: "/account/passkey/options", json: true,
			want: gateWant{status: http.StatusForbidden, text: "Your administrator can help you set one up."},
		},
		{
			name: "the ceremony with a fresh password starts a registration for the user",
			opts: passkeys, session: "pwd", after: time.Minute, path: "/account/passkey/options", json: true,
			want: gateWant{status: http.StatusOK, text: `"challenge":`},
		},
		{
			name: "the ceremony of a user with an app from a fresh mfa session starts",
			opts: passkeys, enroll: "totp", session: "mfa", after: time.Minute, path: "/account/passkey/options", json: true,
			want: gateWant{status: http.StatusOK, text: `"name":"alice"`},
		},
	})
}

// The sign-in ceremony's options follow the request: a passwordless
// assertion with no session, one for the user's own keys with one, and
// none for a user who has no passkey.
func TestPasskeySignInOptions(t *testing.T) {
	for _, tt := range []struct {
		name     string
		passkeys bool
		session  bool
		status   int
		text     string
	}{
		{name: "with passkeys off the options are not available", status: http.StatusNotFound, text: "Passkeys are not available here."},
		{name: "with no session the options ask any passkey to verify its user", passkeys: true, status: http.StatusOK, text: `"userVerification":"required"`},
		{name: "with a session of a user who has no passkey there is nothing to offer", passkeys: true, session: true, status: http.StatusBadRequest, text: "You haven't added a passkey"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var opts []option
			if tt.passkeys {
				opts = append(opts, withPasskeys(t))
			}
			f := newFixture(t, opts...)
			b := f.browser()
			if tt.session {
				f.signIn(b, alice, alicePass)
			}
			id := f.request(b, appClient, acrValues(acrMFA))
			got := b.postJSON("/login/webauthn/options", map[string]string{"id": id})
			if got.status != tt.status || !strings.Contains(got.body, tt.text) {
				t.Fatalf("got %d %s, want %d with %q", got.status, got.body, tt.status, tt.text)
			}
			if got.status == http.StatusOK {
				var opt struct {
					PublicKey struct {
						Challenge string `json:"challenge"`
					} `json:"publicKey"`
				}
				if err := json.Unmarshal([]byte(got.body), &opt); err != nil || opt.PublicKey.Challenge == "" {
					t.Errorf("no challenge in %s (%v)", got.body, err)
				}
			}
		})
	}
}

// The console's step-up runs through the same dispatcher as any app's: the
// account client's request for mfa shows the code page, saying why.
func TestPortalStepUpUsesTheDispatcher(t *testing.T) {
	f := newFixture(t)
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	f.clock.Advance(time.Minute)
	got := b.get("/account/password")
	q := mustURL(t, got.location).Query()
	maxAge := int64(600)
	id := f.request(b, accountClient, func(ar *authRequest) {
		ar.ACRValues, ar.claims, ar.MaxAge, ar.State = q["acr_values"], q.Get("claims"), &maxAge, q.Get("state")
	})
	page := b.open(id)
	if !hasForm(page.body, "/login/otp") || !says(page.body, "This change to your account needs an extra check.") {
		t.Fatalf("want the code page for an account change, got %d\n%.2000s", page.status, page.body)
	}
	f.mustContinue(b.code("/login/otp", id, f.totp(secret)), id)
	f.mustComplete(b.open(id), id)
	if p := b.get("/account/password"); p.status != http.StatusOK {
		t.Errorf("after the step-up the password page answers %d %q", p.status, p.location)
	}
}
