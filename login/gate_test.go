package login

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// TestRequireLevel pins the one gate of the account portal, the admin
// console and the passkey pages: a session at the level, fresh enough,
// passes with its auth_time; one that can get there is sent through the
// step-up with the level essential and max_age set, coming back to the
// page (to its area's home page after a form post); one that cannot is
// told so, with no step-up that could only fail.
func TestRequireLevel(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	wa, err := factor.NewWebAuthn("https://id.example", "Keystep")
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{cfg: Config{
		Policies: policy.Static(mustSnapshot(t)), Now: func() time.Time { return t0 }, WebAuthn: wa,
		Issuer: "https://id.example", AccountClientID: "account",
	}}
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }
	pwd := func(d time.Duration) storage.FactorEvent { return storage.FactorEvent{Method: "pwd", At: ago(d)} }
	otp := func(d time.Duration) storage.FactorEvent { return storage.FactorEvent{Method: "totp", At: ago(d)} }
	user := storage.User{ID: "u1", Username: "alice", PasswordHash: "$argon2id$test"}
	totp := storage.Factor{ID: "f1", UserID: "u1", Kind: "totp"}
	key := storage.Factor{ID: "f2", UserID: "u1", Kind: "webauthn", TrustedAt: ago(48 * time.Hour),
		Secret: []byte(`{"flags":{"userVerified":true,"backupEligible":false}}`)}

	tests := []struct {
		name     string
		method   string
		path     string
		done     []storage.FactorEvent
		factors  []storage.Factor
		acr      string
		within   time.Duration
		returnTo string
		wantOK   bool
		wantAt   time.Time
		wantTo   string // the step-up's return page; "" for none
		wantPage int    // status of the page the gate answered with; 0 for none
	}{
		{
			name: "a password from 5 minutes ago opens a password change", method: http.MethodGet, path: "/account/password",
			done: []storage.FactorEvent{pwd(5 * time.Minute)}, acr: stepup.ACRSingleFactor, within: reauthForChanges, returnTo: "/account/password",
			wantOK: true, wantAt: ago(5 * time.Minute),
		},
		{
			name: "a password from 11 minutes ago is asked again, back to the page", method: http.MethodGet, path: "/account/password",
			done: []storage.FactorEvent{pwd(11 * time.Minute)}, acr: stepup.ACRSingleFactor, within: reauthForChanges, returnTo: "/account/password",
			wantTo: "/account/password",
		},
		{
			name: "a form post that must step up comes back to the portal's home", method: http.MethodPost, path: "/account/recovery",
			done: []storage.FactorEvent{pwd(time.Minute)}, factors: []storage.Factor{totp}, acr: stepup.ACRMultiFactor, within: reauthForChanges, returnTo: "/account",
			wantTo: "/account",
		},
		{
			name: "an mfa session inside the window passes with the older factor's time", method: http.MethodPost, path: "/account/recovery",
			done: []storage.FactorEvent{pwd(8 * time.Minute), otp(time.Minute)}, factors: []storage.Factor{totp}, acr: stepup.ACRMultiFactor, within: reauthForChanges, returnTo: "/account",
			wantOK: true, wantAt: ago(8 * time.Minute),
		},
		{
			name: "a level the user cannot reach is refused with a page, not a step-up", method: http.MethodPost, path: "/account/recovery",
			done: []storage.FactorEvent{pwd(time.Minute)}, acr: stepup.ACRMultiFactor, within: reauthForChanges, returnTo: "/account",
			wantPage: http.StatusForbidden,
		},
		{
			name: "the console's window: phr within 15 minutes passes", method: http.MethodGet, path: "/admin/users",
			done: []storage.FactorEvent{pwd(14 * time.Minute), {Method: "webauthn", At: ago(time.Minute), UserVerified: true, DeviceBound: true}}, factors: []storage.Factor{key},
			acr: stepup.ACRPhishing, within: policy.DefaultAdminMaxAge, returnTo: "/admin/users",
			wantOK: true, wantAt: ago(time.Minute),
		},
		{
			name: "a console post past its window comes back to the console's home", method: http.MethodPost, path: "/admin/clients",
			done: []storage.FactorEvent{pwd(20 * time.Minute), {Method: "webauthn", At: ago(16 * time.Minute), UserVerified: true, DeviceBound: true}}, factors: []storage.Factor{key},
			acr: stepup.ACRPhishing, within: policy.DefaultAdminMaxAge, returnTo: "/admin",
			wantTo: "/admin",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &accountState{sess: storage.Session{ID: "s1", UserID: "u1", Factors: tt.done}, user: user, factors: tt.factors}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(tt.method, tt.path, nil)
			at, ok, err := h.requireLevel(w, r, a, tt.acr, tt.within, tt.returnTo)
			if ok != tt.wantOK || !at.Equal(tt.wantAt) {
				t.Errorf("requireLevel() = %v, %v, %v; want %v, %v", at, ok, err, tt.wantAt, tt.wantOK)
			}
			var pe *pageError
			switch {
			case tt.wantPage != 0 && (!errors.As(err, &pe) || pe.status != tt.wantPage):
				t.Errorf("err = %v; want a page with status %d", err, tt.wantPage)
			case tt.wantPage == 0 && err != nil:
				t.Errorf("err = %v; want none", err)
			}
			loc := w.Header().Get("Location")
			if tt.wantTo == "" {
				if loc != "" {
					t.Errorf("redirected to %s; want no step-up", loc)
				}
				return
			}
			u, err := url.Parse(loc)
			if err != nil || u.Path != "/authorize" {
				t.Fatalf("redirected to %q; want /authorize", loc)
			}
			q := u.Query()
			if q.Get("acr_values") != tt.acr || q.Get("max_age") != itoa(int(tt.within/time.Second)) || !strings.Contains(q.Get("claims"), `"essential":true`) {
				t.Errorf("step-up asks %v; want acr %s essential, max_age %s", q, tt.acr, tt.within)
			}
			if c := w.Result().Cookies(); len(c) != 1 || !strings.HasSuffix(c[0].Value, "|"+tt.wantTo) {
				t.Errorf("portal state cookie %v; want it to return to %s", c, tt.wantTo)
			}
		})
	}
}

func mustSnapshot(t *testing.T) *policy.Snapshot {
	t.Helper()
	s, err := policy.Complete(policy.Snapshot{Levels: stepup.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
