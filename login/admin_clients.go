package login

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/login/admin"
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
	return h.r.render(w, http.StatusOK, "admin_clients", p)
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
}

type clientOptions struct {
	AuthMethods, IDTokenAlgs, AccessTokenFormats, GrantTypes []string
}

func (h *Handler) clientPage(r *http.Request, a *adminState, title string, f clientForm) adminClientPage {
	var levels []string
	for _, l := range h.pol().Levels.Levels() {
		levels = append(levels, l.ACR)
	}
	if f.MinACR != "" && !slices.Contains(levels, f.MinACR) {
		levels = append(levels, f.MinACR) // an alias, or a level since removed: kept as it is
	}
	return adminClientPage{adminPage: h.adminPage(r, a, "clients", title), Form: f, Levels: levels, DetailsTypes: h.pol().Details.Types(),
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
	p := h.clientPage(r, a, "New client", formOf(admin.ClientSpec{GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256"}.Normalize()))
	p.New = true
	return h.r.render(w, http.StatusOK, "admin_client", p)
}

// readClientForm turns the posted form into a spec.
func readClientForm(r *http.Request) clientForm {
	v := r.PostForm
	s := admin.ClientSpec{
		ID: v.Get("id"), Name: v.Get("name"),
		RedirectURIs:            strings.Split(v.Get("redirect_uris"), "\n"),
		PostLogoutRedirectURIs:  strings.Split(v.Get("post_logout_redirect_uris"), "\n"),
		Public:                  v.Get("type") == "public",
		Native:                  v.Get("native") == "on",
		GrantTypes:              v["grant_types"],
		IDTokenAlg:              v.Get("id_token_alg"),
		AccessTokenFormat:       v.Get("access_token_format"),
		MinACR:                  v.Get("min_acr"),
		Strict:                  v.Get("strict") == "on",
		FirstParty:              v.Get("first_party") == "on",
		RequirePKCE:             v.Get("require_pkce") == "on",
		AllowEnrollDuringStepUp: v.Get("allow_enroll") == "on",
		RefreshReuseInterval:    strings.TrimSpace(v.Get("refresh_reuse_interval")),
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
		f.extra = append(f.extra, admin.Problem{Field: "rate_limit", Message: "Rate limit: enter a whole number of requests a second, or leave it empty for the server's default."})
	}
	if len(s.GrantTypes) == 0 {
		// Nothing ticked is a mistake, not "the defaults".
		f.GrantTypes = nil
		f.extra = append(f.extra, admin.Problem{Field: "grant_types", Message: "Choose at least one grant type."})
	}
	return f
}

// check reports the form's own problems together with the spec's, or nil.
func (f *clientForm) check(h *Handler) bool {
	if len(f.extra) == 0 {
		return true
	}
	f.fail(append(f.extra, h.admin.ValidateClient(f.ClientSpec)...))
	return false
}

func (f *clientForm) fail(ps []admin.Problem) {
	f.Errors = map[string][]string{}
	for _, p := range ps {
		f.Errors[p.Field] = append(f.Errors[p.Field], p.Message)
		f.Problems = append(f.Problems, p.Message)
	}
}

func (h *Handler) adminCreateClient(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	f := readClientForm(r)
	var secret string
	var err error
	if f.check(h) {
		secret, err = h.admin.CreateClient(r.Context(), a.actor, f.ClientSpec, h.cfg.Now())
	}
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		f.fail(inv.Problems)
	case errors.Is(err, storage.ErrAlreadyExists):
		f.fail([]admin.Problem{{Field: "id", Message: "A client with the ID " + f.ID + " already exists. Choose another ID."}})
	case err != nil:
		return err
	}
	if f.Problems != nil {
		p := h.clientPage(r, a, "New client", f)
		p.New = true
		return h.r.render(w, http.StatusBadRequest, "admin_client", p)
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
	return h.r.render(w, http.StatusOK, "admin_secret", p)
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
	p := h.clientPage(r, a, clientName(c), f)
	p.HasSecret, p.UsesSecret = c.SecretHash != "", admin.SpecOf(c).UsesSecret()
	p.CreatedAt, p.UpdatedAt = c.CreatedAt, c.UpdatedAt
	return h.r.render(w, status, "admin_client", p)
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
	if !f.check(h) {
		return h.renderClient(w, r, a, c, f, http.StatusBadRequest)
	}
	changes, secret, err := h.admin.UpdateClient(r.Context(), a.actor, f.ClientSpec, h.cfg.Now())
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		f.fail(inv.Problems)
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
