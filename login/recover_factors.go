package login

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// Lost second factor (issue 22). A recovery code signs in as it always
// did, and the portal then leads to a new factor. With neither a factor
// nor a code, the person, after the password, files a recovery request:
// nothing changes until the cooling-off (Config.RecoveryCoolingOff) is
// over or an admin approves it; the owner can cancel it from the notice
// sent to the confirmed address, and an admin can deny it. Once it is
// eligible, the person, after the password again, removes the old second
// factors and sets up new ones in the portal (the bootstrap of DESIGN
// §3.3: a first factor after a fresh password). Knowing the password
// alone therefore never reaches above single-factor sooner.

// recoveryCancelKind is the one-time token kind of a cancel link.
const recoveryCancelKind = "recovery_cancel"

// cancelHash is what is stored of a cancel link: bound to its request.
func cancelHash(token, requestID string) string {
	sum := sha256.Sum256([]byte("keystep recovery cancel\x00" + requestID + "\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// cancelLinkTTL: the cancel link outlives the cooling-off, so the owner
// can stop a request an admin approved or that is not yet used.
const cancelLinkTTL = 30 * 24 * time.Hour

// passwordSession is the request's browser session when its password was
// proved within reauthForChanges, from where the session was issued.
func (h *Handler) passwordSession(r *http.Request) (storage.Session, storage.User, bool, error) {
	s, u, ok, err := h.loadSession(r.Context(), r)
	if err != nil || !ok || drifted(s, web.Info(r.Context())) {
		return storage.Session{}, storage.User{}, false, err
	}
	now := h.cfg.Now()
	for _, f := range s.Factors {
		if f.Method == string(stepup.Password) && !f.At.Before(now.Add(-reauthForChanges)) {
			return s, u, true, nil
		}
	}
	return storage.Session{}, storage.User{}, false, nil
}

// lostFactorsPath is the lost-factor page, where a sign-in for a fresh
// password comes back to.
const lostFactorsPath = "/recover/factors"

// errNeedPassword sends a person without a fresh password to sign in.
var errNeedPassword = userError(http.StatusUnauthorized, "Sign in with your password first",
	"Start signing in to the app as usual. When it asks for your authenticator app or passkey, choose \"Lost your second factor?\".")

func (h *Handler) lostFactorsPage(w http.ResponseWriter, r *http.Request) error {
	_, u, ok, err := h.passwordSession(r)
	if err != nil {
		return err
	} else if !ok {
		// The password again (max_age), at the lowest level, then back.
		return ignoreRedirect(h.portalAuthorize(w, r, stepup.ACRSingleFactor, reauthForChanges, lostFactorsPath))
	}
	return h.showLostFactors(w, r, http.StatusOK, u, "", "")
}

func (h *Handler) showLostFactors(w http.ResponseWriter, r *http.Request, status int, u storage.User, notice, problem string) error {
	ctx := r.Context()
	rf, err := h.resetFactorsOf(ctx, u.ID)
	if err != nil {
		return err
	}
	p := recoverPage{Step: "lost", Account: u.Username, Notice: notice, Problem: problem, Notified: u.EmailVerified && u.Email != ""}
	req, err := h.cfg.Store.LatestRecoveryRequest(ctx, u.ID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	now := h.cfg.Now()
	switch {
	case err == nil && req.Open(now):
		p.Request, p.Eligible = &req, h.eligible(req, u, now)
		p.Headline = i18n.N("Your request to replace your sign-in methods")
		switch {
		case p.Eligible:
			p.Lead = i18n.N("Your request is ready. Continuing removes your old authenticator apps, passkeys and recovery codes, signs out your other sessions, and lets you set up new ones.")
		case !p.Notified:
			p.Lead = i18n.N("Your account has no confirmed email address, so nobody could be told of the request. Only your administrator can approve it: contact them.")
		default:
			p.Lead = h.tr(r).T("Until %s only your password works. Then come back here after signing in with your password.", h.tr(r).Time(req.EligibleAt))
		}
	case !rf.hasFactors:
		p.Headline, p.Lead = i18n.N("You have no second factor"), i18n.N("There is nothing to replace. Add one from your account.")
	default:
		p.Headline = i18n.N("Lost your second factor?")
		p.Lead = h.tr(r).T("If you have none of your authenticator apps, passkeys or recovery codes, you can ask to replace them. For your safety this takes %s unless your administrator approves it sooner, and we tell your confirmed email address, from where it can be cancelled.",
			humanWait(h.tr(r), h.cfg.RecoveryCoolingOff))
		if !p.Notified {
			p.Lead = i18n.N("If you have none of your authenticator apps, passkeys or recovery codes, you can ask to replace them. Your account has no confirmed email address to tell, so only your administrator can approve the request.")
		}
	}
	return h.renderRecover(w, r, status, i18n.N("Lost your second factor?"), p)
}

// postLostFactors files a recovery request.
func (h *Handler) postLostFactors(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	_, u, ok, err := h.passwordSession(r)
	if err != nil {
		return err
	} else if !ok {
		return errNeedPassword
	}
	rf, err := h.resetFactorsOf(ctx, u.ID)
	if err != nil {
		return err
	}
	if !rf.hasFactors {
		return h.showLostFactors(w, r, http.StatusBadRequest, u, "", "")
	}
	if req, err := h.cfg.Store.LatestRecoveryRequest(ctx, u.ID); err == nil && req.Open(h.cfg.Now()) {
		return h.showLostFactors(w, r, http.StatusConflict, u, "", i18n.N("You already have a request."))
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	now := h.cfg.Now()
	keys := []storage.ThrottleKey{{Scope: scopeRecoverRequest, Key: u.ID}}
	if states, err := h.cfg.Store.RecordFailure(ctx, keys, recoveryLimits, now); errors.Is(err, storage.ErrThrottled) {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryResetRefused, UserID: u.ID, Outcome: "denied", Reason: "too many recovery requests"}); err != nil {
			return err
		}
		return h.tooMany(w, r, storage.ThrottledUntil(states))
	} else if err != nil {
		return err
	}
	id, err := factor.NewToken()
	if err != nil {
		return err
	}
	req := storage.RecoveryRequest{ID: id, UserID: u.ID, CreatedAt: now, EligibleAt: now.Add(h.cfg.RecoveryCoolingOff), Status: storage.RecoveryPending}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryRequested, UserID: u.ID, ActorID: u.ID, Outcome: "success",
		Details: map[string]string{"request": req.ID, "eligible_at": req.EligibleAt.UTC().Format(time.RFC3339)}}); err != nil {
		return err
	}
	if err := h.cfg.Store.CreateRecoveryRequest(ctx, req); err != nil {
		return err
	}
	if err := h.recoveryNotice(ctx, u, req, mail.RecoveryRequested, req.EligibleAt); err != nil {
		return err
	}
	return h.showLostFactors(w, r, http.StatusOK, u, i18n.N("Your request was filed."), "")
}

// recoveryNotice tells u's confirmed address (if any) of req, as message
// k with a fresh cancel link: at filing (until is when it can be used) and
// at an admin's approval (until is when the approval ends).
func (h *Handler) recoveryNotice(ctx context.Context, u storage.User, req storage.RecoveryRequest, k mail.Kind, until time.Time) error {
	if !u.EmailVerified || u.Email == "" {
		return nil
	}
	token, err := factor.NewToken()
	if err != nil {
		return err
	}
	if err := h.cfg.Store.CreateOneTimeToken(ctx, recoveryCancelKind, cancelHash(token, req.ID), h.cfg.Now().Add(cancelLinkTTL)); err != nil {
		return err
	}
	link := h.link("/recover/cancel?" + url.Values{"request": {req.ID}, "token": {token}}.Encode())
	return h.queueMail(ctx, u, u.Email, k, mail.Data{Link: link, Until: until})
}

// closeRecoveryOnSecondFactor cancels u's open recovery request when the
// sign-in that completes with session s proved a second factor after the
// request was filed: the factors are not lost, so whoever filed it (maybe
// a thief with the password, whose notice went to spam) must not use it
// once the cooling-off ends. Audited as storage.EventRecoveryCancelled.
func (h *Handler) closeRecoveryOnSecondFactor(ctx context.Context, u storage.User, s storage.Session) error {
	var last time.Time
	for _, f := range s.Factors {
		if f.Method != string(stepup.Password) && f.At.After(last) {
			last = f.At
		}
	}
	if last.IsZero() {
		return nil
	}
	req, err := h.cfg.Store.LatestRecoveryRequest(ctx, u.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	now := h.cfg.Now()
	if !req.Open(now) || last.Before(req.CreatedAt) {
		return nil
	}
	const why = "the owner signed in with a second factor after the request was filed"
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryCancelled, UserID: u.ID, ActorID: u.ID, Outcome: "success",
		Reason: why, Details: map[string]string{"request": req.ID}}); err != nil {
		return err
	}
	if err := h.cfg.Store.DecideRecoveryRequest(ctx, req.ID, req.Status, storage.RecoveryCancelled, u.ID, why, now); err != nil && !errors.Is(err, storage.ErrConflict) {
		return err
	}
	return nil
}

// recoveryApproved is admin.Service.RecoveryApproved: the owner hears at
// once that an approved request can be used now, with a cancel link.
func (h *Handler) recoveryApproved(ctx context.Context, req storage.RecoveryRequest) error {
	u, err := h.cfg.Store.UserByID(ctx, req.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	return h.recoveryNotice(ctx, u, req, mail.RecoveryApproved, req.DecidedAt.Add(storage.RecoveryApprovalTTL))
}

// postUseRecovery uses an eligible request: the old second factors and
// recovery codes are removed, every other session and token ends, and the
// portal leads to a new factor.
func (h *Handler) postUseRecovery(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	s, u, ok, err := h.passwordSession(r)
	if err != nil {
		return err
	} else if !ok {
		return errNeedPassword
	}
	now := h.cfg.Now()
	req, err := h.cfg.Store.LatestRecoveryRequest(ctx, u.ID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && !h.eligible(req, u, now) {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryResetRefused, UserID: u.ID, Outcome: "denied", Reason: "recovery request not eligible"}); err != nil {
			return err
		}
		return h.showLostFactors(w, r, http.StatusForbidden, u, "", i18n.N("Your request can't be used yet."))
	} else if err != nil {
		return err
	}
	rf, err := h.resetFactorsOf(ctx, u.ID)
	if err != nil {
		return err
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryFactorsReplaced, UserID: u.ID, ActorID: u.ID, Outcome: "success",
		Details: map[string]string{"request": req.ID, "removed": strconv.Itoa(len(rf.factors)), "recovery_codes": strconv.FormatBool(rf.codes)}}); err != nil {
		return err
	}
	switch err := h.cfg.Store.DecideRecoveryRequest(ctx, req.ID, req.Status, storage.RecoveryUsed, u.ID, req.Reason, now); {
	case errors.Is(err, storage.ErrConflict):
		return h.showLostFactors(w, r, http.StatusConflict, u, "", i18n.N("Your request changed meanwhile (it was cancelled or decided)."))
	case err != nil:
		return err
	}
	if err := h.cfg.Store.DeleteUserFactors(ctx, u.ID); err != nil {
		return err
	}
	var evs []storage.SecurityEvent
	for _, f := range rf.factors {
		evs = append(evs, admin.CredentialChange(u.ID, admin.CredentialType(f.Kind), admin.ChangeDelete, f.Name))
	}
	if err := admin.Signal(ctx, h.cfg.Store, now, evs...); err != nil {
		return err
	}
	if err := h.notify(ctx, u, mail.FactorRemoved, allFactors); err != nil {
		return err
	}
	if _, err := admin.EndAccess(ctx, h.cfg.Store, h.cfg.Audit, u.ID, u.ID, s.ID, "second factors replaced"); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?notice=recovered", http.StatusSeeOther)
	return nil
}

// eligible reports whether req lets u replace their factors at now. The
// cooling-off alone is enough only when the owner could be told: without
// a confirmed address (which the password alone cannot add, DESIGN §3.3)
// nobody could cancel it, so only an admin's approval makes it usable.
func (h *Handler) eligible(req storage.RecoveryRequest, u storage.User, now time.Time) bool {
	if req.Status == storage.RecoveryPending && (!u.EmailVerified || u.Email == "") {
		return false
	}
	return req.Eligible(now)
}

// cancelPage asks before cancelling: mail scanners open links, and a GET
// changes nothing.
func (h *Handler) cancelPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	return h.renderRecover(w, r, http.StatusOK, i18n.N("Cancel the request"), recoverPage{Step: "cancel", Headline: i18n.N("Cancel the request to replace your sign-in methods?"),
		Lead: i18n.N("If you didn't ask for it, cancel it, then change your password."), Cancel: q.Get("request"), CancelTok: q.Get("token")})
}

// postCancelRecovery cancels a request from its notice's link: whoever
// reads the confirmed address can stop it, signed in or not.
func (h *Handler) postCancelRecovery(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	id, token := r.PostForm.Get("request"), r.PostForm.Get("token")
	bad := userError(http.StatusBadRequest, "That link doesn't work", "Copy the whole link from the email. Your administrator can also cancel the request.")
	if id == "" || token == "" || len(id) > 64 || len(token) > 128 {
		return bad
	}
	req, err := h.cfg.Store.RecoveryRequestByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return bad
	} else if err != nil {
		return err
	}
	now := h.cfg.Now()
	switch err := h.cfg.Store.ConsumeOneTimeToken(ctx, recoveryCancelKind, cancelHash(token, id), now); {
	case errors.Is(err, storage.ErrNotFound):
		return bad
	case errors.Is(err, storage.ErrReplayed):
		return userError(http.StatusGone, "That link was already used", "The request was cancelled already.")
	case errors.Is(err, storage.ErrExpired):
		return userError(http.StatusGone, "That link has expired", "Ask your administrator to look at the request.")
	case err != nil:
		return err
	}
	if !req.Open(now) {
		return userError(http.StatusConflict, "Nothing to cancel", "That request was already decided or cancelled, or its approval expired.")
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryCancelled, UserID: req.UserID, ActorID: req.UserID, Outcome: "success",
		Details: map[string]string{"request": req.ID}}); err != nil {
		return err
	}
	if err := h.cfg.Store.DecideRecoveryRequest(ctx, req.ID, req.Status, storage.RecoveryCancelled, req.UserID, "cancelled from the email", now); errors.Is(err, storage.ErrConflict) {
		return userError(http.StatusConflict, "Nothing to cancel", "That request was decided meanwhile.")
	} else if err != nil {
		return err
	}
	return h.renderRecover(w, r, http.StatusOK, i18n.N("Request cancelled"), recoverPage{Step: "done", Headline: i18n.N("The request was cancelled"),
		Lead: i18n.N("Nothing changed on your account. If you didn't ask for it, someone may know your password: sign in and change it.")})
}

// recoveryRequests is the console's list: every pending request, then
// the most recent decided ones.
func (h *Handler) recoveryRequests(ctx context.Context) ([]storage.RecoveryRequest, error) {
	pending, err := h.cfg.Store.ListRecoveryRequests(ctx, storage.RecoveryPending, 500)
	if err != nil {
		return nil, err
	}
	recent, err := h.cfg.Store.ListRecoveryRequests(ctx, "", 50)
	if err != nil {
		return nil, err
	}
	for _, q := range recent {
		if q.Status != storage.RecoveryPending {
			pending = append(pending, q)
		}
	}
	return pending, nil
}
