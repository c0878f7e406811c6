package idp

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// opServer is the library's LegacyServer with the parts it leaves to us:
// honest discovery, the claims parameter, PKCE policy and the client a token
// request authenticated as.
type opServer struct {
	*op.LegacyServer
	policy    *stepup.Policy
	scopeMins map[string]string // scope → minimum acr
	store     storage.Store
	audit     *web.Auditor
}

// Discovery publishes what Keystep really supports (OpenID Connect
// Discovery §3): the library leaves out acr_values_supported and
// claims_parameter_supported, and always lists implicit and JWT bearer.
func (s *opServer) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	cfg := resp.Data.(*oidc.DiscoveryConfiguration)
	cfg.ACRValuesSupported = s.policy.Values()
	cfg.ClaimsParameterSupported = true
	cfg.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	cfg.ResponseModesSupported = []string{"query"}
	cfg.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials}
	cfg.ScopesSupported = supportedScopes
	cfg.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	cfg.ClaimsSupported = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
		"name", "preferred_username", "updated_at", "email", "email_verified"}
	cfg.RequestParameterSupported = false
	cfg.RequestURIParameterSupported = false
	cfg.TokenEndpointAuthSigningAlgValuesSupported = []string{"RS256", "ES256", "EdDSA"}
	cfg.IntrospectionEndpointAuthSigningAlgValuesSupported = cfg.TokenEndpointAuthSigningAlgValuesSupported
	cfg.RevocationEndpointAuthSigningAlgValuesSupported = cfg.TokenEndpointAuthSigningAlgValuesSupported
	cfg.DisplayValuesSupported = []oidc.Display{oidc.DisplayPage}
	cfg.ClaimTypesSupported = []string{"normal"}
	// OIDC Back-Channel Logout 1.0 §2.1: logout tokens always carry sid.
	cfg.BackChannelLogoutSupported, cfg.BackChannelLogoutSessionSupported = true, true
	return resp, nil
}

// VerifyClient authenticates the client of a token or revocation request
// and remembers it, so ID tokens are signed with that client's registered
// algorithm.
func (s *opServer) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := s.authenticateClient(ctx, r.Header, r.Data)
	if err != nil {
		return nil, err
	}
	stateFrom(ctx).client = c
	return c, nil
}

// authenticateClient is the one client authentication of the token,
// introspection and revocation endpoints. The library's own paths differ
// per endpoint: introspection skipped the one-time jti check, and a
// client_secret_basic client could send its secret in the body. Here a
// client authenticates only with the method it registered (OIDC Core §9,
// RFC 7591 §2 token_endpoint_auth_method), and a private_key_jwt
// assertion is spent wherever it is presented. Sending two methods at once
// was already refused by the library (RFC 6749 §2.3).
func (s *opServer) authenticateClient(ctx context.Context, header http.Header, cc *op.ClientCredentials) (*client, error) {
	if cc == nil {
		return nil, oidc.ErrInvalidClient().WithDescription("client authentication required")
	}
	if cc.ClientAssertion != "" {
		// AuthorizePrivateJWTKey refuses a client not registered for
		// private_key_jwt.
		oc, err := s.verifyAssertion(ctx, cc.ClientAssertion)
		if err != nil {
			return nil, err
		}
		c, ok := oc.(*client)
		if !ok || cc.ClientID != "" && cc.ClientID != c.ID {
			// RFC 7521 §4.2: a client_id beside the assertion names the same client.
			return nil, oidc.ErrInvalidClient().WithDescription("client_id does not match the client assertion")
		}
		return c, nil
	}
	// HTTP Basic with an empty password carries no secret: some libraries
	// send a public client's ID that way, and it identifies it like "none".
	method := oidc.AuthMethodNone
	if _, secret, basic := (&http.Request{Header: header}).BasicAuth(); basic && secret != "" {
		method = oidc.AuthMethodBasic
	} else if !basic && cc.ClientSecret != "" {
		method = oidc.AuthMethodPost
	}
	oc, err := s.Provider().Storage().GetClientByClientID(ctx, cc.ClientID)
	if err != nil {
		return nil, err // invalid_client for an unknown client
	}
	c, ok := oc.(*client)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	if registered := c.AuthMethod(); registered != method {
		return nil, oidc.ErrInvalidClient().WithDescription("this client authenticates with %s", registered)
	}
	if method == oidc.AuthMethodNone {
		return c, nil // a public client: RFC 6749 §2.1
	}
	if err := s.Provider().Storage().AuthorizeClientIDSecret(ctx, c.ID, cc.ClientSecret); err != nil {
		return nil, err
	}
	return c, nil
}

// Introspect answers RFC 7662 for a client authenticated like at the token
// endpoint. Whether the caller may learn about the token at all is decided
// by SetIntrospectionFromToken; any refusal is {"active":false} (RFC 7662 §2.2).
func (s *opServer) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	c, err := s.authenticateClient(ctx, r.Header, r.Data.ClientCredentials)
	if err != nil {
		return nil, err
	}
	if id, subject, ok := s.accessTokenID(ctx, r.Data.Token); ok {
		resp := new(oidc.IntrospectionResponse)
		if s.Provider().Storage().SetIntrospectionFromToken(ctx, resp, id, subject, c.ID) == nil {
			resp.Active = true
			return op.NewResponse(resp), nil
		}
	}
	return op.NewResponse(new(oidc.IntrospectionResponse)), nil
}

// UserInfo is the library's, with the token read by accessTokenID, so that
// a JWT access token's verified claims reach SetUserinfoFromToken: it has
// no row to read them from.
func (s *opServer) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	id, subject, ok := s.accessTokenID(ctx, r.Data.AccessToken)
	if !ok {
		return nil, op.NewStatusError(oidc.ErrAccessDenied().WithDescription("access token invalid"), http.StatusUnauthorized)
	}
	info := new(oidc.UserInfo)
	if err := s.Provider().Storage().SetUserinfoFromToken(ctx, info, id, subject, r.Header.Get("origin")); err != nil {
		return nil, op.NewStatusError(err, http.StatusForbidden)
	}
	return op.NewResponse(info), nil
}

// Revocation is the library's, with a JWT access token's verified claims
// kept in reqState (accessTokenID) for RevokeToken: the record of a
// revoked JWT must last until the token's own exp, which the clock that
// issued it set, not until this server's clock plus accessTokenTTL — after
// a clock step back, or on an instance whose clock is behind, the record
// was swept while the token still verified, and it was active again. The
// client is already authenticated here.
func (s *opServer) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	s.accessTokenID(ctx, r.Data.Token)
	return s.LegacyServer.Revocation(ctx, r)
}

// accessTokenID reads the token ID and subject of an opaque or JWT access
// token as the library does (it keeps this helper to itself): an opaque
// token decrypts to "id:subject", a JWT must verify, and its claims are
// kept in reqState for the storage adapter.
func (s *opServer) accessTokenID(ctx context.Context, token string) (id, subject string, ok bool) {
	p := s.Provider()
	if plain, err := p.Crypto().Decrypt(token); err == nil {
		id, subject, ok = strings.Cut(plain, ":")
		return id, subject, ok && !strings.Contains(subject, ":")
	}
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, p.AccessTokenVerifier(ctx))
	if err != nil {
		return "", "", false
	}
	stateFrom(ctx).jwt = claims
	return claims.JWTID, claims.Subject, true
}

// VerifyAuthRequest holds redirect URIs to RFC 8252 §7.3: the library
// lets a native client's request through with any loopback URI whose path
// and query match a registered one, so http://127.0.0.1/cb also matched
// https://localhost:N/cb and http://[::1]:N/cb. Only the port may vary.
// A refusal here is shown to the user, never redirected (RFC 6749 §4.1.2.1).
func (s *opServer) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	cr, err := s.LegacyServer.VerifyAuthRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	if cl, ok := cr.Client.(*client); ok && r.Data.RedirectURI != "" && !cl.redirectRegistered(cl.RedirectURIs(), r.Data.RedirectURI) {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("The redirect_uri is not registered for this app.")
	}
	return cr, nil
}

// EndSession applies the same rule to post_logout_redirect_uri, which the
// library matches just as loosely for native clients.
func (s *opServer) EndSession(ctx context.Context, r *op.Request[oidc.EndSessionRequest]) (*op.Redirect, error) {
	p := s.Provider()
	session, err := op.ValidateEndSessionRequest(ctx, r.Data, p)
	if err != nil {
		return nil, err
	}
	if uri := r.Data.PostLogoutRedirectURI; uri != "" && session.ClientID != "" {
		oc, err := p.Storage().GetClientByClientID(ctx, session.ClientID)
		if err != nil {
			return nil, err
		}
		if cl, ok := oc.(*client); !ok || !cl.redirectRegistered(cl.PostLogoutRedirectURIs(), uri) {
			return nil, oidc.ErrInvalidRequest().WithDescription("post_logout_redirect_uri invalid")
		}
	}
	return s.LegacyServer.EndSession(ctx, r)
}

// Authorize runs after the library validated the client and redirect URI,
// so every refusal here goes back to the client as an error response.
func (s *opServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	if m := r.Data.ResponseMode; m != "" && m != oidc.ResponseModeQuery {
		// Discovery lists only query (OAuth 2.0 Multiple Response Types
		// §2.1). The library would serve form_post with an inline script the
		// CSP blocks, leaving the user on a blank page; the refusal itself
		// goes back in the query.
		r.Data.ResponseMode = oidc.ResponseModeQuery
		return nil, oidc.ErrInvalidRequest().WithDescription("response_mode must be query")
	}
	if r.Form.Get("request_uri") != "" {
		// OIDC Core §6.2: Keystep does not fetch request objects. Going on
		// without them would drop the state and nonce they may carry, so the
		// request is refused (request_uri_parameter_supported is false).
		return nil, &oidc.Error{ErrorType: "request_uri_not_supported", Description: "request_uri is not supported"}
	}
	cl, ok := r.Client.(*client)
	if !ok {
		// The client's floor goes into the requirement: never without it.
		return nil, oidc.ErrServerError().WithDescription("unexpected client type %T", r.Client)
	}
	req := r.Data
	// Parsed and merged once: the login UI and the audit read only the
	// stored requirement (CreateAuthRequest saves it).
	need, err := signin.NewRequirement(r.Form.Get("claims"), req.ACRValues, cl.Client, req.Scopes, s.scopeMins)
	if err != nil {
		return nil, oidc.ErrInvalidRequest().WithDescription("claims: %s", err)
	}
	stateFrom(ctx).requirement = &need
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		// DESIGN §4: S256 only; plain offers no protection against a leaked request.
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if (cl.Public || cl.RequirePKCE) && req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE (S256) is required for this client")
	}
	if !slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	return s.LegacyServer.Authorize(ctx, r)
}

// CodeExchange redeems an authorization code. The library checks the PKCE
// verifier only for public clients or when one is sent, so a confidential
// client's code issued with a challenge would be redeemed without it (a
// PKCE downgrade). Here a code with a challenge always needs its verifier
// and a code without one refuses any verifier, for every client
// authentication (RFC 9700 §2.1.1, §4.8.2).
//
// The code is spent before any check (storage redeems it atomically), so
// a failed redemption — wrong client, redirect_uri or verifier — spends it
// too: RFC 6749 §4.1.2 makes a code single use, and a code presented with
// the wrong verifier is more likely stolen than mistyped. The client
// starts a new authorization; it never gets tokens for a code someone
// else tried first.
func (s *opServer) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	ar, err := op.AuthRequestByCode(ctx, s.Provider().Storage(), r.Data.Code)
	if err != nil {
		return nil, err
	}
	if r.Client.GetID() != ar.GetClientID() {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	}
	if r.Data.RedirectURI != ar.GetRedirectURI() {
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request")
	}
	challenge := ar.GetCodeChallenge()
	switch {
	case challenge == nil && r.Data.CodeVerifier != "":
		return nil, oidc.ErrInvalidGrant().WithDescription("code_verifier sent, but the authorization request had no code_challenge")
	case challenge == nil && r.Client.AuthMethod() == oidc.AuthMethodNone:
		return nil, oidc.ErrInvalidGrant().WithDescription("PKCE is required for this client")
	case challenge != nil && r.Data.CodeVerifier == "":
		return nil, oidc.ErrInvalidGrant().WithDescription("code_verifier required")
	case challenge != nil && !oidc.VerifyCodeChallenge(challenge, r.Data.CodeVerifier):
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code_verifier")
	}
	resp, err := op.CreateTokenResponse(ctx, ar, r.Client, s.Provider(), true, r.Data.Code, "")
	if err != nil {
		return nil, err
	}
	if err := s.recordIssued(ctx, oidc.GrantTypeCode); err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// RefreshToken is the library's refresh grant plus its token.issued row.
func (s *opServer) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.RefreshToken(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := s.recordIssued(ctx, oidc.GrantTypeRefreshToken); err != nil {
		return nil, err
	}
	return resp, nil
}

// ClientCredentialsExchange is the library's client_credentials grant plus
// its token.issued row.
func (s *opServer) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.ClientCredentialsExchange(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := s.recordIssued(ctx, oidc.GrantTypeClientCredentials); err != nil {
		return nil, err
	}
	return resp, nil
}

// recordIssued writes the token.issued row of a grant (DESIGN §7): the
// client, the user, acr, amr, scope and grant type, never a token. It runs
// once the tokens are stored and signed but before the response is
// written, so a failed write fails the grant (DESIGN §6) and the tokens
// stored for it are never handed out. For a refresh the presented token is
// then already rotated; the user signs in again, which is the price of not
// issuing tokens the log does not know about.
//
// Refreshes of an existing family are summarised rather than logged one by
// one, so that refreshing does not grow the database (issue 17): the
// family's first refresh writes a row, and after that one row at most every
// refreshAuditEvery, saying how many refreshes it covers. The family row
// itself always holds the current generation and when it was reached; a
// reuse, a revocation and every new family are logged as they happen.
func (s *opServer) recordIssued(ctx context.Context, grant oidc.GrantType) error {
	st := stateFrom(ctx)
	g := st.issued
	if g == nil {
		return oidc.ErrServerError().WithDescription("no tokens were stored for the grant")
	}
	details := map[string]string{"grant_type": string(grant), "scope": strings.Join(g.Scopes, " ")}
	f := st.refreshed
	if grant != oidc.GrantTypeRefreshToken {
		f = nil
	}
	now := s.audit.Now()
	if f != nil {
		if since := now.Sub(f.AuditedAt); !f.AuditedAt.IsZero() && since < refreshAuditEvery && since > -refreshAuditEvery {
			return nil // summarised by the family's next row
		}
		details["family_generation"] = strconv.FormatInt(f.Generation, 10)
		details["refreshes"] = strconv.FormatInt(f.Generation-f.AuditedGeneration, 10)
	}
	if g.Subject != "" {
		details["acr"] = g.ACR
		details["amr"] = strings.Join(g.AMR, " ")
	}
	err := s.audit.Record(ctx, storage.AuditEvent{Type: storage.EventTokenIssued, UserID: g.Subject, ClientID: g.ClientID, Outcome: "success", Details: details})
	if err == nil && f != nil {
		err = s.store.MarkFamilyAudited(ctx, f.ID, f.Generation, now)
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// refreshAuditEvery is how often at most a family's refreshes write a
// token.issued row (recordIssued).
const refreshAuditEvery = time.Hour

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523 §3)
// and spends its jti, so a captured assertion cannot be replayed while it
// is still unexpired (the library checks signature, issuer, audience and
// age, not replay).
func (s *opServer) verifyAssertion(ctx context.Context, assertion string) (op.Client, error) {
	ex, ok := s.Provider().(op.JWTAuthorizationGrantExchanger)
	if !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("private_key_jwt not supported")
	}
	c, err := op.AuthorizePrivateJWTKey(ctx, assertion, ex)
	if err != nil {
		// RFC 6749 §5.2: a failed client authentication is invalid_client.
		return nil, oidc.ErrInvalidClient().WithDescription("client assertion invalid").WithParent(err)
	}
	var claims struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}
	if _, err := oidc.ParseToken(assertion, &claims); err != nil || claims.JTI == "" || claims.Exp == 0 {
		return nil, oidc.ErrInvalidClient().WithDescription("client assertion needs jti and exp")
	}
	err = s.store.CreateOneTimeToken(ctx, "client_assertion", factor.HashToken(c.GetID()+"\x00"+claims.JTI), time.Unix(claims.Exp, 0).Add(time.Minute))
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil, oidc.ErrInvalidClient().WithDescription("client assertion already used")
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return c, nil
}
