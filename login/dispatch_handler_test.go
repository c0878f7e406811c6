package login_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keystep/keystep/storage"
)

const papeMFA = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

// dispatchWant is what one visit of the dispatcher must produce: a page of
// ours (status, the form it posts to, a phrase it shows), a completed
// request (303 to the OP's callback, the result stored), or an OAuth error
// sent to the client (303 to its redirect URI with its state, the request
// deleted).
type dispatchWant struct {
	status int
	form   string
	text   string

	complete *completion
	oauthErr string
	// viaPage: a signed-in person first sees the out-of-reach page, whose
	// way back gives the app oauthErr (goBack).
	viaPage bool
}

type completion struct {
	acr      string
	amr      []string
	authTime time.Time
}

// TestDispatch pins each outcome of the step-up decision to the page or
// redirect the dispatcher produces for it. Sessions are made through the
// dispatcher itself at t0 (a password, or a password and a code), then the
// clock moves on by after and the browser opens a new request.
func TestDispatch(t *testing.T) {
	for _, tt := range []struct {
		name    string
		opts    func(t *testing.T) []option
		enroll  string // "totp", "recovery", "totp+recovery"
		session string // "" none, "pwd", "mfa" (password and code)
		after   time.Duration
		moveTo  string // the browser's address for the visit, when not home
		newUA   string // the browser's user agent for the visit, when another
		client  string
		edit    []func(*authRequest)
		method  string // ?method= on the visit
		want    dispatchWant
	}{
		{
			name: "with no session the sign-in page asks for a username and password",
			want: dispatchWant{status: http.StatusOK, form: "/login/password", text: `autocomplete="username webauthn"`},
		},
		{
			name: "with no session the login_hint fills in the username",
			edit: []func(*authRequest){loginHint(alice)},
			want: dispatchWant{status: http.StatusOK, form: "/login/password", text: `value="alice"`},
		},
		{
			name: "with no session and prompt=none the app gets login_required",
			edit: []func(*authRequest){prompt("none")},
			want: dispatchWant{oauthErr: "login_required"},
		},
		{
			name:    "a password session that meets the request completes it at sfa",
			session: "pwd", after: time.Minute,
			want: dispatchWant{complete: &completion{acr: acrSFA, amr: []string{"pwd"}, authTime: t0}},
		},
		{
			name:   "a password and code session completes an mfa request with both in amr",
			enroll: "totp", session: "mfa", after: time.Minute,
			edit: []func(*authRequest){acrValues(acrMFA)},
			want: dispatchWant{complete: &completion{acr: acrMFA, amr: []string{"mfa", "otp", "pwd"}, authTime: t0}},
		},
		{
			name:   "an acr requested by its alias comes back spelled as the app asked",
			enroll: "totp", session: "mfa", after: time.Minute,
			edit: []func(*authRequest){acrValues(papeMFA)},
			want: dispatchWant{complete: &completion{acr: papeMFA, amr: []string{"mfa", "otp", "pwd"}, authTime: t0}},
		},
		{
			name:   "with no request a password and code session gets its real level",
			enroll: "totp", session: "mfa", after: time.Minute,
			want: dispatchWant{complete: &completion{acr: acrMFA, amr: []string{"mfa", "otp", "pwd"}, authTime: t0}},
		},
		{
			name:   "a password session at a client that needs mfa shows the code page",
			enroll: "totp", session: "pwd", after: time.Minute, client: mfaClient,
			want: dispatchWant{status: http.StatusOK, form: "/login/otp", text: "Acme HR needs you to confirm it's you"},
		},
		{
			name:   "a password session asking for a scope with an mfa floor shows the code page",
			opts:   func(*testing.T) []option { return []option{withScopeMinACR("payroll", acrMFA)} },
			enroll: "totp", session: "pwd", after: time.Minute,
			edit: []func(*authRequest){scopes("openid", "payroll")},
			want: dispatchWant{status: http.StatusOK, form: "/login/otp", text: "This part of Acme Payroll asks for an extra check."},
		},
		{
			name:    "a scope floor the user cannot reach shows the page whose way back fails with unmet_authentication_requirements",
			opts:    func(*testing.T) []option { return []option{withScopeMinACR("payroll", acrMFA)} },
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){scopes("openid", "payroll")},
			want: dispatchWant{oauthErr: "unmet_authentication_requirements", viaPage: true},
		},
		{
			name:   "a password session asked for mfa shows the code page and offers the recovery code",
			enroll: "totp+recovery", session: "pwd", after: time.Minute,
			edit: []func(*authRequest){acrValues(acrMFA)},
			want: dispatchWant{status: http.StatusOK, form: "/login/otp", text: "method=recovery"},
		},
		{
			name:   "method=recovery picks the recovery code among the ways offered",
			enroll: "totp+recovery", session: "pwd", after: time.Minute, method: "recovery",
			edit: []func(*authRequest){acrValues(acrMFA)},
			want: dispatchWant{status: http.StatusOK, form: "/login/recovery", text: "You have 10 unused codes"},
		},
		{
			name:   "a method the decision does not offer is not shown (the password, already done)",
			enroll: "totp", session: "pwd", after: time.Minute, method: "pwd",
			edit: []func(*authRequest){acrValues(acrMFA)},
			want: dispatchWant{status: http.StatusOK, form: "/login/otp"},
		},
		{
			name:   "a password session of a user with only recovery codes is asked for one",
			enroll: "recovery", session: "pwd", after: time.Minute,
			edit: []func(*authRequest){acrValues(acrMFA)},
			want: dispatchWant{status: http.StatusOK, form: "/login/recovery", text: "Signed in as <strong>alice</strong>"},
		},
		{
			name:   "an essential acr the user cannot reach shows the page whose way back fails with unmet_authentication_requirements",
			enroll: "totp", session: "pwd", after: time.Minute,
			edit: []func(*authRequest){essentialACR(acrPHR)},
			want: dispatchWant{oauthErr: "unmet_authentication_requirements", viaPage: true},
		},
		{
			name:    "an essential mfa for a user with only a password shows the page whose way back fails with unmet_authentication_requirements",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){essentialACR(acrMFA)},
			want: dispatchWant{oauthErr: "unmet_authentication_requirements", viaPage: true},
		},
		{
			name:    "a client floor the user cannot reach shows the page whose way back fails with unmet_authentication_requirements",
			session: "pwd", after: time.Minute, client: mfaClient,
			want: dispatchWant{oauthErr: "unmet_authentication_requirements", viaPage: true},
		},
		{
			name:    "a voluntary acr the user cannot reach completes at the session's real level",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){acrValues(acrPHR)},
			want: dispatchWant{complete: &completion{acr: acrSFA, amr: []string{"pwd"}, authTime: t0}},
		},
		{
			name:    "max_age=0 asks for the password again",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){maxAge(0)},
			want: dispatchWant{status: http.StatusOK, form: "/login/password", text: "Sign in again"},
		},
		{
			name:    "prompt=login asks for the password again",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){prompt("login")},
			want: dispatchWant{status: http.StatusOK, form: "/login/password", text: "Signed in as <strong>alice</strong>"},
		},
		{
			name:    "a max_age the session is older than asks for the password again",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){maxAge(30)},
			want: dispatchWant{status: http.StatusOK, form: "/login/password", text: "Sign in again"},
		},
		{
			name:    "a max_age the session is within completes without asking",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){maxAge(3600)},
			want: dispatchWant{complete: &completion{acr: acrSFA, amr: []string{"pwd"}, authTime: t0}},
		},
		{
			name:    "prompt=none with a session that meets the request completes without a page",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){prompt("none")},
			want: dispatchWant{complete: &completion{acr: acrSFA, amr: []string{"pwd"}, authTime: t0}},
		},
		{
			name:   "prompt=none with a session below the request fails with login_required",
			enroll: "totp", session: "pwd", after: time.Minute,
			edit: []func(*authRequest){acrValues(acrMFA), prompt("none")},
			want: dispatchWant{oauthErr: "login_required"},
		},
		{
			name:    "a third party the user has not consented to shows the consent page",
			session: "pwd", after: time.Minute, client: shopClient,
			want: dispatchWant{status: http.StatusOK, form: "/login/consent", text: "Allow Acme Shop to access your account?"},
		},
		{
			name:    "prompt=none where consent is missing fails with consent_required",
			session: "pwd", after: time.Minute, client: shopClient,
			edit: []func(*authRequest){prompt("none")},
			want: dispatchWant{oauthErr: "consent_required"},
		},
		{
			name:    "an id_token_hint naming another user does not count the session",
			session: "pwd", after: time.Minute,
			edit: []func(*authRequest){hintSubject(bobID)},
			want: dispatchWant{status: http.StatusOK, form: "/login/password", text: `autocomplete="username webauthn"`},
		},
		{
			name:    "a session back from another network and browser asks for the password again",
			session: "pwd", after: time.Minute, moveTo: elsewhereIP, newUA: "OtherBrowser/2.0",
			want: dispatchWant{status: http.StatusOK, form: "/login/password", text: "Signed in as <strong>alice</strong>"},
		},
		{
			name:    "a network on the deny list fails with access_denied",
			opts:    func(t *testing.T) []option { return []option{denied(t, elsewhereIP)} },
			session: "pwd", after: time.Minute, moveTo: elsewhereIP,
			want: dispatchWant{oauthErr: "access_denied"},
		},
		{
			name:   "medium risk with an authenticator app asks for the code",
			opts:   func(t *testing.T) []option { return []option{suspicious(t, elsewhereIP)} },
			enroll: "totp", session: "pwd", after: time.Minute, moveTo: elsewhereIP,
			want: dispatchWant{status: http.StatusOK, form: "/login/otp", text: "Confirm it's you"},
		},
		{
			name:    "medium risk without a second factor completes at the real level",
			opts:    func(t *testing.T) []option { return []option{suspicious(t, elsewhereIP)} },
			session: "pwd", after: time.Minute, moveTo: elsewhereIP,
			want: dispatchWant{complete: &completion{acr: acrSFA, amr: []string{"pwd"}, authTime: t0}},
		},
		{
			name: "high risk whose floor the user cannot reach fails with access_denied",
			opts: func(t *testing.T) []option {
				return []option{suspicious(t, elsewhereIP), sensitive(appClient)}
			},
			enroll: "totp", session: "pwd", after: time.Minute, moveTo: elsewhereIP,
			want: dispatchWant{oauthErr: "access_denied"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var opts []option
			if tt.opts != nil {
				opts = tt.opts(t)
			}
			f := newFixture(t, opts...)
			var secret string
			if strings.Contains(tt.enroll, "totp") {
				secret = f.enrollTOTP(aliceID)
			}
			if strings.Contains(tt.enroll, "recovery") {
				f.recoveryCodes(aliceID)
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
			if tt.newUA != "" {
				b.ua = tt.newUA
			}
			client := tt.client
			if client == "" {
				client = appClient
			}
			id := f.request(b, client, tt.edit...)
			path := "/login?id=" + url.QueryEscape(id)
			if tt.method != "" {
				path += "&method=" + tt.method
			}
			checkDispatch(t, f, id, b.get(path), tt.want)
		})
	}
}

func checkDispatch(t *testing.T, f *fixture, id string, got response, want dispatchWant) {
	t.Helper()
	switch {
	case want.complete != nil:
		f.mustComplete(got, id)
		ar, ok := f.authRequest(id)
		if !ok || !ar.Done {
			t.Fatalf("request %s not completed in the store", id)
		}
		if diff := cmp.Diff(*want.complete, completion{acr: ar.ACR, amr: ar.AMR, authTime: ar.AuthTime.UTC()}, cmp.AllowUnexported(completion{})); diff != "" {
			t.Errorf("stored result (-want +got):\n%s", diff)
		}
		if ar.Subject != aliceID {
			t.Errorf("subject %q, want %s", ar.Subject, aliceID)
		}
	case want.oauthErr != "":
		if want.viaPage {
			got = goBack(t, id, got)
		}
		if got.status != http.StatusSeeOther {
			t.Fatalf("want 303 to the client, got %d\n%.2000s", got.status, got.body)
		}
		code, state := errorOf(t, got.location)
		if code != want.oauthErr {
			t.Errorf("error %q, want %q", code, want.oauthErr)
		}
		if state == "" || !strings.HasPrefix(state, "state-") {
			t.Errorf("state %q not passed back", state)
		}
		if _, ok := f.authRequest(id); ok {
			t.Error("the failed request is still stored")
		}
		if evs := f.audit("login.failed"); len(evs) == 0 || evs[len(evs)-1].Reason != want.oauthErr {
			t.Errorf("no login.failed audit with reason %s: %+v", want.oauthErr, evs)
		}
	default:
		if got.status != want.status {
			t.Fatalf("status %d, want %d (location %q)\n%.2000s", got.status, want.status, got.location, got.body)
		}
		if want.form != "" && !hasForm(got.body, want.form) {
			t.Errorf("no form posting to %s:\n%.3000s", want.form, got.body)
		}
		if !says(got.body, want.text) {
			t.Errorf("page does not say %q:\n%.3000s", want.text, got.body)
		}
		if ar, ok := f.authRequest(id); !ok || ar.Done {
			t.Errorf("a page was shown but the request is done or gone (ok=%v)", ok)
		}
	}
}

// TestDispatchRefusesRequests pins the requests the dispatcher will not
// serve: they get an error page, never a redirect to the client, and the
// request is left as it was.
func TestDispatchRefusesRequests(t *testing.T) {
	for _, tt := range []struct {
		name   string
		path   func(f *fixture, owner, other *browser) (string, *browser)
		status int
		text   string
	}{
		{
			name: "an unknown request id is a bad request",
			path: func(f *fixture, owner, _ *browser) (string, *browser) {
				f.request(owner, appClient)
				return "/login?id=no-such-request", owner
			},
			status: http.StatusBadRequest, text: "This sign-in link has expired",
		},
		{
			name: "a missing request id is a bad request",
			path: func(f *fixture, owner, _ *browser) (string, *browser) {
				return "/login", owner
			},
			status: http.StatusBadRequest, text: "This sign-in link has expired",
		},
		{
			name: "an overlong request id is a bad request",
			path: func(f *fixture, owner, _ *browser) (string, *browser) {
				return "/login?id=" + strings.Repeat("x", 129), owner
			},
			status: http.StatusBadRequest, text: "This sign-in link has expired",
		},
		{
			name: "an expired request is a bad request",
			path: func(f *fixture, owner, _ *browser) (string, *browser) {
				id := f.request(owner, appClient)
				f.clock.Advance(31 * time.Minute)
				return "/login?id=" + id, owner
			},
			status: http.StatusBadRequest, text: "This sign-in link has expired",
		},
		{
			name: "a request started in another browser is forbidden",
			path: func(f *fixture, owner, other *browser) (string, *browser) {
				other.binding()
				return "/login?id=" + f.request(owner, appClient), other
			},
			status: http.StatusForbidden, text: "This sign-in started in another browser",
		},
		{
			name: "a request opened by a browser with no browser cookie is forbidden",
			path: func(f *fixture, owner, other *browser) (string, *browser) {
				return "/login?id=" + f.request(owner, appClient), other
			},
			status: http.StatusForbidden, text: "This sign-in started in another browser",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			owner, other := f.browser(), f.browser()
			path, b := tt.path(f, owner, other)
			got := b.get(path)
			if got.status != tt.status || got.location != "" {
				t.Fatalf("got %d %q, want %d and no redirect\n%.2000s", got.status, got.location, tt.status, got.body)
			}
			if !says(got.body, tt.text) {
				t.Errorf("page does not say %q:\n%.2000s", tt.text, got.body)
			}
			if !says(got.body, "Reference for your administrator") {
				t.Error("the error page gives no reference")
			}
		})
	}
}

// A request of another browser cannot be completed there either: its
// password post is refused before anything is checked.
func TestPasswordForAnotherBrowsersRequestIsRefused(t *testing.T) {
	f := newFixture(t)
	owner, thief := f.browser(), f.browser()
	thief.binding()
	id := f.request(owner, appClient)
	got := thief.password(id, alice, alicePass)
	if got.status != http.StatusForbidden {
		t.Fatalf("status %d, want 403", got.status)
	}
	if n := len(f.sessions(aliceID)); n != 0 {
		t.Errorf("%d sessions made for a refused request", n)
	}
	if evs := f.audit("login.password"); len(evs) != 0 {
		t.Errorf("the password was checked: %+v", evs)
	}
}

// TestCompletion pins what finishing a request leaves behind: the audit
// says what was asked and achieved, the sign-in becomes history (the next
// one from this device and network is at home), and opening the request
// again goes to the callback without deciding anything anew.
func TestCompletion(t *testing.T) {
	f := newFixture(t)
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	id := f.request(b, appClient, acrValues(acrMFA))
	f.mustContinue(b.password(id, alice, alicePass), id)
	if got := b.open(id); !hasForm(got.body, "/login/otp") {
		t.Fatalf("want the code page, got %d", got.status)
	}
	f.clock.Advance(20 * time.Second)
	f.mustContinue(b.code("/login/otp", id, f.totp(secret)), id)
	f.mustComplete(b.open(id), id)

	evs := f.audit("login.completed")
	if len(evs) != 1 {
		t.Fatalf("%d login.completed events, want 1", len(evs))
	}
	got := evs[0]
	want := map[string]string{"requested_acr": acrMFA, "achieved_acr": acrMFA, "amr": "mfa otp pwd", "target": acrMFA, "risk_waived": "false", "risk_band": "low"}
	for k, v := range want {
		if got.Details[k] != v {
			t.Errorf("login.completed %s = %q, want %q", k, got.Details[k], v)
		}
	}
	if got.UserID != aliceID || got.ClientID != appClient || got.Outcome != "success" {
		t.Errorf("login.completed %+v", got)
	}
	if req := f.audit("stepup.requested"); len(req) != 1 || req[0].Details["offered"] != "totp" {
		t.Errorf("stepup.requested %+v, want one offering totp", req)
	}
	ar, _ := f.authRequest(id)
	if want := t0; !ar.AuthTime.Equal(want) {
		t.Errorf("auth_time %s, want the password's time %s", ar.AuthTime, want)
	}
	if ar.SessionID == "" {
		t.Error("no sid stored")
	}

	// Opened again (the browser's back button), a done request is not
	// decided again: straight to the callback, nothing more audited.
	f.clock.Advance(time.Minute)
	f.mustComplete(b.open(id), id)
	if n := len(f.audit("login.completed")); n != 1 {
		t.Errorf("%d login.completed events after a second visit, want 1", n)
	}

	// The sign-in is history now: the next one from here has no
	// first-sign-in or new-place signals.
	next := f.request(b, appClient)
	f.mustComplete(b.open(next), next)
	if band := f.audit("login.completed")[1].Details["risk_signals"]; band != "" {
		t.Errorf("second sign-in from the same place raised %q", band)
	}
}

// Each completed factor rotates the session's ID and cookie (DESIGN §6), so
// a cookie captured before a step-up is worth nothing after it.
func TestFactorRotatesSession(t *testing.T) {
	f := newFixture(t)
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	before := b.cookies()[sessionCookie]
	stolen := f.browser()
	stolen.jar.SetCookies(mustURL(t, f.srv.URL), []*http.Cookie{{Name: sessionCookie, Value: before, Path: "/"}})

	f.clock.Advance(time.Minute)
	id := f.request(b, appClient, acrValues(acrMFA))
	if got := b.open(id); !hasForm(got.body, "/login/otp") {
		t.Fatalf("want the code page, got %d", got.status)
	}
	f.mustContinue(b.code("/login/otp", id, f.totp(secret)), id)
	after := b.cookies()[sessionCookie]
	if after == "" || after == before {
		t.Fatalf("session cookie not rotated: before %q after %q", before, after)
	}
	ss := f.sessions(aliceID)
	if len(ss) != 1 || len(ss[0].Factors) != 2 {
		t.Fatalf("sessions %+v, want one with two factors", ss)
	}
	// The old cookie opens nothing: its holder is asked to sign in.
	other := f.request(stolen, appClient)
	if got := stolen.open(other); got.status != http.StatusOK || says(got.body, "Signed in as") {
		t.Errorf("the pre-rotation cookie still counts: %d\n%.1500s", got.status, got.body)
	}
}

// TestFactorNotExpected pins that a factor endpoint posted when the
// decision does not wait for that factor changes nothing: no code is
// checked or spent, no failure counted, no session made or changed.
func TestFactorNotExpected(t *testing.T) {
	for _, tt := range []struct {
		name    string
		session bool
		drift   bool // the session comes back from another network and browser
		edit    []func(*authRequest)
		action  string
	}{
		{name: "a code posted with no session", action: "/login/otp"},
		{name: "a recovery code posted with no session", action: "/login/recovery"},
		{name: "a code posted when prompt=login wants the password first", session: true,
			edit: []func(*authRequest){prompt("login"), acrValues(acrMFA)}, action: "/login/otp"},
		{name: "a code posted to a request the session already meets", session: true, action: "/login/otp"},
		{name: "a code posted from a drifted session, whose password is asked again", session: true, drift: true,
			edit: []func(*authRequest){acrValues(acrMFA)}, action: "/login/otp"},
		{name: "a recovery code posted to a request the session already meets", session: true, action: "/login/recovery"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			secret := f.enrollTOTP(aliceID)
			codes := f.recoveryCodes(aliceID)
			b := f.browser()
			if tt.session {
				f.signIn(b, alice, alicePass)
			}
			f.clock.Advance(time.Minute)
			if tt.drift {
				b.ip, b.ua = elsewhereIP, "OtherBrowser/2.0"
			}
			id := f.request(b, appClient, tt.edit...)
			cookiesBefore := b.cookies()
			sessionsBefore := f.sessions(aliceID)
			code := f.totp(secret)
			if tt.action == "/login/recovery" {
				code = codes[0]
			}

			got := b.code(tt.action, id, code)
			if got.status != http.StatusBadRequest || !says(got.body, "That step isn't expected now") {
				t.Fatalf("got %d %q, want 400 \"not expected\"\n%.1500s", got.status, got.location, got.body)
			}
			if diff := cmp.Diff(cookiesBefore, b.cookies()); diff != "" {
				t.Errorf("cookies changed (-before +after):\n%s", diff)
			}
			// Being seen is not a change (LastSeen: the idle timeout).
			if diff := cmp.Diff(sessionsBefore, f.sessions(aliceID), cmpopts.IgnoreFields(storage.Session{}, "LastSeen")); diff != "" {
				t.Errorf("sessions changed (-before +after):\n%s", diff)
			}
			ar, ok := f.authRequest(id)
			if !ok || ar.Done || ar.FailedAttempts != 0 {
				t.Errorf("request changed: ok=%v done=%v failures=%d", ok, ar.Done, ar.FailedAttempts)
			}
			if n, err := f.store.CountRecoveryCodes(f.ctx(), aliceID); err != nil || n != 10 {
				t.Errorf("recovery codes left %d (%v), want 10", n, err)
			}
			evs := f.audit("stepup.factor")
			if len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].Reason != "factor not expected now" {
				t.Errorf("stepup.factor audit %+v, want one denial", evs)
			}
			// The code was not spent: where it is expected, it still works.
			if tt.action == "/login/otp" {
				f.signIn(b, alice, alicePass)
				want := f.request(b, appClient, acrValues(acrMFA))
				if p := b.open(want); !hasForm(p.body, "/login/otp") {
					t.Fatalf("want the code page, got %d", p.status)
				}
				f.mustContinue(b.code("/login/otp", want, code), want)
			}
		})
	}
}

// TestConsent pins the consent page's two answers.
func TestConsent(t *testing.T) {
	for _, tt := range []struct {
		name     string
		decision string
		oauthErr string
	}{
		{name: "allowing saves the consent and completes the request", decision: "allow"},
		{name: "refusing sends access_denied to the client", decision: "deny", oauthErr: "access_denied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			b := f.browser()
			f.signIn(b, alice, alicePass)
			id := f.request(b, shopClient, scopes("openid", "email"))
			if got := b.open(id); !hasForm(got.body, "/login/consent") || !says(got.body, "See your email address") {
				t.Fatalf("want the consent page naming the email scope, got %d\n%.1500s", got.status, got.body)
			}
			got := b.post("/login/consent", url.Values{"id": {id}, "decision": {tt.decision}})
			granted, err := f.store.ConsentedScopes(f.ctx(), aliceID, shopClient)
			if err != nil {
				t.Fatal(err)
			}
			if tt.oauthErr != "" {
				checkDispatch(t, f, id, got, dispatchWant{oauthErr: tt.oauthErr})
				if granted != nil {
					t.Errorf("consent saved after a refusal: %v", granted)
				}
				return
			}
			checkDispatch(t, f, id, got, dispatchWant{complete: &completion{acr: acrSFA, amr: []string{"pwd"}, authTime: t0}})
			if diff := cmp.Diff([]string{"openid", "email"}, granted); diff != "" {
				t.Errorf("consented scopes (-want +got):\n%s", diff)
			}
			// Consent given, the next request of the same scopes asks nothing.
			next := f.request(b, shopClient, scopes("openid", "email"))
			f.mustComplete(b.open(next), next)
		})
	}
}

// Cancelling sends access_denied to the client, whatever the decision.
func TestCancel(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	id := f.request(b, appClient)
	checkDispatch(t, f, id, b.post("/login/cancel", url.Values{"id": {id}}), dispatchWant{oauthErr: "access_denied"})
}

// A risk denial ends the session whose password it saw, so the portal
// cannot be opened with it either.
func TestRiskDenialEndsSession(t *testing.T) {
	f := newFixture(t, denied(t, elsewhereIP))
	b := f.browser()
	f.signIn(b, alice, alicePass)
	b.ip = elsewhereIP
	id := f.request(b, appClient)
	checkDispatch(t, f, id, b.open(id), dispatchWant{oauthErr: "access_denied"})
	if ss := f.sessions(aliceID); len(ss) != 0 {
		t.Errorf("%d sessions left after a risk denial", len(ss))
	}
	if evs := f.audit("session.ended"); len(evs) != 1 || !strings.Contains(evs[0].Reason, "ip_denied") {
		t.Errorf("session.ended audit %+v, want one naming ip_denied", evs)
	}
}

// A wrong password shows the sign-in page again with the problem, the
// username kept, and a 401.
func TestWrongPasswordShowsThePageAgain(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	id := f.request(b, appClient)
	got := b.password(id, alice, "not it")
	if got.status != http.StatusUnauthorized || !hasForm(got.body, "/login/password") {
		t.Fatalf("got %d, want 401 with the password form", got.status)
	}
	if !says(got.body, "That username and password don't match") || !says(got.body, `value="alice"`) {
		t.Errorf("page lacks the problem or the username:\n%.2000s", got.body)
	}
	// An unknown user gets the same answer.
	unknown := b.password(id, "mallory", "not it")
	if unknown.status != got.status || !says(unknown.body, "That username and password don't match") {
		t.Errorf("unknown user answered %d, a wrong password %d", unknown.status, got.status)
	}
	if n := len(f.sessions(aliceID)); n != 0 {
		t.Errorf("%d sessions after wrong passwords", n)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
