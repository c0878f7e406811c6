package sim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// browser is one device: its own cookie jar, network address and user
// agent. It follows redirects inside Keystep and stops at the app's.
type browser struct {
	w    *world
	jar  *cookiejar.Jar
	ip   string
	ua   string
	base *url.URL
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
		resp, err := client.Do(req)
		if err != nil {
			return page{}, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return page{status: resp.StatusCode, body: string(body)}, nil
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
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"},
		"state": {verifier[:16]}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if extra != "" {
		k, val, _ := strings.Cut(extra, "=")
		q.Set(k, val)
	}
	req, err := http.NewRequest(http.MethodGet, b.w.base+"/authorize?"+q.Encode(), nil)
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
