package conformance

// Security review tests. Each TestReview* either demonstrates a problem
// (and fails until it is fixed) or pins a property the review verified.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// ---- helpers ----

// rvSteal copies the named cookies (all when none are named) from one
// browser's jar into another's, as a thief replaying them would.
func rvSteal(t *testing.T, e *env, from, to *browser, names ...string) {
	t.Helper()
	u := mustParse(t, e.issuer)
	var out []*http.Cookie
	for _, c := range from.client.Jar.Cookies(u) {
		if len(names) == 0 || slices.Contains(names, c.Name) {
			out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no cookies %v to steal", names)
	}
	to.client.Jar.SetCookies(u, out)
}

// rvPostJSON is postJSON with the browser's address and user agent.
func (b *browser) rvPostJSON(path string, v any) (int, map[string]any) {
	b.e.t.Helper()
	raw, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, b.e.issuer+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if b.ip != "" {
		req.Header.Set("X-Forwarded-For", b.ip)
	}
	if b.ua != "" {
		req.Header.Set("User-Agent", b.ua)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// rvKey is a software WebAuthn authenticator: a device-bound (not
// backup-eligible) P-256 credential that always reports user presence and
// user verification, with "none" attestation. It is what an attacker's own
// security key looks like to the server.
type rvKey struct {
	key    *ecdsa.PrivateKey
	id     []byte
	origin string
	userID []byte
	count  uint32
}

func rvNewKey(t *testing.T, issuer string) *rvKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &rvKey{key: k, id: id, origin: issuer}
}

func rvCBORHead(major byte, n int) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 256:
		return []byte{major<<5 | 24, byte(n)}
	default:
		return []byte{major<<5 | 25, byte(n >> 8), byte(n)}
	}
}

func rvCBORInt(i int) []byte {
	if i >= 0 {
		return rvCBORHead(0, i)
	}
	return rvCBORHead(1, -1-i)
}
func rvCBORBytes(b []byte) []byte { return append(rvCBORHead(2, len(b)), b...) }
func rvCBORText(s string) []byte  { return append(rvCBORHead(3, len(s)), s...) }
func rvCBORMap(kv ...[]byte) []byte {
	out := rvCBORHead(5, len(kv)/2)
	for _, p := range kv {
		out = append(out, p...)
	}
	return out
}

var rvB64 = base64.RawURLEncoding

func (k *rvKey) rvAuthData(rpID string, flags byte, attested bool) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append([]byte{}, h[:]...)
	out = append(out, flags)
	k.count++
	out = binary.BigEndian.AppendUint32(out, k.count)
	if attested {
		pub, err := k.key.PublicKey.ECDH()
		if err != nil {
			panic(err)
		}
		raw := pub.Bytes() // 0x04 || X || Y
		cose := rvCBORMap(rvCBORInt(1), rvCBORInt(2), rvCBORInt(3), rvCBORInt(-7), rvCBORInt(-1), rvCBORInt(1),
			rvCBORInt(-2), rvCBORBytes(raw[1:33]), rvCBORInt(-3), rvCBORBytes(raw[33:65]))
		out = append(out, make([]byte, 16)...) // AAGUID
		out = binary.BigEndian.AppendUint16(out, uint16(len(k.id)))
		out = append(out, k.id...)
		out = append(out, cose...)
	}
	return out
}

// register answers /account/passkey/options.
func (k *rvKey) rvRegister(t *testing.T, options map[string]any) map[string]any {
	t.Helper()
	pk, _ := options["publicKey"].(map[string]any)
	rp, _ := pk["rp"].(map[string]any)
	user, _ := pk["user"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	rpID, _ := rp["id"].(string)
	uid, _ := user["id"].(string)
	if challenge == "" || rpID == "" || uid == "" {
		t.Fatalf("registration options lack challenge, rp or user: %v", options)
	}
	var err error
	if k.userID, err = rvB64.DecodeString(uid); err != nil {
		t.Fatal(err)
	}
	cd, _ := json.Marshal(map[string]any{"type": "webauthn.create", "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	// UP | UV | AT; BE clear: device-bound.
	att := rvCBORMap(rvCBORText("fmt"), rvCBORText("none"), rvCBORText("attStmt"), rvCBORMap(), rvCBORText("authData"), rvCBORBytes(k.rvAuthData(rpID, 0x45, true)))
	return map[string]any{"id": rvB64.EncodeToString(k.id), "rawId": rvB64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]string{"clientDataJSON": rvB64.EncodeToString(cd), "attestationObject": rvB64.EncodeToString(att)}}
}

// assert answers /login/webauthn/options.
func (k *rvKey) rvAssert(t *testing.T, options map[string]any) map[string]any {
	t.Helper()
	pk, _ := options["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	rpID, _ := pk["rpId"].(string)
	if challenge == "" || rpID == "" {
		t.Fatalf("assertion options lack challenge or rpId: %v", options)
	}
	cd, _ := json.Marshal(map[string]any{"type": "webauthn.get", "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	ad := k.rvAuthData(rpID, 0x05, false) // UP | UV
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"id": rvB64.EncodeToString(k.id), "rawId": rvB64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]string{"clientDataJSON": rvB64.EncodeToString(cd), "authenticatorData": rvB64.EncodeToString(ad),
			"signature": rvB64.EncodeToString(sig), "userHandle": rvB64.EncodeToString(k.userID)}}
}

// rvPasskeySignIn signs in from b with k alone (no password) and returns the
// tokens the RP gets.
func rvPasskeySignIn(t *testing.T, e *env, r *rp, b *browser, k *rvKey) tokens {
	t.Helper()
	a := r.authURL(nil)
	p := b.get(a.url)
	id := p.hidden("id")
	if id == "" {
		t.Fatalf("no sign-in page: %d %v\n%.1500s", p.status, p.redirect, p.body)
	}
	status, opts := b.rvPostJSON("/login/webauthn/options", map[string]string{"id": id})
	if status != http.StatusOK {
		t.Fatalf("sign-in options: %d %v", status, opts)
	}
	status, out := b.rvPostJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": k.rvAssert(t, opts)})
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || next == "" {
		t.Fatalf("passkey sign-in refused: %d %v", status, out)
	}
	p = b.get(e.issuer + next)
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	return r.mustExchange(r.code(p, a), a)
}

var rvCodeRE = regexp.MustCompile(`<li><code>([^<]+)</code></li>`)

// ---- findings ----

// FINDING (high): GET /account/recovery/new mints a fresh set of recovery
// codes for any session whose password was entered in the last 10 minutes,
// as long as the user has a second factor and no unused recovery code left
// (all ten used, or a passkey added first and the codes page never
// loaded). A recovery code is a second factor (amr otp, acr mfa), so a
// stolen password alone is turned into mfa: "enrolling instead of
// verifying". Regenerating codes through POST /account/recovery needs mfa;
// this GET path skips it.
func TestReviewRecoveryCodesMintedWithPasswordOnly(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	// Alice has used all her recovery codes (the same storage call
	// /login/recovery makes, ten times).
	for _, c := range e.recoveryCodes("u-alice") {
		if _, err := e.store.UseRecoveryCode(context.Background(), "u-alice", e.recoveryHash("u-alice", c), e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	r := e.rp(rpClient, e.rpSecret)

	// The attacker knows only the password.
	attacker := e.browser()
	attacker.portalLogin()
	p := attacker.get(e.issuer + "/account/recovery/new")
	codes := rvCodeRE.FindAllStringSubmatch(p.body, -1)
	if len(codes) == 0 {
		return // fixed: no codes for a password-only session
	}
	// With one of them, the RP's step-up to mfa is passed without the
	// authenticator app.
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p = attacker.get(a.url)
	p = attacker.get(e.issuer + "/login?method=recovery&id=" + url.QueryEscape(p.hidden("id")))
	tok := r.mustExchange(r.code(attacker.submitCode(p, "/login/recovery", codes[0][1]), a), a)
	t.Fatalf("a password-only session minted %d recovery codes at GET /account/recovery/new and used one to get acr=%s amr=%v",
		len(codes), tok.claims.ACR, tok.claims.AMR)
}

// FINDING (high): the passkey registration endpoints (POST
// /account/passkey/options and /verify) use requireAccountJSON, which skips
// the portal's risk check (portalRisk). A session cookie stolen within 10
// minutes of an mfa sign-in and replayed from another network and browser
// is high risk — the portal ends that session, an RP sign-in is denied —
// yet the thief can register their own security key on the account over
// the JSON endpoints, then sign in with it alone at phr/phrh from anywhere.
func TestReviewPasskeyRegistrationSkipsRisk(t *testing.T) {
	t.Run("mfa user, stolen session cookie (high risk)", func(t *testing.T) {
		e := newEnv(t, behindProxy, onLocalhost)
		secret := e.enrollTOTP("u-alice")
		r := e.rp(rpClient, e.rpSecret)
		home := e.browser().from("198.51.100.10")
		a := r.authURL(url.Values{"acr_values": {acrMFA}})
		p := home.submitCode(home.signIn(home.get(a.url), alice, alicePass), "/login/otp", e.totp(secret))
		if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrMFA {
			t.Fatalf("home acr %s", tok.claims.ACR)
		}

		thief := e.browser().from("203.0.113.77")
		thief.ua = "curl/8.0"
		rvSteal(t, e, home, thief, "ks_session")
		status, opts := thief.rvPostJSON("/account/passkey/options", map[string]string{})
		if status != http.StatusOK {
			return // refused: fixed
		}
		k := rvNewKey(t, e.issuer)
		status, out := thief.rvPostJSON("/account/passkey/verify", map[string]any{"name": "thief", "credential": k.rvRegister(t, opts)})
		if status != http.StatusOK {
			t.Fatalf("registration options were given but verify refused: %d %v (soft authenticator broken?)", status, out)
		}
		// For contrast: the portal page refuses this very cookie.
		portal := thief.get(e.issuer + "/account")
		opened := strings.Contains(portal.body, "Hello, alice")

		attacker := e.browser().from("203.0.113.77")
		attacker.ua = "curl/8.0"
		tok := rvPasskeySignIn(t, e, r, attacker, k)
		t.Fatalf("a stolen session cookie replayed from a high-risk context (portal opened: %v) registered the thief's key over the JSON endpoints; the thief then signed in with it alone: acr=%s amr=%v",
			opened, tok.claims.ACR, tok.claims.AMR)
	})

	t.Run("no second factor, all cookies stolen (medium risk, bootstrap)", func(t *testing.T) {
		e := newEnv(t, behindProxy, onLocalhost)
		r := e.rp(rpClient, e.rpSecret)
		home := e.browser().from("198.51.100.10")
		home.portalLogin()

		thief := e.browser().from("203.0.113.78")
		thief.ua = "curl/8.0"
		rvSteal(t, e, home, thief)
		// The portal itself does not let this context in without the
		// password again (session drift) ...
		if p := thief.get(e.issuer + "/account/passkey"); strings.Contains(p.body, "Hello, alice") || !p.has("/login/password") {
			t.Fatalf("the portal page opened for replayed cookies: %d\n%.1500s", p.status, p.body)
		}
		// ... but its JSON endpoints do.
		status, opts := thief.rvPostJSON("/account/passkey/options", map[string]string{})
		if status != http.StatusOK {
			return
		}
		k := rvNewKey(t, e.issuer)
		if status, out := thief.rvPostJSON("/account/passkey/verify", map[string]any{"name": "thief", "credential": k.rvRegister(t, opts)}); status != http.StatusOK {
			t.Fatalf("verify: %d %v", status, out)
		}
		attacker := e.browser().from("203.0.113.78")
		tok := rvPasskeySignIn(t, e, r, attacker, k)
		t.Fatalf("replayed cookies that the portal page re-challenges bootstrapped the thief's passkey over the JSON endpoints; signed in with it alone: acr=%s amr=%v",
			tok.claims.ACR, tok.claims.AMR)
	})
}

// FINDING (high): session drift is meant to make the session's factors
// count as not fresh, so "the user proves the session's current level
// again" (applyRisk). But the re-entered password goes through addFactor,
// which rotates the stolen session and carries its older factors over —
// including the victim's authenticator-app code from home — and stamps the
// session with the thief's address and browser, so the drift disappears.
// Cookies replayed from another network plus the password (what a phishing
// kit captures) give acr mfa without the second factor.
func TestReviewDriftReauthRevivesOldSecondFactor(t *testing.T) {
	e := newEnv(t, behindProxy)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	home := e.browser().from("198.51.100.10")
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := home.submitCode(home.signIn(home.get(a.url), alice, alicePass), "/login/otp", e.totp(secret))
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("home acr %s", tok.claims.ACR)
	}

	e.clock.Advance(time.Minute)
	thief := e.browser().from("203.0.113.77")
	thief.ua = "curl/8.0"
	rvSteal(t, e, home, thief)
	a = r.authURL(url.Values{"acr_values": {acrMFA}})
	p = thief.get(a.url)
	if !p.has("/login/password") {
		t.Fatalf("drift did not ask again: %d %v\n%.1500s", p.status, p.redirect, p.body)
	}
	p = thief.signIn(p, alice, alicePass)
	if p.redirect == nil {
		if !p.has("/login/otp") {
			t.Fatalf("after the password: %d\n%.1500s", p.status, p.body)
		}
		return // the second factor is asked again: fixed
	}
	tok := r.mustExchange(r.code(p, a), a)
	t.Fatalf("replayed cookies + password from another network got acr=%s amr=%v without the authenticator app (auth_time %d is the victim's code at home)",
		tok.claims.ACR, tok.claims.AMR, tok.claims.AuthTime)
}

// FINDING (high): the admin console's gate (adminGate) never assesses risk.
// An admin session cookie replayed from another network and browser within
// the console's 15 minutes opens the console and makes changes, while the
// same cookie is refused (and the session ended) by the account portal and
// would be denied at /authorize.
func TestReviewAdminConsoleIgnoresRisk(t *testing.T) {
	e, secret := adminEnv(t, behindProxy)
	home := e.browser().from("198.51.100.10")
	home.adminLogin(secret)

	thief := e.browser().from("203.0.113.77")
	thief.ua = "curl/8.0"
	rvSteal(t, e, home, thief, "ks_session")
	p := thief.get(e.issuer + "/admin")
	console := strings.Contains(p.body, "<h1>Admin console</h1>")
	created := false
	if console {
		p = thief.post("/admin/users", url.Values{"username": {"mallory"}, "password": {"mallory's very long passphrase"}, "admin": {"on"}})
		u, err := e.store.UserByUsername(context.Background(), "mallory")
		created = err == nil && u.Admin
	}
	// The portal, with the same cookie, refuses.
	if portal := thief.get(e.issuer + "/account"); strings.Contains(portal.body, "Hello, ada") {
		t.Fatal("the portal opened too")
	}
	if console {
		t.Fatalf("a stolen admin session cookie from a high-risk context opened the console (admin user created: %v) while the portal refused it", created)
	}
}

// FINDING (medium): the credential-stuffing limit (10 accounts per address
// per hour) and the per-address limit are check-then-act: stuffing() and
// ipBlocked() read the counters, and the per-address failure is recorded
// only after the password was checked. Parallel requests for different
// usernames all pass the check, so one address gets many more than 10
// accounts tried (DESIGN §6: "no parallel-request bypass").
func TestReviewParallelStuffingExceedsTheLimit(t *testing.T) {
	// The race needs requests to overlap; a few rounds make it show up
	// reliably, and a fixed server passes every round.
	for round := range 5 {
		e := newEnv(t, behindProxy)
		r := e.rp(rpClient, e.rpSecret)
		b := e.browser().from("198.18.0.77")
		id := b.get(r.authURL(nil).url).hidden("id")
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				b.wrongPassword(id, "victim"+strconv.Itoa(i))
			}()
		}
		close(start)
		wg.Wait()
		ev, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: "login.password", Outcome: "failure"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) > 10 {
			t.Fatalf("round %d: 60 parallel guesses for 60 accounts from one address: %d passwords checked; the stuffing limit is 10 accounts", round+1, len(ev))
		}
	}
}

// FINDING (medium): per-address throttling keys on the full IPv6 address.
// Anyone with a /64 (a home line, any cloud VM) has 2^64 addresses, so the
// per-address, per-account+address and credential-stuffing limits never
// fire: here 11 accounts are tried from one /64 and the 12th is still
// checked, where from one IPv4 address it is refused with 429.
func TestReviewIPv6RotationEvadesStuffingLimit(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	for i := range 10 { // the limit is 10 accounts per address per hour
		b := e.browser().from(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		id := b.get(r.authURL(nil).url).hidden("id")
		if p := b.wrongPassword(id, "victim"+strconv.Itoa(i)); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, p.status)
		}
	}
	b := e.browser().from("2001:db8:1:2::ff")
	id := b.get(r.authURL(nil).url).hidden("id")
	p := b.post("/login/password", url.Values{"id": {id}, "username": {alice}, "password": {alicePass}})
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("11th account from the same /64: %d, want 429 as from one IPv4 address", p.status)
	}
}

// FINDING (low): /end_session is a plain GET outside CrossOriginProtection
// that ends the browser's session with no id_token_hint and no
// confirmation. Any site can sign the user out with a top-level link
// (SameSite=Lax cookies go along). RP-Initiated Logout 1.0 §2: without a
// hint the OP should ask the user.
func TestReviewLogoutWithoutHintIsCrossSiteForgeable(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.portalLogin()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/end_session", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	b.do(req)
	if p := b.get(e.issuer + "/account"); !strings.Contains(p.body, "Hello, alice") {
		t.Fatal("a cross-site GET /end_session without id_token_hint signed the user out without asking")
	}
}

// ---- properties verified (pins) ----

// Posting the consent form cannot finish a third-party request whose
// step-up is still pending: postConsent re-decides before finishing.
func TestReviewConsentPostCannotSkipStepUp(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	third := "third"
	e.addClient(storage.Client{ID: third, Name: "Third", SecretHash: factor.HashToken("third-secret"),
		RedirectURIs: []string{rpRedirect}, AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}})
	r := e.rp(third, "third-secret")
	b := e.browser()
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b.signIn(b.get(a.url), alice, alicePass)
	if !p.has("/login/otp") {
		t.Fatalf("no step-up: %d\n%.1500s", p.status, p.body)
	}
	p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	if p.redirect != nil && p.redirect.Query().Get("code") != "" {
		t.Fatal("a consent post finished the request without the second factor")
	}
}

// A refreshed ID token keeps the acr, amr and auth_time of the sign-in,
// even after the session stepped up to a higher level in the meantime.
func TestReviewRefreshKeepsOriginalAuthentication(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	first := r.login(b, nil)
	e.clock.Advance(5 * time.Second)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	r.mustExchange(r.code(b.submitCode(b.get(a.url), "/login/otp", e.totp(secret)), a), a)
	e.clock.Advance(5 * time.Second)
	again, err := r.refresh(first.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if again.claims.ACR != first.claims.ACR || again.claims.AuthTime != first.claims.AuthTime || !slices.Equal(again.claims.AMR, first.claims.AMR) {
		t.Fatalf("refresh changed the authentication: %+v → %+v", first.claims, again.claims)
	}
}

// The portal callback only ever sends the browser to a path of this
// server, whatever return path the state cookie carries (a planted cookie
// included).
func TestReviewPortalCallbackReturnStaysOnTheServer(t *testing.T) {
	e := newEnv(t)
	u := mustParse(t, e.issuer)
	for _, ret := range []string{"//evil.example/x", "/\\evil.example", "https://evil.example/", "/admin//evil.example", "/account/..//evil.example"} {
		b := e.browser()
		b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "ks_portal", Value: "s|" + ret}})
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/account/callback?state=s", nil)
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := u.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Host != u.Host {
			t.Fatalf("return path %q sent the browser to %q", ret, resp.Header.Get("Location"))
		}
	}
}
