package idp

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// reqState travels in the context of every request to the OP endpoints. The
// middleware creates it; the storage adapter reads and fills it. The library
// hands storage only a context, so this is how request facts reach it.
type reqState struct {
	browser string // hash of the browser cookie (binds auth requests)
	// requirement is what the request at /authorize asks of acr, parsed
	// and merged once (opServer.Authorize) for CreateAuthRequest to store.
	requirement *storage.Requirement
	sessionID   string // hash of the session cookie, if any
	client      *client
	// dpopJKT is the dpop_jkt parameter at /authorize (RFC 9449 §10),
	// checked by opServer.Authorize, for CreateAuthRequest to store.
	dpopJKT string
	// details is the request's authorization_details (RFC 9396) in
	// canonical form, checked by validateAuthRequest, for
	// CreateAuthRequest to store; "" for none.
	details string
	// tokenDetails, when set, is the subset of the grant's approved
	// authorization_details a token request asked for (RFC 9396 §6): the
	// access token of this request carries it, while the family keeps all
	// that was approved.
	tokenDetails *string
	// jkt is the thumbprint of the DPoP key the tokens of this token
	// request are bound to (opServer.issue); "" for bearer tokens.
	jkt string
	// ttl is the token lifetimes of this token request's client
	// (opServer.issue); nil means the server's.
	ttl          *lifetimes
	endedSession bool
	// loaded is the client storage last returned in this request: a token
	// request asks for its client two or three times (authentication, then
	// the grant's checks), and each was a database read.
	loaded *client
	// user is the user storage last read in this request: a refresh grant
	// checks that the user is active, then fills the ID token's claims.
	user *storage.User
	// bearer holds the access tokens exactly as presented at userinfo and
	// introspection, for the verified-signature cache (verifycache.go).
	bearer []string
	// dpopScheme is set when userinfo got its token with the DPoP
	// Authorization scheme (RFC 9449 §7.1); proof is that request's
	// verified proof. dpopChallenge makes the 401 a DPoP challenge, with
	// dpopError as its error code ("" means invalid_token).
	dpopScheme    bool
	proof         *dpop.Proof
	dpopChallenge bool
	dpopError     string
	// issued is the grant tokens were last stored for in this request; the
	// token.issued audit row is written from it once the grant succeeded.
	issued *storage.Grant
	// refreshed is the family a refresh grant rotated (or answered a retry
	// of), as it stood after the rotation: recordIssued reads from it
	// whether this refresh is the one the audit log summarises.
	refreshed *storage.Family
	// jwt holds the verified claims of the JWT access token presented at
	// userinfo or introspection (opServer.accessTokenID): it has no row.
	jwt *oidc.AccessTokenClaims
	// policyVersion is the policy version the authorization request was
	// validated under; it is stored with it.
	policyVersion int64
}

// bindingHolds reports whether a token bound to jkt ("" for a bearer
// token) may be used in this request (RFC 9449 §7.1, §7.2): a bound token
// only with the DPoP scheme and a proof of its key, and a token sent with
// the DPoP scheme only if it is bound (the proof binds nothing otherwise).
// A refusal answers with a DPoP challenge.
func (st *reqState) bindingHolds(jkt string) bool {
	ok := jkt == "" && !st.dpopScheme || jkt != "" && st.dpopScheme && st.proof != nil && st.proof.JKT == jkt
	if !ok {
		st.dpopChallenge = true
	}
	return ok
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	if s, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return s
	}
	return &reqState{}
}

// opStorage adapts storage.Store to op.Storage and its optional interfaces.
type opStorage struct {
	store    storage.Store
	keys     *keyring
	refresh  refreshMinter
	now      func() time.Time
	loginURL string
	audit    *web.Auditor
	log      *slog.Logger
	// pols names the scopes a client may ask for besides the standard
	// ones (client.withScopesOf); nil: none.
	pols *policy.Live
}

var (
	_ op.Storage                        = (*opStorage)(nil)
	_ op.ClientCredentialsStorage       = (*opStorage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*opStorage)(nil)
	_ op.CanTerminateSessionFromRequest = (*opStorage)(nil)
)

func (s *opStorage) Health(ctx context.Context) error { return s.store.Ping(ctx) }

// user reads a user at most once per request.
func (s *opStorage) user(ctx context.Context, id string) (storage.User, error) {
	st := stateFrom(ctx)
	if st.user != nil && st.user.ID == id {
		return *st.user, nil
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return storage.User{}, err
	}
	st.user = &u
	return u, nil
}

// recordAudit writes an audit event for a refusal; the refusal stands even
// when the write fails, so the failure is only logged.
func (s *opStorage) recordAudit(ctx context.Context, e storage.AuditEvent) {
	if err := s.audit.Record(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit write failed", "event", e.Type, "err", err)
	}
}

// ---- auth requests and codes ----

func (s *opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	st := stateFrom(ctx)
	if st.browser == "" {
		return nil, errors.New("auth request without browser binding")
	}
	if !slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	if st.requirement == nil {
		return nil, errors.New("auth request without a parsed requirement")
	}
	id, err := factor.NewToken()
	if err != nil {
		return nil, err
	}
	now := s.now()
	ar := storage.AuthRequest{
		ID: id, ClientID: req.ClientID, RedirectURI: req.RedirectURI,
		Scopes: req.Scopes, ResponseType: string(req.ResponseType), ResponseMode: string(req.ResponseMode),
		State: req.State, Nonce: req.Nonce,
		CodeChallenge: req.CodeChallenge, CodeChallengeMethod: string(req.CodeChallengeMethod),
		Prompt: req.Prompt, ACRValues: req.ACRValues, Requirement: *st.requirement,
		LoginHint: req.LoginHint, IDTokenHintSubject: hintSubject,
		BrowserBinding: st.browser, DPoPJKT: st.dpopJKT, AuthorizationDetails: st.details, PolicyVersion: st.policyVersion, CreatedAt: now, ExpiresAt: now.Add(authRequestTTL),
	}
	if req.MaxAge != nil {
		v := int64(*req.MaxAge)
		ar.MaxAge = &v
	}
	for _, l := range req.UILocales {
		ar.UILocales = append(ar.UILocales, l.String())
	}
	if err := s.store.CreateAuthRequest(ctx, ar); err != nil {
		return nil, err
	}
	return authRequest{ar}, nil
}

func (s *opStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	ar, err := s.store.AuthRequestByID(ctx, id, s.now())
	if err != nil {
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request").WithParent(err)
	}
	return authRequest{ar}, nil
}

// AuthRequestByCode redeems the code. It is single use: a replay gets
// invalid_grant and revokes what the first redemption issued (RFC 6749 §4.1.2).
func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	ar, err := s.store.ConsumeAuthCode(ctx, factor.HashToken(code), s.now())
	switch {
	case errors.Is(err, storage.ErrReplayed):
		s.recordAudit(ctx, storage.AuditEvent{Type: storage.EventTokenCodeReplayed, ClientID: ar.ClientID, UserID: ar.Subject, Outcome: "denied", Reason: "authorization code presented twice; tokens of the grant revoked"})
		return nil, oidc.ErrInvalidGrant().WithDescription("authorization code already used")
	case err != nil:
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid or expired authorization code").WithParent(err)
	}
	return authRequest{ar}, nil
}

func (s *opStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.store.SaveAuthCode(ctx, id, factor.HashToken(code), s.now().Add(codeTTL))
}

// DeleteAuthRequest is called after tokens are minted. The request is kept
// (its code already spent) until it expires, so that a replayed code is
// recognised and revokes the grant; the cleanup loop deletes it later.
func (s *opStorage) DeleteAuthRequest(context.Context, string) error { return nil }

// ---- tokens ----

func newTokenID() (string, error) {
	t, err := factor.NewToken()
	if err != nil {
		return "", err
	}
	return t[:22], nil // 132 bits, no ':' (the library joins id:subject)
}

func grantOf(req op.TokenRequest) (storage.Grant, error) {
	switch r := req.(type) {
	case authRequest:
		return r.grant(), nil
	case *refreshRequest:
		return r.grant, nil
	case clientCredentialsRequest:
		return storage.Grant{ClientID: r.clientID, Scopes: r.scopes, Audience: r.GetAudience()}, nil
	default:
		return storage.Grant{}, fmt.Errorf("unsupported token request %T", req)
	}
}

// accessToken makes the ID of an access token issued with family ("" for
// none) and, when the client takes opaque tokens, the row it needs. A JWT
// has no row: its ID names its family (jwtFamily).
func (s *opStorage) accessToken(ctx context.Context, g storage.Grant, family string, now time.Time) (string, *storage.AccessToken, time.Time, error) {
	exp := now.Add(stateFrom(ctx).lifetimes().access)
	c, err := s.client(ctx, g.ClientID)
	if err != nil {
		return "", nil, time.Time{}, err
	}
	if c.AccessTokenType() == op.AccessTokenTypeJWT {
		id, err := newJWTID(family)
		return id, nil, exp, err
	}
	id, err := newTokenID()
	if err != nil {
		return "", nil, time.Time{}, err
	}
	row := &storage.AccessToken{ID: id, Grant: g, RefreshID: family, CreatedAt: now, ExpiresAt: exp}
	row.Grant.AuthorizationDetails = tokenDetails(ctx, g)
	return id, row, exp, nil
}

// tokenDetails is the authorization_details the access token of this
// request carries: what the token request narrowed them to, or all that
// was approved.
func tokenDetails(ctx context.Context, g storage.Grant) string {
	if d := stateFrom(ctx).tokenDetails; d != nil {
		return *d
	}
	return g.AuthorizationDetails
}

// CreateAccessToken stores what a grant without a refresh token needs: a
// code redemption gets a family, which its access token names, so that a
// replayed code or a user's revocation ends it; client credentials get
// nothing but an opaque token's row.
func (s *opStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	g, err := grantOf(req)
	if err != nil {
		return "", time.Time{}, err
	}
	g.JKT = stateFrom(ctx).jkt
	now := s.now()
	var family string
	if _, ok := req.(authRequest); ok {
		if family, err = newFamilyID(); err != nil {
			return "", time.Time{}, err
		}
	}
	id, row, exp, err := s.accessToken(ctx, g, family, now)
	if err != nil {
		return "", time.Time{}, err
	}
	switch {
	case family != "":
		// It lives as long as its access token.
		err = s.store.CreateFamily(ctx, storage.Family{ID: family, Grant: g, CreatedAt: now, ExpiresAt: exp}, row)
	case row != nil:
		err = s.store.CreateAccessToken(ctx, *row)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	stateFrom(ctx).issued = &g
	return id, exp, nil
}

// CreateAccessAndRefreshTokens starts a family for a code redemption, or
// rotates the family of the presented refresh token: one update of its row
// (RotateFamily), or for a token from before families its upgrade into one.
// A retry within the client's reuse interval (TokenRequestByRefreshToken
// or a rotation lost to a parallel one) gets the same successor and writes
// nothing but an opaque access token's row.
func (s *opStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	g, err := grantOf(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	// The access token is bound to this request's proof, if any. A new
	// family is bound with it; a rotated one keeps the key it was issued
	// with, which a public client's refresh must prove (opServer.RefreshToken).
	g.JKT = stateFrom(ctx).jkt
	now := s.now()
	prev, _ := req.(*refreshRequest)
	if currentRefreshToken == "" {
		family, err := newFamilyID()
		if err != nil {
			return "", "", time.Time{}, err
		}
		id, row, exp, err := s.accessToken(ctx, g, family, now)
		if err != nil {
			return "", "", time.Time{}, err
		}
		f := storage.Family{ID: family, Grant: g, CreatedAt: now, ExpiresAt: familyExpiry(req, now, stateFrom(ctx).lifetimes().refresh)}
		if err := s.store.CreateFamily(ctx, f, row); err != nil {
			return "", "", time.Time{}, err
		}
		stateFrom(ctx).issued = &g
		return id, s.refresh.token(family, 0), exp, nil
	}
	if prev == nil {
		return "", "", time.Time{}, fmt.Errorf("refresh with a %T", req)
	}
	id, row, exp, err := s.accessToken(ctx, g, prev.familyID, now)
	if err != nil {
		return "", "", time.Time{}, err
	}
	next := prev.successor
	switch {
	case next > 0: // a retry: nothing to rotate
		if row != nil {
			err = s.store.CreateAccessToken(ctx, *row)
		}
	case prev.legacyID != "":
		f := storage.Family{Grant: g, CreatedAt: now, ExpiresAt: prev.expiresAt} // rotation does not extend the family's life
		if err = s.store.UpgradeRefreshToken(ctx, prev.legacyID, f, row, now); err == nil {
			next = 1
		} else if errors.Is(err, storage.ErrReplayed) {
			f, ferr := s.store.FamilyByID(ctx, prev.familyID)
			next, err = s.rotatedAway(ctx, prev, f, ferr, 0, now, row)
		}
	default:
		var f storage.Family
		f, err = s.store.RotateFamily(ctx, prev.familyID, prev.gen, g.Scopes, row, now)
		switch {
		case err == nil:
			next = f.Generation
			stateFrom(ctx).refreshed = &f
		case errors.Is(err, storage.ErrReplayed):
			if next, err = s.rotatedAway(ctx, prev, f, nil, prev.gen, now, row); err == nil {
				stateFrom(ctx).refreshed = &f
			}
		}
	}
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExpired) {
		// Revoked or expired since TokenRequestByRefreshToken read it.
		err = oidc.ErrInvalidGrant().WithDescription("invalid refresh token").WithParent(err)
	}
	if err != nil {
		return "", "", time.Time{}, err
	}
	stateFrom(ctx).issued = &g
	return id, s.refresh.token(prev.familyID, next), exp, nil
}

// familyExpiry is when a new family of req ends: ttl (refreshTokenTTL, or
// the client's shorter lifetime), or for a grant of authorization_details
// (RFC 9396) when its approval is no longer fresh: the details' max age
// after the authentication (accessTokenTTL when they set none). A payment
// approved for five minutes does not keep minting tokens for the life of
// the session; a refresh within that time may still narrow the details.
func familyExpiry(req op.TokenRequest, now time.Time, ttl time.Duration) time.Time {
	exp := now.Add(ttl)
	if a, ok := req.(authRequest); ok && a.AuthRequest.AuthorizationDetails != "" {
		fresh := accessTokenTTL
		if s := a.Requirement.TransactionMaxAge; s > 0 {
			fresh = time.Duration(s) * time.Second
		}
		if c := a.AuthTime.Add(fresh); c.Before(exp) {
			exp = c
		}
	}
	return exp
}

// rotatedAway handles the token of prev, generation gen of family f,
// found rotated when it was to be rotated (ferr: reading f failed): a
// retry gets the successor (and row, an opaque access token, is stored),
// anything else is reuse.
func (s *opStorage) rotatedAway(ctx context.Context, prev *refreshRequest, f storage.Family, ferr error, gen int64, now time.Time, row *storage.AccessToken) (int64, error) {
	if ferr == nil && s.retry(ctx, f, gen, now) {
		if row != nil {
			if err := s.store.CreateAccessToken(ctx, *row); err != nil {
				return 0, err
			}
		}
		return f.Generation, nil
	}
	if ferr != nil && !errors.Is(ferr, storage.ErrNotFound) {
		return 0, ferr
	}
	return 0, s.reuse(ctx, prev.familyID, prev.legacyID, prev.grant)
}

// retry reports whether generation gen of f, presented again, is a retry
// to answer with the same successor rather than reuse: gen is the one just
// rotated away, the family is live, the client presenting it is the
// family's, and the client's reuse interval has not passed since the
// rotation. Parallel refreshes with one token and a response lost on the
// way look like this; a token stolen and replayed later does not.
//
// The rotation may have been made by another instance, whose clock the
// interval is measured against: a clock behind by more than the interval
// makes the retry reuse (the family ends; fail closed) rather than widen
// the window in which a stolen token passes as a retry.
func (s *opStorage) retry(ctx context.Context, f storage.Family, gen int64, now time.Time) bool {
	c := stateFrom(ctx).client
	if f.Revoked || gen != f.Generation-1 || now.After(f.ExpiresAt) || c == nil || c.ID != f.Grant.ClientID {
		return false
	}
	interval, since := c.ReuseInterval(), now.Sub(f.RotatedAt)
	return since < interval && since > -interval
}

// reuse revokes the family of a refresh token presented after it was
// rotated (OAuth 2.0 Security BCP §4.14.2): family, or for a token from
// before families the family of legacyID.
func (s *opStorage) reuse(ctx context.Context, family, legacyID string, g storage.Grant) error {
	var err error
	if legacyID != "" {
		err = s.store.RevokeRefreshFamily(ctx, legacyID)
	} else {
		err = s.store.RevokeFamily(ctx, family)
	}
	if err != nil {
		return err
	}
	// The session the family was issued under ends everywhere: whoever
	// holds the stolen token may hold its siblings too.
	if err := s.endSessionOf(ctx, g); err != nil {
		return err
	}
	s.recordAudit(ctx, storage.AuditEvent{Type: storage.EventTokenRefreshReuse, ClientID: g.ClientID, UserID: g.Subject, Outcome: "denied", Reason: "rotated refresh token presented again; family revoked and its session ended"})
	return oidc.ErrInvalidGrant().WithDescription("refresh token already used")
}

func (s *opStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	now := s.now()
	var req *refreshRequest
	if family, gen, ok := s.refresh.parse(token); ok {
		f, err := s.store.FamilyByID(ctx, family)
		if err != nil {
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token").WithParent(err)
		}
		switch {
		case gen < f.Generation && s.retry(ctx, f, gen, now):
			req = &refreshRequest{familyID: family, gen: gen, successor: f.Generation, grant: f.Grant, expiresAt: f.ExpiresAt, createdAt: f.CreatedAt}
		case gen < f.Generation:
			return nil, s.reuse(ctx, family, "", f.Grant)
		case gen > f.Generation, f.Revoked:
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
		case now.After(f.ExpiresAt):
			return nil, oidc.ErrInvalidGrant().WithDescription("refresh token expired")
		default:
			req = &refreshRequest{familyID: family, gen: gen, grant: f.Grant, expiresAt: f.ExpiresAt, createdAt: f.CreatedAt}
		}
	} else {
		id := factor.HashToken(token)
		rt, err := s.store.RefreshTokenByID(ctx, id, now)
		switch {
		case errors.Is(err, storage.ErrReplayed):
			// The token from before families that was upgraded is
			// generation 0 of the family it became (its rotation is the
			// upgrade); the older tokens of its chain are no generation.
			f, ferr := s.store.FamilyByID(ctx, rt.FamilyID)
			if ferr == nil && rt.UsedAt.Equal(f.RotatedAt) && s.retry(ctx, f, 0, now) {
				req = &refreshRequest{familyID: f.ID, successor: f.Generation, grant: f.Grant, expiresAt: f.ExpiresAt, createdAt: f.CreatedAt}
				break
			}
			return nil, s.reuse(ctx, "", id, rt.Grant)
		case err != nil:
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token").WithParent(err)
		default:
			req = &refreshRequest{legacyID: id, familyID: rt.FamilyID, grant: rt.Grant, expiresAt: rt.ExpiresAt, createdAt: rt.CreatedAt}
		}
	}
	u, err := s.user(ctx, req.grant.Subject)
	if err != nil || u.Disabled {
		return nil, oidc.ErrInvalidGrant().WithDescription("user is not active")
	}
	return req, nil
}

func (s *opStorage) TerminateSession(ctx context.Context, userID, clientID string) error {
	return nil // TerminateSessionFromRequest replaces it
}

// TerminateSessionFromRequest ends the browser session that presented the
// logout request. The redirect URI was already checked against the client's
// registered post-logout URIs by the library (exact match).
func (s *opStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	st := stateFrom(ctx)
	if st.sessionID != "" {
		sess, err := s.store.SessionByID(ctx, st.sessionID, s.now())
		if err == nil && (req.UserID == "" || req.UserID == sess.UserID) {
			if err := admin.EndSessions(ctx, s.store, s.now(), sess.End()); err != nil {
				return "", err
			}
			st.endedSession = true
			s.recordAudit(ctx, storage.AuditEvent{Type: storage.EventSessionLogout, UserID: sess.UserID, ClientID: req.ClientID, Outcome: "success"})
		}
	}
	return req.RedirectURI, nil
}

// Revocation IDs of refresh tokens: a family, or a token from before
// families.
const (
	familyIDPrefix  = "rf:"
	refreshIDPrefix = "rt:"
)

// GetRefreshTokenInfo identifies a refresh token at /revoke. A token
// already rotated still names its family, which revoking it ends (RFC 7009
// §2.1: the grant's tokens go with it).
func (s *opStorage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	var g storage.Grant
	var id string
	if family, gen, ok := s.refresh.parse(token); ok {
		f, err := s.store.FamilyByID(ctx, family)
		if err != nil || gen > f.Generation {
			return "", "", op.ErrInvalidRefreshToken
		}
		g, id = f.Grant, familyIDPrefix+family
	} else {
		hash := factor.HashToken(token)
		rt, err := s.store.RefreshTokenByID(ctx, hash, s.now())
		if err != nil && !errors.Is(err, storage.ErrReplayed) {
			return "", "", op.ErrInvalidRefreshToken
		}
		g, id = rt.Grant, refreshIDPrefix+hash
	}
	if g.ClientID != clientID {
		// RFC 7009 §2.1: only the client the token was issued to may revoke it.
		return "", "", op.ErrInvalidRefreshToken
	}
	if g.JKT != "" {
		// A public client's bound refresh token is revoked only with a
		// proof of its key, as it is refreshed: a thief holding the token
		// alone cannot end the family (RFC 9449 §5).
		c, err := s.client(ctx, clientID)
		if p := stateFrom(ctx).proof; err != nil || c.Public && (p == nil || p.JKT != g.JKT) {
			return "", "", op.ErrInvalidRefreshToken
		}
	}
	return g.Subject, id, nil
}

// RevokeToken revokes what GetRefreshTokenInfo found, or an access token:
// its row, or for a JWT, which has none, a record of its ID until it
// expires. The library hands over the ID of a token it could decode
// (verified, with its subject) or else the raw string, which has no
// subject: only the former is recorded.
func (s *opStorage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	var err error
	if id, ok := strings.CutPrefix(tokenOrID, familyIDPrefix); ok {
		err = s.store.RevokeFamily(ctx, id)
	} else if id, ok := strings.CutPrefix(tokenOrID, refreshIDPrefix); ok {
		err = s.store.RevokeRefreshFamily(ctx, id)
	} else if family, ok := jwtFamily(tokenOrID); ok {
		owner := userID // client credentials: the subject is the client
		if family != "" {
			f, ferr := s.store.FamilyByID(ctx, family)
			if ferr != nil {
				return nil // RFC 7009 §2.2: invalid tokens are not an error
			}
			owner = f.Grant.ClientID
		}
		if userID == "" || owner != clientID {
			return nil
		}
		// Every access token lives accessTokenTTL, so it has expired by
		// then by this clock; by its own exp (opServer.Revocation) when
		// the clock that issued it was ahead.
		exp := s.now().Add(accessTokenTTL)
		if c := stateFrom(ctx).jwt; c != nil && c.JWTID == tokenOrID && c.GetExpiration().After(exp) {
			exp = c.GetExpiration()
		}
		err = s.store.RevokeRowlessAccessToken(ctx, tokenOrID, exp)
	} else {
		at, lerr := s.store.AccessTokenByID(ctx, tokenOrID, s.now())
		if lerr != nil || at.Grant.ClientID != clientID {
			return nil // RFC 7009 §2.2: invalid tokens are not an error
		}
		err = s.store.RevokeAccessToken(ctx, tokenOrID)
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	s.recordAudit(ctx, storage.AuditEvent{Type: storage.EventTokenRevoked, UserID: userID, ClientID: clientID, Outcome: "success"})
	return nil
}

// ---- keys ----

// SigningKey signs ID tokens; JWT access tokens are signed by
// opServer.signAccessToken.
func (s *opStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	st := stateFrom(ctx)
	alg := "RS256" // OIDC Core §15.1
	if st.client != nil && st.client.IDTokenAlg != "" {
		alg = st.client.IDTokenAlg
	}
	return s.keys.signing(ctx, alg)
}

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	out := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out, nil
}

func (s *opStorage) KeySet(ctx context.Context) ([]op.Key, error) { return s.keys.published(ctx) }

// ---- clients ----

func (s *opStorage) client(ctx context.Context, id string) (*client, error) {
	st := stateFrom(ctx)
	if st.loaded != nil && st.loaded.ID == id {
		return st.loaded, nil
	}
	c, err := s.store.ClientByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client").WithParent(err)
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	st.loaded = &client{Client: c, loginURL: s.loginURL}
	if s.pols != nil {
		// The library drops the scopes its client does not allow before
		// validateAuthRequest sees the request.
		st.loaded = st.loaded.withScopesOf(s.pols.Current())
	}
	return st.loaded, nil
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s *opStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.client(ctx, id)
	if err != nil {
		return err
	}
	if c.SecretHash == "" || subtle.ConstantTimeCompare([]byte(c.SecretHash), []byte(factor.HashToken(secret))) != 1 {
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	return nil
}

// ClientCredentials completes op.ClientCredentialsStorage. Keystep's
// opServer.VerifyClient authenticates every client itself, so the library's
// client_credentials path through here is not taken; it stays correct anyway.
func (s *opStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		return nil, err
	}
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.hasGrant(oidc.GrantTypeClientCredentials) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use client_credentials")
	}
	stateFrom(ctx).client = c
	return c, nil
}

func (s *opStorage) ClientCredentialsTokenRequest(ctx context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c, err := s.client(ctx, clientID)
	if err != nil {
		return nil, err
	}
	kept, err := c.clientScopes(scopes)
	if err != nil {
		return nil, err
	}
	return clientCredentialsRequest{clientID: clientID, scopes: kept}, nil
}

func (s *opStorage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, err := s.client(ctx, clientID)
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if c.JWKS == "" {
		return nil, oidc.ErrInvalidClient().WithDescription("client has no registered keys")
	}
	if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
		return nil, oidc.ErrInvalidClient().WithDescription("client keys are malformed").WithParent(err)
	}
	for _, k := range set.Keys {
		if k.KeyID == keyID || keyID == "" && len(set.Keys) == 1 {
			return &k, nil
		}
	}
	return nil, oidc.ErrInvalidClient().WithDescription("unknown client key")
}

func (s *opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("the JWT bearer grant is not supported")
}

// ---- claims ----

func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil // SetUserinfoFromRequest does the work
}

func (s *opStorage) setUserClaims(ctx context.Context, info *oidc.UserInfo, subject string, scopes []string) error {
	u, err := s.user(ctx, subject)
	if err != nil {
		return err
	}
	info.Subject = u.ID
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			info.PreferredUsername = u.Username
			info.Name = u.Username
			info.UpdatedAt = oidc.FromTime(u.UpdatedAt)
		case oidc.ScopeEmail:
			if u.Email == "" {
				continue
			}
			info.Email = u.Email
			// OIDC Core §5.4: the email scope is email and email_verified,
			// true only for an address its owner confirmed by the link sent
			// to it (an admin-set one is not, unless the admin said so).
			// The library drops a false bool, so it is added as a plain
			// claim.
			info.AppendClaims("email_verified", u.EmailVerified)
		}
	}
	return nil
}

// SetUserinfoFromRequest adds scope claims and sid to ID tokens, and acr to
// refreshed ones: the library reads acr only from an AuthRequest, but a
// refreshed ID token must keep the original acr (OIDC Core §12.2).
func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.setUserClaims(ctx, info, req.GetSubject(), scopes); err != nil {
		return err
	}
	var g storage.Grant
	switch r := req.(type) {
	case authRequest:
		g = r.grant()
	case *refreshRequest:
		g = r.grant
	}
	if g.SessionID != "" {
		info.AppendClaims("sid", g.SessionID)
	}
	if g.ACR != "" {
		info.AppendClaims("acr", g.ACR)
	}
	return nil
}

// liveAccessToken returns access token tokenID if it is live: its row, or
// for a JWT, which has none, what its verified claims (reqState.jwt) and
// its family say.
func (s *opStorage) liveAccessToken(ctx context.Context, tokenID string) (storage.AccessToken, error) {
	now := s.now()
	family, rowless := jwtFamily(tokenID)
	if !rowless {
		return s.store.AccessTokenByID(ctx, tokenID, now)
	}
	c := stateFrom(ctx).jwt
	if c == nil || c.JWTID != tokenID {
		return storage.AccessToken{}, errors.New("a JWT access token without its verified claims")
	}
	exp := c.GetExpiration()
	if now.After(exp) {
		return storage.AccessToken{}, storage.ErrExpired
	}
	f, err := s.store.RowlessAccessTokenFamily(ctx, tokenID, family, now)
	if err != nil {
		return storage.AccessToken{}, err
	}
	g := f.Grant
	if family == "" {
		// Client credentials: the claims are all there is (grantOf). Their
		// client, deleted, took them along (a family's tokens are revoked
		// with it, admin.DeleteClient); so does a client made anew under
		// the same ID since the token was issued.
		g = storage.Grant{ClientID: c.ClientID, Audience: c.Audience}
		cl, err := s.client(ctx, c.ClientID)
		if err != nil {
			return storage.AccessToken{}, storage.ErrNotFound
		}
		if reg, ok := c.Claims[clientRegistrationClaim].(string); ok {
			if reg != registrationOf(cl.Client) {
				return storage.AccessToken{}, storage.ErrNotFound
			}
		} else if cl.CreatedAt.After(c.IssuedAt.AsTime().Add(time.Second)) {
			// A token from before the claim: iat is in whole seconds, so
			// the token was issued within the second after it.
			return storage.AccessToken{}, storage.ErrNotFound
		}
	}
	if family != "" && c.Subject != g.Subject || c.ClientID != g.ClientID {
		return storage.AccessToken{}, errors.New("a JWT access token that does not match its family")
	}
	g.Scopes = c.Scopes // a refresh may have narrowed them for this token alone
	g.JKT = jwtJKT(c)   // and bound it to another key (a confidential client's)
	g.AuthorizationDetails = jwtDetails(c)
	return storage.AccessToken{ID: tokenID, Grant: g, RefreshID: family, CreatedAt: c.IssuedAt.AsTime(), ExpiresAt: exp}, nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	at, err := s.liveAccessToken(ctx, tokenID)
	if err != nil {
		return oidc.ErrAccessDenied().WithDescription("access token invalid").WithParent(err)
	}
	if !stateFrom(ctx).bindingHolds(at.Grant.JKT) {
		return oidc.ErrAccessDenied().WithDescription("the access token is bound to a DPoP key this request does not prove")
	}
	if at.Grant.Subject == "" || at.Grant.Subject != subject {
		return oidc.ErrAccessDenied().WithDescription("access token has no user")
	}
	return s.setUserClaims(ctx, info, subject, at.Grant.Scopes)
}

// errNotForCaller refuses introspection by a client the token is not for.
var errNotForCaller = errors.New("token was issued to another client")

// SetIntrospectionFromToken answers RFC 7662 with the RFC 9470 §6.2 members.
// Only the client the token was issued to, or a client named in its
// audience (a resource server it is meant for), learns anything: any other
// authenticated client could otherwise read the user, acr, amr and sid of
// every token it gets hold of (RFC 7662 §4).
func (s *opStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, callerID string) error {
	at, err := s.liveAccessToken(ctx, tokenID)
	if err != nil {
		return err
	}
	g := at.Grant
	if callerID == "" || callerID != g.ClientID && !slices.Contains(g.Audience, callerID) {
		return errNotForCaller
	}
	resp.Active = true
	resp.Scope = g.Scopes
	resp.ClientID = g.ClientID
	resp.TokenType = oidc.BearerToken
	if g.JKT != "" {
		// RFC 9449 §6.2: the binding, for the resource server to check.
		resp.TokenType = dpop.Scheme
		resp.Claims = map[string]any{"cnf": map[string]string{"jkt": g.JKT}}
	}
	resp.Expiration = oidc.FromTime(at.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(at.CreatedAt)
	resp.Subject = subject
	resp.Audience = g.Audience
	resp.JWTID = at.ID
	if g.Subject != "" {
		resp.AuthTime = oidc.FromTime(g.AuthTime)
		resp.AuthenticationMethodsReferences = g.AMR
		if u, err := s.store.UserByID(ctx, g.Subject); err == nil {
			resp.Username = u.Username
		}
		if resp.Claims == nil {
			resp.Claims = map[string]any{}
		}
		resp.Claims["acr"] = g.ACR
		if g.SessionID != "" {
			resp.Claims["sid"] = g.SessionID
		}
		if g.AuthorizationDetails != "" {
			// RFC 9396 §9.2: what this token was approved for.
			resp.Claims["authorization_details"] = json.RawMessage(g.AuthorizationDetails)
		}
	}
	return nil
}

// jwtDetails is the authorization_details claim of verified JWT access
// token claims in canonical form, "" for none. The token carries the
// details its own request narrowed them to, which its family's row does
// not know. The claim was written canonical, whose numbers a float64
// holds exactly (details.Parse refuses others), so decoding and encoding
// it again gives the same text.
func jwtDetails(c *oidc.AccessTokenClaims) string {
	v, ok := c.Claims["authorization_details"]
	if !ok {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	d, err := details.Parse(string(b))
	if err != nil {
		return ""
	}
	return d.String()
}

func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// jwtJKT is the cnf.jkt of verified JWT access token claims, "" for none.
// clientRegistrationClaim names, in a client's own JWT access token, the
// registration of the client it was issued to (registrationOf).
const clientRegistrationClaim = "keystep_client_registration"

// registrationOf tells one registration of a client ID from another: its
// creation time in nanoseconds, as a string (a JSON number would lose
// precision).
func registrationOf(c storage.Client) string { return strconv.FormatInt(c.CreatedAt.UnixNano(), 10) }

func jwtJKT(c *oidc.AccessTokenClaims) string {
	cnf, _ := c.Claims["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}
