package conformance

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The RP-Initiated Logout OP plan
// (oidcc-rp-initiated-logout-certification-test-plan), against an https
// issuer as the plan requires.
var logoutModules = []oidccModule{
	{"oidcc-rp-initiated-logout-discovery-endpoint-verification", oidccLogoutDiscovery},
	{"oidcc-rp-initiated-logout", func(t *testing.T) { oidccLogoutRedirects(t, true) }},
	{"oidcc-rp-initiated-logout-bad-post-logout-redirect-uri", func(t *testing.T) {
		oidccLogoutRefused(t, func(l *logoutRequest) { l.q.Set("post_logout_redirect_uri", suiteBase+"/bad_post_logout_redirect_uri") })
	}},
	{"oidcc-rp-initiated-logout-modified-id-token-hint", func(t *testing.T) {
		oidccLogoutRefused(t, func(l *logoutRequest) { l.q.Set("id_token_hint", unsignedCopy(l.s.t, l.idToken)) })
	}},
	{"oidcc-rp-initiated-logout-no-id-token-hint", oidccLogoutNoIDTokenHint},
	{"oidcc-rp-initiated-logout-no-params", func(t *testing.T) {
		oidccLogoutLoggedOutPage(t, func(l *logoutRequest) { l.q = url.Values{} })
	}},
	{"oidcc-rp-initiated-logout-no-post-logout-redirect-uri", func(t *testing.T) {
		oidccLogoutLoggedOutPage(t, func(l *logoutRequest) { l.q.Del("post_logout_redirect_uri"); l.q.Del("state") })
	}},
	{"oidcc-rp-initiated-logout-no-state", func(t *testing.T) { oidccLogoutRedirects(t, false) }},
	{"oidcc-rp-initiated-logout-only-state", func(t *testing.T) {
		oidccLogoutLoggedOutPage(t, func(l *logoutRequest) { l.q = url.Values{"state": {l.q.Get("state")}} })
	}},
	{"oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri", func(t *testing.T) {
		oidccLogoutRefused(t, func(l *logoutRequest) { l.q.Set("post_logout_redirect_uri", suitePostLogout+"?foo=bar") })
	}},
	{"oidcc-rp-initiated-logout-bad-id-token-hint", func(t *testing.T) {
		oidccLogoutRefused(t, func(l *logoutRequest) { l.q.Set("id_token_hint", hs256Hint(l)) })
	}},
}

// logoutRequest is the common flow's state: a signed-in browser and the
// end_session request the module is about to send.
type logoutRequest struct {
	s       *suiteOP
	b       *browser
	idToken string
	sub     string
	q       url.Values
}

// startLogout signs in (with a 128-character state, as the plan does) and
// prepares the full logout request: id_token_hint, post_logout_redirect_uri
// and a state.
func startLogout(t *testing.T) *logoutRequest {
	s := newSuiteOP(t, overHTTPS)
	b := s.browser()
	_, tok := s.login(b, url.Values{"state": {longState()}})
	return &logoutRequest{s: s, b: b, idToken: tok.idToken, sub: tok.claims["sub"].(string), q: url.Values{
		"id_token_hint": {tok.idToken}, "post_logout_redirect_uri": {suitePostLogout}, "state": {logoutState()},
	}}
}

// logoutState is up to 50 visible characters with '+', ' ' and ';' turned
// into '~', as the suite makes it.
func logoutState() string {
	b := make([]byte, 40)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 0x21 + b[i]%(0x7E-0x21+1)
		if b[i] == '+' || b[i] == ';' {
			b[i] = '~'
		}
	}
	return string(b)
}

func (l *logoutRequest) send() page {
	end, _ := l.s.metadata()["end_session_endpoint"].(string)
	return l.b.get(end + "?" + l.q.Encode())
}

// sessionEnded is the common flow's last step: prompt=none now fails.
func (l *logoutRequest) sessionEnded() {
	l.s.t.Helper()
	a := l.s.request(url.Values{"prompt": {"none"}})
	if got := l.s.authError(l.b.get(l.s.url(a)), a); !slices.Contains(promptNoneErrors, got) {
		l.s.t.Fatalf("after logout prompt=none gave %q, want one of %v", got, promptNoneErrors)
	}
}

// sessionKept checks a refused logout left the session alone.
func (l *logoutRequest) sessionKept() {
	l.s.t.Helper()
	a := l.s.request(url.Values{"prompt": {"none"}})
	l.s.callback(l.b.get(l.s.url(a)), a)
}

// oidcc-rp-initiated-logout-discovery-endpoint-verification.
func oidccLogoutDiscovery(t *testing.T) {
	s := newSuiteOP(t, overHTTPS)
	end, _ := s.metadata()["end_session_endpoint"].(string)
	if !strings.HasPrefix(end, "https://") {
		t.Fatalf("end_session_endpoint %q missing or not https", end)
	}
}

// oidcc-rp-initiated-logout / -no-state: the OP goes back to the registered
// post_logout_redirect_uri with exactly the state sent (none when none was
// sent), and the session is over.
func oidccLogoutRedirects(t *testing.T, withState bool) {
	l := startLogout(t)
	state := l.q.Get("state")
	if !withState {
		l.q.Del("state")
	}
	q := l.s.redirectedTo(l.send(), suitePostLogout)
	want := url.Values{}
	if withState {
		want.Set("state", state)
	}
	if q.Encode() != want.Encode() {
		t.Fatalf("post-logout redirect parameters %v, want exactly %v", q, want)
	}
	l.sessionEnded()
}

// -no-params, -only-state, -no-post-logout-redirect-uri: the user is logged
// out and sees a "signed out" page at the OP; nothing goes to the client.
func oidccLogoutLoggedOutPage(t *testing.T, change func(*logoutRequest)) {
	l := startLogout(t)
	change(l)
	p := l.send()
	// Without an id_token_hint the OP asks first (RP-Initiated Logout 1.0
	// §2): the user confirms on Keystep's own page.
	if l.q.Get("id_token_hint") == "" {
		if !p.has("/logout") {
			t.Fatalf("no confirmation before a logout without id_token_hint: %d %s", p.status, p.url)
		}
		p = l.b.post("/logout", url.Values{})
	}
	if p.redirect != nil {
		t.Fatalf("redirected to %s; the OP must show its own signed-out page", p.redirect)
	}
	if p.status != http.StatusOK || !strings.Contains(p.url, "/logged-out") {
		t.Fatalf("ended at %d %s, want the signed-out page:\n%.1000s", p.status, p.url, p.body)
	}
	l.sessionEnded()
}

// -bad-post-logout-redirect-uri, -query-added-to-post-logout-redirect-uri,
// -modified-id-token-hint, -bad-id-token-hint: no redirect; an error page
// (RP-Initiated Logout 1.0 §3: only a registered URI, exactly, and only
// with a valid hint). The session is left alone.
func oidccLogoutRefused(t *testing.T, change func(*logoutRequest)) {
	l := startLogout(t)
	change(l)
	errorPage(t, l.send())
	l.sessionKept()
}

// -no-id-token-hint: a post_logout_redirect_uri without a hint (and so
// without a client) must not be followed (RP-Initiated Logout 1.0 §3).
func oidccLogoutNoIDTokenHint(t *testing.T) {
	l := startLogout(t)
	l.q.Del("id_token_hint")
	p := l.send()
	if p.redirect != nil {
		t.Fatalf("redirected to %s without an id_token_hint", p.redirect)
	}
	if p.status != http.StatusOK && (p.status < 400 || p.status >= 500) {
		t.Fatalf("status %d", p.status)
	}
}

// unsignedCopy re-serialises a JWS with {"alg":"none"} and no signature.
func unsignedCopy(t *testing.T, jws string) string {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %.40q", jws)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
}

// hs256Hint is the suite's forged hint: HS256 with the client secret as key,
// iss = client_id, aud = the issuer, sub = the user.
func hs256Hint(l *logoutRequest) string {
	t := l.s.t
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(l.s.secret)}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now() // unexpired by the library's clock, so only the forgery can be why it is refused
	payload, _ := json.Marshal(map[string]any{"iss": l.s.id, "aud": l.s.e.issuer, "sub": l.sub, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := obj.CompactSerialize()
	return raw
}
