package resource

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keystep/keystep/idp/dpop"
)

// ErrInvalidToken is wrapped by every error of [Verifier.Verify] that is the
// token's fault: it is malformed, badly signed, expired, from another issuer,
// or inactive. Other errors (the issuer cannot be reached) are not.
var ErrInvalidToken = errors.New("invalid access token")

const (
	// leeway absorbs clock skew in exp, nbf and iat.
	leeway = 30 * time.Second
	// jwksMinInterval is the least time between two JWKS fetches, so tokens
	// with made-up kids cannot make the verifier hammer the issuer.
	jwksMinInterval = 30 * time.Second
	// jwksMaxAge is how long a fetched JWKS is trusted before the next token
	// refreshes it, so a key the issuer withdrew stops verifying.
	jwksMaxAge = time.Hour
	// fetchTimeout bounds a discovery or JWKS fetch.
	fetchTimeout = 10 * time.Second
	// maxBody caps what is read from the issuer.
	maxBody = 1 << 20
)

// algs is the signature allow-list: what Keystep signs with (ES256 for access
// tokens, RS256 and EdDSA for ID tokens). "none" and HMAC are never accepted.
var algs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// Verifier checks Keystep access tokens for one issuer. It is safe for
// concurrent use.
type Verifier struct {
	issuer        string
	jwksURI       string
	introspectURL string
	client        *http.Client
	now           func() time.Time
	audience      string
	clientID      string
	secret        string
	introspectAll bool
	log           *slog.Logger
	dpopRequired  bool
	publicURL     string
	replay        ReplayCache
	nonces        *dpop.Nonces

	// fetching is a one-slot semaphore: one JWKS fetch at a time, and
	// callers waiting for it can still give up with their context.
	fetching chan struct{}

	mu        sync.RWMutex
	keys      map[string]jose.JSONWebKey // by kid
	attempted time.Time                  // last JWKS fetch attempt
	loadedAt  time.Time                  // last successful JWKS fetch
}

// Option configures [Open].
type Option func(*Verifier)

// WithHTTPClient sets the client for discovery, JWKS and introspection. The
// default has a 10 s timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(v *Verifier) {
		if c != nil {
			v.client = c
		}
	}
}

// WithClock sets the source of the current time; the default is time.Now.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// WithAudience requires the token's aud to contain aud.
func WithAudience(aud string) Option { return func(v *Verifier) { v.audience = aud } }

// WithIntrospection checks tokens that are not JWTs at the issuer's
// introspection endpoint (RFC 7662), authenticating as the resource server's
// own client with client_secret_basic.
func WithIntrospection(clientID, secret string) Option {
	return func(v *Verifier) { v.clientID, v.secret = clientID, secret }
}

// WithIntrospectionOnly sends JWTs to introspection too, so a revoked token
// is refused at once, at the price of one request to the issuer per call.
// It needs [WithIntrospection].
func WithIntrospectionOnly() Option { return func(v *Verifier) { v.introspectAll = true } }

// WithLogger sets where rejected tokens (at debug level, never the token
// itself) and issuer failures (at warn level) are logged. The default
// discards.
func WithLogger(l *slog.Logger) Option { return func(v *Verifier) { v.log = l } }

// Open discovers issuer's endpoints (OpenID Connect Discovery 1.0 §4) and
// fetches its JWKS. Keys are cached: a token under an unknown kid refetches
// the JWKS, which is how a rotated-in key is picked up, and so does the
// first token after the set is an hour old, so a withdrawn key stops
// verifying. Fetches are at least 30 s apart, whatever kids tokens name.
func Open(ctx context.Context, issuer string, opts ...Option) (*Verifier, error) {
	v := &Verifier{
		issuer:   issuer,
		client:   &http.Client{Timeout: fetchTimeout},
		now:      time.Now,
		log:      slog.New(slog.DiscardHandler),
		fetching: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(v)
	}
	if v.replay == nil {
		v.replay = NewMemoryReplayCache(v.now, 0)
	}
	if v.introspectAll && v.clientID == "" {
		return nil, errors.New("resource: WithIntrospectionOnly needs WithIntrospection")
	}

	var meta struct {
		Issuer                string `json:"issuer"`
		JWKSURI               string `json:"jwks_uri"`
		IntrospectionEndpoint string `json:"introspection_endpoint"`
	}
	// Discovery §4.1: the path is appended to the issuer, minus any trailing slash.
	if err := v.getJSON(ctx, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", &meta); err != nil {
		return nil, fmt.Errorf("resource: discovery: %w", err)
	}
	// Discovery §4.3: the issuer in the document must be the one asked for.
	if meta.Issuer != issuer {
		return nil, fmt.Errorf("resource: discovery: issuer is %q, want %q", meta.Issuer, issuer)
	}
	v.jwksURI = meta.JWKSURI
	if v.clientID != "" {
		if meta.IntrospectionEndpoint == "" {
			return nil, errors.New("resource: discovery: no introspection_endpoint")
		}
		v.introspectURL = meta.IntrospectionEndpoint
	}
	if v.introspectAll {
		return v, nil
	}
	if v.jwksURI == "" {
		return nil, errors.New("resource: discovery: no jwks_uri")
	}
	if err := v.refresh(ctx); err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	return v, nil
}

// String and LogValue keep the introspection secret out of logs and %v.
func (v *Verifier) String() string { return "resource.Verifier(" + v.issuer + ")" }

// LogValue implements slog.LogValuer.
func (v *Verifier) LogValue() slog.Value { return slog.StringValue(v.String()) }

// Verify checks a bearer token and returns its claims. A JWT (RFC 9068) is
// checked locally: signature by a key of the issuer's JWKS with an allowed
// alg, typ, iss, exp, nbf and iat with a 30 s leeway, and aud with
// [WithAudience]. Other tokens go to introspection when it is configured.
// Every failure that is the token's fault wraps [ErrInvalidToken].
//
// A DPoP-bound token (cnf.jkt) is refused here, and so is every token on a
// verifier opened [WithDPoPRequired]: a bound token is worth nothing
// without a proof of its key for the request it came with, which only
// [Verifier.VerifyRequest] (and [Verifier.Require]) can check. An API that
// is no http.Handler calls VerifyRequest with the request it serves.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	c, err := v.verify(ctx, token)
	switch {
	case err != nil:
		return Claims{}, err
	case c.JKT != "":
		return Claims{}, invalid("the token is DPoP-bound: use VerifyRequest, which checks its proof")
	case v.dpopRequired:
		return Claims{}, invalid("this API accepts DPoP-bound tokens only: use VerifyRequest")
	}
	return c, nil
}

// VerifyRequest checks the access token of r as [Verifier.Require] does,
// the DPoP proof of a bound token included, and returns its claims. It
// does not check a [Requirement]; the caller does with the claims.
func (v *Verifier) VerifyRequest(r *http.Request) (Claims, error) {
	cr, ok := requestCredentials(r)
	if !ok {
		return Claims{}, invalid("no access token in the Authorization header")
	}
	c, err := v.verify(r.Context(), cr.token)
	if err == nil {
		err = v.checkBinding(r.Context(), r, cr, c)
	}
	var de *errDPoP
	if errors.As(err, &de) {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, de.desc)
	}
	if err != nil {
		return Claims{}, err
	}
	return c, nil
}

// VerifyHeld checks a token bound to the DPoP key jkt, for the one party
// that holds the key: a client reading the token it was just issued (its
// possession of the key is not in question). The token must verify and be
// bound to exactly jkt.
func (v *Verifier) VerifyHeld(ctx context.Context, token, jkt string) (Claims, error) {
	c, err := v.verify(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	if jkt == "" || c.JKT != jkt {
		return Claims{}, invalid("the token is not bound to the key %q", jkt)
	}
	return c, nil
}

// verify checks token without its binding (Verify, VerifyRequest, Require).
func (v *Verifier) verify(ctx context.Context, token string) (Claims, error) {
	if !isB64Token(token) {
		return Claims{}, invalid("not an RFC 6750 §2.1 b64token")
	}
	if v.introspectAll || v.introspectURL != "" && strings.Count(token, ".") != 2 {
		return v.introspect(ctx, token)
	}
	return v.verifyJWT(ctx, token)
}

// accessClaims are the RFC 9068 §2.2 and RFC 9470 §6.1 claims beyond
// jwt.Claims. The raw ones are only checked for presence.
type accessClaims struct {
	ClientID  string           `json:"client_id"`
	Scope     spaceList        `json:"scope"`
	ACR       string           `json:"acr"`
	AMR       []string         `json:"amr"`
	AuthTime  *jwt.NumericDate `json:"auth_time"`
	SessionID string           `json:"sid"`
	Cnf       *confirmation    `json:"cnf"`
	// AuthorizationDetails is RFC 9396 §9.1's claim.
	AuthorizationDetails json.RawMessage `json:"authorization_details"`

	Nonce  json.RawMessage `json:"nonce"`
	AtHash json.RawMessage `json:"at_hash"`
	CHash  json.RawMessage `json:"c_hash"`
}

func (v *Verifier) verifyJWT(ctx context.Context, token string) (Claims, error) {
	tok, err := jwt.ParseSigned(token, algs)
	if err != nil {
		return Claims{}, invalid("%v", err)
	}
	h := tok.Headers[0]
	// RFC 9068 §4: typ at+jwt, which keeps an ID token (typ JWT) or any
	// other JWT of the issuer from passing as an access token; the
	// ID-token checks below are a second line.
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	typ = strings.TrimPrefix(strings.ToLower(typ), "application/")
	if typ != "at+jwt" {
		return Claims{}, invalid("typ %q", typ)
	}
	if h.KeyID == "" {
		return Claims{}, invalid("no kid")
	}
	key, err := v.key(ctx, h.KeyID)
	if err != nil {
		return Claims{}, err
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm || !keyFits(key.Key, h.Algorithm) {
		return Claims{}, invalid("alg %s does not fit key %s", h.Algorithm, h.KeyID)
	}
	var std jwt.Claims
	var ac accessClaims
	if err := tok.Claims(key.Key, &std, &ac); err != nil {
		return Claims{}, invalid("%v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, Time: v.now()}, leeway); err != nil {
		return Claims{}, invalid("%v", err)
	}
	switch {
	case std.Expiry == nil:
		return Claims{}, invalid("no exp")
	case std.ID == "" || ac.ClientID == "": // RFC 9068 §2.2; ID tokens have no jti
		return Claims{}, invalid("no jti or client_id: not an access token")
	case ac.Nonce != nil || ac.AtHash != nil || ac.CHash != nil: // OIDC Core §2, §3.1.3.6
		return Claims{}, invalid("ID token claims in an access token")
	case v.audience != "" && !std.Audience.Contains(v.audience):
		return Claims{}, invalid("aud %q lacks %q", std.Audience, v.audience)
	}
	c := Claims{
		Subject:   std.Subject,
		ClientID:  ac.ClientID,
		ACR:       ac.ACR,
		SessionID: ac.SessionID,
		AMR:       ac.AMR,
		Scope:     ac.Scope,
		Expiry:    std.Expiry.Time(),
	}
	if ac.AuthTime != nil {
		c.AuthTime = ac.AuthTime.Time()
	}
	if c.AuthorizationDetails, err = detailsClaim(ac.AuthorizationDetails); err != nil {
		return Claims{}, err
	}
	if ac.Cnf != nil {
		if c.JKT = ac.Cnf.JKT; !dpop.ValidJKT(c.JKT) {
			return Claims{}, invalid("cnf without a valid jkt")
		}
	}
	return c, nil
}

// confirmation is the cnf claim (RFC 7800 §3.1) with the jkt member of
// RFC 9449 §6.1.
type confirmation struct {
	JKT string `json:"jkt"`
}

// keyFits reports whether key can carry alg at all, so a key is never used
// with an algorithm of another family.
func keyFits(key any, alg string) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256) && k.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return alg == string(jose.RS256)
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// key returns the issuer's key kid. An unknown kid, or a cache older than
// jwksMaxAge, refetches the JWKS, at most once per jwksMinInterval: that is
// how a rotated-in key is picked up.
func (v *Verifier) key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	k, known, fresh := v.cached(kid)
	if known && fresh {
		return k, nil
	}
	if err := v.refresh(ctx); err != nil {
		if known {
			// Stale beats nothing while the issuer is unreachable.
			v.log.WarnContext(ctx, "JWKS refresh failed; using cached keys", "issuer", v.issuer, "error", err)
			return k, nil
		}
		return jose.JSONWebKey{}, err
	}
	if k, known, _ = v.cached(kid); !known {
		return jose.JSONWebKey{}, invalid("unknown kid %q", kid)
	}
	return k, nil
}

func (v *Verifier) cached(kid string) (k jose.JSONWebKey, known, fresh bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, known = v.keys[kid]
	return k, known, v.now().Sub(v.loadedAt) < jwksMaxAge
}

// refresh fetches the JWKS unless another fetch was attempted in the last
// jwksMinInterval; then it returns nil and the caller uses what it has.
// Concurrent callers wait for one fetch rather than start their own.
func (v *Verifier) refresh(ctx context.Context) error {
	select {
	case v.fetching <- struct{}{}:
		defer func() { <-v.fetching }()
	case <-ctx.Done():
		return ctx.Err()
	}
	v.mu.Lock()
	if !v.attempted.IsZero() && v.now().Sub(v.attempted) < jwksMinInterval {
		v.mu.Unlock()
		return nil
	}
	v.attempted = v.now()
	v.mu.Unlock()

	// The fetch outlives a caller that gives up, so a cancelled request
	// does not spend the interval's only attempt.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	var set jose.JSONWebKeySet
	if err := v.getJSON(fctx, v.jwksURI, &set); err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		// Only public signing keys with a kid; a symmetric or private key
		// in a JWKS is a misconfiguration, never something to verify with.
		if k.KeyID == "" || !k.IsPublic() || !k.Valid() || k.Use != "" && k.Use != "sig" {
			continue
		}
		keys[k.KeyID] = k
	}
	v.mu.Lock()
	v.keys, v.loadedAt = keys, v.now()
	v.mu.Unlock()
	return nil
}

func (v *Verifier) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	return v.do(req, out)
}

func (v *Verifier) do(req *http.Request, out any) error {
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", req.Method, req.URL.Redacted(), resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// isB64Token reports whether s is an RFC 6750 §2.1 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// spaceList is a space-separated string in JSON (RFC 6749 §3.3 scope), also
// accepted as an array of strings.
type spaceList []string

func (l *spaceList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = strings.Fields(s)
		return nil
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return errors.New("scope is neither a string nor an array of strings")
	}
	*l = a
	return nil
}
