package login

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

type clientRow struct {
	storage.Client
	BuiltIn bool
}

type adminClientsPage struct {
	adminPage
	Query   string
	Clients []clientRow
	Total   int
}

func (h *Handler) adminClients(w http.ResponseWriter, r *http.Request, a *adminState) error {
	list, err := h.cfg.Store.ListClients(r.Context())
	if err != nil {
		return err
	}
	p := adminClientsPage{adminPage: h.adminPage(r, a, "clients", "Clients"), Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	q := strings.ToLower(p.Query)
	slices.SortFunc(list, func(x, y storage.Client) int {
		return strings.Compare(strings.ToLower(clientName(x)), strings.ToLower(clientName(y)))
	})
	for _, c := range list {
		if c.ID == h.cfg.AccountClientID {
			continue
		}
		p.Total++
		if q != "" && !strings.Contains(strings.ToLower(c.ID), q) && !strings.Contains(strings.ToLower(c.Name), q) &&
			!slices.ContainsFunc(c.RedirectURIs, func(u string) bool { return strings.Contains(strings.ToLower(u), q) }) {
			continue
		}
		p.Clients = append(p.Clients, clientRow{Client: c})
	}
	return h.render(w, r, http.StatusOK, "admin_clients", p)
}

// clientForm is the client form's values and what is wrong with them.
type clientForm struct {
	admin.ClientSpec
	Redirects, PostLogout, JWKSText string
	DetailsTypesText                string // authorization details types, comma-separated
	RateLimitText                   string // as typed, to show it back when it is not a number
	Errors                          map[string][]string
	Problems                        []string
	extra                           []admin.Problem // found in the form before the spec is checked
}

type adminClientPage struct {
	adminPage
	New        bool
	Form       clientForm
	Levels     []string
	HasSecret  bool
	UsesSecret bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Options    clientOptions
	// DetailsTypes are the authorization details types the server's
	// policy registers, for the hint.
	DetailsTypes []string
	// Policy is the "This app's policy" section (nil on the new-client
	// page); PolicyFactors its factor choices.
	Policy        *clientPolicyForm
	PolicyFactors [][2]string
}

type clientOptions struct {
	AuthMethods, IDTokenAlgs, AccessTokenFormats, GrantTypes []string
}

// clientPage is the client form under page p (the new-client page's, or
// one client's).
func (h *Handler) clientPage(p adminPage, f clientForm) adminClientPage {
	var levels []string
	for _, l := range h.pol().Levels.Levels() {
		levels = append(levels, l.ACR)
	}
	if f.MinACR != "" && !slices.Contains(levels, f.MinACR) {
		levels = append(levels, f.MinACR) // an alias, or a level since removed: kept as it is
	}
	return adminClientPage{adminPage: p, Form: f, Levels: levels, DetailsTypes: h.pol().Details.Types(),
		Options: clientOptions{AuthMethods: admin.AuthMethods[:3], IDTokenAlgs: admin.IDTokenAlgs, AccessTokenFormats: admin.AccessTokenFormats, GrantTypes: admin.GrantTypes}}
}

func formOf(s admin.ClientSpec) clientForm {
	f := clientForm{ClientSpec: s, Redirects: strings.Join(s.RedirectURIs, "\n"), PostLogout: strings.Join(s.PostLogoutRedirectURIs, "\n"),
		DetailsTypesText: strings.Join(s.AuthorizationDetailsTypes, ", ")}
	if s.RateLimit != 0 {
		f.RateLimitText = strconv.Itoa(s.RateLimit)
	}
	if s.JWKS != nil {
		f.JWKSText = string(s.JWKS)
	}
	return f
}

func (h *Handler) adminNewClient(w http.ResponseWriter, r *http.Request, a *adminState) error {
	p := h.clientPage(h.adminPage(r, a, "clients", "New client"), formOf(admin.ClientSpec{GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256"}.Normalize()))
	p.New = true
	return h.render(w, r, http.StatusOK, "admin_client", p)
}

// readClientForm turns the posted form into a spec.
func readClientForm(r *http.Request) clientForm {
	v := r.PostForm
	s := admin.ClientSpec{
		ID: v.Get("id"), Name: v.Get("name"),
		RedirectURIs:           strings.Split(v.Get("redirect_uris"), "\n"),
		PostLogoutRedirectURIs: strings.Split(v.Get("post_logout_redirect_uris"), "\n"),
		Public:                 v.Get("type") == "public",
		Native:                 v.Get("native") == "on",
		GrantTypes:             v["grant_types"],
		IDTokenAlg:             v.Get("id_token_alg"),
		AccessTokenFormat:      v.Get("access_token_format"),
		MinACR:                 v.Get("min_acr"),
		Strict:                 v.Get("strict") == "on",
		FirstParty:             v.Get("first_party") == "on",
		RequirePKCE:            v.Get("require_pkce") == "on",
		RefreshReuseInterval:   strings.TrimSpace(v.Get("refresh_reuse_interval")),
	}
	// Issues 18 and 20: the form's names are the spec's JSON names.
	s.Profile = v.Get("profile")
	s.RequirePAR = v.Get("require_pushed_authorization_requests") == "on"
	s.DPoPBoundAccessTokens = v.Get("dpop_bound_access_tokens") == "on"
	s.BackchannelLogoutURI = v.Get("backchannel_logout_uri")
	s.BackchannelLogoutSessionRequired = v.Get("backchannel_logout_session_required") == "on"
	s.AdminAPI = v.Get("admin_api") // issue 21: shown and kept, so a save never drops the grant unseen
	s.AuthorizationDetailsTypes = strings.FieldsFunc(v.Get("authorization_details_types"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if s.Public {
		s.AuthMethod = "none"
	} else {
		s.AuthMethod = v.Get("auth_method")
	}
	jwks := strings.TrimSpace(v.Get("jwks"))
	if s.AuthMethod == "private_key_jwt" && jwks != "" {
		s.JWKS = []byte(jwks)
	}
	rate := strings.TrimSpace(v.Get("rate_limit"))
	var rateErr bool
	if rate != "" {
		n, err := strconv.Atoi(rate)
		s.RateLimit, rateErr = n, err != nil
	}
	f := formOf(s.Normalize())
	f.Redirects, f.PostLogout, f.JWKSText, f.RateLimitText = v.Get("redirect_uris"), v.Get("post_logout_redirect_uris"), jwks, rate
	f.DetailsTypesText = v.Get("authorization_details_types")
	if rateErr {
		f.extra = append(f.extra, admin.NewProblem("rate_limit", "Rate limit: enter a whole number of requests a second, or leave it empty for the server's default."))
	}
	if len(s.GrantTypes) == 0 {
		// Nothing ticked is a mistake, not "the defaults".
		f.GrantTypes = nil
		f.extra = append(f.extra, admin.NewProblem("grant_types", "Choose at least one grant type."))
	}
	return f
}

// check reports the form's own problems together with the spec's, or nil.
func (f *clientForm) check(h *Handler, tr *i18n.Printer) bool {
	if len(f.extra) == 0 {
		return true
	}
	f.fail(tr, append(f.extra, h.admin.ValidateClient(f.ClientSpec)...))
	return false
}

// fail shows ps on the form, in the console's language.
func (f *clientForm) fail(tr *i18n.Printer, ps []admin.Problem) {
	f.Errors = map[string][]string{}
	for _, p := range ps {
		msg := p.In(tr)
		f.Errors[p.Field] = append(f.Errors[p.Field], msg)
		f.Problems = append(f.Problems, msg)
	}
}

func (h *Handler) adminCreateClient(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	f := readClientForm(r)
	tr := h.tr(r)
	var secret string
	var err error
	if f.check(h, tr) {
		secret, err = h.admin.CreateClient(r.Context(), a.actor, f.ClientSpec, h.cfg.Now())
	}
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		f.fail(tr, inv.Problems)
	case errors.Is(err, storage.ErrAlreadyExists):
		f.fail(tr, []admin.Problem{admin.NewProblem("id", "A client with the ID %s already exists. Choose another ID.", f.ID)})
	case err != nil:
		return err
	}
	if f.Problems != nil {
		p := h.clientPage(h.adminPage(r, a, "clients", "New client"), f)
		p.New = true
		return h.render(w, r, http.StatusBadRequest, "admin_client", p)
	}
	if secret != "" {
		return h.renderSecret(w, r, a, f.ClientSpec, secret, true)
	}
	http.Redirect(w, r, "/admin/clients/"+url.PathEscape(f.ID)+"?notice=client-created", http.StatusSeeOther)
	return nil
}

type adminSecretPage struct {
	adminPage
	Client admin.ClientSpec
	Secret string
	New    bool
}

func (h *Handler) renderSecret(w http.ResponseWriter, r *http.Request, a *adminState, s admin.ClientSpec, secret string, created bool) error {
	p := adminSecretPage{adminPage: h.adminPage(r, a, "clients", "Client secret"), Client: s, Secret: secret, New: created}
	return h.render(w, r, http.StatusOK, "admin_secret", p)
}

func (h *Handler) loadClient(r *http.Request) (storage.Client, error) {
	id := r.PathValue("id")
	if id == h.cfg.AccountClientID {
		return storage.Client{}, userError(http.StatusForbidden, "This client is built in", "The account portal's client is managed by Keystep itself.")
	}
	c, err := h.cfg.Store.ClientByID(r.Context(), id)
	return c, notFound(err, errNoSuchClient)
}

func (h *Handler) adminEditClient(w http.ResponseWriter, r *http.Request, a *adminState) error {
	c, err := h.loadClient(r)
	if err != nil {
		return err
	}
	return h.renderClient(w, r, a, c, formOf(admin.SpecOf(c)), http.StatusOK)
}

func (h *Handler) renderClient(w http.ResponseWriter, r *http.Request, a *adminState, c storage.Client, f clientForm, status int) error {
	p := h.clientPage(h.adminNamedPage(r, a, "clients", clientName(c)), f)
	p.HasSecret, p.UsesSecret = c.SecretHash != "", admin.SpecOf(c).UsesSecret()
	p.CreatedAt, p.UpdatedAt = c.CreatedAt, c.UpdatedAt
	pf, err := h.clientPolicyFormOf(r.Context(), c.ID)
	if err != nil {
		return err
	}
	p.Policy, p.PolicyFactors = &pf, clientPolicyFactors
	return h.render(w, r, status, "admin_client", p)
}

func (h *Handler) adminUpdateClient(w http.ResponseWriter, r *http.Request, a *adminState) error {
	c, err := h.loadClient(r)
	if err != nil {
		return err
	}
	if err := form(r); err != nil {
		return err
	}
	f := readClientForm(r)
	f.ID = c.ID // the ID is the client's name in tokens; it never changes
	tr := h.tr(r)
	if !f.check(h, tr) {
		return h.renderClient(w, r, a, c, f, http.StatusBadRequest)
	}
	changes, secret, err := h.admin.UpdateClient(r.Context(), a.actor, f.ClientSpec, h.cfg.Now())
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		f.fail(tr, inv.Problems)
		return h.renderClient(w, r, a, c, f, http.StatusBadRequest)
	case err != nil:
		return notFound(err, errNoSuchClient)
	case secret != "":
		return h.renderSecret(w, r, a, f.ClientSpec, secret, false)
	}
	notice := "client-saved"
	if len(changes) == 0 {
		notice = "client-same"
	}
	http.Redirect(w, r, "/admin/clients/"+url.PathEscape(c.ID)+"?notice="+notice, http.StatusSeeOther)
	return nil
}

func (h *Handler) adminRotateSecret(w http.ResponseWriter, r *http.Request, a *adminState) error {
	c, err := h.loadClient(r)
	if err != nil {
		return err
	}
	secret, err := h.admin.RotateClientSecret(r.Context(), a.actor, c.ID, h.cfg.Now())
	if errors.Is(err, admin.ErrNoSecret) {
		return userError(http.StatusBadRequest, "This client has no secret", "Only clients that authenticate with a client secret have one to rotate.")
	}
	if err != nil {
		return notFound(err, errNoSuchClient)
	}
	return h.renderSecret(w, r, a, admin.SpecOf(c), secret, false)
}

func (h *Handler) adminDeleteClient(w http.ResponseWriter, r *http.Request, a *adminState) error {
	c, err := h.loadClient(r)
	if err != nil {
		return err
	}
	if err := h.admin.DeleteClient(r.Context(), a.actor, c.ID); err != nil {
		return notFound(err, errNoSuchClient)
	}
	http.Redirect(w, r, "/admin/clients?notice=client-deleted", http.StatusSeeOther)
	return nil
}

// ---- this app's policy (issue 21) ----

// clientPolicyForm is the client page's "This app's policy" section:
// client_policies.<id> of the active version, as a form.
type clientPolicyForm struct {
	ScopeMins  string // "scope acr", one a line
	AccessTTL  string
	RefreshTTL string
	Factors    []string
	Preferred  string
	Enroll     bool
	Reason     string
	// Parent is the version the form was rendered from; a save from it
	// after someone saved another is refused.
	Parent   int64
	ReadOnly bool
	Problems []string
	Moved    string
}

// clientPolicyFactors are the factors a client's policy can allow, in
// the form's order, with their console names.
var clientPolicyFactors = [][2]string{
	{string(stepup.TOTP), i18n.N("Authenticator app")}, {string(stepup.WebAuthn), i18n.N("Passkey or security key")}, {string(stepup.Recovery), i18n.N("Recovery code")},
}

func (h *Handler) clientPolicyFormOf(ctx context.Context, id string) (clientPolicyForm, error) {
	if err := h.cfg.Policies.Refresh(ctx); err != nil {
		return clientPolicyForm{}, err
	}
	pol := h.pol()
	cp := pol.Doc.ClientPolicies[id]
	f := clientPolicyForm{AccessTTL: cp.AccessTokenLifetime, RefreshTTL: cp.RefreshTokenLifetime, Factors: cp.Factors,
		Preferred: cp.PreferredFactor, Enroll: cp.EnrollDuringStepUp, Parent: pol.Version, ReadOnly: h.cfg.Policies.ReadOnly()}
	var lines []string
	for _, sc := range slices.Sorted(maps.Keys(cp.ScopeMinACR)) {
		lines = append(lines, sc+" "+cp.ScopeMinACR[sc])
	}
	f.ScopeMins = strings.Join(lines, "\n")
	return f, nil
}

// readClientPolicy reads the posted section; problems are the form's own
// (a scope line that is not "scope acr").
func readClientPolicy(r *http.Request, tr *i18n.Printer) (clientPolicyForm, policy.ClientPolicy, []string) {
	v := r.PostForm
	f := clientPolicyForm{ScopeMins: v.Get("scope_min_acr"), AccessTTL: strings.TrimSpace(v.Get("access_token_lifetime")),
		RefreshTTL: strings.TrimSpace(v.Get("refresh_token_lifetime")), Factors: v["factors"], Preferred: v.Get("preferred_factor"),
		Enroll: v.Get("enroll_during_step_up") == "on", Reason: reasonOf(r)}
	cp := policy.ClientPolicy{AccessTokenLifetime: f.AccessTTL, RefreshTokenLifetime: f.RefreshTTL, Factors: f.Factors,
		PreferredFactor: f.Preferred, EnrollDuringStepUp: f.Enroll}
	var probs []string
	for i, line := range strings.Split(f.ScopeMins, "\n") {
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
			continue
		case 2:
			if cp.ScopeMinACR == nil {
				cp.ScopeMinACR = map[string]string{}
			}
			if _, dup := cp.ScopeMinACR[fields[0]]; dup {
				probs = append(probs, tr.T("Scope minimums, line %d: %s is listed twice.", i+1, fields[0]))
			}
			cp.ScopeMinACR[fields[0]] = fields[1]
		default:
			probs = append(probs, tr.T("Scope minimums, line %d: write a scope and a level, such as \"payroll:write phr\".", i+1))
		}
	}
	return f, cp, probs
}

// adminClientPolicy saves the section as a new policy version whose only
// change is client_policies.<id>, made from the version the form showed.
func (h *Handler) adminClientPolicy(w http.ResponseWriter, r *http.Request, a *adminState) error {
	c, err := h.loadClient(r)
	if err != nil {
		return err
	}
	if err := form(r); err != nil {
		return err
	}
	ctx := r.Context()
	tr := h.tr(r)
	f, cp, probs := readClientPolicy(r, tr)
	parent, perr := strconv.ParseInt(r.PostForm.Get("parent"), 10, 64)
	if perr != nil || parent < 0 {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Reload the client's page and try again.")
	}
	f.Parent, f.ReadOnly = parent, h.cfg.Policies.ReadOnly()
	render := func(status int) error {
		p := h.clientPage(h.adminNamedPage(r, a, "clients", clientName(c)), formOf(admin.SpecOf(c)))
		p.HasSecret, p.UsesSecret = c.SecretHash != "", admin.SpecOf(c).UsesSecret()
		p.CreatedAt, p.UpdatedAt = c.CreatedAt, c.UpdatedAt
		p.Policy, p.PolicyFactors = &f, clientPolicyFactors
		return h.render(w, r, status, "admin_client", p)
	}
	if len(probs) > 0 {
		f.Problems = probs
		return render(http.StatusBadRequest)
	}
	from, err := h.cfg.Policies.At(ctx, parent)
	if errors.Is(err, storage.ErrNotFound) {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Reload the client's page and try again.")
	}
	if err != nil {
		return err
	}
	doc := from.Doc
	doc.ClientPolicies = maps.Clone(doc.ClientPolicies) // the snapshot's is shared
	if reflect.DeepEqual(cp, policy.ClientPolicy{}) {
		delete(doc.ClientPolicies, c.ID)
	} else {
		if doc.ClientPolicies == nil {
			doc.ClientPolicies = map[string]policy.ClientPolicy{}
		}
		doc.ClientPolicies[c.ID] = cp
	}
	_, changed, err := h.admin.SavePolicy(ctx, admin.Actor{ID: a.actor.ID, Reason: f.Reason}, a.user.Username, doc, parent, h.cfg.Now())
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		for _, p := range inv.Problems {
			f.Problems = append(f.Problems, p.In(tr))
		}
		return render(http.StatusBadRequest)
	case errors.Is(err, admin.ErrNeedsReason):
		f.Problems = []string{tr.T("Say why you are changing this app's policy, for example the ticket number. It is kept with the version and in the audit log.")}
		return render(http.StatusBadRequest)
	case errors.Is(err, admin.ErrBadReason):
		f.Problems = []string{tr.T("Nothing was saved: %s.", err.Error())}
		return render(http.StatusBadRequest)
	case errors.Is(err, admin.ErrPolicyMoved):
		f.Moved = tr.T("Nothing was saved: someone saved policy version %d since you opened this page. Reload the page, then apply your change again.", h.pol().Version)
		return render(http.StatusConflict)
	case errors.Is(err, admin.ErrPolicyReadOnly):
		f.Problems = []string{tr.T("Nothing was saved: %s.", admin.ErrPolicyReadOnly.Error())}
		return render(http.StatusForbidden)
	case err != nil:
		return err
	}
	notice := "client-policy-saved"
	if !changed {
		notice = "client-same"
	}
	http.Redirect(w, r, "/admin/clients/"+url.PathEscape(c.ID)+"?notice="+notice+"#policy", http.StatusSeeOther)
	return nil
}
