package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// browser is one device: its own cookie jar, network address and user
// agent. It follows redirects inside Keystep and stops at the app's.
type browser struct {
	w    *world
	jar  *cookiejar.Jar
	ip   string
	ua   string
	base *url.URL
	// verifier is the PKCE verifier of the last authorize, for redeeming
	// its code as the app would.
	verifier string
}

func (w *world) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(w.base)
	return &browser{w: w, jar: jar, ua: fmt.Sprintf("Mozilla/5.0 (sim device %x)", w.rng.Uint32()), base: u}
}

// stealSession copies the victim's session cookie (not its device cookie).
func (b *browser) stealSession(victim *browser) {
	for _, c := range victim.jar.Cookies(b.base) {
		if c.Name == "ks_session" {
			b.jar.SetCookies(b.base, []*http.Cookie{{Name: c.Name, Value: c.Value}})
		}
	}
}

// page is where a request ended: a page of Keystep's or a redirect out.
type page struct {
	status   int
	body     string
	redirect *url.URL
	// retryAfter is a 429's Retry-After (RFC 6585 §4, RFC 9110 §10.2.3).
	retryAfter time.Duration
}

var hiddenRE = regexp.MustCompile(`name="id" value="([^"]*)"`)

func (p page) hidden(string) string {
	m := hiddenRE.FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func (p page) has(action string) bool { return strings.Contains(p.body, `action="`+action+`"`) }

func (b *browser) do(ctx context.Context, req *http.Request) (page, error) {
	client := &http.Client{Jar: b.jar, Transport: b.w.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 20 {
		req = req.WithContext(ctx)
		req.Header.Set("X-Forwarded-For", b.ip)
		req.Header.Set("User-Agent", b.ua)
		b.w.requests.Add(1)
		resp, err := client.Do(req)
		if err != nil {
			return page{}, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			p := page{status: resp.StatusCode, body: string(body)}
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
				p.retryAfter = time.Duration(secs) * time.Second
			}
			return p, nil
		}
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return page{}, err
		}
		if loc.Host != b.base.Host {
			return page{status: resp.StatusCode, redirect: loc}, nil
		}
		if req, err = http.NewRequest(http.MethodGet, loc.String(), nil); err != nil {
			return page{}, err
		}
	}
	return page{}, fmt.Errorf("redirect loop")
}

// authorize starts a code flow for the simulated app.
func (b *browser) authorize(ctx context.Context, extra string) (page, error) {
	v := make([]byte, 32)
	_, _ = rand.Read(v)
	verifier := base64.RawURLEncoding.EncodeToString(v)
	b.verifier = verifier
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"},
		"state": {verifier[:16]}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	for _, kv := range strings.Split(extra, "&") {
		if k, val, ok := strings.Cut(kv, "="); ok {
			q.Set(k, val)
		}
	}
	req, err := http.NewRequest(http.MethodGet, b.w.base+"/authorize?"+q.Encode(), nil)
	if err != nil {
		return page{}, err
	}
	return b.do(ctx, req)
}

// get opens a page of Keystep's.
func (b *browser) get(ctx context.Context, path string) (page, error) {
	req, err := http.NewRequest(http.MethodGet, b.w.base+path, nil)
	if err != nil {
		return page{}, err
	}
	return b.do(ctx, req)
}

func (b *browser) post(ctx context.Context, path string, form map[string]string) (page, error) {
	v := url.Values{}
	for k, val := range form {
		v.Set(k, val)
	}
	req, err := http.NewRequest(http.MethodPost, b.w.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		return page{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(ctx, req)
}

// password submits the password form on p (a sign-in or re-entry page)
// and reports whether the password was actually checked (not refused by a
// throttle first). When p is not a password page, p is returned as it is.
func (b *browser) password(ctx context.Context, p page, username, password string) (page, bool, error) {
	if !p.has("/login/password") {
		return p, false, nil
	}
	next, err := b.post(ctx, "/login/password", map[string]string{"id": p.hidden("id"), "username": username, "password": password})
	return next, err == nil && next.status != http.StatusTooManyRequests, err
}

// postJSON is a fetch() of static/webauthn.js: JSON in, JSON out.
func (b *browser) postJSON(ctx context.Context, path string, body any) (int, map[string]any, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, b.w.base+path, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	p, err := b.do(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	out := map[string]any{}
	_ = json.Unmarshal([]byte(p.body), &out) // an HTML error page leaves it empty
	return p.status, out, nil
}

// claims are what the app reads from an ID token.
type claims struct {
	ACR string   `json:"acr"`
	AMR []string `json:"amr"`
	Sub string   `json:"sub"`
}

// redeem exchanges the code of p, a redirect to the app, at the token
// endpoint as the app does, and returns the ID token's claims. The token
// comes straight from the server over loopback, so its signature is not
// checked: the simulation reads what was issued.
func (b *browser) redeem(ctx context.Context, p page) (claims, error) {
	if p.redirect == nil || p.redirect.Query().Get("code") == "" {
		return claims{}, errors.New("no code to redeem")
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {p.redirect.Query().Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {b.verifier}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.w.base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return claims{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	b.w.requests.Add(1)
	resp, err := b.w.client.Do(req)
	if err != nil {
		return claims{}, err
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		return claims{}, fmt.Errorf("token endpoint: %d %v", resp.StatusCode, err)
	}
	parts := strings.Split(tok.IDToken, ".")
	if len(parts) != 3 {
		return claims{}, errors.New("token endpoint: no ID token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, err
	}
	var c claims
	return c, json.Unmarshal(raw, &c)
}
