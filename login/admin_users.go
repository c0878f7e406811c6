package login

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

type adminUsersPage struct {
	adminPage
	Query, Status string
	Users         []storage.User
	Total         int
	New           admin.NewUser
	Errors        map[string][]string
}

func (h *Handler) adminUsers(w http.ResponseWriter, r *http.Request, a *adminState) error {
	return h.renderUsers(w, r, a, admin.NewUser{}, nil, http.StatusOK)
}

func (h *Handler) renderUsers(w http.ResponseWriter, r *http.Request, a *adminState, n admin.NewUser, problems []admin.Problem, status int) error {
	list, err := h.cfg.Store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	p := adminUsersPage{adminPage: h.adminPage(r, a, "users", "Users"), Query: strings.TrimSpace(q.Get("q")), Status: q.Get("status"), Total: len(list), New: n}
	p.New.Password = "" // never sent back
	if problems != nil {
		tr := h.tr(r)
		p.Errors = map[string][]string{}
		for _, pr := range problems {
			p.Errors[pr.Field] = append(p.Errors[pr.Field], pr.In(tr))
		}
		p.Problem = tr.T("The user wasn't created. Check the form below.")
	}
	needle := strings.ToLower(p.Query)
	slices.SortFunc(list, func(x, y storage.User) int {
		return strings.Compare(strings.ToLower(x.Username), strings.ToLower(y.Username))
	})
	for _, u := range list {
		if needle != "" && !strings.Contains(strings.ToLower(u.Username), needle) && !strings.Contains(strings.ToLower(u.Email), needle) {
			continue
		}
		switch p.Status {
		case "admin":
			if !u.Admin {
				continue
			}
		case "disabled":
			if !u.Disabled {
				continue
			}
		case "active":
			if u.Disabled {
				continue
			}
		}
		p.Users = append(p.Users, u)
	}
	return h.render(w, r, status, "admin_users", p)
}

func (h *Handler) adminCreateUser(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	v := r.PostForm
	n := admin.NewUser{Username: strings.TrimSpace(v.Get("username")), Email: strings.TrimSpace(v.Get("email")), Password: v.Get("password"), Admin: v.Get("admin") == "on"}
	u, err := h.admin.CreateUser(r.Context(), a.actor, n, h.cfg.Now())
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		return h.renderUsers(w, r, a, n, inv.Problems, http.StatusBadRequest)
	case errors.Is(err, storage.ErrAlreadyExists):
		return h.renderUsers(w, r, a, n, []admin.Problem{admin.NewProblem("username", "That username is taken.")}, http.StatusBadRequest)
	case err != nil:
		return err
	}
	http.Redirect(w, r, "/admin/users/"+url.PathEscape(u.ID)+"?notice=user-created", http.StatusSeeOther)
	return nil
}

type factorRow struct {
	storage.Factor
	What string
	// Pending: a passkey or security key not yet trusted as
	// phishing-resistant, from TrustFrom on a known device and network, or
	// when confirmed here (DESIGN §3.3).
	Pending   bool
	TrustFrom time.Time
}

type adminUserPage struct {
	adminPage
	User     storage.User
	Self     bool
	Lock     admin.Lock
	Factors  []factorRow
	Recovery int
	Sessions []sessionRow
	Activity []auditRow
}

func (h *Handler) adminUser(w http.ResponseWriter, r *http.Request, a *adminState) error {
	ctx := r.Context()
	u, err := h.cfg.Store.UserByID(ctx, r.PathValue("id"))
	if err != nil {
		return notFound(err, errNoSuchUser)
	}
	now := h.cfg.Now()
	p := adminUserPage{adminPage: h.adminNamedPage(r, a, "users", u.Username), User: u, Self: u.ID == a.user.ID}
	if p.Lock, err = h.admin.LockState(ctx, u, now); err != nil {
		return err
	}
	fs, err := h.cfg.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return err
	}
	for _, f := range fs {
		what := i18n.N("Authenticator app")
		if f.Kind == storage.FactorWebAuthn {
			what = keyRowOf(f).Kind
		}
		p.Factors = append(p.Factors, factorRow{Factor: f, What: what, Pending: f.Kind == storage.FactorWebAuthn && !factor.Trusted(f), TrustFrom: h.trustFrom(f)})
	}
	if p.Recovery, err = h.cfg.Store.CountRecoveryCodes(ctx, u.ID); err != nil {
		return err
	}
	ss, err := h.cfg.Store.ListUserSessions(ctx, u.ID, now)
	if err != nil {
		return err
	}
	for _, s := range ss {
		if h.idleOut(s, now) {
			continue // ended: it is deleted when next presented
		}
		p.Sessions = append(p.Sessions, sessionRow{Current: s.ID == a.sess.ID, IP: s.IP, UserAgent: s.UserAgent, CreatedAt: s.CreatedAt, LastSeen: s.LastSeen})
	}
	events, err := h.cfg.Store.ListAudit(ctx, storage.AuditFilter{UserID: u.ID, Newest: true, Limit: 25})
	if err != nil {
		return err
	}
	names, err := h.userNames(r)
	if err != nil {
		return err
	}
	for _, e := range events {
		p.Activity = append(p.Activity, rowOf(h.tr(r), e, names))
	}
	return h.render(w, r, http.StatusOK, "admin_user", p)
}

func (h *Handler) adminUserAction(w http.ResponseWriter, r *http.Request, a *adminState) error {
	ctx := r.Context()
	if err := form(r); err != nil {
		return err
	}
	u, err := h.cfg.Store.UserByID(ctx, r.PathValue("id"))
	if err != nil {
		return notFound(err, errNoSuchUser)
	}
	action := r.PathValue("action")
	by := admin.Actor{ID: a.actor.ID, Reason: reasonOf(r)}
	self := u.ID == a.user.ID
	now := h.cfg.Now()
	var notice string
	switch action {
	case "disable", "enable":
		if self {
			return userError(http.StatusBadRequest, "You can't disable yourself", "Ask another administrator, or use the command line.")
		}
		_, err = h.admin.SetDisabled(ctx, by, u.ID, action == "disable", now)
		notice = "user-" + action
	case "unlock":
		err, notice = h.admin.Unlock(ctx, by, u.ID, now), "user-unlock"
	case "reset-factors":
		if self {
			return userError(http.StatusBadRequest, "You can't reset your own factors here", "Remove them on your account page, or ask another administrator.")
		}
		err, notice = h.admin.ResetFactors(ctx, by, u.ID, now), "user-reset"
		if errors.Is(err, admin.ErrNeedsReason) {
			return userError(http.StatusBadRequest, "Say why", "Resetting someone's second factors needs a reason, such as the ticket number. Go back and add one.")
		}
	case "confirm-passkey":
		if self {
			// DESIGN §3.3: a phishable session cannot mint phishing
			// resistance. A console below phr is such a session, and the
			// key may be whoever relayed this admin's sign-in.
			return userError(http.StatusBadRequest, "You can't confirm your own passkey",
				"Another administrator can confirm it, or it counts for your strongest sign-in once you use it from a device and network you've used before, after its waiting time.")
		}
		_, err = h.admin.ConfirmPasskey(ctx, by, u.ID, r.PostForm.Get("factor"), now)
		notice = "user-confirm-passkey"
		switch {
		case errors.Is(err, admin.ErrAlreadyTrusted):
			err, notice = nil, "user-passkey-trusted"
		case errors.Is(err, admin.ErrNoSuchPasskey):
			return userError(http.StatusNotFound, "No such passkey", "That passkey or security key doesn't exist. It may have been removed.")
		}
	case "signout":
		keep := ""
		if self {
			keep = a.sess.ID // signing yourself out everywhere else keeps this console open
		}
		_, err = h.admin.SignOut(ctx, by, u.ID, keep, now)
		notice = "user-signout"
	default:
		return userError(http.StatusNotFound, "No such action", "Go back and try again.")
	}
	if errors.Is(err, admin.ErrBadReason) {
		return badReason(err)
	}
	if err != nil {
		return notFound(err, errNoSuchUser)
	}
	http.Redirect(w, r, "/admin/users/"+url.PathEscape(u.ID)+"?notice="+notice, http.StatusSeeOther)
	return nil
}

// userNames maps user IDs to usernames, for audit rows.
func (h *Handler) userNames(r *http.Request) (map[string]string, error) {
	users, err := h.cfg.Store.ListUsers(r.Context())
	if err != nil {
		return nil, err
	}
	return userNames(users), nil
}

func userNames(users []storage.User) map[string]string {
	m := make(map[string]string, len(users))
	for _, u := range users {
		m[u.ID] = u.Username
	}
	return m
}

// auditRow is one audit event as the console shows it.
type auditRow struct {
	storage.AuditEvent
	User, Actor   string // names where known
	Text          string
	Before, After string
	Other         [][2]string // other details, sorted by key
}

func rowOf(p *i18n.Printer, e storage.AuditEvent, names map[string]string) auditRow {
	row := auditRow{AuditEvent: e, User: nameOr(names, e.UserID), Actor: nameOr(names, e.ActorID), Text: eventText(p, e)}
	if e.ClientID != "" {
		row.Text = strings.TrimSuffix(row.Text, " · "+e.ClientID)
	}
	for k, v := range e.Details {
		switch k {
		case "before":
			row.Before = v
		case "after":
			row.After = v
		default:
			row.Other = append(row.Other, [2]string{k, v})
		}
	}
	slices.SortFunc(row.Other, func(x, y [2]string) int { return strings.Compare(x[0], y[0]) })
	return row
}

func nameOr(names map[string]string, id string) string {
	if n, ok := names[id]; ok {
		return n
	}
	return id
}
