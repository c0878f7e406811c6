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
	// For th: markup in a translated sentence.
	"code": func(s string) template.HTML {
		return template.HTML("<code>" + template.HTMLEscapeString(s) + "</code>")
	},
	"codes": func(list []string) template.HTML {
		var b strings.Builder
		for i, s := range list {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("<code>" + template.HTMLEscapeString(s) + "</code>")
		}
		return template.HTML(b.String())
	},
	"link": func(href, text string) template.HTML {
		return template.HTML(`<a href="` + template.HTMLEscapeString(href) + `">` + template.HTMLEscapeString(text) + "</a>")
	},
	"badge": func(s string) template.HTML {
		return template.HTML(`<span class="badge warn">` + template.HTMLEscapeString(s) + "</span>")
	},
	"join": func(list []string) string { return strings.Join(list, ", ") },
	// The words for stored values, as message keys (translated with t).
	"outcome":        func(s string) string { return wordOr(outcomeWords, s) },
	"recoveryStatus": func(s storage.RecoveryStatus) string { return wordOr(recoveryWords, string(s)) },
	"streamStatus":   func(s string) string { return wordOr(streamWords, s) },
	"band":           func(s string) string { return wordOr(bandWords, s) },
}

// The console's words for values kept in the store: an audit event's
// outcome, a recovery request's and a stream's status, a risk band.
var (
	outcomeWords = map[string]string{"success": i18n.N("success"), "failure": i18n.N("failure"),
		"denied": i18n.N("denied"), "challenged": i18n.N("challenged")}
	recoveryWords = map[string]string{string(storage.RecoveryPending): i18n.N("pending"), string(storage.RecoveryCancelled): i18n.N("cancelled"),
		string(storage.RecoveryApproved): i18n.N("approved"), string(storage.RecoveryDenied): i18n.N("denied"), string(storage.RecoveryUsed): i18n.N("used")}
	streamWords = map[string]string{storage.StreamEnabled: i18n.N("enabled"), storage.StreamPaused: i18n.N("paused"), storage.StreamDisabled: i18n.N("disabled")}
	bandWords   = map[string]string{"low": i18n.N("low"), "medium": i18n.N("medium"), "high": i18n.N("high")}
)

// wordOr is v's word in words, or v itself (a value this console does not
// know yet is shown as it is stored).
func wordOr(words map[string]string, v string) string {
	if w, ok := words[v]; ok {
		return w
	}
	return v
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
		return nil, h.adminDenied(w, r, http.StatusForbidden, deniedText{title: i18n.N("You don't have access to the admin console"),
			msg: i18n.N("The admin console is only for administrators. If you need access, ask one of them.")})
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
		d := h.adminNeeds()
		if pd, ok := h.adminPending(h.tr(r), a); ok {
			d = pd // the page links to the account already
		}
		return nil, h.adminDenied(w, r, http.StatusForbidden, d)
	}
	at, ok, err := h.requireLevel(w, r, a, p.AdminACR, p.AdminMaxAge, returnTo)
	if !ok {
		return nil, err
	}
	return &adminState{accountState: a, actor: admin.Actor{ID: u.ID}, freshUntil: at.Add(p.AdminMaxAge)}, nil
}

// deniedText is why the console is out of reach, as message keys (msg's
// fmt verbs filled from args), and where to go about it (href, label).
type deniedText struct {
	title, msg  string
	args        []any
	href, label string
}

// adminNeeds says which factor an admin must add to reach the console's level.
func (h *Handler) adminNeeds() deniedText {
	p := h.pol()
	_, lvl, _ := p.Levels.Lookup(p.AdminACR)
	phishingResistant := lvl.Requires == stepup.PhishingResistant || lvl.Requires == stepup.PhishingResistantHardware
	if phishingResistant && h.cfg.WebAuthn == nil {
		return deniedText{title: i18n.N("The admin console needs a passkey, and passkeys are off"),
			msg: i18n.N("This server's address is an IP address, where passkeys can't work. Serve it under a host name, or lower the console's level (admin.acr) on the server: `keystep policy rollback N` to an earlier version, or `keystep apply -f` a file that sets it (with --policy-read-only, the configuration file and a restart).")}
	}
	switch lvl.Requires {
	case stepup.PhishingResistant:
		return deniedText{title: i18n.N("Add a passkey to use the admin console"),
			msg:  i18n.N("The admin console needs a passkey or security key, so that a stolen password or code is not enough to change how everyone signs in. Add one to your account, then come back."),
			href: "/account/passkey", label: i18n.N("Add a passkey")}
	case stepup.PhishingResistantHardware:
		return deniedText{title: i18n.N("Add a security key to use the admin console"),
			msg:  i18n.N("The admin console needs a passkey kept on one device, such as a security key. Add one to your account, then come back."),
			href: "/account/passkey", label: i18n.N("Add a security key")}
	}
	return deniedText{title: i18n.N("Add a second way to sign in"),
		msg:  i18n.N("The admin console needs more than a password. Add an authenticator app or a passkey to your account, then come back."),
		href: "/account/totp", label: i18n.N("Set up an authenticator app")}
}

// adminPending explains a console out of reach only because the admin's
// passkeys are still waiting to be trusted (DESIGN §3.3): when the soonest
// one can be, and that another administrator can confirm it now. This is
// how the first administrator, whose first passkey is always added from a
// password-only session, gets in.
func (h *Handler) adminPending(tr *i18n.Printer, a *accountState) (deniedText, bool) {
	p := h.pol()
	_, lvl, _ := p.Levels.Lookup(p.AdminACR)
	if lvl.Requires != stepup.PhishingResistant && lvl.Requires != stepup.PhishingResistantHardware || h.cfg.WebAuthn == nil {
		return deniedText{}, false
	}
	var first *storage.Factor
	for i, f := range a.factors {
		if f.Kind == storage.FactorWebAuthn && !factor.Trusted(f) && !keyRowOf(f).Blocked && (first == nil || f.CreatedAt.Before(first.CreatedAt)) {
			first = &a.factors[i]
		}
	}
	if first == nil {
		return deniedText{}, false
	}
	d := deniedText{title: i18n.N("Your passkey isn't trusted for the admin console yet"),
		msg:  i18n.N("A passkey added after signing in with a password or a code could belong to someone who tricked you into sharing them, so the admin console accepts it only once it has proved itself. Sign in with \"%s\" now on a device and network you've signed in from before, and it will count. Or ask another administrator to confirm it: keystep users confirm-passkey %s --credential %s."),
		args: []any{first.Name, a.user.Username, first.ID}}
	if from := h.trustFrom(*first); h.cfg.Now().Before(from) {
		d.msg = i18n.N("A passkey added after signing in with a password or a code could belong to someone who tricked you into sharing them, so the admin console accepts it only once it has proved itself. Sign in with \"%s\" from %s on a device and network you've signed in from before, and it will count. Or ask another administrator to confirm it: keystep users confirm-passkey %s --credential %s.")
		d.args = []any{first.Name, tr.Time(from), a.user.Username, first.ID}
	}
	return d, true
}

// adminCallbackError explains a step-up for the console that came back
// with an error.
func (h *Handler) adminCallbackError(code string) error {
	if code == "unmet_authentication_requirements" {
		d := h.adminNeeds()
		return userError(http.StatusForbidden, d.title, d.msg, d.args...)
	}
	return userError(http.StatusForbidden, "The admin console didn't open", "Signing in for the admin console was stopped. Open the console again to retry.")
}

type adminDeniedPage struct {
	Page
	Heading, Message string
	Href, Label      string
}

func (h *Handler) adminDenied(w http.ResponseWriter, r *http.Request, status int, d deniedText) error {
	tr := h.tr(r)
	p := adminDeniedPage{Page: h.page(r, d.title), Heading: tr.T(d.title), Message: tr.T(d.msg, d.args...), Href: d.href, Label: tr.T(d.label)}
	if err := h.render(w, r, status, "admin_denied", p); err != nil {
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

// adminPage is a console page titled title, a message key.
func (h *Handler) adminPage(r *http.Request, a *adminState, nav, title string) adminPage {
	return adminPage{Page: h.page(r, title), Nav: nav, Me: a.user, FreshUntil: a.freshUntil, Notice: h.tr(r).T(adminNotices[r.URL.Query().Get("notice")])}
}

// adminNamedPage is a console page titled with a name from the data (a
// client's, a user's), never translated even where it reads like a message.
func (h *Handler) adminNamedPage(r *http.Request, a *adminState, nav, name string) adminPage {
	p := h.adminPage(r, a, nav, "")
	p.Title = name
	return p
}

// adminNotices are the flash messages after a change, by the notice
// parameter of the page the change redirects to (message keys).
var adminNotices = map[string]string{
	"recovery-approved":   i18n.N("The request was approved: the person can replace their sign-in methods after their password."),
	"recovery-denied":     i18n.N("The request was denied. Nothing changed on the account."),
	"client-created":      i18n.N("The client was created."),
	"client-saved":        i18n.N("Your changes were saved."),
	"client-same":         i18n.N("Nothing changed."),
	"client-deleted":      i18n.N("The client was deleted. Its tokens were revoked."),
	"client-policy-saved": i18n.N("This app's policy was saved as a new policy version and is active on every instance within seconds."),
	"user-created":        i18n.N("The user was created."),
	"user-disable":        i18n.N("The user was disabled and signed out everywhere."),
	"user-enable":         i18n.N("The user can sign in again."),
	"user-unlock":         i18n.N("The account was unlocked."),
	"user-reset":          i18n.N("The user's second factors and recovery codes were removed, and they were signed out."),
	"user-signout":        i18n.N("The user was signed out everywhere."),
	"keys-rotated":        i18n.N("New signing keys were made."),
	"outbox-retried":      i18n.N("The delivery was queued again."),
	"receiver-added":      i18n.N("The transmitter was registered: its signals are accepted at /ssf/receive."),
	"receiver-deleted":    i18n.N("The transmitter was removed: its signals are refused from now on."),

	// DESIGN §3.3: an administrator vouches for a passkey added below phr.
	"user-confirm-passkey": i18n.N("The passkey now counts as phishing-resistant."),
	"user-passkey-trusted": i18n.N("That passkey already counted as phishing-resistant."),
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

// keyStatus names where a key is in its life at now (a message key).
func keyStatus(k storage.SigningKey, now time.Time) string {
	switch {
	case !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now):
		return i18n.N("Expired")
	case !k.RetiredAt.IsZero() && !k.RetiredAt.After(now):
		return i18n.N("Retired")
	case k.ActiveAt.After(now):
		return i18n.N("Next")
	}
	return i18n.N("Signing")
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
		return h.renderKeys(w, r, a, h.tr(r).T("Choose when the new keys start signing."), http.StatusBadRequest)
	}
	if _, err := h.admin.RotateSigningKeys(r.Context(), a.actor, in, h.cfg.Now()); err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/keys?notice=keys-rotated", http.StatusSeeOther)
	return nil
}
