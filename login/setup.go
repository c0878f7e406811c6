package login

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// SetupTokenKind is the one-time token kind of the first-admin setup link.
const SetupTokenKind = "setup"

// SetupTTL is how long a setup link works.
const SetupTTL = 24 * time.Hour

// NewSetupLink makes a one-time setup token when there are no users yet. It
// returns "" when users exist. Every start with no users makes a new link;
// older ones stay valid until they expire or one of them is used.
func NewSetupLink(ctx context.Context, store storage.Store, issuer string, now time.Time) (string, error) {
	n, err := store.CountUsers(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	token, err := factor.NewToken()
	if err != nil {
		return "", err
	}
	if err := store.CreateOneTimeToken(ctx, SetupTokenKind, factor.HashToken(token), now.Add(SetupTTL)); err != nil {
		return "", err
	}
	return issuer + "/setup?token=" + token, nil
}

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
	return h.r.render(w, http.StatusOK, "setup", setupPage{Page: h.page(r, "Set up Keystep"), Token: r.URL.Query().Get("token"), CoolingOff: fmtDuration(h.cfg.PasskeyCoolingOff)})
}

func (h *Handler) postSetup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	p := setupPage{Page: h.page(r, "Set up Keystep"), Token: r.PostForm.Get("token"),
		Username: strings.TrimSpace(r.PostForm.Get("username")), Email: strings.TrimSpace(r.PostForm.Get("email")),
		CoolingOff: fmtDuration(h.cfg.PasskeyCoolingOff)}
	n, err := h.cfg.Store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return errSetupDone
	}
	pw := r.PostForm.Get("password")
	if err := ValidateUsername(p.Username); err != nil {
		p.Problem = err.Error()
	} else if err := factor.ValidatePassword(pw); err != nil {
		p.Problem = err.Error()
	}
	if p.Problem != "" {
		return h.r.render(w, http.StatusBadRequest, "setup", p)
	}
	err = h.cfg.Store.ConsumeOneTimeToken(ctx, SetupTokenKind, factor.HashToken(p.Token), h.cfg.Now())
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
	id, err := NewUserID()
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	u := storage.User{ID: id, Username: p.Username, Email: p.Email, PasswordHash: hash, Admin: true, CreatedAt: now, UpdatedAt: now}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: "admin.user_created", UserID: id, ActorID: id, Outcome: "success", Reason: "first admin via setup link"}); err != nil {
		return err
	}
	if err := h.cfg.Store.CreateUser(ctx, u); err != nil {
		return err
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}

// NewUserID makes a user ID: 128 random bits, base64url.
func NewUserID() (string, error) {
	t, err := factor.NewToken()
	if err != nil {
		return "", err
	}
	return t[:22], nil
}

// ValidateUsername accepts 1–64 characters without spaces, control
// characters or ':' (the authenticator-app label uses it as a separator).
func ValidateUsername(s string) error {
	if s == "" {
		return errors.New("Enter a username.")
	}
	if len(s) > 64 {
		return errors.New("Usernames can be at most 64 characters.")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == ':' {
			return errors.New("Usernames can't contain spaces, control characters or ':'.")
		}
	}
	return nil
}
