package login_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// portalRequest follows a portal or console page's redirect to sign in or
// step up: it stores the request /authorize would, with the acr, claims,
// max_age and state the redirect carries (the state matches the portal's
// cookie, which says where the sign-in returns to).
func (f *fixture) portalRequest(b *browser, path string) string {
	f.t.Helper()
	got := b.get(path)
	if got.status != http.StatusSeeOther {
		f.t.Fatalf("%s: want a redirect to sign in, got %d\n%.2000s", path, got.status, got.body)
	}
	q := mustURL(f.t, got.location).Query()
	return f.request(b, accountClient, func(ar *authRequest) {
		ar.ACRValues, ar.claims, ar.State = q["acr_values"], q.Get("claims"), q.Get("state")
		if s := q.Get("max_age"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				f.t.Fatal(err)
			}
			ar.MaxAge = &n
		}
	})
}

// Every sign-in and step-up page says what it is for (an app by its name,
// the account portal, the admin console) and names where Cancel goes; a
// Cancel on Keystep's own pages goes back to the account, not to an error.
func TestStepUpPagesSayWhatTheyAreFor(t *testing.T) {
	for _, tt := range []struct {
		name    string
		session bool   // alice signed in with her password first
		admin   bool   // alice is an administrator (console at mfa)
		path    string // a portal or console page; "" for an app's request
		client  string
		// what the page says, and the Cancel button's label ("" none)
		headline, reason, cancel string
		// where the Cancel post goes: "" the app (access_denied)
		cancelTo string
	}{
		{
			name: "an app's sign-in names the app", client: appClient,
			headline: "Sign in", reason: "to continue to Acme Payroll", cancel: "Cancel and go back to Acme Payroll",
		},
		{
			name: "an app's step-up names the app", session: true, client: mfaClient,
			headline: "Acme HR needs you to confirm it's you", reason: "This part of Acme HR asks for an extra check.",
			cancel: "Cancel and go back to Acme HR",
		},
		{
			name: "the portal's sign-in names the account and has no Cancel", path: "/account",
			headline: "Sign in", reason: "to continue to your account",
		},
		{
			name: "a change to the account says so and Cancel goes back to the account", session: true, path: "/account/password",
			headline: "Confirm it's you", reason: "This change to your account needs an extra check.",
			cancel: "Cancel and go back to your account", cancelTo: "/account",
		},
		{
			name: "the console's sign-in names the console", admin: true, path: "/admin",
			headline: "Sign in", reason: "to continue to the admin console",
		},
		{
			name: "the console's step-up names the console, never a change to the account", session: true, admin: true, path: "/admin",
			headline: "Confirm it's you to open the admin console", reason: "The admin console asks for a recent, strong sign-in",
			cancel: "Cancel and go back to your account", cancelTo: "/account",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var opts []option
			if tt.admin {
				opts = append(opts, withAdminACR(acrMFA))
			}
			f := newFixture(t, opts...)
			f.enrollTOTP(aliceID)
			if tt.admin {
				f.makeAdmin(aliceID)
			}
			b := f.browser()
			if tt.session {
				f.signIn(b, alice, alicePass)
				f.clock.Advance(time.Minute)
			}
			var id string
			if tt.path != "" {
				id = f.portalRequest(b, tt.path)
			} else {
				id = f.request(b, tt.client)
			}
			page := b.open(id)
			if page.status != http.StatusOK {
				t.Fatalf("status %d %q\n%.2000s", page.status, page.location, page.body)
			}
			if !says(page.body, "<h1>"+tt.headline+"</h1>") || !says(page.body, tt.reason) {
				t.Errorf("page does not say %q / %q:\n%.3000s", tt.headline, tt.reason, page.body)
			}
			if says(page.body, "This change to your account") && tt.path != "/account/password" {
				t.Errorf("page calls it a change to the account:\n%.3000s", page.body)
			}
			if tt.cancel == "" {
				if hasForm(page.body, "/login/cancel") {
					t.Errorf("page has a Cancel with nowhere to go:\n%.3000s", page.body)
				}
				return
			}
			if !hasForm(page.body, "/login/cancel") || !says(page.body, ">"+tt.cancel+"</button>") {
				t.Fatalf("no Cancel saying %q:\n%.3000s", tt.cancel, page.body)
			}
			got := b.post("/login/cancel", url.Values{"id": {id}})
			if tt.cancelTo == "" {
				if code, _ := errorOf(t, got.location); code != "access_denied" {
					t.Errorf("cancel gave the app %q, want access_denied", code)
				}
			} else if got.status != http.StatusSeeOther || got.location != tt.cancelTo {
				t.Errorf("cancel: %d %q, want 303 to %s", got.status, got.location, tt.cancelTo)
			}
			if _, ok := f.authRequest(id); ok {
				t.Error("the cancelled request is still stored")
			}
			if evs := f.audit("login.failed"); len(evs) == 0 || evs[len(evs)-1].Reason != "access_denied" {
				t.Errorf("cancel not audited as login.failed access_denied: %+v", evs)
			}
		})
	}
}
