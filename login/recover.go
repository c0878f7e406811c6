package login

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// Forgot password (issue 22). Every path asks for as much as the account
// could prove before: the emailed link stands in for the password only,
// never for the second factor, and the reset signs nobody in.
//
//  1. /recover: a username or an email address. The answer, and the work
//     behind it, are the same whether an account matches or not.
//  2. A link (15 minutes, once, hashed at rest) goes to the verified
//     address of each matching account. It works only in the browser that
//     asked: the hash of that browser's binding cookie is stored with it.
//  3. The link asks for the account's second factor when it has one,
//     through the sign-in's own checks, throttles and locks.
//  4. A new password, checked like any new password. Then every session
//     and token of the account ends, the person is told by email, sign-ins
//     from new devices need the account's second factor for a week, and
//     the person signs in as usual.

// resetLinkTTL is how long a reset link works.
const resetLinkTTL = 15 * time.Minute

// resetFloorTTL is how long after a reset a sign-in from a device that
// never signed in to the account needs a second factor (mfa).
const resetFloorTTL = 7 * 24 * time.Hour

// DefaultRecoveryCoolingOff is how long a recovery request waits before it
// can be used, unless an admin approves it earlier.
const DefaultRecoveryCoolingOff = 72 * time.Hour

// Throttle scopes of recovery, counted under recoveryLimits (not
// Config.Limits: an operator's sign-in limits do not loosen them).
const (
	scopeRecoverIP      = "recover_ip"      // Key: the client address (throttle.Addr)
	scopeRecoverAccount = "recover_account" // Key: the name or address asked for, lowercased
	scopeRecoverRequest = "recover_request" // Key: the user ID filing recovery requests
	scopeRecoverUser    = "recover_user"    // Key: the user ID a reset link is mailed to ("?" + the name asked for, for none)
)

// recoveryLimits: a person who lost access asks a few times; anyone asking
// more is mailing someone else's inbox or probing.
var recoveryLimits = throttle.Limits{
	scopeRecoverIP:      {Limit: 20, Window: time.Hour, Base: 15 * time.Minute, Max: time.Hour},
	scopeRecoverAccount: {Limit: 3, Window: time.Hour, Base: time.Hour, Max: time.Hour},
	scopeRecoverUser:    {Limit: 3, Window: time.Hour, Base: time.Hour, Max: time.Hour},
	scopeRecoverRequest: {Limit: 3, Window: 24 * time.Hour, Base: 24 * time.Hour, Max: 24 * time.Hour},
}

// resetID is what is stored of a reset link's token.
func resetID(token string) string {
	sum := sha256.Sum256([]byte("keystep password reset\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// decoyAddress is where the decoy's message is composed to: it is never
// queued.
const decoyAddress = "nobody@invalid.example"

// recoverPage is the data of the recovery pages.
type recoverPage struct {
	Page
	Headline, Lead string
	Problem        string
	Notice         string
	Account        string // the name typed on /recover, or the account's username
	Token          string // the reset link's token, on the pages it leads to
	Step           string // "ask", "sent", "factor", "password", "done", "lost", "cancel"
	// TOTP, Codes and Passkey are the second factors the reset may be
	// finished with; Locked: none of the account's can be used here.
	TOTP, Codes, Passkey bool
	Locked               bool
	MailOff              bool
	// Recovery requests.
	Request   *storage.RecoveryRequest
	Eligible  bool
	Cancel    string // the cancel link's request ID
	CancelTok string // and its token
	Notified  bool   // the notice went to a verified address
}

func (h *Handler) registerRecover(mux *http.ServeMux) {
	mux.Handle("GET /recover", h.handle(h.recoverPage))
	mux.Handle("POST /recover", h.handle(h.postRecover))
	mux.Handle("GET /recover/reset", h.handle(h.resetPage))
	mux.Handle("POST /recover/reset/code", h.handle(h.postResetCode))
	mux.Handle("POST /recover/reset/password", h.handle(h.postResetPassword))
	mux.Handle("POST /recover/reset/webauthn/options", h.handleJSON(h.resetPasskeyOptions))
	mux.Handle("POST /recover/reset/webauthn/verify", h.handleJSON(h.resetPasskeyVerify))
	mux.Handle("GET /recover/factors", h.handle(h.lostFactorsPage))
	mux.Handle("POST /recover/factors", h.handle(h.postLostFactors))
	mux.Handle("POST /recover/factors/use", h.handle(h.postUseRecovery))
	mux.Handle("GET /recover/cancel", h.handle(h.cancelPage))
	mux.Handle("POST /recover/cancel", h.handle(h.postCancelRecovery))
}

func (h *Handler) renderRecover(w http.ResponseWriter, r *http.Request, status int, title string, p recoverPage) error {
	tr := h.tr(r)
	p.Page, p.MailOff = h.page(r, title), !h.mailOn()
	// Message keys, or texts already translated (with their arguments).
	p.Headline, p.Lead, p.Problem, p.Notice = tr.T(p.Headline), tr.T(p.Lead), tr.T(p.Problem), tr.T(p.Notice)
	return h.render(w, r, status, "recover", p)
}

func (h *Handler) recoverPage(w http.ResponseWriter, r *http.Request) error {
	return h.renderRecover(w, r, http.StatusOK, i18n.N("Reset your password"), recoverPage{Step: "ask",
		Headline: i18n.N("Reset your password"), Lead: i18n.N("Enter your username or email address. If it matches an account with a confirmed email address, we'll send a link there.")})
}

// recoverSent is the one answer to every accepted request: it says nothing
// about whether an account matched.
var recoverSent = recoverPage{Step: "sent", Headline: i18n.N("Check your email"),
	Lead: i18n.N("If that matches an account with a confirmed email address, we sent a link to it. Open it in this browser within 15 minutes. If no email comes, ask your administrator.")}

// postRecover sends reset links. Whether anything matched, it reads the
// same rows (the name and the address are both looked up), renders a
// message, writes one reset row per match or one decoy row with no user
// and no mail, and one audit row for each: the answer is byte for byte the
// same, and so is the work.
func (h *Handler) postRecover(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	account := strings.TrimSpace(r.PostForm.Get("account"))
	if account == "" || len(account) > 254 {
		return h.renderRecover(w, r, http.StatusBadRequest, i18n.N("Reset your password"), recoverPage{Step: "ask", Headline: i18n.N("Reset your password"),
			Problem: i18n.N("Enter your username or your email address.")})
	}
	if !h.mailOn() {
		return h.renderRecover(w, r, http.StatusServiceUnavailable, i18n.N("Reset your password"), recoverPage{Step: "ask", Headline: i18n.N("Reset your password"),
			Problem: i18n.N("Email isn't set up on this server, so a reset link can't be sent. Ask your administrator to reset your password.")})
	}
	binding, err := h.cfg.Cookies.BrowserBinding(w, r)
	if err != nil {
		return err
	}
	ip := web.Info(ctx).IP
	keys := []storage.ThrottleKey{{Scope: scopeRecoverIP, Key: throttle.Addr(ip)}, {Scope: scopeRecoverAccount, Key: strings.ToLower(account)}}
	now := h.cfg.Now()
	if states, err := h.cfg.Store.RecordFailure(ctx, keys, recoveryLimits, now); errors.Is(err, storage.ErrThrottled) {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryResetRefused, Outcome: "denied", Reason: "too many reset requests",
			Details: map[string]string{"account": account}}); err != nil {
			return err
		}
		return h.tooMany(w, r, storage.ThrottledUntil(states))
	} else if err != nil {
		return err
	}
	targets, err := h.resetTargets(ctx, account)
	if err != nil {
		return err
	}
	decoy := len(targets) == 0
	if decoy {
		targets = []storage.User{{Username: account, Email: decoyAddress}}
	}
	for _, u := range targets {
		// One inbox gets at most scopeRecoverUser's links an hour, however
		// the account was asked for (by name, by address, or through an
		// address several accounts share). Past it, the account is treated
		// like no account: the same page and the same work, no mail. An
		// unknown name is counted under its own key, so the work is the
		// same too.
		userKey := u.ID
		if decoy {
			userKey = "?" + strings.ToLower(account)
		}
		over := false
		if _, err := h.cfg.Store.RecordFailure(ctx, []storage.ThrottleKey{{Scope: scopeRecoverUser, Key: userKey}}, recoveryLimits, now); errors.Is(err, storage.ErrThrottled) {
			over = true
		} else if err != nil {
			return err
		}
		token, err := factor.NewToken()
		if err != nil {
			return err
		}
		link := h.link("/recover/reset?" + url.Values{"token": {token}}.Encode())
		m, err := h.mailMessage(ctx, u, u.Email, mail.ResetPassword, mail.Data{Link: link, Expires: resetLinkTTL})
		if err != nil {
			return err
		}
		reset := storage.PasswordReset{ID: resetID(token), UserID: u.ID, BrowserHash: binding, CreatedAt: now, ExpiresAt: now.Add(resetLinkTTL)}
		ev := storage.AuditEvent{Type: storage.EventRecoveryResetRequested, UserID: u.ID, Outcome: "success", Details: map[string]string{"account": account}}
		var msgs []storage.OutboxMessage
		switch {
		case decoy:
			ev.Outcome, ev.Reason = "no account", "no account with a confirmed address matches"
		case over:
			// Stored like a decoy: a row no link opens, no mail.
			reset.UserID = ""
			ev.Type, ev.Outcome, ev.Reason = storage.EventRecoveryResetRefused, "denied", "too many reset links to this account"
		default:
			msgs = []storage.OutboxMessage{m}
		}
		if err := h.cfg.Audit.Record(ctx, ev); err != nil {
			return err
		}
		if err := h.cfg.Store.CreatePasswordReset(ctx, reset, msgs); err != nil {
			return err
		}
	}
	return h.renderRecover(w, r, http.StatusOK, i18n.N("Check your email"), recoverSent)
}

// resetTargets are the accounts a reset for account reaches: the account
// named so and every account whose confirmed address it is, enabled,
// with a confirmed address. Both lookups run every time.
func (h *Handler) resetTargets(ctx context.Context, account string) ([]storage.User, error) {
	var out []storage.User
	byName, err := h.cfg.Store.UserByUsername(ctx, account)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	byEmail, err := h.cfg.Store.UsersByEmail(ctx, account)
	if err != nil {
		return nil, err
	}
	if byName.ID != "" {
		byEmail = append([]storage.User{byName}, byEmail...)
	}
	seen := map[string]bool{}
	for _, u := range byEmail {
		if seen[u.ID] || u.Disabled || !u.EmailVerified || u.Email == "" {
			continue
		}
		seen[u.ID] = true
		out = append(out, u)
	}
	return out, nil
}

// errResetLink is the answer for a link that opens nothing here.
var errResetLink = userError(http.StatusBadRequest, "That link doesn't work",
	"Copy the whole link from the email, or ask for a new one from the sign-in page (\"Forgot your password?\").")

// openReset loads the reset of token and its account, for the browser
// that asked for it only. A refusal is audited and returned as a page.
func (h *Handler) openReset(r *http.Request, token string) (storage.PasswordReset, storage.User, error) {
	ctx := r.Context()
	if token == "" || len(token) > 128 {
		return storage.PasswordReset{}, storage.User{}, errResetLink
	}
	pr, err := h.cfg.Store.PasswordReset(ctx, resetID(token), h.cfg.Now())
	refuse := func(userID, reason string, page error) (storage.PasswordReset, storage.User, error) {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryResetRefused, UserID: userID, Outcome: "denied", Reason: reason}); err != nil {
			return storage.PasswordReset{}, storage.User{}, err
		}
		return storage.PasswordReset{}, storage.User{}, page
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return refuse("", "unknown link", errResetLink)
	case errors.Is(err, storage.ErrReplayed):
		return refuse("", "link already used", userError(http.StatusGone, "That link was already used",
			"Each link works once. If you still can't sign in, ask for a new one from the sign-in page."))
	case errors.Is(err, storage.ErrExpired):
		return refuse("", "link expired", userError(http.StatusGone, "That link has expired",
			"Links work for 15 minutes. Ask for a new one from the sign-in page (\"Forgot your password?\")."))
	case err != nil:
		return storage.PasswordReset{}, storage.User{}, err
	case pr.UserID == "":
		return refuse("", "decoy link", errResetLink)
	}
	// The link works in the browser that asked for it only: one that
	// reads the mailbox elsewhere, or a link forwarded, gets nothing.
	if b := h.cfg.Cookies.ExistingBrowserBinding(r); b == "" || subtle.ConstantTimeCompare([]byte(b), []byte(pr.BrowserHash)) != 1 {
		return refuse(pr.UserID, "opened in another browser", userError(http.StatusForbidden, "Open the link in the browser you asked from",
			"For your safety the link works only in the browser where you asked for it. Open it there, or ask for a new link in this browser."))
	}
	u, err := h.cfg.Store.UserByID(ctx, pr.UserID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && u.Disabled {
		return refuse(pr.UserID, "account missing or disabled", errResetLink)
	}
	return pr, u, err
}

// resetFactors are the account's second factors a reset may be finished
// with, and whether it has any second factor at all.
type resetFactors struct {
	factors    []storage.Factor
	totp       bool
	codes      bool
	passkeys   bool
	locked     map[stepup.Method]bool
	hasFactors bool
}

func (h *Handler) resetFactorsOf(ctx context.Context, userID string) (resetFactors, error) {
	var rf resetFactors
	fs, err := h.cfg.Store.ListFactors(ctx, userID)
	if err != nil {
		return rf, err
	}
	left, err := h.cfg.Store.CountRecoveryCodes(ctx, userID)
	if err != nil {
		return rf, err
	}
	rf.factors, rf.codes = fs, left > 0
	for _, f := range fs {
		switch f.Kind {
		case storage.FactorTOTP:
			rf.totp = true
		case storage.FactorWebAuthn:
			rf.passkeys = true
		}
	}
	rf.hasFactors = len(fs) > 0 || rf.codes
	rf.locked, err = h.lockedFactors(ctx, userID)
	return rf, err
}

func (h *Handler) resetPage(w http.ResponseWriter, r *http.Request) error {
	token := r.URL.Query().Get("token")
	pr, u, err := h.openReset(r, token)
	if err != nil {
		return err
	}
	return h.showReset(w, r, http.StatusOK, token, pr, u, "")
}

// showReset shows the step the reset is at: the second factor while it is
// owed, then the new password.
func (h *Handler) showReset(w http.ResponseWriter, r *http.Request, status int, token string, pr storage.PasswordReset, u storage.User, problem string) error {
	rf, err := h.resetFactorsOf(r.Context(), u.ID)
	if err != nil {
		return err
	}
	p := recoverPage{Token: token, Problem: problem, Account: u.Username}
	if rf.hasFactors && pr.FactorAt.IsZero() {
		p.Step, p.Headline = "factor", i18n.N("First, confirm it's you")
		p.Lead = i18n.N("Your account has a second way to sign in. Use it to continue; an emailed link alone can't change your password.")
		p.TOTP, p.Codes = rf.totp && !rf.locked[stepup.TOTP], rf.codes && !rf.locked[stepup.Recovery]
		p.Passkey = rf.passkeys && h.cfg.WebAuthn != nil
		p.Locked = !p.TOTP && !p.Codes && !p.Passkey
		return h.renderRecover(w, r, status, i18n.N("Confirm it's you"), p)
	}
	p.Step, p.Headline = "password", i18n.N("Choose a new password")
	p.Lead = h.tr(r).T("At least %d characters. After this, every other session of your account is signed out, and you sign in with the new password.", factor.MinPasswordRunes)
	return h.renderRecover(w, r, status, i18n.N("Choose a new password"), p)
}

// resetForm reads a reset step's form: the link's token, the reset it
// opens, its user and what the account could prove.
func (h *Handler) resetForm(r *http.Request) (token string, pr storage.PasswordReset, u storage.User, rf resetFactors, err error) {
	if err = r.ParseForm(); err != nil {
		return "", pr, u, rf, userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	token = r.PostForm.Get("token")
	if pr, u, err = h.openReset(r, token); err != nil {
		return "", pr, u, rf, err
	}
	rf, err = h.resetFactorsOf(r.Context(), u.ID)
	return token, pr, u, rf, err
}

// postResetCode proves the account's second factor for a reset: the
// sign-in's own verifiers (verifyTOTP, useRecoveryCode), counted against
// the same per-account and per-factor throttles and the 100-failure lock,
// with the reset as the challenge.
func (h *Handler) postResetCode(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	token, pr, u, rf, err := h.resetForm(r)
	if err != nil {
		return err
	}
	m := stepup.Method(r.PostForm.Get("method"))
	if (m != stepup.TOTP || !rf.totp) && (m != stepup.Recovery || !rf.codes) || !pr.FactorAt.IsZero() {
		return h.showReset(w, r, http.StatusBadRequest, token, pr, u, "")
	}
	lock := throttle.FactorLockKey(u.ID, m)
	keys := append(factorKeys(u.ID, pr.ID), lock)
	if err := h.reserve(ctx, keys); err != nil {
		var th errThrottled
		if !errors.As(err, &th) {
			return err
		}
		if aerr := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupThrottled, UserID: u.ID, Outcome: "denied", Reason: "too many wrong codes",
			Details: map[string]string{"factor": string(m), "during": "password reset"}}); aerr != nil {
			return aerr
		}
		if th.blocks(lock) {
			return h.showReset(w, r, http.StatusTooManyRequests, token, pr, u, "")
		}
		return h.tooMany(w, r, th.until)
	}
	code, now := r.PostForm.Get("code"), h.cfg.Now()
	var ok bool
	switch m {
	case stepup.TOTP:
		_, ok, err = h.verifyTOTP(ctx, u.ID, rf.factors, code)
	case stepup.Recovery:
		if len(code) <= 64 {
			var left int
			var legacy bool
			left, legacy, err = h.useRecoveryCode(ctx, u.ID, code, now)
			ok = err == nil
			if errors.Is(err, storage.ErrNotFound) {
				err = nil
			}
			if ok {
				err = h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorRecoveryCodeUsed, UserID: u.ID, ActorID: u.ID, Outcome: "success",
					Details: map[string]string{"remaining": itoa(left), "legacy_hash": strconv.FormatBool(legacy), "during": "password reset"}})
			}
		}
	}
	if err != nil {
		return err
	}
	if !ok {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: u.ID, Outcome: "failure", Reason: "wrong code",
			Details: map[string]string{"factor": string(m), "during": "password reset"}}); err != nil {
			return err
		}
		if locked, err := h.lockedFactors(ctx, u.ID); err != nil {
			return err
		} else if locked[m] {
			if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorLocked, UserID: u.ID, Outcome: "locked", Reason: "100 wrong codes in a row",
				Details: map[string]string{"factor": string(m)}}); err != nil {
				return err
			}
		}
		msg := i18n.N("That code didn't work. Check the time on your phone and try again.")
		if m == stepup.Recovery {
			msg = i18n.N("That recovery code didn't work. Each code works once; try another one.")
		}
		return h.showReset(w, r, http.StatusBadRequest, token, pr, u, msg)
	}
	if err := h.settle(ctx, keys); err != nil {
		return err
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: u.ID, ActorID: u.ID, Outcome: "success",
		Details: map[string]string{"factor": string(m), "during": "password reset"}}); err != nil {
		return err
	}
	if err := h.cfg.Store.ProvePasswordReset(ctx, pr.ID, now); err != nil {
		return err
	}
	http.Redirect(w, r, "/recover/reset?"+url.Values{"token": {token}}.Encode(), http.StatusSeeOther)
	return nil
}

// postResetPassword sets the new password, once, and signs nobody in.
func (h *Handler) postResetPassword(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	token, pr, u, rf, err := h.resetForm(r)
	if err != nil {
		return err
	}
	// The second factor is owed by what the account has now, not by what
	// the page showed: a factor added since is asked for too.
	if rf.hasFactors && pr.FactorAt.IsZero() {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryResetRefused, UserID: u.ID, Outcome: "denied", Reason: "second factor not proved"}); err != nil {
			return err
		}
		return h.showReset(w, r, http.StatusForbidden, token, pr, u, i18n.N("Confirm it's you with your second factor first."))
	}
	pw, confirm := r.PostForm.Get("new_password"), r.PostForm.Get("confirm_password")
	if err := factor.ValidatePassword(pw); err != nil {
		return h.showReset(w, r, http.StatusBadRequest, token, pr, u, passwordProblem(err))
	} else if pw != confirm {
		return h.showReset(w, r, http.StatusBadRequest, token, pr, u, i18n.N("The two passwords don't match."))
	}
	hash, err := h.cfg.Hasher.Hash(pw)
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	if err := h.cfg.Store.UsePasswordReset(ctx, pr.ID, now); err != nil {
		if errors.Is(err, storage.ErrReplayed) || errors.Is(err, storage.ErrExpired) {
			return userError(http.StatusGone, "That link was already used", "Each link works once. Sign in with your password, or ask for a new link.")
		}
		return err
	}
	how := ""
	if rf.hasFactors {
		how = "second factor"
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryPasswordReset, UserID: u.ID, ActorID: u.ID, Outcome: "success",
		Details: map[string]string{"factor": how}}); err != nil {
		return err
	}
	u.PasswordHash, u.PasswordCompromised, u.UpdatedAt = hash, false, now
	// Whoever controls the mailbox may not be the owner: for a week a
	// sign-in from a device new to the account needs its second factor
	// (a stronger floor from a received signal is left as it is).
	if u.RiskFloor == "" || !now.Before(u.RiskFloorUntil) || u.RiskFloorNewDevices {
		u.RiskFloor, u.RiskFloorUntil, u.RiskFloorReason, u.RiskFloorNewDevices = stepup.ACRMultiFactor, now.Add(resetFloorTTL), "password reset by email", true
	}
	if err := h.cfg.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := admin.Signal(ctx, h.cfg.Store, now, admin.CredentialChange(u.ID, admin.CredentialType(""), admin.ChangeUpdate, "")); err != nil {
		return err
	}
	if err := h.notify(ctx, u, mail.PasswordReset, nil); err != nil {
		return err
	}
	if _, err := admin.EndAccess(ctx, h.cfg.Store, h.cfg.Audit, u.ID, u.ID, "", "password reset"); err != nil {
		return err
	}
	return h.renderRecover(w, r, http.StatusOK, i18n.N("Password changed"), recoverPage{Step: "done", Headline: i18n.N("Your password was changed"),
		Lead: i18n.N("Every session of your account was signed out. Go back to the app you were using and sign in with your new password.")})
}
