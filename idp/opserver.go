package idp

import (
	"context"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/storage"
)

// opServer is the library's LegacyServer with the parts it leaves to us:
// honest discovery, the claims parameter, PKCE policy and the client a token
// request authenticated as.
type opServer struct {
	*op.LegacyServer
	policy *stepup.Policy
	store  storage.Store
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
	return resp, nil
}

// VerifyClient remembers which client authenticated, so ID tokens are
// signed with that client's registered algorithm.
func (s *opServer) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := s.LegacyServer.VerifyClient(ctx, r)
	if err != nil {
		return nil, err
	}
	if cl, ok := c.(*client); ok {
		stateFrom(ctx).client = cl
	}
	return c, nil
}

// Authorize runs after the library validated the client and redirect URI,
// so every refusal here goes back to the client as an error response.
func (s *opServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	if _, err := login.ParseClaims(r.Form.Get("claims")); err != nil {
		return nil, oidc.ErrInvalidRequest().WithDescription("claims: %s", err)
	}
	cl, _ := r.Client.(*client)
	req := r.Data
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		// DESIGN §4: S256 only; plain offers no protection against a leaked request.
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if cl != nil && (cl.Public || cl.RequirePKCE) && req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE (S256) is required for this client")
	}
	if !slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	return s.LegacyServer.Authorize(ctx, r)
}
