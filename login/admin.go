package login

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// The admin console (/admin) is for users with the admin role, at a level
// (phr by default) reached recently (15 minutes by default). It reaches that
// level through the account portal's step-up: the browser goes through
// /authorize as the portal's client with the level as an essential acr and
// max_age, so the console gets no shortcut around the dispatcher. Every
// change goes through Admin, which audits who made it, the object before and
// after, and the reason when one is given. Forms are protected against
// cross-site posts by the server's CrossOriginProtection (as the portal is)
// and by SameSite=Lax session cookies.

var adminFuncs = template.FuncMap{
	"path": url.PathEscape,
	"has":  func(list []string, v string) bool { return slices.Contains(list, v) },
	"lines": func(list []string) string {
		return strings.Join(list, "\n")
	},
	"pretty": func(s string) string {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return s
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return s
		}
		return string(b)
	},
	"list":  func(v ...string) []string { return v },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04 UTC") },
}

// fmtDuration says d in p's language in its largest whole unit ("3 days").
func fmtDuration(p *i18n.Printer, d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return p.T("%d days", int(d/(24*time.Hour)))
	case d%time.Hour == 0:
		return p.T("%d hours", int(d/time.Hour))
	case d%time.Minute == 0:
		return p.T("%d minutes", int(d/time.Minute))
	}
	return d.String()
}

func (h *Handler) registerAdmin(mux *http.ServeMux) {
	mux.Handle("GET /admin", h.adminHandle(h.adminHome))
	mux.Handle("GET /admin/{$}", http.RedirectHandler("/admin", http.StatusMovedPermanently))
	mux.Handle("GET /admin/clients", h.adminHandle(h.adminClients))
	mux.Handle("GET /admin/clients/new", h.adminHandle(h.adminNewClient))
	mux.Handle("POST /admin/clients", h.adminHandle(h.adminCreateClient))
	mux.Handle("GET /admin/clients/{id}", h.adminHandle(h.adminEditClient))
	mux.Handle("POST /admin/clients/{id}", h.adminHandle(h.adminUpdateClient))
	mux.Handle("POST /admin/clients/{id}/secret", h.adminHandle(h.adminRotateSecret))
	mux.Handle("POST /admin/clients/{id}/delete", h.adminHandle(h.adminDeleteClient))
	mux.Handle("GET /admin/users", h.adminHandle(h.adminUsers))
	mux.Handle("POST /admin/users", h.adminHandle(h.adminCreateUser))
	mux.Handle("GET /admin/users/{id}", h.adminHandle(h.adminUser))
	mux.Handle("POST /admin/users/{id}/{action}", h.adminHandle(h.adminUserAction))
	mux.Handle("GET /admin/policy", h.adminHandle(h.adminPolicy))
	mux.Handle("POST /admin/policy", h.adminHandle(h.adminPolicyEdit))
	mux.Handle("POST /admin/policy/rollback", h.adminHandle(h.adminPolicyRollback))
	mux.Handle("POST /admin/clients/{id}/policy", h.adminHandle(h.adminClientPolicy))
	mux.Handle("GET /admin/audit", h.adminHandle(h.adminAudit))
	mux.Handle("GET /admin/audit/export", h.adminHandle(h.adminAuditExport))
	mux.Handle("GET /admin/keys", h.adminHandle(h.adminKeys))
	mux.Handle("POST /admin/keys/rotate", h.adminHandle(h.adminRotateKeys))
	mux.Handle("GET /admin/outbox", h.adminHandle(h.adminOutbox))
	mux.Handle("POST /admin/outbox/{id}/retry", h.adminHandle(h.adminRetryOutbox))
	mux.Handle("POST /admin/outbox/receivers", h.adminHandle(h.adminAddReceiver))
	mux.Handle("POST /admin/outbox/receivers/delete", h.adminHandle(h.adminDeleteReceiver))
	mux.Handle("GET /admin/recovery", h.adminHandle(h.adminRecovery))
	mux.Handle("POST /admin/recovery/{id}/{decision}", h.adminHandle(h.adminDecideRecovery))
}

// adminState is the admin at work: their account and session.
type adminState struct {
	*accountState
	actor      admin.Actor
	freshUntil time.Time // when the console will ask again
}

// adminHandle runs fn for an admin at the console's level, and otherwise
// sends the browser to sign in or step up, or shows why not.
func (h *Handler) adminHandle(fn func(http.ResponseWriter, *http.Request, *adminState) error) http.Handler {
	return h.handle(func(w http.ResponseWriter, r *http.Request) error {
		a, err := h.adminGate(w, r)
		if a == nil {
			return ignoreRedirect(err)
		}
		return fn(w, r, a)
	})
}

func (h *Handler) adminGate(w http.ResponseWriter, r *http.Request) (*adminState, error) {
	ctx := r.Context()
	returnTo := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		returnTo = "/admin"
	}
	sess, u, ok, err := h.loadSession(ctx, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		// First who: a sign-in at the lowest level. Whether this user may
		// use the console, and so has to step up, is known only after it.
		return nil, h.portalAuthorize(w, r, stepup.ACRSingleFactor, 0, returnTo)
	}
	a := &accountState{sess: sess, user: u}
	if !u.Admin {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventAdminDenied, UserID: u.ID, ActorID: u.ID, Outcome: "denied", Reason: "not an administrator", Details: map[string]string{"path": r.URL.Path}}); err != nil {
			return nil, err
		}
		return nil, h.adminDenied(w, r, http.StatusForbidden, "You don't have access to the admin console",
			"The admin console is only for administrators. If you need access, ask one of them.", "", "")
	}
	if a.factors, err = h.cfg.Store.ListFactors(ctx, u.ID); err != nil {
		return nil, err
	}
	if a.recovery, err = h.cfg.Store.CountRecoveryCodes(ctx, u.ID); err != nil {
		return nil, err
	}
	// The console is one more way in: the same risk assessment as a
	// sign-in, before the level check (a refused session is ended).
	if ok, err := h.portalRisk(w, r, a); !ok {
		return nil, err
	}
	// A passkey past its cooling-off counts here from a known device and
	// network: the step-up that uses it trusts it (DESIGN §3.3).
	if a.known, err = h.knownPlace(r, u.ID, a.factors, sess.CreatedAt); err != nil {
		return nil, err
	}
	p := h.pol()
	// Can this admin reach the level at all? Then say which factor to add,
	// rather than send them through a step-up that can only fail.
	if !p.Levels.Reachable(h.session(a), p.AdminACR, 0) {
		title, msg, href, label := h.adminNeeds()
		if t, m, ok := h.adminPending(a); ok {
			title, msg, href, label = t, m, "", "" // the page links to the account already
		}
		return nil, h.adminDenied(w, r, http.StatusForbidden, title, msg, href, label)
	}
	at, ok, err := h.requireLevel(w, r, a, p.AdminACR, p.AdminMaxAge, returnTo)
	if !ok {
		return nil, err
	}
	return &adminState{accountState: a, actor: admin.Actor{ID: u.ID}, freshUntil: at.Add(p.AdminMaxAge)}, nil
}

// adminNeeds says which factor an admin must add to reach the console's level.
func (h *Handler) adminNeeds() (title, msg, href, label string) {
	p := h.pol()
	_, lvl, _ := p.Levels.Lookup(p.AdminACR)
	phishingResistant := lvl.Requires == stepup.PhishingResistant || lvl.Requires == stepup.PhishingResistantHardware
	if phishingResistant && h.cfg.WebAuthn == nil {
		return "The admin console needs a passkey, and passkeys are off",
			"This server's address is an IP address, where passkeys can't work. Serve it under a host name, or lower the console's level (admin.acr) on the server: `keystep policy rollback N` to an earlier version, or `keystep apply -f` a file that sets it (with --policy-read-only, the configuration file and a restart).", "", ""
	}
	switch lvl.Requires {
	case stepup.PhishingResistant:
		return "Add a passkey to use the admin console",
			"The admin console needs a passkey or security key, so that a stolen password or code is not enough to change how everyone signs in. Add one to your account, then come back.",
			"/account/passkey", "Add a passkey"
	case stepup.PhishingResistantHardware:
		return "Add a security key to use the admin console",
			"The admin console needs a passkey kept on one device, such as a security key. Add one to your account, then come back.",
			"/account/passkey", "Add a security key"
	}
	return "Add a second way to sign in",
		"The admin console needs more than a password. Add an authenticator app or a passkey to your account, then come back.",
		"/account/totp", "Set up an authenticator app"
}

// adminPending explains a console out of reach only because the admin's
// passkeys are still waiting to be trusted (DESIGN §3.3): when the soonest
// one can be, and that another administrator can confirm it now. This is
// how the first administrator, whose first passkey is always added from a
// password-only session, gets in.
func (h *Handler) adminPending(a *accountState) (title, msg string, ok bool) {
	p := h.pol()
	_, lvl, _ := p.Levels.Lookup(p.AdminACR)
	if lvl.Requires != stepup.PhishingResistant && lvl.Requires != stepup.PhishingResistantHardware || h.cfg.WebAuthn == nil {
		return "", "", false
	}
	var first *storage.Factor
	for i, f := range a.factors {
		if f.Kind == storage.FactorWebAuthn && !factor.Trusted(f) && !keyRowOf(f).Blocked && (first == nil || f.CreatedAt.Before(first.CreatedAt)) {
			first = &a.factors[i]
		}
	}
	if first == nil {
		return "", "", false
	}
	when := "now"
	if from := h.trustFrom(*first); h.cfg.Now().Before(from) {
		when = "from " + from.UTC().Format("2 Jan 2006 15:04 UTC")
	}
	return "Your passkey isn't trusted for the admin console yet",
		"A passkey added after signing in with a password or a code could belong to someone who tricked you into sharing them, so the admin console accepts it only once it has proved itself. " +
			"Sign in with \"" + first.Name + "\" " + when + " on a device and network you've signed in from before, and it will count. " +
			"Or ask another administrator to confirm it: keystep users confirm-passkey " + a.user.Username + " --credential " + first.ID + ".", true
}

// adminCallbackError explains a step-up for the console that came back
// with an error.
func (h *Handler) adminCallbackError(code string) error {
	if code == "unmet_authentication_requirements" {
		title, msg, _, _ := h.adminNeeds()
		return userError(http.StatusForbidden, title, msg)
	}
	return userError(http.StatusForbidden, "The admin console didn't open", "Signing in for the admin console was stopped. Open the console again to retry.")
}

type adminDeniedPage struct {
	Page
	Heading, Message string
	Href, Label      string
}

func (h *Handler) adminDenied(w http.ResponseWriter, r *http.Request, status int, title, msg, href, label string) error {
	if err := h.render(w, r, status, "admin_denied", adminDeniedPage{Page: h.page(r, title), Heading: title, Message: msg, Href: href, Label: label}); err != nil {
		return err
	}
	return errRedirected // the response is written
}

// adminPage is what every console page shows around its content.
type adminPage struct {
	Page
	Nav        string
	Me         storage.User
	FreshUntil time.Time
	Notice     string
	Problem    string
}

func (h *Handler) adminPage(r *http.Request, a *adminState, nav, title string) adminPage {
	return adminPage{Page: h.page(r, title), Nav: nav, Me: a.user, FreshUntil: a.freshUntil, Notice: adminNotices[r.URL.Query().Get("notice")]}
}

var adminNotices = map[string]string{
	"recovery-approved":   "The request was approved: the person can replace their sign-in methods after their password.",
	"recovery-denied":     "The request was denied. Nothing changed on the account.",
	"client-created":      "The client was created.",
	"client-saved":        "Your changes were saved.",
	"client-same":         "Nothing changed.",
	"client-deleted":      "The client was deleted. Its tokens were revoked.",
	"client-policy-saved": "This app's policy was saved as a new policy version and is active on every instance within seconds.",
	"user-created":        "The user was created.",
	"user-disable":        "The user was disabled and signed out everywhere.",
	"user-enable":         "The user can sign in again.",
	"user-unlock":         "The account was unlocked.",
	"user-reset":          "The user's second factors and recovery codes were removed, and they were signed out.",
	"user-signout":        "The user was signed out everywhere.",
	"keys-rotated":        "New signing keys were made.",
	"outbox-retried":      "The delivery was queued again.",
	"receiver-added":      "The transmitter was registered: its signals are accepted at /ssf/receive.",
	"receiver-deleted":    "The transmitter was removed: its signals are refused from now on.",

	// DESIGN §3.3: an administrator vouches for a passkey added below phr.
	"user-confirm-passkey": "The passkey now counts as phishing-resistant.",
	"user-passkey-trusted": "That passkey already counted as phishing-resistant.",
}

// form reads a posted form, refusing what cannot be read.
func form(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	return nil
}

var errNoSuchClient = userError(http.StatusNotFound, "No such client", "That client doesn't exist. It may have been deleted.")
var errNoSuchUser = userError(http.StatusNotFound, "No such user", "That user doesn't exist.")

func notFound(err error, page error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return page
	}
	return err
}

// ---- overview ----

type adminHomePage struct {
	adminPage
	Clients, Users, Admins, Disabled int
	SigningAlgs                      []string
	AdminACR                         string
	AdminMaxAge                      time.Duration
	Changes                          []auditRow
}

func (h *Handler) adminHome(w http.ResponseWriter, r *http.Request, a *adminState) error {
	ctx := r.Context()
	p := adminHomePage{adminPage: h.adminPage(r, a, "home", "Admin console"), AdminACR: h.pol().AdminACR, AdminMaxAge: h.pol().AdminMaxAge}
	clients, err := h.cfg.Store.ListClients(ctx)
	if err != nil {
		return err
	}
	for _, c := range clients {
		if c.ID != h.cfg.AccountClientID {
			p.Clients++
		}
	}
	users, err := h.cfg.Store.ListUsers(ctx)
	if err != nil {
		return err
	}
	p.Users = len(users)
	for _, u := range users {
		if u.Admin {
			p.Admins++
		}
		if u.Disabled {
			p.Disabled++
		}
	}
	keys, err := h.cfg.Store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	for _, k := range keys {
		if keyStatus(k, now) == "Signing" && !slices.Contains(p.SigningAlgs, k.Algorithm) {
			p.SigningAlgs = append(p.SigningAlgs, k.Algorithm)
		}
	}
	recent, err := h.cfg.Store.ListAudit(ctx, storage.AuditFilter{Newest: true, Limit: 500})
	if err != nil {
		return err
	}
	names := userNames(users)
	for _, e := range recent {
		if strings.HasPrefix(string(e.Type), "admin.") && e.Type != storage.EventAdminDenied && e.Outcome == "success" {
			p.Changes = append(p.Changes, rowOf(h.tr(r), e, names))
			if len(p.Changes) == 8 {
				break
			}
		}
	}
	return h.render(w, r, http.StatusOK, "admin_home", p)
}

// ---- keys ----

type keyView struct {
	storage.SigningKey
	Status string
}

type adminKeysPage struct {
	adminPage
	Keys      []keyView
	CanRotate bool
}

// keyStatus names where a key is in its life at now.
func keyStatus(k storage.SigningKey, now time.Time) string {
	switch {
	case !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now):
		return "Expired"
	case !k.RetiredAt.IsZero() && !k.RetiredAt.After(now):
		return "Retired"
	case k.ActiveAt.After(now):
		return "Next"
	}
	return "Signing"
}

func (h *Handler) adminKeys(w http.ResponseWriter, r *http.Request, a *adminState) error {
	return h.renderKeys(w, r, a, "", http.StatusOK)
}

func (h *Handler) renderKeys(w http.ResponseWriter, r *http.Request, a *adminState, problem string, status int) error {
	keys, err := h.cfg.Store.ListSigningKeys(r.Context())
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	p := adminKeysPage{adminPage: h.adminPage(r, a, "keys", "Signing keys"), CanRotate: h.cfg.RotateKeys != nil}
	p.Problem = problem
	order := map[string]int{"Next": 0, "Signing": 1, "Retired": 2, "Expired": 3}
	for _, k := range keys {
		p.Keys = append(p.Keys, keyView{k, keyStatus(k, now)})
	}
	slices.SortStableFunc(p.Keys, func(x, y keyView) int {
		if d := order[x.Status] - order[y.Status]; d != 0 {
			return d
		}
		return y.CreatedAt.Compare(x.CreatedAt)
	})
	return h.render(w, r, status, "admin_keys", p)
}

func (h *Handler) adminRotateKeys(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	var in time.Duration
	switch r.PostForm.Get("activate_in") {
	case "", "0":
	case "1h":
		in = time.Hour
	case "24h":
		in = 24 * time.Hour
	default:
		return h.renderKeys(w, r, a, "Choose when the new keys start signing.", http.StatusBadRequest)
	}
	if _, err := h.admin.RotateSigningKeys(r.Context(), a.actor, in, h.cfg.Now()); err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/keys?notice=keys-rotated", http.StatusSeeOther)
	return nil
}
