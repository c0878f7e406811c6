package idp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// authzSource says where the parameters of an authorization request came
// from, which decides whether a client that must push its requests may use
// them.
type authzSource int

const (
	// fromFront: the browser's query or form at /authorize.
	fromFront authzSource = iota
	// fromRequestObject: a request object the browser brought to
	// /authorize (RFC 9101 §5); signed, but still sent through the browser.
	fromRequestObject
	// fromPushed: a pushed request redeemed at /authorize (RFC 9126 §4).
	fromPushed
	// atPAR: the PAR endpoint, before it stores the request.
	atPAR
)

type sourceKey struct{}

func sourceFrom(ctx context.Context) authzSource {
	src, _ := ctx.Value(sourceKey{}).(authzSource)
	return src
}

// errAccountSelectionRequired is OIDC Core §3.1.2.6's error for a request
// that needs the account choice under prompt=none.
const errAccountSelectionRequired = "account_selection_required"

// selectUnderNone reports whether prompt asks for the account choice
// under none.
func selectUnderNone(prompt []string) bool {
	return slices.Contains(prompt, oidc.PromptNone) && slices.Contains(prompt, oidc.PromptSelectAccount)
}

// validateAuthRequest is the one validation of an authorization request,
// at /authorize and at the PAR endpoint alike (RFC 9126 §2.1: a pushed
// request is validated as the authorization endpoint would). The library
// runs its own, looser checks first at /authorize; this is the one that
// decides. It returns the request's authentication requirement, parsed and
// merged once: the login UI and the audit read only the stored one.
//
// The redirect URI is checked first. Its refusal is made with
// oidc.ErrInvalidRequestRedirectURI, which is never redirected (RFC 6749
// §4.1.2.1); every later refusal goes back to that checked redirect URI.
// req is normalised in place (max_age for prompt=login, known scopes).
func (s *opServer) validateAuthRequest(ctx context.Context, c *client, req *oidc.AuthRequest, form url.Values, src authzSource) (storage.Requirement, error) {
	var none storage.Requirement
	if err := checkRedirectURI(c, req); err != nil {
		return none, err
	}
	if m := req.ResponseMode; m != "" && m != oidc.ResponseModeQuery {
		// Discovery lists only query (OAuth 2.0 Multiple Response Types
		// §2.1). The library would serve form_post with an inline script the
		// CSP blocks, leaving the user on a blank page; the refusal itself
		// goes back in the query.
		req.ResponseMode = oidc.ResponseModeQuery
		return none, oidc.ErrInvalidRequest().WithDescription("response_mode must be query")
	}
	if (src == fromFront || src == fromRequestObject) && c.parRequired(s.requirePAR) {
		// RFC 9126 §5; FAPI 2.0 Security Profile §5.3.1.2 item 1.
		return none, oidc.ErrInvalidRequest().WithDescription("pushed authorization request required")
	}
	if selectUnderNone(req.Prompt) || selectUnderNone(strings.Fields(form.Get("prompt"))) {
		// OIDC Core §3.1.2.6: choosing an account needs a page, which
		// prompt=none forbids. Any other value beside none is
		// invalid_request (§3.1.2.1, the library's check below).
		return none, &oidc.Error{ErrorType: errAccountSelectionRequired, Description: "choosing an account needs a page; prompt=none forbids one"}
	}
	var err error
	if req.MaxAge, err = op.ValidateAuthReqPrompt(req.Prompt, req.MaxAge); err != nil {
		return none, err
	}
	// The request is parsed, stored and every decision of its sign-in
	// made under one policy version: the active one now.
	pol := s.pols.Current()
	if req.Scopes, err = op.ValidateAuthReqScopes(c.withScopesOf(pol), req.Scopes); err != nil {
		return none, err
	}
	if !slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		return none, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	if err := op.ValidateAuthReqResponseType(c, req.ResponseType); err != nil {
		return none, err
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		// DESIGN §4: S256 only; plain offers no protection against a leaked request.
		return none, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if (c.Public || c.RequirePKCE || c.fapi2()) && req.CodeChallenge == "" {
		return none, oidc.ErrInvalidRequest().WithDescription("PKCE (S256) is required for this client")
	}
	if h := form.Get("id_token_hint"); h != "" && !idTokenTyped(h) {
		return none, oidc.ErrInvalidRequest().WithDescription("id_token_hint is not an ID token")
	}
	if jkt := form.Get("dpop_jkt"); jkt != "" && !dpop.ValidJKT(jkt) {
		return none, oidc.ErrInvalidRequest().WithDescription("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
	}
	stateFrom(ctx).policyVersion = pol.Version
	need, err := signin.NewRequirement(form.Get("claims"), req.ACRValues, c.Client, pol.ScopeFloors(c.ID, req.Scopes))
	if err != nil {
		return none, oidc.ErrInvalidRequest().WithDescription("claims: %s", err)
	}
	if raw := form.Get("authorization_details"); raw != "" {
		d, err := s.checkDetails(ctx, c, raw, "authorize")
		if err != nil {
			return none, err
		}
		if need.TransactionMin, need.TransactionMaxAge, err = signin.TransactionDemand(pol.Details, d, pol.Levels); err != nil {
			return none, oidc.ErrServerError().WithDescription("the authorization_details policy names an unknown level").WithParent(err)
		}
		stateFrom(ctx).details = d.String()
	}
	return need, nil
}

// checkDetails parses and checks authorization_details raw of client c
// (RFC 9396 §5): well formed, of types the server registers and the client
// may use, with the fields each type requires. A refusal is
// invalid_authorization_details, and it is audited (where names the
// endpoint): details that do not pass may be an app's bug or someone
// changing them on the way.
func (s *opServer) checkDetails(ctx context.Context, c *client, raw, where string) (details.Details, error) {
	d, err := details.Parse(raw)
	if err == nil {
		err = s.pols.Current().Details.Check(d, c.AuthorizationDetailsTypes)
	}
	if err != nil {
		desc := err.Error()
		var de *details.Error
		if errors.As(err, &de) {
			desc = de.Description
		}
		s.auditDetails(ctx, c.ID, where, desc)
		return nil, &oidc.Error{ErrorType: details.ErrorCode, Description: desc}
	}
	return d, nil
}

// auditDetails records a refused authorization_details.
func (s *opServer) auditDetails(ctx context.Context, clientID, where, reason string) {
	e := storage.AuditEvent{Type: storage.EventStepUpTransaction, ClientID: clientID, Outcome: "denied",
		Reason: details.ErrorCode + ": " + reason, Details: map[string]string{"endpoint": where}}
	if err := s.audit.Record(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit write failed", "event", e.Type, "err", err)
	}
}

// checkRedirectURI is the first check of validateAuthRequest: until the
// redirect URI is known to be the client's, no error may be sent to it.
// RFC 8252 §7.3: the library lets a native client's request through with
// any loopback URI whose path and query match a registered one, so
// http://127.0.0.1/cb also matched https://localhost:N/cb; only the port
// may vary.
func checkRedirectURI(c *client, req *oidc.AuthRequest) error {
	if err := op.ValidateAuthReqRedirectURI(c, req.RedirectURI, req.ResponseType); err != nil {
		return err
	}
	if !c.redirectRegistered(c.RedirectURIs(), req.RedirectURI) {
		return oidc.ErrInvalidRequestRedirectURI().WithDescription("The redirect_uri is not registered for this app.")
	}
	return nil
}

// resolveFront replaces the parameters of an /authorize request that
// carries request_uri or request by the ones they stand for, before the
// library reads them, and records where they came from in the context.
// Beside a pushed request only client_id and request_uri are read (RFC 9126
// §4); beside a request object only client_id (RFC 9101 §6.3). It returns
// nil when it has answered the request itself.
func (m *opMiddleware) resolveFront(w http.ResponseWriter, r *http.Request) *http.Request {
	ctx := r.Context()
	form := r.Form
	var (
		params url.Values
		src    authzSource
		err    error
	)
	switch {
	case form.Has("request_uri") && !strings.HasPrefix(form.Get("request_uri"), parURNPrefix):
		// OIDC Core §6.2: Keystep never fetches a request object from a
		// URL (request_uri_parameter_supported is false). Going on without
		// it would drop the state and nonce it may carry.
		m.refuseFront(w, r, &oidc.Error{ErrorType: "request_uri_not_supported", Description: "request_uri is supported only for pushed authorization requests"})
		return nil
	case form.Has("request_uri"):
		params, err = m.op.redeemPushed(ctx, form.Get("client_id"), form.Get("request_uri"))
		if err != nil {
			// Nothing in the request can be trusted as a place to send the
			// error: the page is shown here and nothing is created.
			m.log.WarnContext(ctx, "pushed authorization request refused", "client_id", form.Get("client_id"), "err", err)
			m.ui.RenderError(w, r, http.StatusBadRequest, "This sign-in link is invalid or has expired", "Go back to the app you came from and start again.")
			return nil
		}
		src = fromPushed
		if changedDetails(form.Get("authorization_details"), params.Get("authorization_details")) {
			// RFC 9126 §4 would have it ignored; but details that differ
			// from the pushed ones in the browser's URL are someone
			// changing the transaction on the way, which the person is
			// about to approve: refused, and audited.
			m.op.auditDetails(ctx, form.Get("client_id"), "authorize", "authorization_details in the browser differ from the pushed ones")
			m.ui.RenderError(w, r, http.StatusBadRequest, "This request was changed on the way", "What the app asked you to approve was altered before it reached this page, so nothing was done. Go back to the app and start again.")
			return nil
		}
	case form.Has("request"):
		params, err = m.op.frontRequestObject(ctx, form)
		if err != nil {
			m.log.InfoContext(ctx, "request object refused", "client_id", form.Get("client_id"), "err", err)
			m.refuseFront(w, r, err)
			return nil
		}
		src = fromRequestObject
	default:
		return r.WithContext(context.WithValue(ctx, sourceKey{}, fromFront))
	}
	r = r.WithContext(context.WithValue(ctx, sourceKey{}, src))
	u := *r.URL
	u.RawQuery = params.Encode()
	r.URL, r.Form, r.PostForm = &u, params, url.Values{}
	return r
}

// changedDetails reports whether front, the authorization_details the
// browser's URL carries beside a pushed request ("" for none), differs from
// pushed, the ones pushed.
func changedDetails(front, pushed string) bool {
	if front == "" {
		return false
	}
	f, err := details.Parse(front)
	if err != nil || pushed == "" {
		return true
	}
	p, err := details.Parse(pushed)
	return err != nil || f.String() != p.String()
}

// refuseFront answers an /authorize request whose request object failed,
// or that points at one behind a URL:
// with an error redirect when the query's own client_id and redirect_uri
// are a registered pair (the error then goes where the client asked, with
// the query's state), else with a page, since an unverified object's
// redirect_uri cannot be trusted (RFC 9101 §6.3, RFC 6749 §4.1.2.1).
func (m *opMiddleware) refuseFront(w http.ResponseWriter, r *http.Request, err error) {
	e := oidc.DefaultToServerError(err, "request object")
	form := r.Form
	c, cerr := m.op.clientByID(r.Context(), form.Get("client_id"))
	uri := form.Get("redirect_uri")
	if e.ErrorType == oidc.ServerError || cerr != nil || uri == "" || !c.redirectRegistered(c.RedirectURIs(), uri) {
		m.ui.RenderRequestError(w, r, http.StatusBadRequest, "This sign-in request is invalid", e.Description)
		return
	}
	u, perr := url.Parse(uri)
	if perr != nil {
		m.ui.RenderRequestError(w, r, http.StatusBadRequest, "This sign-in request is invalid", e.Description)
		return
	}
	q := u.Query()
	q.Set("error", string(e.ErrorType))
	if e.Description != "" {
		q.Set("error_description", e.Description)
	}
	if st := form.Get("state"); st != "" {
		q.Set("state", st)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// clientByID reads a client through the storage adapter.
func (s *opServer) clientByID(ctx context.Context, id string) (*client, error) {
	if id == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("client_id is required")
	}
	oc, err := s.Provider().Storage().GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	c, ok := oc.(*client)
	if !ok {
		return nil, oidc.ErrServerError().WithDescription("unexpected client type %T", oc)
	}
	return c, nil
}

// frontRequestObject verifies the request object of an /authorize request
// and returns its parameters: client_id is required beside it and must
// name the object's issuer (RFC 9101 §5, §6.3).
func (s *opServer) frontRequestObject(ctx context.Context, form url.Values) (url.Values, error) {
	c, err := s.clientByID(ctx, form.Get("client_id"))
	if err != nil {
		var e *oidc.Error
		if errors.As(err, &e) && e.ErrorType == oidc.ServerError {
			return nil, err
		}
		return nil, errRequestObject("client_id must name a registered client")
	}
	return s.verifyRequestObject(ctx, c, form.Get("request"))
}

// issWriter adds iss to every authorization response (RFC 9207 §2): a
// redirect to an absolute URL that carries a code or an error. Redirects
// to Keystep's own pages are paths and stay as they are.
type issWriter struct {
	http.ResponseWriter
	issuer string
}

func (i *issWriter) WriteHeader(code int) {
	if code >= 300 && code < 400 {
		if loc := i.Header().Get("Location"); loc != "" {
			i.Header().Set("Location", withIss(loc, i.issuer))
		}
	}
	i.ResponseWriter.WriteHeader(code)
}

// withIss adds iss=issuer to loc when loc is an authorization response.
func withIss(loc, issuer string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme == "" {
		return loc
	}
	q := u.Query()
	if !q.Has("code") && !q.Has("error") {
		return loc
	}
	q.Set("iss", issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// withIss puts an issWriter around next: the login UI ends a request it
// refuses with an error redirect of its own.
func (m *opMiddleware) withIss(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&issWriter{ResponseWriter: w, issuer: m.issuer}, r)
	})
}
