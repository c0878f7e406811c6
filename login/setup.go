package login

import (
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

type setupPage struct {
	Page
	Token    string
	Username string
	Email    string
	Problem  string
	// CoolingOff is how long the first admin's first passkey waits: added
	// from a password-only session, it opens the console (phr) only after
	// a use from this device and network once that time has passed, or an
	// operator's confirm-passkey (DESIGN §3.3).
	CoolingOff string
	// ConfirmCommand is the command that confirms a passkey at once.
	ConfirmCommand template.HTML
}

var errSetupDone = userError(http.StatusNotFound, "Keystep is already set up", "Sign in with your account, or ask your administrator for access.")

func (h *Handler) setupPage(w http.ResponseWriter, r *http.Request) error {
	n, err := h.cfg.Store.CountUsers(r.Context())
	if err != nil {
		return err
	}
	if n > 0 {
		return errSetupDone
	}
	p := h.newSetupPage(r)
	p.Token = r.URL.Query().Get("token")
	return h.render(w, r, http.StatusOK, "setup", p)
}

// newSetupPage is the setup page's data that every answer shares.
func (h *Handler) newSetupPage(r *http.Request) setupPage {
	return setupPage{Page: h.page(r, "Set up Keystep"), CoolingOff: fmtDuration(h.tr(r), h.cfg.PasskeyCoolingOff),
		ConfirmCommand: "<code>keystep users confirm-passkey</code>"}
}

func (h *Handler) postSetup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	p := h.newSetupPage(r)
	p.Token = r.PostForm.Get("token")
	p.Username, p.Email = strings.TrimSpace(r.PostForm.Get("username")), strings.TrimSpace(r.PostForm.Get("email"))
	n, err := h.cfg.Store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return errSetupDone
	}
	pw := r.PostForm.Get("password")
	// A username's problems are message keys (admin.ValidateUsername); a
	// password's are named by passwordProblem, as in the portal.
	if err := admin.ValidateUsername(p.Username); err != nil {
		p.Problem = h.tr(r).T(err.Error())
	} else if err := factor.ValidatePassword(pw); err != nil {
		p.Problem = h.tr(r).T(passwordProblem(err))
	}
	if p.Problem != "" {
		return h.render(w, r, http.StatusBadRequest, "setup", p)
	}
	err = h.cfg.Store.ConsumeOneTimeToken(ctx, admin.SetupTokenKind, factor.HashToken(p.Token), h.cfg.Now())
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExpired) || errors.Is(err, storage.ErrReplayed) {
			return userError(http.StatusForbidden, "This setup link doesn't work", "Use the link Keystep printed when it started. Restart Keystep to print a new one.")
		}
		return err
	}
	hash, err := h.cfg.Hasher.Hash(pw)
	if err != nil {
		return err
	}
	id, err := admin.NewUserID()
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	u := storage.User{ID: id, Username: p.Username, Email: p.Email, PasswordHash: hash, Admin: true, CreatedAt: now, UpdatedAt: now}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventAdminUserCreated, UserID: id, ActorID: id, Outcome: "success", Reason: "first admin via setup link"}); err != nil {
		return err
	}
	if err := h.cfg.Store.CreateUser(ctx, u); err != nil {
		return err
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}
