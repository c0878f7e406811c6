// Package dpop verifies DPoP proofs (RFC 9449) for Keystep's endpoints and
// for the APIs that accept its tokens (idp/resource), and makes the
// stateless server nonces of RFC 9449 §8. It imports only the standard
// library and go-jose, like idp/resource.
//
// [Verify] checks one proof against one request. It does not remember
// proofs: the caller spends [Proof.JTI] in its replay cache (RFC 9449
// §11.1), keyed with [Proof.JKT], for as long as [Window] lets the proof
// pass.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Error codes of RFC 9449 §5, §7.1 and §8.
const (
	CodeInvalidProof = "invalid_dpop_proof"
	CodeUseNonce     = "use_dpop_nonce"
)

// Header names of RFC 9449 §4.1 and §8.
const (
	HeaderProof = "DPoP"
	HeaderNonce = "DPoP-Nonce"
	// Scheme is the Authorization scheme of a DPoP-bound access token
	// (RFC 9449 §7.1) and the token_type of a token response (§5).
	Scheme = "DPoP"
)

// ErrInvalidProof is wrapped by every refusal that the caller answers with
// invalid_dpop_proof (or, at a resource, invalid_token).
var ErrInvalidProof = errors.New(CodeInvalidProof)

// ErrUseNonce is wrapped when the proof lacks the server nonce the caller
// requires, or carries one that is not (or no longer) valid: the caller
// answers use_dpop_nonce with a fresh nonce in the DPoP-Nonce header
// (RFC 9449 §8).
var ErrUseNonce = errors.New(CodeUseNonce)

// Code returns the OAuth error code for an error of [Verify]:
// use_dpop_nonce or invalid_dpop_proof.
func Code(err error) string {
	if errors.Is(err, ErrUseNonce) {
		return CodeUseNonce
	}
	return CodeInvalidProof
}

// Algs is the signature allow-list for proofs, in the order discovery
// publishes it (dpop_signing_alg_values_supported). "none" and the HMAC
// algorithms are never accepted: a proof must be signed with a private key
// (RFC 9449 §4.3 point 5).
var Algs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.PS256, jose.RS256, jose.EdDSA}

// AlgNames is Algs as strings.
func AlgNames() []string {
	out := make([]string, len(Algs))
	for i, a := range Algs {
		out[i] = string(a)
	}
	return out
}

// Window is the default for how far a proof's iat may be from the
// verifier's clock, either way (RFC 9449 §11.1: a short window limits how
// long a jti must be remembered).
const Window = 60 * time.Second

// maxProofBytes bounds a proof: a JWT with an RSA-4096 key in its header
// is well under it.
const maxProofBytes = 8 << 10

// Check is what one request expects of its proof.
type Check struct {
	// Method is the request's HTTP method (htm).
	Method string
	// URL is the request's URL as the server is reached from outside
	// (htu); query and fragment are ignored, and both sides are normalised
	// (RFC 9449 §4.3 point 9, RFC 3986 §6.2.2, §6.2.3).
	URL string
	// AccessToken, when set, is the token presented with the proof: the
	// proof's ath must be its SHA-256 hash (RFC 9449 §4.3 point 11).
	AccessToken string
	// Now is the verifier's clock.
	Now time.Time
	// Window bounds |iat − Now|; zero means [Window].
	Window time.Duration
	// Nonces, when set, requires a nonce it made (RFC 9449 §8).
	Nonces *Nonces
}

// Proof is a verified DPoP proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key,
	// base64url: the cnf.jkt of the tokens bound to it.
	JKT string
	// JTI is the proof's unique identifier, for the caller's replay cache.
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// Key is the proof's public key.
	Key jose.JSONWebKey
}

type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   *string  `json:"ath"`
	Nonce *string  `json:"nonce"`
}

// Verify checks proof against c (RFC 9449 §4.3): one compact JWS, typ
// dpop+jwt, an allowed alg, a public key in jwk that fits alg and verifies
// the signature, htm, htu, iat within the window, a jti, ath when an
// access token is presented (and none otherwise), and the nonce when
// c.Nonces is set. Refusals wrap [ErrInvalidProof] or [ErrUseNonce].
func Verify(proof string, c Check) (Proof, error) {
	if proof == "" {
		return Proof{}, invalid("no proof")
	}
	if len(proof) > maxProofBytes {
		return Proof{}, invalid("proof too large")
	}
	jws, err := jose.ParseSigned(proof, Algs)
	if err != nil {
		return Proof{}, invalid("not a JWS with an allowed alg: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return Proof{}, invalid("not one signature")
	}
	h := jws.Signatures[0].Protected
	// typ is a media type (RFC 7515 §4.1.9): any case, application/ optional.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); strings.TrimPrefix(strings.ToLower(typ), "application/") != "dpop+jwt" {
		return Proof{}, invalid("typ %q, want dpop+jwt", typ)
	}
	k := h.JSONWebKey
	if k == nil {
		return Proof{}, invalid("no jwk header")
	}
	if !k.IsPublic() || !k.Valid() {
		return Proof{}, invalid("jwk is not a public key")
	}
	if !keyFits(k.Key, jose.SignatureAlgorithm(h.Algorithm)) {
		return Proof{}, invalid("jwk does not fit alg %s", h.Algorithm)
	}
	payload, err := jws.Verify(k)
	if err != nil {
		return Proof{}, invalid("signature: %v", err)
	}
	var cl claims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return Proof{}, invalid("claims: %v", err)
	}
	switch {
	case cl.JTI == "":
		return Proof{}, invalid("no jti")
	case len(cl.JTI) > 256:
		return Proof{}, invalid("jti too long")
	case cl.HTM != c.Method:
		return Proof{}, invalid("htm %q, want %q", cl.HTM, c.Method)
	case cl.IAT == nil || !(*cl.IAT > 0 && *cl.IAT < 1e11):
		return Proof{}, invalid("no iat, or not a time")
	}
	want, err := NormalizeURL(c.URL)
	if err != nil {
		return Proof{}, fmt.Errorf("dpop: the expected htu %q: %w", c.URL, err)
	}
	if got, err := NormalizeURL(cl.HTU); err != nil || got != want {
		return Proof{}, invalid("htu %q, want %q", cl.HTU, want)
	}
	window := c.Window
	if window <= 0 {
		window = Window
	}
	iat := time.Unix(0, 0).Add(time.Duration(*cl.IAT * float64(time.Second)))
	if d := iat.Sub(c.Now); d > window || d < -window {
		return Proof{}, invalid("iat %s is outside %s of now", iat.UTC().Format(time.RFC3339), window)
	}
	switch {
	case c.AccessToken != "" && cl.ATH == nil:
		return Proof{}, invalid("no ath")
	case c.AccessToken != "" && subtle.ConstantTimeCompare([]byte(*cl.ATH), []byte(ATH(c.AccessToken))) != 1:
		return Proof{}, invalid("ath does not match the access token")
	}
	if c.Nonces != nil && (cl.Nonce == nil || !c.Nonces.Valid(*cl.Nonce, c.Now)) {
		return Proof{}, fmt.Errorf("%w: the proof needs a current server nonce", ErrUseNonce)
	}
	jkt, err := Thumbprint(*k)
	if err != nil {
		return Proof{}, invalid("thumbprint: %v", err)
	}
	return Proof{JKT: jkt, JTI: cl.JTI, IssuedAt: iat, Key: *k}, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidProof, fmt.Sprintf(format, args...))
}

// keyFits reports whether key can carry alg, so a key is never used with
// an algorithm of another family, and RSA keys are at least 2048 bits.
func keyFits(key any, alg jose.SignatureAlgorithm) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256() || alg == jose.ES384 && k.Curve == elliptic.P384()
	case *rsa.PublicKey:
		return (alg == jose.RS256 || alg == jose.PS256) && k.N.BitLen() >= 2048
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// Thumbprint is the RFC 7638 JWK SHA-256 thumbprint of k, base64url
// without padding: the value of cnf.jkt (RFC 9449 §6.1) and dpop_jkt
// (§10).
func Thumbprint(k jose.JSONWebKey) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ValidJKT reports whether s has the form of a thumbprint: 43 base64url
// characters, the encoding of 32 bytes.
func ValidJKT(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size && len(s) == 43
}

// ATH is the ath of a proof for accessToken: base64url(SHA-256(token))
// (RFC 9449 §4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NormalizeURL returns u without query and fragment, with RFC 3986 §6.2.2
// and §6.2.3 normalisation: scheme and host lower case, the default port
// dropped, an empty path made "/", percent-encoding made canonical. Only
// absolute http(s) URLs are accepted.
func NormalizeURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(p.Scheme)
	if scheme != "https" && scheme != "http" || p.Host == "" || p.Opaque != "" || p.User != nil {
		return "", errors.New("not an absolute http(s) URL")
	}
	host, port := strings.ToLower(p.Hostname()), p.Port()
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := (&url.URL{Path: p.Path}).EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// Nonces makes and checks stateless server nonces (RFC 9449 §8): an HMAC
// of a time slot under a key, so every instance that shares the key agrees
// without shared state. A nonce is valid in the slot it was made in and
// the next one.
type Nonces struct {
	key  []byte
	slot time.Duration
}

// DefaultNonceSlot is the slot length of [NewNonces] with slot 0: a nonce
// lives between 5 and 10 minutes.
const DefaultNonceSlot = 5 * time.Minute

// NewNonces makes nonces under key (at least 32 bytes, derived by the
// caller for this use alone) in slots of slot (0 means DefaultNonceSlot).
func NewNonces(key []byte, slot time.Duration) (*Nonces, error) {
	if len(key) < 32 {
		return nil, errors.New("dpop: nonce key shorter than 32 bytes")
	}
	if slot <= 0 {
		slot = DefaultNonceSlot
	}
	return &Nonces{key: append([]byte(nil), key...), slot: slot}, nil
}

func (n *Nonces) at(slot int64) string {
	m := hmac.New(sha256.New, n.key)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(slot))
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func (n *Nonces) slotOf(now time.Time) int64 { return now.UnixNano() / int64(n.slot) }

// Issue returns the nonce of now's slot.
func (n *Nonces) Issue(now time.Time) string { return n.at(n.slotOf(now)) }

// Valid reports whether nonce is the nonce of now's slot or the one before.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	s := n.slotOf(now)
	return hmac.Equal([]byte(nonce), []byte(n.at(s))) || hmac.Equal([]byte(nonce), []byte(n.at(s-1)))
}
