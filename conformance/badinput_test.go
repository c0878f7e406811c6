package conformance

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/storage"
)

// countRows is a cheap "nothing was written" probe: audit rows and auth
// requests only grow when something happened.
func (e *env) auditCount() int {
	e.t.Helper()
	ev, err := e.store.ListAudit(context.Background(), storage.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ev)
}

func TestBadAuthorizationRequestsAreShownNotRedirected(t *testing.T) {
	e := newEnv(t)
	good := url.Values{"client_id": {rpClient}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st"}}
	with := func(k, v string) string {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		q.Set(k, v)
		return q.Encode()
	}
	cases := []struct {
		name  string
		query string
	}{
		{"an unknown client gets a page at the OP", with("client_id", "nobody")},
		{"an unregistered redirect URI gets a page at the OP", with("redirect_uri", "https://evil.example/cb")},
		{"a redirect URI that only shares a prefix is refused", with("redirect_uri", rpRedirect+"/more")},
		{"a repeated parameter is refused", good.Encode() + "&redirect_uri=" + url.QueryEscape(rpRedirect)},
		{"invalid UTF-8 is refused", good.Encode() + "&login_hint=%ff%fe"},
		{"a missing client_id is refused", "response_type=code&scope=openid&redirect_uri=" + url.QueryEscape(rpRedirect)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.auditCount()
			p := e.browser().get(e.issuer + "/authorize?" + c.query)
			if p.redirect != nil {
				t.Fatalf("redirected to %s", p.redirect)
			}
			if p.status != http.StatusBadRequest && p.status != http.StatusUnauthorized {
				t.Fatalf("status %d", p.status)
			}
			if !strings.Contains(p.body, "<h1>") || !strings.Contains(p.body, "Reference") {
				t.Fatalf("not an error page:\n%s", p.body)
			}
			if after := e.auditCount(); after != before {
				t.Fatalf("audit rows %d → %d", before, after)
			}
		})
	}
}

func TestBadParametersAfterRedirectValidationGoBackToTheClient(t *testing.T) {
	e := newEnv(t)
	base := url.Values{"client_id": {rpClient}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "state": {"st"}}
	cases := []struct {
		name, key, value, want string
	}{
		{"malformed claims JSON", "claims", "{not json", "invalid_request"},
		{"claims that are not an object", "claims", `["acr"]`, "invalid_request"},
		{"a plain PKCE method", "code_challenge_method", "plain", "invalid_request"},
		{"prompt=none mixed with login", "prompt", "none login", "invalid_request"},
		{"an unsupported response type", "response_type", "token", "unsupported_response_type"},
		{"an unsigned request object", "request", "eyJhbGciOiJub25lIn0.e30.", "invalid_request_object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range base {
				q[k] = v
			}
			q.Set("scope", "openid")
			q.Set("code_challenge", s256("verifier-verifier-verifier-verifier-verifier"))
			q.Set("code_challenge_method", "S256")
			q.Set(c.key, c.value)
			p := e.browser().get(e.issuer + "/authorize?" + q.Encode())
			if p.redirect == nil {
				t.Fatalf("not redirected: %d %s", p.status, p.body)
			}
			if got := p.redirect.Query().Get("error"); got != c.want && !(c.want == "unsupported_response_type" && got == "unauthorized_client") {
				t.Fatalf("error = %q, want %q (%s)", got, c.want, p.redirect.Query().Get("error_description"))
			}
			if p.redirect.Query().Get("state") != "st" {
				t.Fatal("state not returned")
			}
		})
	}
	t.Run("missing openid scope", func(t *testing.T) {
		q := url.Values{"client_id": {rpClient}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "scope": {"profile"}, "state": {"st"}}
		p := e.browser().get(e.issuer + "/authorize?" + q.Encode())
		if p.redirect == nil || p.redirect.Query().Get("error") != "invalid_scope" {
			t.Fatalf("%+v", p)
		}
	})
}

func TestTokenEndpointBadInput(t *testing.T) {
	e := newEnv(t)
	t.Run("an unknown client is invalid_client, never a 500", func(t *testing.T) {
		status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {rpRedirect}}, "nobody", "x")
		if status >= 500 || out["error"] != "invalid_client" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("a garbage code is invalid_grant", func(t *testing.T) {
		status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"garbage"}, "redirect_uri": {rpRedirect}}, rpClient, e.rpSecret)
		if status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("a garbage refresh token is invalid_grant", func(t *testing.T) {
		status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}}, rpClient, e.rpSecret)
		if status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("a repeated parameter is invalid_request", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader("grant_type=client_credentials&grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rpClient, e.rpSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "invalid_request") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("a body over 1 MiB is refused", func(t *testing.T) {
		big := "grant_type=client_credentials&pad=" + strings.Repeat("a", 1<<20+10)
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(big))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rpClient, e.rpSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("a chunked body over 1 MiB is refused too", func(t *testing.T) {
		big := "grant_type=client_credentials&pad=" + strings.Repeat("a", 1<<20+10)
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", io.MultiReader(strings.NewReader(big)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rpClient, e.rpSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("URL-encoded basic auth is decoded (RFC 6749 §2.3.1)", func(t *testing.T) {
		// The secret has characters that must be form-encoded in Basic auth.
		status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rpClient, e.rpSecret)
		if status != 200 {
			t.Fatalf("%d %v", status, out)
		}
	})
}

func TestLoginFormBadInput(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	p := b.get(a.url)
	id := p.hidden("id")
	t.Run("a wrong password shows the same message as an unknown user", func(t *testing.T) {
		wrong := b.post("/login/password", url.Values{"id": {id}, "username": {alice}, "password": {"nope"}})
		unknown := b.post("/login/password", url.Values{"id": {id}, "username": {"mallory"}, "password": {"nope"}})
		if wrong.status != 401 || unknown.status != 401 {
			t.Fatalf("statuses %d %d", wrong.status, unknown.status)
		}
		msg := "That username and password don&#39;t match"
		if !strings.Contains(wrong.body, msg) || !strings.Contains(unknown.body, msg) {
			t.Fatal("messages differ or missing")
		}
	})
	t.Run("an unknown auth request id is a clear page", func(t *testing.T) {
		p := b.post("/login/password", url.Values{"id": {"nope"}, "username": {alice}, "password": {alicePass}})
		if p.status != 400 || p.redirect != nil {
			t.Fatalf("%d", p.status)
		}
	})
	t.Run("invalid UTF-8 in the form is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/login/password", strings.NewReader("id="+id+"&username=%ff&password=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if p := b.do(req); p.status != 400 {
			t.Fatalf("%d", p.status)
		}
	})
	t.Run("a cross-origin form post is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/login/password", strings.NewReader(url.Values{"id": {id}, "username": {alice}, "password": {alicePass}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if p := b.do(req); p.status != http.StatusForbidden {
			t.Fatalf("%d", p.status)
		}
	})
}

// An auth request is bound to the browser that started it: another browser
// can neither complete it nor collect its code (DESIGN §6).
func TestAuthRequestBoundToBrowser(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	attacker, victim := e.browser(), e.browser()
	a := r.authURL(nil)
	p := attacker.get(a.url)
	id := p.hidden("id")
	// The victim is lured to the login page of the attacker's request.
	vp := victim.get(e.issuer + "/login?id=" + url.QueryEscape(id))
	if vp.status != http.StatusForbidden || vp.has("/login/password") {
		t.Fatalf("victim saw %d", vp.status)
	}
	vp = victim.post("/login/password", url.Values{"id": {id}, "username": {alice}, "password": {alicePass}})
	if vp.status != http.StatusForbidden {
		t.Fatalf("victim could sign in to the attacker's request: %d", vp.status)
	}
	// And the callback refuses a browser that did not start the request.
	cp := victim.get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(id))
	if cp.redirect != nil {
		t.Fatalf("callback redirected a foreign browser to %s", cp.redirect)
	}
}

// Jumping to the callback before the login finished never yields a code.
func TestCallbackBeforeLoginYieldsNoCode(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	id := b.get(a.url).hidden("id")
	p := b.get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(id))
	if p.redirect != nil && p.redirect.Query().Get("code") != "" {
		t.Fatal("callback issued a code for an unfinished request")
	}
}
