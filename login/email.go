package login

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

// An email address is added or changed in the portal (issue 22): the
// person asks with the account's level fresh (as for a password), a
// single-use link goes to the NEW address, and only when that link is
// opened by the same signed-in person does the address become the
// account's, verified; the old (verified) address is told. Until then
// nothing changes.

// emailLinkTTL is how long a confirmation link works.
const emailLinkTTL = 30 * time.Minute

// emailLinksPerHour bounds the confirmation links one account may have
// sent in an hour: a signed-in session must not make Keystep mail a
// stranger's inbox over and over.
const emailLinksPerHour = 5

// emailTokenKind is the one-time token kind of a confirmation link.
const emailTokenKind = "email_confirm"

// emailTokenHash is what is stored of a confirmation link: a hash of its
// token bound to the user who asked and the address, so the link works
// for that user and that address only, and the token at rest opens
// nothing.
func emailTokenHash(token, userID, address string) string {
	sum := sha256.Sum256([]byte("keystep email confirm\x00" + userID + "\x00" + address + "\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// emailNotSetUp says, where an address would be confirmed, that it cannot be.
var emailNotSetUp = i18n.N("Email isn't set up on this server, so an address can't be confirmed yet. Ask your administrator.")

func (h *Handler) accountEmailPage(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if _, ok, err := h.requireLevel(w, r, a, h.passwordLevel(a), reauthForChanges, "/account/email"); !ok {
		return err
	}
	return h.renderEmail(w, r, a, "", "", http.StatusOK)
}

func (h *Handler) renderEmail(w http.ResponseWriter, r *http.Request, a *accountState, notice, problem string, status int) error {
	p, err := h.accountData(r.Context(), r, a, i18n.N("Email address"))
	if err != nil {
		return err
	}
	p.Nav, p.Notice, p.Problem, p.MailOff = "email", notice, problem, !h.mailOn()
	return h.renderAccount(w, r, status, "account_email", p)
}

func (h *Handler) postAccountEmail(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if _, ok, err := h.requireLevel(w, r, a, h.passwordLevel(a), reauthForChanges, "/account/email"); !ok {
		return err
	}
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	if !h.mailOn() {
		// Never pretend: nothing is queued, and the page says why.
		return h.renderEmail(w, r, a, "", emailNotSetUp, http.StatusServiceUnavailable)
	}
	addr, err := mail.Address(strings.TrimSpace(r.PostForm.Get("email")))
	switch {
	case err != nil:
		return h.renderEmail(w, r, a, "", i18n.N("Enter one email address, like name@example.com."), http.StatusBadRequest)
	case addr == a.user.Email && a.user.EmailVerified:
		return h.renderEmail(w, r, a, "", i18n.N("That is already your confirmed address."), http.StatusBadRequest)
	}
	now := h.cfg.Now()
	sent, err := h.cfg.Store.ListAudit(ctx, storage.AuditFilter{UserID: a.user.ID, Type: storage.EventAccountEmailChangeRequested,
		Since: now.Add(-time.Hour), Limit: emailLinksPerHour})
	if err != nil {
		return err
	}
	if len(sent) >= emailLinksPerHour {
		w.Header().Set("Retry-After", "3600")
		return h.renderEmail(w, r, a, "", i18n.N("You've asked for several links in the last hour. Use the newest one, or try again later."), http.StatusTooManyRequests)
	}
	token, err := factor.NewToken()
	if err != nil {
		return err
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventAccountEmailChangeRequested, UserID: a.user.ID, ActorID: a.user.ID,
		Outcome: "success", Details: map[string]string{"email": addr}}); err != nil {
		return err
	}
	if err := h.cfg.Store.CreateOneTimeToken(ctx, emailTokenKind, emailTokenHash(token, a.user.ID, addr), now.Add(emailLinkTTL)); err != nil {
		return err
	}
	link := h.link("/account/email/confirm?" + url.Values{"token": {token}, "email": {addr}}.Encode())
	if err := h.queueMail(ctx, a.user, addr, mail.ConfirmEmail, mail.Data{Address: addr, Link: link, Expires: emailLinkTTL}); err != nil {
		return err
	}
	return h.renderEmail(w, r, a, h.tr(r).T("We sent a link to %s. Open it in this browser within %s to confirm the address. Until then, nothing changes.", addr, fmtDuration(h.tr(r), emailLinkTTL)), "", http.StatusOK)
}

// confirmEmail is the link's target. The person must be signed in (the
// sign-in comes back here), as the user who asked: the link's hash binds
// it to that user and the address, so another account's session, a
// changed address or a second use finds nothing to spend.
func (h *Handler) confirmEmail(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	ctx := r.Context()
	q := r.URL.Query()
	addr, err := mail.Address(q.Get("email"))
	token := q.Get("token")
	if err != nil || token == "" {
		return userError(http.StatusBadRequest, "That link doesn't work", "Copy the whole link from the email, or ask for a new one from your account page.")
	}
	now := h.cfg.Now()
	switch err := h.cfg.Store.ConsumeOneTimeToken(ctx, emailTokenKind, emailTokenHash(token, a.user.ID, addr), now); {
	case errors.Is(err, storage.ErrNotFound):
		return userError(http.StatusBadRequest, "That link doesn't work here",
			"It was sent for another account, or it was changed on the way. Sign in as the account that asked, or ask for a new link from your account page.")
	case errors.Is(err, storage.ErrReplayed):
		return userError(http.StatusGone, "That link was already used", "Each link works once. Your account page shows your address.")
	case errors.Is(err, storage.ErrExpired):
		return userError(http.StatusGone, "That link has expired", "Links work for %s. Ask for a new one from your account page.", fmtDuration(h.tr(r), emailLinkTTL))
	case err != nil:
		return err
	}
	// Only the newest link works (spent above all the same): a later
	// request, or a confirmation since, supersedes it. Else a link to an
	// address the person moved away from (mistyped, lost, or asked for by
	// someone briefly holding the session) would move it back, within its
	// 30 minutes, without a request at the account's level.
	last, err := h.cfg.Store.ListAudit(ctx, storage.AuditFilter{UserID: a.user.ID,
		Types: []storage.EventType{storage.EventAccountEmailChangeRequested, storage.EventAccountEmailChanged}, Newest: true, Limit: 1})
	if err != nil {
		return err
	}
	if len(last) == 0 || last[0].Type != storage.EventAccountEmailChangeRequested || last[0].Details["email"] != addr {
		return userError(http.StatusGone, "That link was replaced",
			"A newer link was asked for, or an address was confirmed since. Use the newest link, or ask for a new one from your account page.")
	}
	old, oldVerified := a.user.Email, a.user.EmailVerified
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventAccountEmailChanged, UserID: a.user.ID, ActorID: a.user.ID,
		Outcome: "success", Details: map[string]string{"email": addr, "previous": old}}); err != nil {
		return err
	}
	a.user.Email, a.user.EmailVerified, a.user.EmailVerifiedAt, a.user.UpdatedAt = addr, true, now, now
	if err := h.cfg.Store.UpdateUser(ctx, a.user); err != nil {
		return err
	}
	// The old address is told, if it was ever shown to be the person's:
	// someone who took over the session and moved the address away
	// cannot also keep the owner from hearing of it.
	if old != "" && old != addr && oldVerified {
		if err := h.queueMail(ctx, a.user, old, mail.EmailChanged, mail.Data{Address: addr, Link: h.link(activityPath)}); err != nil {
			return err
		}
	}
	http.Redirect(w, r, "/account?notice=email", http.StatusSeeOther)
	return nil
}
