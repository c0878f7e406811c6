package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// logoutReceiver is an RP's backchannel_logout_uri built the way the spec
// tells an RP to validate a logout token (OIDC Back-Channel Logout 1.0
// §2.6), with go-jose against the OP's /keys. It answers status while
// up, and records every token it accepted and why it refused the others.
type logoutReceiver struct {
	t        *testing.T
	e        *env
	clientID string
	srv      *httptest.Server

	mu       sync.Mutex
	status   int
	accepted []logoutClaims
	refused  []string
	calls    int
}

type logoutClaims struct {
	Iss    string                     `json:"iss"`
	Aud    any                        `json:"aud"`
	Iat    int64                      `json:"iat"`
	Exp    int64                      `json:"exp"`
	JTI    string                     `json:"jti"`
	Sub    string                     `json:"sub"`
	SID    string                     `json:"sid"`
	Events map[string]json.RawMessage `json:"events"`
	Nonce  *string                    `json:"nonce"`
}

func newLogoutReceiver(t *testing.T, e *env, clientID string) *logoutReceiver {
	r := &logoutReceiver{t: t, e: e, clientID: clientID, status: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *logoutReceiver) setStatus(s int) { r.mu.Lock(); r.status = s; r.mu.Unlock() }

func (r *logoutReceiver) got() ([]logoutClaims, []string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted), slices.Clone(r.refused), r.calls
}

func (r *logoutReceiver) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.calls++
	status := r.status
	r.mu.Unlock()
	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	c, err := r.validate(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.refused = append(r.refused, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.accepted = append(r.accepted, c)
	w.WriteHeader(http.StatusOK)
}

// validate is §2.6 step by step.
func (r *logoutReceiver) validate(req *http.Request) (logoutClaims, error) {
	var c logoutClaims
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		return c, fmt.Errorf("%s with %q", req.Method, req.Header.Get("Content-Type"))
	}
	raw := req.PostFormValue("logout_token")
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		return c, err
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); typ != "logout+jwt" {
		return c, fmt.Errorf("typ %q", typ)
	}
	resp, err := http.Get(r.e.issuer + "/keys")
	if err != nil {
		return c, err
	}
	var keys jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&keys)
	resp.Body.Close()
	if err != nil {
		return c, err
	}
	kid := jws.Signatures[0].Header.KeyID
	ks := keys.Key(kid)
	if len(ks) != 1 {
		return c, fmt.Errorf("kid %q not in /keys", kid)
	}
	payload, err := jws.Verify(ks[0])
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, err
	}
	now := r.e.clock.Now().Unix()
	aud := fmt.Sprint(c.Aud)
	switch {
	case c.Iss != r.e.issuer:
		return c, fmt.Errorf("iss %q", c.Iss)
	case aud != r.clientID && aud != "["+r.clientID+"]":
		return c, fmt.Errorf("aud %v", c.Aud)
	case c.Iat > now+5 || c.Exp < now || c.Exp-c.Iat > 120:
		return c, fmt.Errorf("iat %d exp %d at %d", c.Iat, c.Exp, now)
	case c.JTI == "":
		return c, fmt.Errorf("no jti")
	case c.Sub == "" || c.SID == "":
		return c, fmt.Errorf("sub %q sid %q", c.Sub, c.SID)
	case string(c.Events["http://schemas.openid.net/event/backchannel-logout"]) != "{}":
		return c, fmt.Errorf("events %v", c.Events)
	case c.Nonce != nil:
		return c, fmt.Errorf("a nonce")
	}
	return c, nil
}

// addBackchannelRP registers a confidential client whose
// backchannel_logout_uri is a new receiver, and returns both.
func (e *env) addBackchannelRP(id, alg string) (*rp, *logoutReceiver) {
	recv := newLogoutReceiver(e.t, e, id)
	secret := "s3cret-" + id
	e.addClient(storage.Client{ID: id, Name: "App " + id, SecretHash: factor.HashToken(secret),
		RedirectURIs: []string{rpRedirect}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: alg, FirstParty: true,
		BackchannelLogoutURI: recv.srv.URL + "/backchannel", BackchannelLogoutSessionRequired: true})
	return e.rp(id, secret), recv
}

// deliver runs the outbox worker's passes until nothing is due.
func (e *env) deliver() {
	e.t.Helper()
	for {
		n, err := e.server.DeliverDue(context.Background())
		if err != nil {
			e.t.Logf("delivery: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

var sessionFormRE = regexp.MustCompile(`name="sid" value="([^"]*)"`)

// OIDC Back-Channel Logout 1.0: two apps signed in through one browser
// session; the user signs that session out from the portal of another
// browser. Both apps get a valid logout token for the session (§2.4, checked
// as §2.6 says), and the session's refresh tokens no longer work.
func TestBackchannelLogoutFromThePortal(t *testing.T) {
	e := newEnv(t)
	rpA, recvA := e.addBackchannelRP("app-a", "RS256")
	rpB, recvB := e.addBackchannelRP("app-b", "ES256")
	phone := e.browser()
	tA := rpA.login(phone, nil)
	a := rpB.authURL(nil) // the phone is signed in: no password asked
	tB := rpB.mustExchange(rpB.code(phone.get(a.url), a), a)
	if tA.claims.SID == "" || tA.claims.SID != tB.claims.SID {
		t.Fatalf("sid of the two apps' ID tokens: %q and %q, want one session", tA.claims.SID, tB.claims.SID)
	}

	var disc map[string]any
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc["backchannel_logout_supported"] != true || disc["backchannel_logout_session_supported"] != true {
		t.Errorf("discovery: backchannel_logout_supported %v, backchannel_logout_session_supported %v", disc["backchannel_logout_supported"], disc["backchannel_logout_session_supported"])
	}

	// The portal lists the phone's session with its two apps.
	// (sid is derived from the user and the session's creation time: the
	// laptop signs in a second later, as it would in life.)
	e.clock.Advance(time.Second)
	laptop := e.browser()
	p := laptop.portalLogin()
	if !strings.Contains(p.body, "App app-a, App app-b") {
		t.Fatalf("the portal does not list the session's apps:\n%.3000s", p.body)
	}
	m := sessionFormRE.FindStringSubmatch(p.body)
	if m == nil || html.UnescapeString(m[1]) != tA.claims.SID {
		t.Fatalf("sign-out form for sid %q, want %q", m, tA.claims.SID)
	}
	e.deliver()
	if acc, _, calls := recvA.got(); calls != 0 || len(acc) != 0 {
		t.Fatal("a logout was sent before anything ended")
	}
	p = laptop.post("/account/sessions/signout", url.Values{"sid": {tA.claims.SID}})
	if !strings.Contains(p.body, "That session was signed out") {
		t.Fatalf("sign out: %d\n%.2000s", p.status, p.body)
	}
	// The tokens end with the session, before any notification is sent.
	if _, err := rpA.refresh(tA.token.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("app A's refresh token after the sign-out: %v, want invalid_grant", err)
	}
	e.deliver()
	for _, c := range []struct {
		name string
		recv *logoutReceiver
	}{{"app-a", recvA}, {"app-b", recvB}} {
		acc, refused, _ := c.recv.got()
		if len(refused) != 0 || len(acc) != 1 {
			t.Fatalf("%s: accepted %d, refused %v", c.name, len(acc), refused)
		}
		if acc[0].SID != tA.claims.SID || acc[0].Sub != tA.claims.Sub {
			t.Errorf("%s: sid %q sub %q, want %q %q", c.name, acc[0].SID, acc[0].Sub, tA.claims.SID, tA.claims.Sub)
		}
	}
	if _, err := rpB.refresh(tB.token.RefreshToken); err == nil {
		t.Error("app B's refresh token still works")
	}
	// The phone is signed out; the laptop is not.
	if p := laptop.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
		t.Errorf("the laptop's session ended too: %d", p.status)
	}
	if p := phone.get(rpA.authURL(url.Values{"prompt": {"none"}}).url); p.redirect == nil || p.redirect.Query().Get("error") != "login_required" {
		t.Errorf("the phone is still signed in: %+v", p.redirect)
	}
	// Delivered messages leave the outbox.
	if left, _ := e.store.OutboxMessages(t.Context(), "", "", 10); len(left) != 0 {
		t.Errorf("%d messages left after delivery", len(left))
	}
}

// The other sign-outs end the session the same way: RP-initiated logout
// and the session's own sign out in the portal.
func TestBackchannelLogoutOnEverySignOut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		signOut func(e *env, b *browser, r *rp, tok tokens)
	}{
		{"RP-initiated logout", func(e *env, b *browser, r *rp, tok tokens) {
			p := b.get(e.issuer + "/end_session?" + url.Values{"id_token_hint": {tok.token.Extra("id_token").(string)}}.Encode())
			if p.status >= 400 {
				e.t.Fatalf("end_session: %d\n%.1000s", p.status, p.body)
			}
		}},
		{"the portal's sign out of this browser", func(e *env, b *browser, _ *rp, _ tokens) {
			b.post("/account/signout", nil)
		}},
		{"the console's sign out everywhere", func(e *env, _ *browser, _ *rp, _ tokens) {
			if _, err := (&idpAdmin{e}).signOutEverywhere("u-alice"); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"the console's disable", func(e *env, _ *browser, _ *rp, _ tokens) {
			if _, err := ssCLI(e).SetDisabled(context.Background(), admin.Actor{ID: "u-admin", Reason: "left"}, "u-alice", true, e.clock.Now()); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"a refresh token used twice", func(e *env, _ *browser, r *rp, tok tokens) {
			if _, err := r.refresh(tok.token.RefreshToken); err != nil {
				e.t.Fatal(err)
			}
			e.clock.Advance(5 * time.Minute) // past the reuse interval
			if _, err := r.refresh(tok.token.RefreshToken); err == nil {
				e.t.Fatal("reuse was accepted")
			}
		}},
		{"the session expiring", func(e *env, _ *browser, _ *rp, _ tokens) {
			e.clock.Advance(13 * time.Hour)
			// Maintain's first pass runs at once; the test waits for it.
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); e.server.Maintain(ctx, time.Hour) }()
			for {
				if ms, _ := e.store.OutboxMessages(ctx, "", "", 1); len(ms) > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			<-done
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, recv := e.addBackchannelRP("app-a", "ES256")
			b := e.browser()
			tok := r.login(b, nil)
			tc.signOut(e, b, r, tok)
			e.deliver()
			acc, refused, _ := recv.got()
			if len(acc) != 1 || len(refused) != 0 || acc[0].SID != tok.claims.SID {
				t.Fatalf("accepted %+v, refused %v; want one logout for sid %q", acc, refused, tok.claims.SID)
			}
			if _, err := r.refresh(tok.token.RefreshToken); err == nil {
				t.Error("the session's refresh token still works")
			}
		})
	}
}

// An app that is down gets its logout once it is back: failed attempts are
// retried with backoff, and nothing is sent before a retry is due.
func TestBackchannelLogoutRetriedUntilTheAppIsBack(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) {
		c.Outbox = idp.OutboxConfig{MinBackoff: time.Minute, MaxBackoff: 10 * time.Minute, GiveUpAfter: time.Hour}
	})
	r, recv := e.addBackchannelRP("app-a", "RS256")
	b := e.browser()
	tok := r.login(b, nil)
	recv.setStatus(http.StatusServiceUnavailable)
	b.post("/account/signout", nil)
	e.deliver()
	e.clock.Advance(time.Minute)
	e.deliver()
	_, _, calls := recv.got()
	if calls != 2 {
		t.Fatalf("%d attempts after a minute, want 2", calls)
	}
	msgs, err := e.store.OutboxMessages(t.Context(), "app-a", storage.OutboxPending, 10)
	if err != nil || len(msgs) != 1 || !strings.Contains(msgs[0].LastError, "503") {
		t.Fatalf("pending: %+v %v", msgs, err)
	}
	e.deliver() // not due yet
	if _, _, c := recv.got(); c != 2 {
		t.Fatalf("attempted before the retry was due (%d)", c)
	}
	recv.setStatus(http.StatusOK)
	e.clock.Advance(10 * time.Minute)
	e.deliver()
	acc, refused, _ := recv.got()
	if len(acc) != 1 || len(refused) != 0 || acc[0].SID != tok.claims.SID {
		t.Fatalf("after the app came back: accepted %+v, refused %v", acc, refused)
	}
	if len(e.adminEvents(storage.EventOutboxGaveUp)) != 0 {
		t.Error("a delivered message was audited as given up")
	}
}

// An app down past the delivery bound: the message is given up, audited,
// shown as failed, and an admin's retry sends it again.
func TestBackchannelLogoutGivenUpAndRetriedByAnAdmin(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) {
		c.Outbox = idp.OutboxConfig{MinBackoff: time.Minute, MaxBackoff: 10 * time.Minute, GiveUpAfter: time.Hour}
	})
	r, recv := e.addBackchannelRP("app-a", "RS256")
	b := e.browser()
	tok := r.login(b, nil)
	recv.setStatus(http.StatusInternalServerError)
	b.post("/account/signout", nil)
	for range 20 {
		e.deliver()
		e.clock.Advance(10 * time.Minute)
	}
	_, _, calls := recv.got()
	if calls < 3 || calls > 12 {
		t.Errorf("%d attempts within the hour's bound", calls)
	}
	failed, err := e.store.OutboxMessages(t.Context(), "app-a", storage.OutboxFailed, 10)
	if err != nil || len(failed) != 1 {
		t.Fatalf("failed: %+v %v", failed, err)
	}
	ev := e.lastEvent(storage.EventOutboxGaveUp)
	if ev.ClientID != "app-a" || ev.UserID != "u-alice" || !strings.Contains(ev.Reason, "500") {
		t.Errorf("give-up audit row: %+v", ev)
	}
	recv.setStatus(http.StatusOK)
	if err := (&idpAdmin{e}).retry(failed[0].ID); err != nil {
		t.Fatal(err)
	}
	e.deliver()
	acc, _, _ := recv.got()
	if len(acc) != 1 || acc[0].SID != tok.claims.SID || acc[0].JTI != failed[0].ID {
		t.Fatalf("after the retry: %+v", acc)
	}
	e.lastEvent(storage.EventOutboxRequeued)
}

// idpAdmin makes the console's changes (admin.Service), as an admin would.
type idpAdmin struct{ e *env }

func (a *idpAdmin) signOutEverywhere(userID string) (int, error) {
	return ssCLI(a.e).SignOut(context.Background(), admin.Actor{ID: "u-admin", Reason: "lost laptop"}, userID, "", a.e.clock.Now())
}

func (a *idpAdmin) retry(id string) error {
	return ssCLI(a.e).RetryOutbox(context.Background(), admin.Actor{ID: "u-admin"}, id, a.e.clock.Now())
}

// The console's delivery status: per client what is pending and given up,
// with the last error, and a Retry for a given-up message that only an
// admin at the console's level can press, from the console's own origin.
func TestBackchannelDeliveryStatusInTheConsole(t *testing.T) {
	e, secret := adminEnv(t, func(c *idp.Config) {
		c.Outbox = idp.OutboxConfig{MinBackoff: time.Minute, MaxBackoff: 10 * time.Minute, GiveUpAfter: 30 * time.Minute}
	})
	r, recv := e.addBackchannelRP("app-a", "ES256")
	b := e.browser()
	tok := r.login(b, nil)
	recv.setStatus(http.StatusBadGateway)
	b.post("/account/signout", nil)
	for range 10 {
		e.deliver()
		e.clock.Advance(10 * time.Minute)
	}
	failed, err := e.store.OutboxMessages(t.Context(), "app-a", storage.OutboxFailed, 10)
	if err != nil || len(failed) != 1 {
		t.Fatalf("failed: %+v %v", failed, err)
	}
	id := failed[0].ID

	// Someone who is not an admin cannot retry it.
	if p := b.post("/admin/outbox/"+id+"/retry", nil); p.status != http.StatusForbidden && !p.has("/login/password") {
		t.Fatalf("a non-admin's retry: %d\n%.1000s", p.status, p.body)
	}
	console := e.browser()
	console.adminLogin(secret)
	p := console.get(e.issuer + "/admin/outbox")
	for _, want := range []string{"app-a", "502 Bad Gateway", `action="/admin/outbox/` + id + `/retry"`} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("the delivery page lacks %q:\n%.3000s", want, p.body)
		}
	}
	// A cross-site post is refused and changes nothing.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/admin/outbox/"+id+"/retry", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := console.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site retry: %d", resp.StatusCode)
	}
	if ms, _ := e.store.OutboxMessages(t.Context(), "app-a", storage.OutboxFailed, 10); len(ms) != 1 || len(e.adminEvents(storage.EventOutboxRequeued)) != 0 {
		t.Fatal("a refused retry requeued the message")
	}
	recv.setStatus(http.StatusOK)
	p = console.post("/admin/outbox/"+id+"/retry", nil)
	if !strings.Contains(p.body, "The delivery was queued again") {
		t.Fatalf("retry: %d\n%.2000s", p.status, p.body)
	}
	if ev := e.lastEvent(storage.EventOutboxRequeued); ev.ActorID != adaID || ev.ClientID != "app-a" {
		t.Errorf("requeue audit row: %+v", ev)
	}
	e.deliver()
	if acc, _, _ := recv.got(); len(acc) != 1 || acc[0].SID != tok.claims.SID {
		t.Fatalf("after the retry: %+v", acc)
	}
	// A second press finds nothing to retry.
	if p := console.post("/admin/outbox/"+id+"/retry", nil); p.status != http.StatusNotFound {
		t.Errorf("retrying a delivered message: %d", p.status)
	}
}

// An app that signed in for an ID token only (no refresh token) is told
// too, long after its short-lived token family was swept: the session
// remembers its clients until it ends.
func TestBackchannelLogoutReachesAnAppWithoutRefreshTokens(t *testing.T) {
	e := newEnv(t)
	r, recv := e.addBackchannelRP("app-a", "RS256")
	r.oauth.Scopes = []string{"openid"}
	b := e.browser()
	tok := r.login(b, nil)
	if tok.token.RefreshToken != "" {
		t.Fatal("got a refresh token without offline_access")
	}
	// The access token and its family expire, and the cleanup deletes
	// them and the request the code came from.
	e.clock.Advance(2 * time.Hour)
	ctx := t.Context()
	if n, err := e.store.DeleteExpiredTokens(ctx, e.clock.Now()); err != nil || n == 0 {
		t.Fatalf("swept %d tokens: %v", n, err)
	}
	if n, err := e.store.DeleteExpiredAuthRequests(ctx, e.clock.Now()); err != nil || n == 0 {
		t.Fatalf("swept %d requests: %v", n, err)
	}
	b.post("/account/signout", nil)
	e.deliver()
	if acc, refused, _ := recv.got(); len(acc) != 1 || len(refused) != 0 || acc[0].SID != tok.claims.SID {
		t.Fatalf("accepted %+v, refused %v; want one logout for sid %q", acc, refused, tok.claims.SID)
	}
}

// oidcc-backchannel-logout-discovery-endpoint-verification: discovery
// advertises back-channel logout with sid.
func oidccBackchannelDiscovery(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var disc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil {
		t.Fatal(err)
	}
	if disc["backchannel_logout_supported"] != true || disc["backchannel_logout_session_supported"] != true {
		t.Fatalf("backchannel_logout_supported %v, backchannel_logout_session_supported %v", disc["backchannel_logout_supported"], disc["backchannel_logout_session_supported"])
	}
}

// oidcc-backchannel-rp-initiated-logout: the RP signs in, then logs out at
// end_session; it gets a logout token for the ID token's sid and sub, and
// the browser lands on its post_logout_redirect_uri.
func oidccBackchannelRPInitiated(t *testing.T) {
	e := newEnv(t)
	recv := newLogoutReceiver(t, e, rpClient)
	c, err := e.store.ClientByID(t.Context(), rpClient)
	if err != nil {
		t.Fatal(err)
	}
	c.BackchannelLogoutURI = recv.srv.URL + "/backchannel"
	if err := e.store.UpdateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	tok := r.login(b, nil)
	end := e.issuer + "/end_session?" + url.Values{"id_token_hint": {tok.token.Extra("id_token").(string)},
		"post_logout_redirect_uri": {rpLogout}, "state": {"st"}}.Encode()
	p := b.get(end)
	if p.redirect == nil || !strings.HasPrefix(p.redirect.String(), rpLogout) || p.redirect.Query().Get("state") != "st" {
		t.Fatalf("end_session: %d %v", p.status, p.redirect)
	}
	e.deliver()
	acc, refused, _ := recv.got()
	if len(acc) != 1 || len(refused) != 0 || acc[0].SID != tok.claims.SID || acc[0].Sub != tok.claims.Sub {
		t.Fatalf("accepted %+v, refused %v; want a logout for sid %q sub %q", acc, refused, tok.claims.SID, tok.claims.Sub)
	}
}

// The portal signs out only the user's own other sessions: another user's
// sid, an unknown one and the current session are refused and end nothing.
func TestBackchannelPortalSignsOutOnlyOwnOtherSessions(t *testing.T) {
	e := newEnv(t)
	e.addUser("bob", alicePass)
	r, recv := e.addBackchannelRP("app-a", "RS256")
	bob := e.browser()
	a := r.authURL(nil)
	bobTok := r.mustExchange(r.code(bob.signIn(bob.get(a.url), "bob", alicePass), a), a)
	e.clock.Advance(time.Second)
	laptop := e.browser()
	p := laptop.portalLogin()
	own := sessionFormRE.FindStringSubmatch(p.body)
	if own != nil {
		t.Fatalf("a sign-out form for the current session: %v", own)
	}
	var current string
	if ss, err := e.store.ListUserSessions(t.Context(), "u-alice", e.clock.Now()); err == nil && len(ss) == 1 {
		current = ss[0].SID()
	} else {
		t.Fatalf("alice's sessions: %v %v", ss, err)
	}
	for _, tc := range []struct{ name, sid string }{
		{"another user's session", bobTok.claims.SID},
		{"an unknown session", "no-such-sid"},
		{"no session", ""},
		{"the current session", current},
	} {
		p := laptop.post("/account/sessions/signout", url.Values{"sid": {tc.sid}})
		if p.status != http.StatusNotFound && p.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 404 or 400", tc.name, p.status)
		}
	}
	if _, err := r.refresh(bobTok.token.RefreshToken); err != nil {
		t.Errorf("bob's refresh token after alice's refused posts: %v", err)
	}
	if p := laptop.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
		t.Errorf("alice's session ended: %d", p.status)
	}
	e.deliver()
	if _, _, calls := recv.got(); calls != 0 {
		t.Errorf("%d logouts sent for refused sign-outs", calls)
	}
}

// A message waiting for an app goes to the backchannel_logout_uri
// registered when it is sent: an admin's correction takes effect for the
// logouts already queued. One whose client removed its URI is given up.
func TestBackchannelLogoutGoesToTheURIRegisteredNow(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) { c.Outbox = idp.OutboxConfig{MinBackoff: time.Minute, MaxBackoff: time.Minute} })
	r, wrong := e.addBackchannelRP("app-a", "RS256")
	wrong.setStatus(http.StatusNotFound)
	b := e.browser()
	tok := r.login(b, nil)
	b.post("/account/signout", nil)
	e.deliver()
	right := newLogoutReceiver(t, e, "app-a")
	c, err := e.store.ClientByID(t.Context(), "app-a")
	if err != nil {
		t.Fatal(err)
	}
	c.BackchannelLogoutURI = right.srv.URL + "/logout"
	if err := e.store.UpdateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	// The change was made behind the server's back (as the CLI makes
	// it): its client cache holds the old one for 2 s of real time.
	time.Sleep(2100 * time.Millisecond)
	e.clock.Advance(2 * time.Minute) // past the retry
	e.deliver()
	if acc, _, _ := right.got(); len(acc) != 1 || acc[0].SID != tok.claims.SID {
		t.Fatalf("at the corrected URI: %+v", acc)
	}

	// A client that no longer takes logouts: given up at once.
	r2, recv2 := e.addBackchannelRP("app-b", "RS256")
	b2 := e.browser()
	r2.login(b2, nil)
	b2.post("/account/signout", nil)
	c2, _ := e.store.ClientByID(t.Context(), "app-b")
	c2.BackchannelLogoutURI = ""
	if err := e.store.UpdateClient(t.Context(), c2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	e.clock.Advance(2 * time.Minute)
	e.deliver()
	if _, _, calls := recv2.got(); calls != 0 {
		t.Errorf("%d logouts sent to a client without a URI", calls)
	}
	if failed, _ := e.store.OutboxMessages(t.Context(), "app-b", storage.OutboxFailed, 10); len(failed) != 1 {
		t.Errorf("given up: %+v", failed)
	}
}
