package idp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// opServer is the library's LegacyServer with the parts it leaves to us:
// honest discovery, the claims parameter, PKCE policy and the client a token
// request authenticated as.
type opServer struct {
	*op.LegacyServer
	// pols is the policy in force: levels, scope minimums, the
	// authorization_details types and per-client policy.
	pols   *policy.Live
	store  storage.Store
	audit  *web.Auditor
	ops    *opStorage
	keys   *keyring
	dpop   *dpopGuard
	issuer string
	now    func() time.Time
	log    *slog.Logger
	// requirePAR is Config.RequirePAR: every client must push its
	// authorization requests.
	requirePAR bool
}

// discoveryExtra holds the discovery members oidc.DiscoveryConfiguration
// has no field for. Add a member here, never to a second wrapper: the JSON
// of an embedded struct is flattened into the document, and a name both
// structs carry would vanish from it.
type discoveryExtra struct {
	// RFC 9126 §5.
	PushedAuthorizationRequestEndpoint string `json:"pushed_authorization_request_endpoint"`
	RequirePushedAuthorizationRequests bool   `json:"require_pushed_authorization_requests"`
	// RFC 9207 §3.
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
	// RFC 9449 §5.1.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported"`
	// RFC 9396 §10.
	AuthorizationDetailsTypesSupported []string `json:"authorization_details_types_supported,omitempty"`
	// PromptValuesSupported: OpenID Connect Prompt Create 1.0 §4.1 (the
	// library has no field for it).
	PromptValuesSupported []string `json:"prompt_values_supported"`
}

// discoveryDocument is the discovery response: the library's
// configuration plus discoveryExtra.
type discoveryDocument struct {
	*oidc.DiscoveryConfiguration
	discoveryExtra
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
	pol := s.pols.Current()
	cfg.ACRValuesSupported = pol.Levels.Values()
	cfg.ClaimsParameterSupported = true
	cfg.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	cfg.ResponseModesSupported = []string{"query"}
	cfg.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials}
	cfg.ScopesSupported = supportedScopes
	cfg.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	cfg.ClaimsSupported = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
		"name", "preferred_username", "updated_at", "email", "email_verified"}
	// Request objects by value (RFC 9101 §5.1), verified by verifyRequestObject.
	cfg.RequestParameterSupported = true
	cfg.RequestObjectSigningAlgValuesSupported = algStrings(requestObjectAlgs)
	// request_uri_parameter_supported is about request objects fetched
	// from a URL the client names (OIDC Core §6.2), which Keystep never
	// does. The request_uri URNs of its own PAR endpoint work regardless
	// (RFC 9126 §4); pushed_authorization_request_endpoint says so.
	cfg.RequestURIParameterSupported = false
	// What op.AuthorizePrivateJWTKey accepts for client assertions (the
	// library's default list); EdDSA assertions it refuses.
	cfg.TokenEndpointAuthSigningAlgValuesSupported = strings.Split(algNames(assertionAlgs), ", ")
	cfg.IntrospectionEndpointAuthSigningAlgValuesSupported = cfg.TokenEndpointAuthSigningAlgValuesSupported
	cfg.RevocationEndpointAuthSigningAlgValuesSupported = cfg.TokenEndpointAuthSigningAlgValuesSupported
	cfg.DisplayValuesSupported = []oidc.Display{oidc.DisplayPage}
	// The languages the pages speak (ui_locales picks among them); no
	// claim has translations, so claims_locales_supported is left out.
	cfg.UILocalesSupported = i18n.Languages
	cfg.ClaimTypesSupported = []string{"normal"}
	// OIDC Back-Channel Logout 1.0 §2.1: logout tokens always carry sid.
	cfg.BackChannelLogoutSupported, cfg.BackChannelLogoutSessionSupported = true, true
	return op.NewResponse(discoveryDocument{DiscoveryConfiguration: cfg, discoveryExtra: discoveryExtra{
		PushedAuthorizationRequestEndpoint:         s.issuer + parPath,
		RequirePushedAuthorizationRequests:         s.requirePAR,
		AuthorizationResponseIssParameterSupported: true,
		DPoPSigningAlgValuesSupported:              dpop.AlgNames(),
		AuthorizationDetailsTypesSupported:         pol.Details.Types(),
		// select_account shows the account choice (login/switch.go);
		// create (registration) is not offered.
		PromptValuesSupported: []string{oidc.PromptNone, oidc.PromptLogin, oidc.PromptConsent, oidc.PromptSelectAccount},
	}}), nil
}

func algStrings(algs []jose.SignatureAlgorithm) []string {
	out := make([]string, len(algs))
	for i, a := range algs {
		out[i] = string(a)
	}
	return out
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
		c, err := s.verifyAssertion(ctx, cc.ClientAssertion)
		if err != nil {
			return nil, err
		}
		if cc.ClientID != "" && cc.ClientID != c.ID {
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
	if c.fapi2() {
		// FAPI 2.0 Security Profile §5.3.1.1 item 5 (no mTLS here).
		return nil, oidc.ErrInvalidClient().WithDescription("this client authenticates with %s", oidc.AuthMethodPrivateKeyJWT)
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
// A bound token is reported with token_type DPoP and cnf.jkt (RFC 9449
// §6.2) for the resource server to check the proof against. A resource
// server registered with dpop_bound_access_tokens accepts only bound
// tokens, so an unbound one is inactive to it: it never mistakes a bearer
// token for a bound one. A DPoP proof sent along is checked.
func (s *opServer) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	c, err := s.authenticateClient(ctx, r.Header, r.Data.ClientCredentials)
	if err != nil {
		return nil, err
	}
	if _, err := s.dpop.proof(ctx, r.Header, http.MethodPost, introspectPath, "", false); err != nil {
		return nil, oauthDPoPError(err)
	}
	if id, subject, ok := s.accessTokenID(ctx, r.Data.Token); ok {
		resp := new(oidc.IntrospectionResponse)
		if s.Provider().Storage().SetIntrospectionFromToken(ctx, resp, id, subject, c.ID) == nil &&
			(!c.dpopRequired() || resp.TokenType == dpop.Scheme) {
			resp.Active = true
			return op.NewResponse(resp), nil
		}
	}
	return op.NewResponse(new(oidc.IntrospectionResponse)), nil
}

// Paths of the endpoints DPoP proofs name in htu (the library's defaults).
const (
	introspectPath = "/oauth/introspect"
	userinfoPath   = "/userinfo"
	revokePath     = "/revoke"
)

// UserInfo is the library's, with the token read by accessTokenID, so that
// a JWT access token's verified claims reach SetUserinfoFromToken: it has
// no row to read them from. A token sent with the DPoP scheme comes with a
// proof for this request (RFC 9449 §7.1), checked here; whether the token
// needed one is decided by SetUserinfoFromToken (reqState.bindingHolds).
func (s *opServer) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	st := stateFrom(ctx)
	if st.dpopScheme {
		p, err := s.dpop.proof(ctx, r.Header, r.Method, userinfoPath, r.Data.AccessToken, false)
		if err != nil {
			st.dpopError = dpop.CodeInvalidProof
			if errors.Is(err, dpop.ErrUseNonce) {
				st.dpopError = dpop.CodeUseNonce
			} else if !errors.Is(err, dpop.ErrInvalidProof) {
				return nil, oidc.ErrServerError().WithParent(err)
			}
			return nil, op.NewStatusError(oidc.ErrAccessDenied().WithDescription("DPoP proof invalid"), http.StatusUnauthorized)
		}
		st.proof = p
	}
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
// client is already authenticated here. A DPoP proof sent along is
// checked.
func (s *opServer) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	p, err := s.dpop.proof(ctx, r.Header, http.MethodPost, revokePath, "", false)
	if err != nil {
		return nil, oauthDPoPError(err)
	}
	stateFrom(ctx).proof = p // GetRefreshTokenInfo: a public client's bound token needs its key
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
	if !accessTokenTyped(token) {
		return "", "", false // an ID token, a logout token, anything else
	}
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, p.AccessTokenVerifier(ctx))
	if err != nil {
		return "", "", false
	}
	stateFrom(ctx).jwt = claims
	return claims.JWTID, claims.Subject, true
}

// accessTokenTyped reports whether the JOSE header of JWT token has the
// typ of an access token: at+jwt (RFC 9068 §2.1, §4), or JWT for the
// tokens signed by the OP library before Keystep signed its own. Those
// live accessTokenTTL (15 minutes) and are still accepted here so that an
// upgrade does not log anyone out; ID tokens are typed JWT as well, and
// are told apart by their missing jti (liveAccessToken). idp/resource
// accepts at+jwt only.
func accessTokenTyped(token string) bool {
	typ, ok := jwtType(token)
	return ok && (typ == accessTokenType || typ == "jwt")
}

// idTokenTyped reports whether JWT token may be an ID token by its typ:
// none, or JWT as the library types them. An access token (at+jwt), a
// logout token or any other typed JWT of ours is not an id_token_hint,
// although the same keys sign it.
func idTokenTyped(token string) bool {
	typ, ok := jwtType(token)
	return ok && (typ == "" || typ == "jwt")
}

// jwtType is the typ of a JWT's JOSE header, lower case and without an
// application/ prefix (RFC 7515 §4.1.9).
func jwtType(token string) (string, bool) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(b, &h) != nil {
		return "", false
	}
	return strings.TrimPrefix(strings.ToLower(h.Typ), "application/"), true
}

// VerifyAuthRequest checks the redirect URI (checkRedirectURI) before the
// library's own checks, which would send their refusals to a loopback URI
// it matched too loosely. A refusal here is shown to the user, never
// redirected (RFC 6749 §4.1.2.1).
func (s *opServer) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	cr, err := s.LegacyServer.VerifyAuthRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	if cl, ok := cr.Client.(*client); ok && r.Data.RedirectURI != "" {
		if err := checkRedirectURI(cl, r.Data); err != nil {
			return nil, err
		}
	}
	if selectUnderNone(r.Data.Prompt) {
		// The library refuses any value beside none as invalid_request
		// before Authorize; validateAuthRequest answers this one from the
		// form as it came (OIDC Core §3.1.2.6).
		r.Data.Prompt = []string{oidc.PromptNone}
	}
	return cr, nil
}

// EndSession holds post_logout_redirect_uri to RFC 8252 §7.3, which the
// library matches loosely for native clients (see checkRedirectURI).
func (s *opServer) EndSession(ctx context.Context, r *op.Request[oidc.EndSessionRequest]) (*op.Redirect, error) {
	p := s.Provider()
	if h := r.Data.IdTokenHint; h != "" && !idTokenTyped(h) {
		return nil, oidc.ErrInvalidRequest().WithDescription("id_token_hint is not an ID token")
	}
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

// Authorize runs after the library's own checks. validateAuthRequest
// decides: a refusal of the redirect URI is shown to the user, any other
// goes back to the client as an error response.
func (s *opServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	cl, ok := r.Client.(*client)
	if !ok {
		// The client's floor goes into the requirement: never without it.
		return nil, oidc.ErrServerError().WithDescription("unexpected client type %T", r.Client)
	}
	need, err := s.validateAuthRequest(ctx, cl, r.Data, r.Form, sourceFrom(ctx))
	if err != nil {
		return nil, err
	}
	stateFrom(ctx).requirement = &need
	if jkt := r.Form.Get("dpop_jkt"); jkt != "" {
		// RFC 9449 §10: the code redeems only with a proof of this key
		// (its format was checked by validateAuthRequest).
		stateFrom(ctx).dpopJKT = jkt
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
//
// The DPoP proof is checked before the code is spent, so a client asked
// for a nonce (use_dpop_nonce) retries with the same code. A code issued
// for a dpop_jkt redeems only with a proof of that key (RFC 9449 §10.1).
func (s *opServer) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	cl, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError().WithDescription("unexpected client type %T", r.Client)
	}
	proof, err := s.tokenProof(ctx, r.Header, cl)
	if err != nil {
		return nil, err
	}
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
	if jkt := authRequestJKT(ar); jkt != "" && (proof == nil || proof.JKT != jkt) {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is bound to another DPoP key (dpop_jkt)")
	}
	if a, ok := ar.(authRequest); ok {
		if err := s.narrowDetails(ctx, cl, r.Form, a.AuthorizationDetails); err != nil {
			return nil, err
		}
	}
	return s.issue(ctx, ar, cl, proof, r.Data.Code, "", oidc.GrantTypeCode)
}

// narrowDetails reads the authorization_details of a token request (RFC
// 9396 §6): a subset of the approved ones, each exactly as approved, for
// this request's access token alone (reqState.tokenDetails). Anything else
// is invalid_authorization_details, audited: a token request cannot widen
// or change what the person approved.
func (s *opServer) narrowDetails(ctx context.Context, c *client, form url.Values, approved string) error {
	raw := form.Get("authorization_details")
	if raw == "" {
		return nil
	}
	requested, err := s.checkDetails(ctx, c, raw, "token")
	if err != nil {
		return err
	}
	app, err := details.Parse(approved)
	if approved == "" || err != nil || !details.Narrows(app, requested) {
		s.auditDetails(ctx, c.ID, "token", "the token request asks for details the person did not approve")
		return &oidc.Error{ErrorType: details.ErrorCode, Description: "authorization_details must be among those approved, unchanged"}
	}
	d := requested.String()
	stateFrom(ctx).tokenDetails = &d
	return nil
}

// authRequestJKT is the dpop_jkt the code of ar was issued for.
func authRequestJKT(ar op.AuthRequest) string {
	if a, ok := ar.(authRequest); ok {
		return a.DPoPJKT
	}
	return ""
}

// RefreshToken is the library's refresh grant (op.LegacyServer.RefreshToken)
// with Keystep's token response (issue) and DPoP. A public client's
// refresh tokens are bound to the key its family was issued with (RFC 9449
// §5): a refresh without a proof of that key is invalid_grant and rotates
// nothing, so a stolen token is useless without the key. A confidential
// client authenticates, and may bind the new access token to a new key.
func (s *opServer) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	cl, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError().WithDescription("unexpected client type %T", r.Client)
	}
	proof, err := s.tokenProof(ctx, r.Header, cl)
	if err != nil {
		return nil, err
	}
	req, err := op.RefreshTokenRequestByRefreshToken(ctx, s.ops, r.Data.RefreshToken)
	if err != nil {
		return nil, err
	}
	rr, ok := req.(*refreshRequest)
	if !ok || cl.ID != rr.GetClientID() {
		return nil, oidc.ErrInvalidGrant()
	}
	boundElse := func() bool {
		jkt := rr.grant.JKT
		return cl.Public && jkt != "" && (proof == nil || proof.JKT != jkt)
	}
	if boundElse() {
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token is bound to another DPoP key")
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, rr); err != nil {
		return nil, err
	}
	if err := s.refreshFloors(ctx, rr); err != nil {
		return nil, err
	}
	if err := s.narrowDetails(ctx, cl, r.Form, rr.grant.AuthorizationDetails); err != nil {
		return nil, err
	}
	if cl.Public && proof != nil && rr.grant.JKT == "" && rr.legacyID == "" {
		// RFC 9449 §5: a public client's refresh token is bound to the key
		// it is first refreshed with, once and for all — by a refresh that
		// is granted: one refused above changed nothing. A concurrent
		// first refresh with another key may have bound it meanwhile.
		f, err := s.store.BindFamily(ctx, rr.familyID, proof.JKT)
		if err != nil {
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token").WithParent(err)
		}
		rr.grant.JKT = f.Grant.JKT
		if boundElse() {
			return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token is bound to another DPoP key")
		}
	}
	return s.issue(ctx, rr, cl, proof, "", r.Data.RefreshToken, oidc.GrantTypeRefreshToken)
}

// refreshFloors refuses a refresh that would issue a scope whose minimum
// level in the ACTIVE policy is above the level the grant was signed in at:
// a floor an admin raises holds for refresh-token holders too, not only for
// the next sign-in. The code exchange keeps the version the sign-in was
// decided under; every refresh, the first one included, is checked here.
// The refresh is invalid_grant and rotates nothing: the client may ask
// again for fewer scopes, or send the person to sign in again. A grant whose
// acr the active levels no longer know meets no floor.
func (s *opServer) refreshFloors(ctx context.Context, rr *refreshRequest) error {
	pol := s.pols.Current()
	g := rr.grant
	have, _, known := pol.Levels.Lookup(g.ACR)
	for _, sc := range g.Scopes {
		for _, floor := range pol.ScopeFloors(g.ClientID, []string{sc}) {
			if need, _, ok := pol.Levels.Lookup(floor); known && ok && need <= have {
				continue
			}
			err := s.audit.Record(ctx, storage.AuditEvent{Type: storage.EventTokenRefreshRefused, UserID: g.Subject, ClientID: g.ClientID, Outcome: "denied",
				Reason:  "the active policy needs a higher level for a scope of the grant",
				Details: map[string]string{"scope": sc, "min_acr": floor, "acr": g.ACR, "policy_version": strconv.FormatInt(pol.Version, 10)}})
			if err != nil {
				s.log.ErrorContext(ctx, "audit write failed", "event", storage.EventTokenRefreshRefused, "err", err)
			}
			return oidc.ErrInvalidGrant().WithDescription("the policy now needs a stronger sign-in for scope %s; sign in again", sc)
		}
	}
	return nil
}

// ClientCredentialsExchange is the library's client_credentials grant with
// Keystep's token response; a proof binds the token.
func (s *opServer) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	cl, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError().WithDescription("unexpected client type %T", r.Client)
	}
	proof, err := s.tokenProof(ctx, r.Header, cl)
	if err != nil {
		return nil, err
	}
	req, err := s.ops.ClientCredentialsTokenRequest(ctx, cl.ID, r.Data.Scope)
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, req, cl, proof, "", "", oidc.GrantTypeClientCredentials)
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
