package sim

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
	"slices"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// passkey is a software authenticator holding one ES256 credential: what
// an attacker's own browser and platform authenticator send in the
// WebAuthn ceremonies (W3C WebAuthn Level 2 §6.1, §6.5; "none"
// attestation, §8.7). It is honest — the right origin and RP ID, user
// verification done — because the attacker registers and uses a real key
// of their own. The same authenticator, with tweaks, is the one
// conformance/webauthn_soft_test.go drives.
type passkey struct {
	priv  *ecdsa.PrivateKey
	id    []byte
	user  []byte // the user handle the RP gave at registration
	count uint32
}

func newPasskey() (*passkey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &passkey{priv: priv, id: id}, nil
}

const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagAT = 0x40 // attested credential data included
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (k *passkey) clientData(b *browser, typ, challenge string) ([]byte, error) {
	return json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, challenge, b.w.base, false})
}

// authData is rpIdHash | flags | signCount | attestedCredentialData
// (WebAuthn §6.1). A device-bound key: the backup flags stay clear.
func (k *passkey) authData(b *browser, attested []byte) []byte {
	flags := byte(flagUP | flagUV)
	if attested != nil {
		flags |= flagAT
	} else {
		k.count++
	}
	hash := sha256.Sum256([]byte(b.base.Hostname()))
	out := append(hash[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, attested...)
}

// attestation answers creation options as navigator.credentials.create.
func (k *passkey) attestation(b *browser, options map[string]any) (map[string]any, error) {
	pk, _ := options["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	user, _ := pk["user"].(map[string]any)
	handle, err := base64.RawURLEncoding.DecodeString(fmt.Sprint(user["id"]))
	if err != nil || challenge == "" {
		return nil, fmt.Errorf("creation options without a challenge or user: %v", options)
	}
	k.user = handle
	pub, err := k.priv.PublicKey.Bytes() // 0x04 | x | y
	if err != nil {
		return nil, err
	}
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]}) // EC2, ES256, P-256
	if err != nil {
		return nil, err
	}
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(attested, k.id...)
	attested = append(attested, cose...)
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(b, attested)})
	if err != nil {
		return nil, err
	}
	cd, err := k.clientData(b, "webauthn.create", challenge)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response":               map[string]any{"clientDataJSON": b64u(cd), "attestationObject": b64u(obj), "transports": []string{"internal"}},
		"clientExtensionResults": map[string]any{},
	}, nil
}

// assertion answers request options as navigator.credentials.get: an
// ECDSA signature over authenticatorData | SHA-256(clientDataJSON).
func (k *passkey) assertion(b *browser, challenge string) (map[string]any, error) {
	cd, err := k.clientData(b, "webauthn.get", challenge)
	if err != nil {
		return nil, err
	}
	ad := k.authData(b, nil)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(slices.Clone(ad), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response":               map[string]any{"clientDataJSON": b64u(cd), "authenticatorData": b64u(ad), "signature": b64u(sig), "userHandle": b64u(k.user)},
		"clientExtensionResults": map[string]any{}}, nil
}

// register adds k to the signed-in account in the portal, as the "Add
// passkey" button does; it reports whether the server took it.
func (b *browser) register(ctx context.Context, k *passkey) (bool, error) {
	status, options, err := b.postJSON(ctx, "/account/passkey/options", map[string]any{})
	if err != nil || status != http.StatusOK {
		return false, err
	}
	cred, err := k.attestation(b, options)
	if err != nil {
		return false, err
	}
	status, out, err := b.postJSON(ctx, "/account/passkey/verify", map[string]any{"name": "Passkey", "credential": cred})
	return err == nil && status == http.StatusOK && out["redirect"] != nil, err
}

// usePasskey answers the passkey step of auth request id with k and
// follows the flow on; p is where it ended (the app, or a page).
func (b *browser) usePasskey(ctx context.Context, id string, k *passkey) (page, error) {
	status, options, err := b.postJSON(ctx, "/login/webauthn/options", map[string]string{"id": id})
	if err != nil {
		return page{}, err
	}
	pk, _ := options["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	if status != http.StatusOK || challenge == "" {
		return page{status: status}, nil
	}
	cred, err := k.assertion(b, challenge)
	if err != nil {
		return page{}, err
	}
	status, out, err := b.postJSON(ctx, "/login/webauthn/verify", map[string]any{"id": id, "credential": cred})
	if err != nil {
		return page{}, err
	}
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || next == "" {
		return page{status: status}, nil
	}
	return b.get(ctx, next)
}
