package conformance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// oauth2ProxyModule is the oauth2-proxy release the test builds from the
// module proxy (never a dependency of Keystep's go.mod).
const oauth2ProxyModule = "github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6"

var (
	oauth2ProxyOnce sync.Once
	oauth2ProxyBin  string
	oauth2ProxyErr  error
)

// buildOAuth2Proxy builds the pinned oauth2-proxy once per user cache
// (about 75 s cold on two cores, with the downloads; seconds afterwards)
// and returns the binary. Only where it cannot be built at all, and never
// under CI, is the test skipped.
func buildOAuth2Proxy(t *testing.T) string {
	t.Helper()
	oauth2ProxyOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "keystep-test", "oauth2-proxy-"+strings.ReplaceAll(oauth2ProxyModule[strings.LastIndex(oauth2ProxyModule, "@")+1:], "/", "_"))
		bin := filepath.Join(dir, "oauth2-proxy")
		if runtime.GOOS == "windows" {
			bin += ".exe"
		}
		if _, err := os.Stat(bin); err == nil {
			oauth2ProxyBin = bin
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			oauth2ProxyErr = fmt.Errorf("no go command: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, gobin, "install", oauth2ProxyModule)
		cmd.Dir = os.TempDir() // outside Keystep's module
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			oauth2ProxyErr = fmt.Errorf("go install %s: %v\n%s", oauth2ProxyModule, err, out)
			return
		}
		t.Logf("built %s in %s", oauth2ProxyModule, time.Since(start).Round(time.Second))
		oauth2ProxyBin = bin
	})
	if oauth2ProxyErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("oauth2-proxy must build under CI: %v", oauth2ProxyErr)
		}
		t.Skipf("oauth2-proxy cannot be built here: %v", oauth2ProxyErr)
	}
	return oauth2ProxyBin
}

// freeAddr is a loopback address nothing listens on, for a child process.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startOAuth2Proxy runs oauth2-proxy in front of upstream with the flags the
// README's recipe gives, and waits until it answers.
func startOAuth2Proxy(t *testing.T, e *env, clientID, secret, addr, upstream string, extra ...string) string {
	t.Helper()
	bin := buildOAuth2Proxy(t)
	base := "http://" + addr
	args := append([]string{
		"--provider=oidc",
		"--oidc-issuer-url=" + e.issuer,
		"--client-id=" + clientID,
		"--client-secret=" + secret,
		"--redirect-url=" + base + "/oauth2/callback",
		"--http-address=" + addr,
		"--upstream=" + upstream,
		"--email-domain=*",
		"--scope=openid email profile offline_access",
		"--oidc-email-claim=email",
		"--code-challenge-method=S256",
		"--cookie-secret=" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)),
		"--cookie-secure=false", // plain http on loopback in the test only
		"--skip-provider-button",
		"--pass-authorization-header", // the ID token to the app
	}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("oauth2-proxy output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("oauth2-proxy did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// upstreamApp is the app behind the proxy: it answers with who oauth2-proxy
// says is signed in and the claims of the ID token it passed on.
func upstreamApp(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims := map[string]any{}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			if parts := strings.Split(tok, "."); len(parts) == 3 {
				raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
				_ = json.Unmarshal(raw, &claims)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"user": r.Header.Get("X-Forwarded-User"), "email": r.Header.Get("X-Forwarded-Email"),
			"acr": claims["acr"], "amr": claims["amr"],
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// follow goes on from p through every redirect, across hosts, until a page
// answers.
func (b *browser) follow(p page) page {
	b.e.t.Helper()
	for range 20 {
		if p.redirect == nil {
			return p
		}
		p = b.get(p.redirect.String())
	}
	b.e.t.Fatal("redirect loop")
	return p
}

// oauth2-proxy, built from the module proxy and configured as README's
// recipe says, puts an app behind Keystep: a user signs in through it, and
// with the Keystep client's minimum level (min_acr) Keystep itself asks for
// the second factor, which oauth2-proxy never would (it does not check
// acr). The app sees the verified email and an ID token at that level.
func TestOAuth2ProxySignsInWithStepUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds oauth2-proxy")
	}
	buildOAuth2Proxy(t) // skips here, if it must, before anything starts
	e := newEnv(t)
	e.clock.run() // oauth2-proxy checks iat and exp against the real time
	ctx := context.Background()
	u, err := e.store.UserByUsername(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	u.Email, u.EmailVerified, u.EmailVerifiedAt = "alice@example.com", true, e.clock.Now()
	if err := e.store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	secret := e.enrollTOTP(u.ID)

	addr := freeAddr(t)
	const clientSecret = "proxy-secret-0123456789"
	proxyClient(e, addr, clientSecret, func(c *storage.Client) { c.MinACR = acrMFA })
	app := upstreamApp(t)
	proxy := startOAuth2Proxy(t, e, "proxy", clientSecret, addr, app.URL, "--cookie-refresh=1s")

	b := e.browser()
	p := b.follow(b.get(proxy + "/payroll"))
	if !p.has("/login/password") {
		t.Fatalf("oauth2-proxy did not send the browser to Keystep's sign-in: %d at %s\n%.2000s", p.status, p.url, p.body)
	}
	p = b.signIn(p, alice, alicePass)
	// The client's minimum is mfa: Keystep asks for the code, not oauth2-proxy.
	p = b.follow(b.submitCode(p, "/login/otp", e.totp(secret)))
	if p.status != http.StatusOK {
		t.Fatalf("after the second factor: %d at %s\n%.2000s", p.status, p.url, p.body)
	}
	var got struct {
		User, Email string
		ACR         string
		AMR         []string
	}
	if err := json.Unmarshal([]byte(p.body), &got); err != nil {
		t.Fatalf("the app did not answer (%d at %s): %v\n%.2000s", p.status, p.url, err, p.body)
	}
	if got.Email != "alice@example.com" || got.ACR != acrMFA {
		t.Fatalf("the app saw %+v, want alice@example.com at %s", got, acrMFA)
	}

	// Signed in, the next request goes straight through.
	p = b.get(proxy + "/payroll/slips")
	if p.status != http.StatusOK || !strings.Contains(p.body, "alice@example.com") {
		t.Fatalf("a second request: %d %s", p.status, p.body)
	}

	// With offline_access oauth2-proxy holds a refresh token and renews the
	// session every --cookie-refresh; renewed, it still holds mfa.
	time.Sleep(1100 * time.Millisecond)
	p = b.get(proxy + "/payroll")
	if p.status != http.StatusOK || !strings.Contains(p.body, acrMFA) {
		t.Fatalf("after a refresh: %d %s", p.status, p.body)
	}
	// Once the user's tokens for the proxy are revoked at Keystep, the
	// next renewal fails and the app is no longer reached.
	if err := e.store.RevokeUserClientTokens(ctx, u.ID, "proxy"); err != nil {
		t.Fatal(err)
	}
	// The renewal is due --cookie-refresh after the last one finished,
	// which a loaded machine makes later than the sleep; so the app may
	// still be reached for a moment, never past the next renewals.
	for deadline := time.Now().Add(10 * time.Second); ; {
		time.Sleep(1100 * time.Millisecond)
		p = b.get(proxy + "/payroll")
		if p.status != http.StatusOK || !strings.Contains(p.body, "alice@example.com") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app was still reached 10 s after the tokens were revoked: %s", p.body)
		}
	}
}

// oauth2-proxy refuses an address Keystep has not verified (email_verified
// false) unless --insecure-oidc-allow-unverified-email: the README's recipe
// says to verify addresses instead.
func TestOAuth2ProxyRefusesUnverifiedEmail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds oauth2-proxy")
	}
	buildOAuth2Proxy(t)
	e := newEnv(t)
	e.clock.run()
	ctx := context.Background()
	u, err := e.store.UserByUsername(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	u.Email = "alice@example.com" // set by an admin, never confirmed
	if err := e.store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	const clientSecret = "proxy-secret-0123456789"
	proxyClient(e, addr, clientSecret, nil)
	proxy := startOAuth2Proxy(t, e, "proxy", clientSecret, addr, upstreamApp(t).URL)

	b := e.browser()
	p := b.follow(b.signIn(b.follow(b.get(proxy+"/")), alice, alicePass))
	if p.status == http.StatusOK && strings.Contains(p.body, "alice@example.com") {
		t.Fatalf("oauth2-proxy let an unverified address through: %s", p.body)
	}
	if p.status != http.StatusInternalServerError && p.status != http.StatusForbidden {
		t.Fatalf("unverified email: %d at %s\n%.1000s", p.status, p.url, p.body)
	}
}

// proxyClient registers the Keystep client for an oauth2-proxy that will
// listen on addr, changed by mod.
func proxyClient(e *env, addr, secret string, mod func(*storage.Client)) {
	c := storage.Client{ID: "proxy", Name: "Intranet", SecretHash: factor.HashToken(secret),
		RedirectURIs: []string{"http://" + addr + "/oauth2/callback"}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "RS256", FirstParty: true}
	if mod != nil {
		mod(&c)
	}
	e.addClient(c)
}

// The other two ways README gives to require a level, with oauth2-proxy
// asking for it (--acr-values): a --strict Keystep client makes the request
// essential, so a user who cannot reach it gets Keystep's refusal, not the
// app; and the proxy itself can match the acr claim as a group.
func TestOAuth2ProxyRequiredLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds oauth2-proxy")
	}
	buildOAuth2Proxy(t)
	const secret = "proxy-secret-0123456789"
	for _, tc := range []struct {
		name   string
		strict bool
		args   []string
	}{
		{"strict client", true, []string{"--acr-values=" + acrMFA}},
		{"acr as a group", false, []string{"--acr-values=" + acrMFA, "--oidc-groups-claim=acr", "--allowed-group=" + acrMFA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.clock.run()
			ctx := context.Background()
			u, err := e.store.UserByUsername(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			u.Email, u.EmailVerified, u.EmailVerifiedAt = "alice@example.com", true, e.clock.Now()
			if err := e.store.UpdateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			proxyClient(e, addr, secret, func(c *storage.Client) { c.Strict = tc.strict })
			proxy := startOAuth2Proxy(t, e, "proxy", secret, addr, upstreamApp(t).URL, tc.args...)

			// Without a second factor, alice cannot reach mfa: the app is not reached.
			b := e.browser()
			p := b.follow(b.signIn(b.follow(b.get(proxy+"/")), alice, alicePass))
			if strings.Contains(p.body, "alice@example.com") {
				t.Fatalf("the app was reached at a lower level: %d %s", p.status, p.body)
			}

			// With one, Keystep asks for it, and the app sees mfa.
			totp := e.enrollTOTP(u.ID)
			b = e.browser()
			p = b.signIn(b.follow(b.get(proxy+"/")), alice, alicePass)
			p = b.follow(b.submitCode(p, "/login/otp", e.totp(totp)))
			if p.status != http.StatusOK || !strings.Contains(p.body, acrMFA) || !strings.Contains(p.body, "alice@example.com") {
				t.Fatalf("after the step-up: %d at %s\n%.1000s", p.status, p.url, p.body)
			}
		})
	}
}
