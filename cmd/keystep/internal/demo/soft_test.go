package demo

import (
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

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// A software passkey, so that the invoice payment runs end to end without
// Chromium: the test is the browser and the authenticator both, and drives
// Keystep's WebAuthn endpoints over HTTP as its static/webauthn.js does.
// A minimal copy of conformance/webauthn_soft_test.go (honest ceremonies
// only).

// softKey is one ES256 credential, device-bound, user-verifying.
type softKey struct {
	priv  *ecdsa.PrivateKey
	id    []byte
	user  []byte // the user handle Keystep gave at registration
	count uint32
}

func newSoftKey(e *env) *softKey {
	e.t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{priv: priv, id: id}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (k *softKey) clientData(e *env, typ, challenge string) []byte {
	raw, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": e.issuer, "crossOrigin": false})
	return raw
}

// authData is rpIdHash | flags (UP, UV, and AT when attested) | signCount |
// attestedCredentialData.
func (k *softKey) authData(e *env, attested []byte) []byte {
	u, _ := url.Parse(e.issuer)
	hash := sha256.Sum256([]byte(u.Hostname()))
	flags := byte(0x01 | 0x04)
	if attested != nil {
		flags |= 0x40
	} else {
		k.count++
	}
	out := binary.BigEndian.AppendUint32(append(hash[:], flags), k.count)
	return append(out, attested...)
}

// attestation answers creation options as navigator.credentials.create
// would, with "none" attestation.
func (k *softKey) attestation(e *env, options map[string]any) map[string]any {
	e.t.Helper()
	pk, _ := options["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	user, _ := pk["user"].(map[string]any)
	handle, err := base64.RawURLEncoding.DecodeString(fmt.Sprint(user["id"]))
	if err != nil || challenge == "" {
		e.t.Fatalf("creation options without a challenge or user: %v", options)
	}
	k.user = handle
	pub, err := k.priv.PublicKey.Bytes() // 0x04 | x | y
	if err != nil {
		e.t.Fatal(err)
	}
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	if err != nil {
		e.t.Fatal(err)
	}
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(e, attested)})
	if err != nil {
		e.t.Fatal(err)
	}
	return map[string]any{
		"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON": b64u(k.clientData(e, "webauthn.create", challenge)), "attestationObject": b64u(obj),
			"transports": []string{"internal"},
		},
		"clientExtensionResults": map[string]any{},
	}
}

// assertion signs authenticatorData | SHA-256(clientDataJSON) for challenge.
func (k *softKey) assertion(e *env, challenge string) map[string]any {
	e.t.Helper()
	clientData := k.clientData(e, "webauthn.get", challenge)
	authData := k.authData(e, nil)
	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(slices.Clone(authData), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		e.t.Fatal(err)
	}
	return map[string]any{"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response":               map[string]any{"clientDataJSON": b64u(clientData), "authenticatorData": b64u(authData), "signature": b64u(sig), "userHandle": b64u(k.user)},
		"clientExtensionResults": map[string]any{}}
}

// postJSON posts v to Keystep's path with b's cookies.
func (b *browser) postJSON(path string, v any) (int, map[string]any) {
	b.e.t.Helper()
	raw, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, b.e.issuer+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// enrollPasskey adds a software passkey to the user in Keystep's account
// portal, signed in with the password (the portal's bootstrap), as a
// person would before paying. The env must trust it at once
// (idp.Config.PasskeysTrustedAtOnce, as `keystep demo` does).
func (b *browser) enrollPasskey() *softKey {
	b.e.t.Helper()
	e := b.e
	p := b.get(e.issuer + "/account")
	if p.has("/login/password") {
		p = b.post(e.issuer+"/login/password", url.Values{"id": {p.hidden("id")}, "username": {username}, "password": {password}})
	}
	if !strings.Contains(p.body, "Hello, "+username) {
		e.t.Fatalf("the account portal did not open: %d at %s\n%.2000s", p.status, p.url, p.body)
	}
	k := newSoftKey(e)
	status, options := b.postJSON("/account/passkey/options", map[string]any{})
	if status != http.StatusOK {
		e.t.Fatalf("registration options: %d %v", status, options)
	}
	status, out := b.postJSON("/account/passkey/verify", map[string]any{"name": "Alice's soft key", "credential": k.attestation(e, options)})
	if status != http.StatusOK {
		e.t.Fatalf("registration: %d %v", status, out)
	}
	return k
}

var passkeyStepRE = regexp.MustCompile(`data-passkey-step="([^"]+)"`)

// usePasskey answers the passkey step on page p with k and follows Keystep
// to wherever it leads: the approval page, then the app.
func (b *browser) usePasskey(p page, k *softKey) page {
	b.e.t.Helper()
	e := b.e
	m := passkeyStepRE.FindStringSubmatch(p.body)
	if m == nil {
		e.t.Fatalf("no passkey offered: %d at %s\n%.2000s", p.status, p.url, p.body)
	}
	id := m[1]
	status, out := b.postJSON("/login/webauthn/options", map[string]string{"id": id})
	pk, _ := out["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	if status != http.StatusOK || challenge == "" {
		e.t.Fatalf("assertion options: %d %v", status, out)
	}
	status, out = b.postJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": k.assertion(e, challenge)})
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || next == "" {
		e.t.Fatalf("assertion: %d %v", status, out)
	}
	return b.get(e.issuer + next)
}
