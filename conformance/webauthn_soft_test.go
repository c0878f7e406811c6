package conformance

import (
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
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/keystep/keystep/storage"
)

// The WebAuthn ceremonies against a software authenticator (issue 4): the
// test is the browser and the authenticator both, so it can send what no
// honest pair would — another origin in the client data, another RP ID's
// hash in the authenticator data, a challenge spent before, another user's
// credential, a signature counter gone backwards, no user verification
// where it is required. Each is refused and nothing is recorded as a
// completed factor: no code for the RP, the session's factors as they were,
// no "stepup.factor" success in the audit log, the credential not marked
// as used. The same authenticator with honest data is the positive
// control. The real endpoints are driven over HTTP with the harness
// browser's cookies, as static/webauthn.js drives them.

// softKey is one ES256 credential of the software authenticator.
type softKey struct {
	t     *testing.T
	priv  *ecdsa.PrivateKey
	id    []byte
	user  []byte // the user handle the RP gave at registration
	be    bool   // backup-eligible (and backed up): a synced passkey
	count uint32 // the signature counter, as last sent
}

func newSoftKey(t *testing.T) *softKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{t: t, priv: priv, id: id}
}

// softTweak is how one ceremony departs from what an honest browser and
// authenticator send. The zero value is honest.
type softTweak struct {
	origin       string  // the client data's origin; "" is the issuer's
	rpID         string  // the RP ID hashed into the authenticator data; "" is the issuer's host
	challenge    string  // "" is the challenge of the options
	noUV         bool    // the UV flag is clear (presence only)
	count        *uint32 // the signature counter; nil is one more than last time
	userHandle   []byte  // the assertion's user handle; nil is the key's own
	noUserHandle bool    // the assertion carries no user handle
}

func softCount(n uint32) *uint32 { return &n }

const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (k *softKey) clientData(e *env, typ, challenge string, tw softTweak) []byte {
	origin := e.issuer
	if tw.origin != "" {
		origin = tw.origin
	}
	if tw.challenge != "" {
		challenge = tw.challenge
	}
	raw, err := json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, challenge, origin, false})
	if err != nil {
		k.t.Fatal(err)
	}
	return raw
}

// authData is rpIdHash | flags | signCount | attestedCredentialData.
func (k *softKey) authData(e *env, tw softTweak, attested []byte) []byte {
	rpID := mustParse(k.t, e.issuer).Hostname()
	if tw.rpID != "" {
		rpID = tw.rpID
	}
	if tw.count != nil {
		k.count = *tw.count
	} else if attested == nil {
		k.count++
	}
	flags := byte(flagUP)
	if !tw.noUV {
		flags |= flagUV
	}
	if k.be {
		flags |= flagBE | flagBS
	}
	if attested != nil {
		flags |= flagAT
	}
	hash := sha256.Sum256([]byte(rpID))
	out := append(hash[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, attested...)
}

// coseKey is the credential public key as a COSE_Key (EC2, ES256, P-256).
func (k *softKey) coseKey() []byte {
	pub, err := k.priv.PublicKey.Bytes() // 0x04 | x | y
	if err != nil {
		k.t.Fatal(err)
	}
	raw, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	if err != nil {
		k.t.Fatal(err)
	}
	return raw
}

// attestation answers a CredentialCreation as navigator.credentials.create
// would, with "none" attestation, in the JSON static/webauthn.js sends.
func (k *softKey) attestation(e *env, options map[string]any, tw softTweak) map[string]any {
	pk, _ := options["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	user, _ := pk["user"].(map[string]any)
	handle, err := base64.RawURLEncoding.DecodeString(fmt.Sprint(user["id"]))
	if err != nil || challenge == "" {
		k.t.Fatalf("creation options without a challenge or user: %v", options)
	}
	k.user = handle
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(attested, k.id...)
	attested = append(attested, k.coseKey()...)
	authData := k.authData(e, tw, attested)
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		k.t.Fatal(err)
	}
	return map[string]any{
		"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    b64u(k.clientData(e, "webauthn.create", challenge, tw)),
			"attestationObject": b64u(obj),
			"transports":        []string{"internal"},
		},
		"clientExtensionResults": map[string]any{},
	}
}

// assertion answers a CredentialAssertion as navigator.credentials.get
// would: an ECDSA signature over authenticatorData | SHA-256(clientDataJSON).
func (k *softKey) assertion(e *env, challenge string, tw softTweak) map[string]any {
	clientData := k.clientData(e, "webauthn.get", challenge, tw)
	authData := k.authData(e, tw, nil)
	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(slices.Clone(authData), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	resp := map[string]any{"clientDataJSON": b64u(clientData), "authenticatorData": b64u(authData), "signature": b64u(sig)}
	switch {
	case tw.noUserHandle:
	case tw.userHandle != nil:
		resp["userHandle"] = b64u(tw.userHandle)
	default:
		resp["userHandle"] = b64u(k.user)
	}
	return map[string]any{"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response": resp, "clientExtensionResults": map[string]any{}}
}

// ---- driving the endpoints ----

// softPortal signs a fresh browser in to the account portal with the password.
func (e *env) softPortal(user, pass string) *browser {
	e.t.Helper()
	b := e.browser()
	p := b.signIn(b.get(e.issuer+"/account"), user, pass)
	if !strings.Contains(p.body, "Hello, "+user) {
		e.t.Fatalf("the portal did not open for %s: %d %s\n%.2000s", user, p.status, p.url, p.body)
	}
	return b
}

// softRegister runs one registration in the portal: options, then the
// authenticator's answer (as tweaked) to verify.
func (b *browser) softRegister(k *softKey, name string, tw softTweak) (int, map[string]any) {
	b.e.t.Helper()
	status, options := b.postJSON("/account/passkey/options", map[string]any{})
	if status != http.StatusOK {
		b.e.t.Fatalf("registration options: %d %v", status, options)
	}
	return b.postJSON("/account/passkey/verify", map[string]any{"name": name, "credential": k.attestation(b.e, options, tw)})
}

// softEnroll gives user a device-bound passkey on the software
// authenticator, through the portal's bootstrap (password just entered, no
// second factor yet), and trusts it as an administrator confirming it
// would: added from a password-only session, it would otherwise count as
// mfa only (DESIGN §3.3; review2_assurance_test.go tests that rule).
func (e *env) softEnroll(user, pass string) *softKey {
	e.t.Helper()
	k := e.softEnrollPending(user, pass)
	ctx := context.Background()
	u, err := e.store.UserByUsername(ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	keys, _ := e.passkeys(u.ID)
	for _, f := range keys {
		if err := e.store.TrustFactor(ctx, u.ID, f.ID, e.clock.Now()); err != nil {
			e.t.Fatal(err)
		}
	}
	return k
}

// softEnrollPending is softEnroll without the trust: the passkey counts as
// mfa until it is used from a known device and network after the
// cooling-off, or an administrator confirms it.
func (e *env) softEnrollPending(user, pass string) *softKey {
	e.t.Helper()
	k := newSoftKey(e.t)
	b := e.softPortal(user, pass)
	if status, out := b.softRegister(k, user+"'s soft key", softTweak{}); status != http.StatusOK || out["redirect"] != "/account/recovery/new" {
		e.t.Fatalf("enrolling %s's key: %d %v", user, status, out)
	}
	return k
}

var passkeyStepRE = regexp.MustCompile(`data-passkey-step="([^"]+)"`)

// softRequestID is the auth request a page offers the passkey for.
func softRequestID(t *testing.T, p page) string {
	t.Helper()
	m := passkeyStepRE.FindStringSubmatch(p.body)
	if p.redirect != nil || m == nil {
		t.Fatalf("no passkey offered: %d at %s (redirect %v):\n%.2000s", p.status, p.url, p.redirect, p.body)
	}
	return m[1]
}

// softStepUp starts an auth request, signs in with the password and
// expects the passkey step-up page; it returns the request and its ID.
func (b *browser) softStepUp(r *rp, user, pass string, extra url.Values) (authRequest, string) {
	b.e.t.Helper()
	a := r.authURL(extra)
	p := b.signIn(b.get(a.url), user, pass)
	if !strings.Contains(p.body, "Use a passkey or security key") || p.has("/login/password") {
		b.e.t.Fatalf("expected the passkey step-up page, got %d at %s (redirect %v):\n%.2000s", p.status, p.url, p.redirect, p.body)
	}
	return a, softRequestID(b.e.t, p)
}

// softPasswordless opens the sign-in page of a new auth request (no
// session) and returns the request and its ID.
func (b *browser) softPasswordless(r *rp, extra url.Values) (authRequest, string) {
	b.e.t.Helper()
	a := r.authURL(extra)
	p := b.get(a.url)
	if !p.has("/login/password") {
		b.e.t.Fatalf("expected the sign-in page, got %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	return a, softRequestID(b.e.t, p)
}

// softOptions asks for the assertion options of request id and returns
// the challenge and the user verification asked for.
func (b *browser) softOptions(id string) (challenge, uv string) {
	b.e.t.Helper()
	status, out := b.postJSON("/login/webauthn/options", map[string]string{"id": id})
	pk, _ := out["publicKey"].(map[string]any)
	challenge, _ = pk["challenge"].(string)
	uv, _ = pk["userVerification"].(string)
	if status != http.StatusOK || challenge == "" {
		b.e.t.Fatalf("assertion options: %d %v", status, out)
	}
	return challenge, uv
}

// softAssert runs one assertion for request id: options, then the
// authenticator's answer (as tweaked) to verify. It returns verify's
// answer and the body it sent, for a replay.
func (b *browser) softAssert(id string, k *softKey, tw softTweak) (int, map[string]any, map[string]any) {
	b.e.t.Helper()
	challenge, _ := b.softOptions(id)
	body := map[string]any{"id": id, "credential": k.assertion(b.e, challenge, tw)}
	status, out := b.postJSON("/login/webauthn/verify", body)
	return status, out, body
}

// softFinish follows a successful verify to the RP and redeems the code.
func (b *browser) softFinish(r *rp, a authRequest, status int, out map[string]any) tokens {
	b.e.t.Helper()
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || !strings.HasPrefix(next, "/login?id=") {
		b.e.t.Fatalf("verify: %d %v", status, out)
	}
	p := b.get(b.e.issuer + next)
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	return r.mustExchange(r.code(p, a), a)
}

// ---- what is recorded ----

// softRecord is what a completed factor leaves behind for a user.
type softRecord struct {
	factors   []string // every factor of every session of the user
	lastUsed  []string // when each WebAuthn credential was last used
	successes int      // "stepup.factor" success rows, anyone's
}

func (e *env) softRecorded(userID string) softRecord {
	e.t.Helper()
	ctx := context.Background()
	var rec softRecord
	sessions, err := e.store.ListUserSessions(ctx, userID, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range sessions {
		for _, f := range s.Factors {
			rec.factors = append(rec.factors, fmt.Sprintf("%s: %s at %s uv=%t bound=%t cred=%s", s.ID, f.Method, f.At.UTC().Format(time.RFC3339Nano), f.UserVerified, f.DeviceBound, f.CredentialID))
		}
	}
	slices.Sort(rec.factors)
	keys, _ := e.passkeys(userID)
	for _, k := range keys {
		rec.lastUsed = append(rec.lastUsed, k.ID+" "+k.LastUsedAt.UTC().Format(time.RFC3339Nano))
	}
	evs, err := e.store.ListAudit(ctx, storage.AuditFilter{Type: "stepup.factor", Outcome: "success"})
	if err != nil {
		e.t.Fatal(err)
	}
	rec.successes = len(evs)
	return rec
}

func (s softRecord) String() string {
	return fmt.Sprintf("sessions' factors %q, credentials last used %q, %d stepup.factor successes", s.factors, s.lastUsed, s.successes)
}

// softRefused expects a verify to have been refused with status and a
// message containing msg, and nothing recorded for userID since before.
func (e *env) softRefused(what string, status int, out map[string]any, wantStatus int, msg string, userID string, before softRecord) {
	e.t.Helper()
	if status != wantStatus || out["redirect"] != nil || !strings.Contains(fmt.Sprint(out["error"]), msg) {
		e.t.Fatalf("%s: %d %v, want %d refusing with %q", what, status, out, wantStatus, msg)
	}
	if after := e.softRecorded(userID); after.String() != before.String() {
		e.t.Fatalf("%s was refused but recorded something:\nbefore %s\nafter  %s", what, before, after)
	}
}

// softStillAsks expects request id to still wait for the passkey: no code
// for the RP.
func (b *browser) softStillAsks(what, id string) {
	b.e.t.Helper()
	p := b.get(b.e.issuer + "/login?id=" + url.QueryEscape(id))
	if p.redirect != nil {
		b.e.t.Fatalf("after %s the request went back to the RP: %v", what, p.redirect)
	}
	if got := softRequestID(b.e.t, p); got != id {
		b.e.t.Fatalf("after %s the page offers the passkey for %q, not %q", what, got, id)
	}
}

func (b *browser) softSessionCookie() bool {
	for _, c := range b.client.Jar.Cookies(mustParse(b.e.t, b.e.issuer)) {
		if c.Name == "ks_session" {
			return true
		}
	}
	return false
}

// softFailureAudited expects the last stepup.factor row to be a failure for userID.
func (e *env) softFailureAudited(what, userID string) {
	e.t.Helper()
	if ev := e.lastAudit("stepup.factor"); ev.Outcome != "failure" || ev.UserID != userID || ev.Details["factor"] != "webauthn" {
		e.t.Fatalf("audit of %s: %+v", what, ev)
	}
}

const (
	softNotAccepted = "wasn't accepted"
	bobPass         = "bob's long passphrase"
)

// ---- the tests ----

// softSetup is an issuer on localhost where Alice has enrolled a
// device-bound passkey on the software authenticator.
func softSetup(t *testing.T) (*env, *rp, *softKey) {
	t.Helper()
	e := newEnv(t, onLocalhost)
	return e, e.rp(rpClient, e.rpSecret), e.softEnroll(alice, alicePass)
}

func TestSoftAuthenticatorAssertions(t *testing.T) {
	t.Run("an honest assertion after the password gives phr, device-bound, with user only when UV was set", func(t *testing.T) {
		e, r, key := softSetup(t)
		for _, uv := range []bool{false, true} {
			e.clock.Advance(time.Second) // so that a use is seen to be recorded
			b := e.browser()
			a, id := b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
			before := e.softRecorded("u-alice")
			status, out, _ := b.softAssert(id, key, softTweak{noUV: !uv})
			tok := b.softFinish(r, a, status, out)
			if tok.claims.ACR != acrPHR || tok.claims.Sub != "u-alice" {
				t.Fatalf("uv=%t: %+v", uv, tok.claims)
			}
			if !hasAll(tok.claims.AMR, "pwd", "pop", "hwk", "mfa") || hasAny(tok.claims.AMR, "swk", "otp") || slices.Contains(tok.claims.AMR, "user") != uv {
				t.Fatalf("uv=%t: amr %q", uv, tok.claims.AMR)
			}
			if after := e.softRecorded("u-alice"); after.successes != before.successes+1 || slices.Equal(after.lastUsed, before.lastUsed) {
				t.Fatalf("uv=%t: the success was not recorded: %s", uv, after)
			}
			if ev := e.lastAudit("stepup.factor"); ev.Outcome != "success" || ev.Details["user_verified"] != fmt.Sprint(uv) || ev.Details["device_bound"] != "true" || ev.Details["passwordless"] != "false" {
				t.Fatalf("uv=%t: audit %+v", uv, ev)
			}
		}
		if _, creds := e.passkeys("u-alice"); creds[0].Authenticator.SignCount != key.count || creds[0].Authenticator.CloneWarning {
			t.Fatalf("stored counter %+v, the key is at %d", creds[0].Authenticator, key.count)
		}
	})

	t.Run("an honest passwordless assertion with UV signs in without the password", func(t *testing.T) {
		e, r, key := softSetup(t)
		b := e.browser()
		a, id := b.softPasswordless(r, url.Values{"acr_values": {acrPHR}})
		if _, uv := b.softOptions(id); uv != "required" {
			t.Fatalf("passwordless options ask for user verification %q", uv)
		}
		status, out, _ := b.softAssert(id, key, softTweak{})
		tok := b.softFinish(r, a, status, out)
		if tok.claims.ACR != acrPHR || tok.claims.Sub != "u-alice" || !hasAll(tok.claims.AMR, "pop", "hwk", "user") || hasAny(tok.claims.AMR, "pwd", "swk") {
			t.Fatalf("passwordless: %+v", tok.claims)
		}
	})

	t.Run("an assertion made for another origin is refused", func(t *testing.T) {
		e, r, key := softSetup(t)
		u := mustParse(t, e.issuer)
		for _, origin := range []string{"http://evil.example", "https://" + u.Host, "http://localhost:1", "http://sub.localhost:" + u.Port()} {
			b := e.browser()
			_, id := b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
			before := e.softRecorded("u-alice")
			status, out, _ := b.softAssert(id, key, softTweak{origin: origin})
			e.softRefused("an assertion from "+origin, status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
			e.softFailureAudited("an assertion from "+origin, "u-alice")
			b.softStillAsks("an assertion from "+origin, id)
		}
		// Passwordless too: no session comes of it.
		b := e.browser()
		_, id := b.softPasswordless(r, nil)
		before := e.softRecorded("u-alice")
		status, out, _ := b.softAssert(id, key, softTweak{origin: "http://evil.example"})
		e.softRefused("a passwordless assertion from another origin", status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
		if b.softSessionCookie() {
			t.Fatal("a refused passwordless assertion left a session cookie")
		}
		b.softStillAsks("a passwordless assertion from another origin", id)
	})

	t.Run("an assertion for another RP ID is refused", func(t *testing.T) {
		e, r, key := softSetup(t)
		for _, rpID := range []string{"evil.example", mustParse(t, e.issuer).Host, e.issuer, "sub.localhost"} {
			b := e.browser()
			_, id := b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
			before := e.softRecorded("u-alice")
			status, out, _ := b.softAssert(id, key, softTweak{rpID: rpID})
			e.softRefused("an assertion for RP ID "+rpID, status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
			e.softFailureAudited("an assertion for RP ID "+rpID, "u-alice")
			b.softStillAsks("an assertion for RP ID "+rpID, id)
		}
	})

	t.Run("a replayed assertion is refused", func(t *testing.T) {
		e, r, key := softSetup(t)
		b := e.browser()
		a, id := b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
		challenge, _ := b.softOptions(id)
		var ceremony *http.Cookie
		for _, c := range b.client.Jar.Cookies(mustParse(t, e.issuer)) {
			if c.Name == "ks_webauthn" {
				ceremony = c
			}
		}
		if ceremony == nil {
			t.Fatal("no ceremony cookie after the options")
		}
		body := map[string]any{"id": id, "credential": key.assertion(e, challenge, softTweak{})}
		status, first := b.postJSON("/login/webauthn/verify", body)
		if status != http.StatusOK {
			t.Fatalf("first verify: %d %v", status, first)
		}
		before := e.softRecorded("u-alice")

		// The same body again, in the same browser.
		status, out := b.postJSON("/login/webauthn/verify", body)
		e.softRefused("the same verify again", status, out, http.StatusBadRequest, "expired", "u-alice", before)
		// With the ceremony cookie put back: the challenge is spent.
		b.client.Jar.SetCookies(mustParse(t, e.issuer), []*http.Cookie{ceremony})
		status, out = b.postJSON("/login/webauthn/verify", body)
		e.softRefused("the same verify with the ceremony cookie put back", status, out, http.StatusBadRequest, "expired", "u-alice", before)
		// In a new request of another browser, after its own options: the
		// signed challenge is not the one asked for.
		thief := e.browser()
		_, id2 := thief.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
		thief.softOptions(id2)
		before = e.softRecorded("u-alice")
		status, out = thief.postJSON("/login/webauthn/verify", map[string]any{"id": id2, "credential": body["credential"]})
		e.softRefused("the verify replayed in a new request", status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
		thief.softStillAsks("the verify replayed in a new request", id2)

		// The one that succeeded still goes to the RP, once.
		if tok := b.softFinish(r, a, http.StatusOK, first); tok.claims.ACR != acrPHR {
			t.Fatalf("after the replays: %+v", tok.claims)
		}
	})

	t.Run("another user's credential is refused", func(t *testing.T) {
		e, r, key := softSetup(t)
		e.addUser("bob", bobPass)
		bobKey := e.softEnroll("bob", bobPass)
		aliceHandle := key.user

		for _, c := range []struct {
			name string
			key  *softKey
			tw   softTweak
		}{
			{"Bob's credential with Bob's user handle", bobKey, softTweak{}},
			{"Bob's credential without a user handle", bobKey, softTweak{noUserHandle: true}},
			{"Bob's credential claiming Alice's user handle", bobKey, softTweak{userHandle: aliceHandle}},
			{"Alice's credential claiming Bob's user handle", key, softTweak{userHandle: bobKey.user}},
		} {
			b := e.browser()
			_, id := b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
			before := e.softRecorded("u-alice")
			status, out, _ := b.softAssert(id, c.key, c.tw)
			e.softRefused(c.name+" in Alice's step-up", status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
			e.softFailureAudited(c.name+" in Alice's step-up", "u-alice")
			b.softStillAsks(c.name+" in Alice's step-up", id)
		}

		// Passwordless: Bob's credential presented as Alice's.
		b := e.browser()
		_, id := b.softPasswordless(r, nil)
		before := e.softRecorded("u-alice")
		status, out, _ := b.softAssert(id, bobKey, softTweak{userHandle: aliceHandle})
		e.softRefused("Bob's credential as Alice's, passwordless", status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
		if b.softSessionCookie() {
			t.Fatal("a refused passwordless assertion left a session cookie")
		}

		// Bob's key is a good key: it signs Bob in.
		a, id := b.softPasswordless(r, nil)
		status, out, _ = b.softAssert(id, bobKey, softTweak{})
		if tok := b.softFinish(r, a, status, out); tok.claims.Sub != "u-bob" {
			t.Fatalf("Bob's own key: %+v", tok.claims)
		}
	})

	t.Run("a signature counter that went backwards is refused and blocks the credential", func(t *testing.T) {
		e, r, key := softSetup(t)
		b := e.browser()
		a, id := b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
		status, out, _ := b.softAssert(id, key, softTweak{count: softCount(5)})
		b.softFinish(r, a, status, out)

		// A copy of the key made before: its counter is behind.
		b = e.browser()
		a, id = b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
		before := e.softRecorded("u-alice")
		status, out, _ = b.softAssert(id, key, softTweak{count: softCount(3)})
		e.softRefused("a counter gone backwards", status, out, http.StatusForbidden, "may have been copied", "u-alice", before)
		if evs := e.audits("factor.sign_count_regression"); len(evs) != 1 || evs[0].UserID != "u-alice" || evs[0].Outcome != "denied" {
			t.Fatalf("sign-count audit %+v", evs)
		}
		if _, creds := e.passkeys("u-alice"); !creds[0].Authenticator.CloneWarning || creds[0].Authenticator.SignCount != 5 {
			t.Fatalf("the stored credential after the regression: %+v", creds[0].Authenticator)
		}
		// The blocked key is nothing Alice can use: the request (phr asked
		// for, not required) goes on without it, short of phr.
		p := b.get(e.issuer + "/login?id=" + url.QueryEscape(id))
		if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR == acrPHR || hasAny(tok.claims.AMR, "pop", "hwk") {
			t.Fatalf("with her only key blocked: %+v", tok.claims)
		}

		// Blocked from now on, even with the counter moving forward again,
		// and not flagged or audited as a regression a second time.
		b = e.browser()
		_, id = b.softPasswordless(r, nil)
		before = e.softRecorded("u-alice")
		status, out, _ = b.softAssert(id, key, softTweak{count: softCount(50)})
		e.softRefused("a blocked key", status, out, http.StatusForbidden, "has been blocked", "u-alice", before)
		if b.softSessionCookie() {
			t.Fatal("a blocked key left a session cookie")
		}
		if n := len(e.audits("factor.sign_count_regression")); n != 1 {
			t.Fatalf("%d sign-count regressions audited, want 1", n)
		}
	})

	t.Run("a passwordless assertion without user verification is refused", func(t *testing.T) {
		e, r, key := softSetup(t)
		b := e.browser()
		_, id := b.softPasswordless(r, url.Values{"acr_values": {acrPHR}})
		before := e.softRecorded("u-alice")
		status, out, _ := b.softAssert(id, key, softTweak{noUV: true})
		e.softRefused("passwordless without UV", status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
		e.softFailureAudited("passwordless without UV", "")
		if b.softSessionCookie() {
			t.Fatal("a refused passwordless assertion left a session cookie")
		}
		b.softStillAsks("passwordless without UV", id)
	})

	t.Run("a user without a password must verify at the step-up", func(t *testing.T) {
		e, r, key := softSetup(t)
		ctx := context.Background()
		u, err := e.store.UserByID(ctx, "u-alice")
		if err != nil {
			t.Fatal(err)
		}
		u.PasswordHash = ""
		if err := e.store.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		a, id := b.softPasswordless(r, nil)
		status, out, _ := b.softAssert(id, key, softTweak{})
		b.softFinish(r, a, status, out)

		// Signing in again: the passkey is her only way, so it must verify her.
		e.clock.Advance(time.Minute)
		a = r.authURL(url.Values{"acr_values": {acrMFA}, "prompt": {"login"}})
		p := b.get(a.url)
		if !strings.Contains(p.body, "Use a passkey or security key") {
			t.Fatalf("expected the passkey step-up page, got %d at %s:\n%.2000s", p.status, p.url, p.body)
		}
		id = softRequestID(t, p)
		if _, uv := b.softOptions(id); uv != "required" {
			t.Fatalf("step-up options for a user without a password ask for user verification %q", uv)
		}
		before := e.softRecorded("u-alice")
		status, out, _ = b.softAssert(id, key, softTweak{noUV: true})
		e.softRefused("a step-up without UV for a user with no password", status, out, http.StatusUnauthorized, softNotAccepted, "u-alice", before)
		e.softFailureAudited("a step-up without UV for a user with no password", "u-alice")
		b.softStillAsks("a step-up without UV for a user with no password", id)

		status, out, _ = b.softAssert(id, key, softTweak{})
		if tok := b.softFinish(r, a, status, out); tok.claims.ACR != acrMFA || !hasAll(tok.claims.AMR, "pop", "hwk", "user", "mfa") || slices.Contains(tok.claims.AMR, "pwd") {
			t.Fatalf("after UV: %+v", tok.claims)
		}
	})
}

// Registration in the portal: a credential made for another origin, or
// over a challenge that is not the ceremony's, is refused and no factor is
// stored; the honest one after them is.
func TestSoftAuthenticatorRegistration(t *testing.T) {
	e := newEnv(t, onLocalhost)
	b := e.softPortal(alice, alicePass)
	nothingStored := func(what string, status int, out map[string]any) {
		t.Helper()
		if status != http.StatusBadRequest || out["redirect"] != nil || !strings.Contains(fmt.Sprint(out["error"]), "couldn't be added") {
			t.Fatalf("%s: %d %v", what, status, out)
		}
		if keys, _ := e.passkeys("u-alice"); len(keys) != 0 {
			t.Fatalf("%s stored %+v", what, keys)
		}
		if evs := e.audits("factor.enrolled"); len(evs) != 0 {
			t.Fatalf("%s audited an enrollment: %+v", what, evs)
		}
	}

	for _, origin := range []string{"http://evil.example", "https://" + mustParse(t, e.issuer).Host, "http://localhost:1"} {
		status, out := b.softRegister(newSoftKey(t), "Evil", softTweak{origin: origin})
		nothingStored("a registration from "+origin, status, out)
	}
	status, out := b.softRegister(newSoftKey(t), "Evil", softTweak{challenge: b64u([]byte("a challenge the server never gave"))})
	nothingStored("a registration over a made-up challenge", status, out)
	// The challenge of an earlier ceremony, which the browser's cookie no
	// longer names.
	_, stale := b.postJSON("/account/passkey/options", map[string]any{})
	pk, _ := stale["publicKey"].(map[string]any)
	status, out = b.softRegister(newSoftKey(t), "Evil", softTweak{challenge: fmt.Sprint(pk["challenge"])})
	nothingStored("a registration over an earlier ceremony's challenge", status, out)
	status, out = b.softRegister(newSoftKey(t), "Evil", softTweak{rpID: "evil.example"})
	nothingStored("a registration for another RP ID", status, out)

	// The honest answer from the same browser and session is added.
	status, out = b.softRegister(newSoftKey(t), "Laptop", softTweak{})
	if status != http.StatusOK || out["redirect"] != "/account/recovery/new" {
		t.Fatalf("an honest registration after the refused ones: %d %v", status, out)
	}
	keys, creds := e.passkeys("u-alice")
	if len(keys) != 1 || keys[0].Name != "Laptop" || creds[0].Flags.BackupEligible || !creds[0].Flags.UserVerified {
		t.Fatalf("stored %+v %+v", keys, creds)
	}
	if ev := e.lastAudit("factor.enrolled"); ev.Details["factor"] != "webauthn" || ev.Details["bootstrap"] != "true" || ev.Details["device_bound"] != "true" {
		t.Fatalf("enrollment audit %+v", ev)
	}
}
