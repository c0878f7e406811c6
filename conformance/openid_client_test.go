package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOpenIDClientNode drives the code flow with an RP we did not write:
// openid-client, a certified OpenID Connect RP library for Node.js, runs in
// conformance/node/rp.mjs and does discovery, PKCE, the code grant with its
// own state and nonce checks, UserInfo and a refresh. The browser part is
// played here. Skipped without node locally; CI must run it (.ci/run
// installs the pinned dependencies with npm ci).
func TestOpenIDClientNode(t *testing.T) {
	nodePath := nodeRPSetup(t)

	t.Run("acr_values mfa gives pwd otp mfa", func(t *testing.T) {
		e := newEnv(t)
		secret := e.enrollTOTP("u-alice")
		res := runNodeRP(t, nodePath, e, acrMFA, func(b *browser, p page) page {
			return b.submitCode(p, "/login/otp", e.totp(secret))
		})
		if res.IDToken.ACR != acrMFA {
			t.Errorf("acr %q, want %q", res.IDToken.ACR, acrMFA)
		}
		for _, m := range []string{"pwd", "otp", "mfa"} {
			if !slices.Contains(res.IDToken.AMR, m) {
				t.Errorf("amr %v lacks %s", res.IDToken.AMR, m)
			}
		}
		res.checkRefreshAndUserInfo(t)
	})

	t.Run("no acr_values gives sfa by password", func(t *testing.T) {
		e := newEnv(t)
		e.enrollTOTP("u-alice") // enrolled but not asked for: the password is enough
		res := runNodeRP(t, nodePath, e, "", nil)
		if res.IDToken.ACR != acrSFA {
			t.Errorf("acr %q, want %q", res.IDToken.ACR, acrSFA)
		}
		if !slices.Equal(res.IDToken.AMR, []string{"pwd"}) {
			t.Errorf("amr %v, want [pwd]", res.IDToken.AMR)
		}
		res.checkRefreshAndUserInfo(t)
	})
}

// nodeRPDir holds rp.mjs, its package.json and its lock file.
const nodeRPDir = "node"

// nodeRPSetup finds node and makes sure openid-client is installed; it
// returns node's path or skips (locally) or fails (under CI).
func nodeRPSetup(t *testing.T) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	nodePath, err := exec.LookPath("node")
	if err != nil {
		if ci {
			t.Fatal("node is not installed; CI must run the openid-client RP test")
		}
		t.Skip("no node on PATH; skipping the openid-client RP test")
	}
	// openid-client v6 needs Node.js 20 or later (its README); Debian 12 ships 18.
	out, err := exec.CommandContext(t.Context(), nodePath, "--version").Output()
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".")
	if n, convErr := strconv.Atoi(major); err != nil || convErr != nil || n < 20 {
		if ci {
			t.Fatalf("node %s (%s) is too old or broken (%v): openid-client v6 needs Node.js 20 or later", bytes.TrimSpace(out), nodePath, err)
		}
		t.Skipf("node %s (%s) is too old or broken (%v); openid-client v6 needs Node.js 20 or later; skipping", bytes.TrimSpace(out), nodePath, err)
	}
	installed := filepath.Join(nodeRPDir, "node_modules", "openid-client", "package.json")
	if _, err := os.Stat(installed); err == nil {
		return nodePath
	}
	if ci {
		t.Fatalf("%s is missing: run npm ci in conformance/node (.ci/run does)", installed)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("openid-client is not installed in conformance/node and there is no npm to install it; skipping")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = nodeRPDir
	if out, err := cmd.CombinedOutput(); err != nil {
		// Offline, say. CI installs it beforehand and fails above instead.
		t.Skipf("npm ci in conformance/node failed (%v); skipping:\n%s", err, out)
	}
	return nodePath
}

// nodeRPResult is what rp.mjs reported, one JSON line at a time.
type nodeRPResult struct {
	RP               string         `json:"rp"`
	AuthorizeURL     string         `json:"authorize_url"`
	IDToken          idClaims       `json:"id_token"`
	UserInfo         map[string]any `json:"userinfo"`
	RefreshedIDToken idClaims       `json:"refreshed_id_token"`
}

// checkRefreshAndUserInfo checks what holds for every flow: UserInfo is
// about the same user, and the refreshed ID token keeps the original
// authentication (OIDC Core §12.2: same acr, amr and auth_time).
func (r nodeRPResult) checkRefreshAndUserInfo(t *testing.T) {
	t.Helper()
	if r.IDToken.Sub == "" || r.IDToken.AuthTime == 0 || r.IDToken.Nonce == "" {
		t.Errorf("ID token lacks sub, auth_time or nonce: %+v", r.IDToken)
	}
	if sub, _ := r.UserInfo["sub"].(string); sub != r.IDToken.Sub {
		t.Errorf("userinfo sub %q, ID token sub %q", sub, r.IDToken.Sub)
	}
	got, want := r.RefreshedIDToken, r.IDToken
	if got.Sub != want.Sub || got.ACR != want.ACR || !slices.Equal(got.AMR, want.AMR) || got.AuthTime != want.AuthTime {
		t.Errorf("refreshed ID token %+v, want the sub, acr, amr and auth_time of %+v", got, want)
	}
}

// runNodeRP runs rp.mjs against e, plays the browser (password, then more
// when more is asked for) and returns what the RP saw. acrValues is sent
// when not empty; more answers the page after the password, or nil.
func runNodeRP(t *testing.T, nodePath string, e *env, acrValues string, more func(*browser, page) page) nodeRPResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodePath, "rp.mjs")
	cmd.Dir = nodeRPDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	wait := func() error {
		waited = true
		return cmd.Wait()
	}
	defer func() {
		if !waited {
			cancel()
			_ = wait()
		}
	}()
	// fail reports a test failure with whatever node said.
	fail := func(format string, args ...any) {
		t.Helper()
		cancel()
		_ = wait()
		t.Fatalf(format+"\nnode stderr:\n%s", append(args, stderr.String())...)
	}

	send := func(v any) {
		t.Helper()
		line, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stdin.Write(append(line, '\n')); err != nil {
			fail("writing to node: %v", err)
		}
	}
	var res nodeRPResult
	dec := json.NewDecoder(stdout)
	// The first line is the authorization request; later lines fill in the rest.
	read := func() bool {
		t.Helper()
		err := dec.Decode(&res)
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			fail("reading from node: %v", err)
		}
		return true
	}

	cfg := map[string]string{"issuer": e.issuer, "client_id": rpClient, "client_secret": e.rpSecret, "redirect_uri": rpRedirect}
	if acrValues != "" {
		cfg["acr_values"] = acrValues
	}
	send(cfg)
	if !read() || res.AuthorizeURL == "" {
		fail("node printed no authorize_url")
	}
	t.Logf("RP: %s", res.RP)
	checkNodeAuthorizeURL(t, e, res.AuthorizeURL, acrValues)

	b := e.browser()
	p := b.signIn(b.get(res.AuthorizeURL), alice, alicePass)
	if more != nil {
		p = more(b, p)
	}
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if p.redirect == nil || !strings.HasPrefix(p.redirect.String(), rpRedirect+"?") || p.redirect.Query().Get("code") == "" {
		fail("expected a redirect to the RP with a code, got %d at %s (redirect %v):\n%.2000s", p.status, p.url, p.redirect, p.body)
	}
	// openid-client checks state and exchanges the code, not this test.
	if _, err := io.WriteString(stdin, p.redirect.String()+"\n"); err != nil {
		fail("writing to node: %v", err)
	}
	stdin.Close()
	for read() {
	}
	if err := wait(); err != nil {
		t.Fatalf("node rp.mjs: %v\n%s", err, stderr.String())
	}
	if res.RefreshedIDToken.Sub == "" {
		t.Fatalf("node did not get through the refresh:\n%s", stderr.String())
	}
	return res
}

// checkNodeAuthorizeURL checks that openid-client built the request the
// test relies on: our endpoint, PKCE with S256, state, nonce, the acr asked.
func checkNodeAuthorizeURL(t *testing.T, e *env, raw, acrValues string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, e.issuer+"/") {
		t.Fatalf("authorize_url %s is not at the issuer %s", raw, e.issuer)
	}
	q := u.Query()
	for _, k := range []string{"client_id", "redirect_uri", "code_challenge", "state", "nonce"} {
		if q.Get(k) == "" {
			t.Errorf("authorize_url lacks %s: %s", k, raw)
		}
	}
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("acr_values") != acrValues {
		t.Errorf("authorize_url %s: want response_type=code, code_challenge_method=S256, acr_values=%q", raw, acrValues)
	}
}
