package login

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

// A passkey or security key as the second factor of a password reset: the
// sign-in's ceremony (saveCeremony/takeCeremony, ValidateLogin, the clone
// check, the per-account and per-challenge throttles), bound to the reset
// instead of an auth request. static/webauthn.js drives it like a step-up
// ([data-passkey-step] with data-passkey-path="/recover/reset/webauthn"),
// the reset link's token as the id.

// ceremonyReset is the ceremony kind of a reset's assertion.
const ceremonyReset = "reset"

func (h *Handler) resetPasskeyOptions(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	var req loginOptionsRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	pr, u, err := h.openReset(r, req.ID)
	if err != nil {
		return err
	}
	ctx := r.Context()
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return err
	}
	if len(pu.Credentials) == 0 || !pr.FactorAt.IsZero() {
		return userError(http.StatusBadRequest, "No passkey", "Your account has no passkey or security key. Use another way.")
	}
	assertion, session, err := h.cfg.WebAuthn.BeginLogin(pu, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return err
	}
	if err := h.saveCeremony(ctx, w, ceremony{Kind: ceremonyReset, Bind: pr.ID, Session: *session}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, assertion)
	return nil
}

func (h *Handler) resetPasskeyVerify(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	var req loginVerifyRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	pr, u, err := h.openReset(r, req.ID)
	if err != nil {
		return err
	}
	ctx := r.Context()
	keys := factorKeys(u.ID, pr.ID)
	if err := h.reserve(ctx, keys); err != nil {
		var th errThrottled
		if errors.As(err, &th) {
			return tooManyPasskey(th.until.Sub(h.cfg.Now()))
		}
		return err
	}
	failed := func(reason string, cause error) error {
		d := map[string]string{"factor": string(stepup.WebAuthn), "during": "password reset"}
		if cause != nil {
			d["detail"] = cause.Error()
		}
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: u.ID, Outcome: "failure", Reason: reason, Details: d}); err != nil {
			return err
		}
		return userError(http.StatusUnauthorized, "That didn't work", "That passkey or security key wasn't accepted. Try again, or use another way.")
	}
	c, err := h.takeCeremony(ctx, w, r, ceremonyReset, pr.ID)
	if err != nil {
		return userError(http.StatusBadRequest, "Try again", "This passkey request has expired. Try again.")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(req.Credential)
	if err != nil {
		return failed("unparseable assertion", err)
	}
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return err
	}
	cred, err := h.cfg.WebAuthn.ValidateLogin(pu, c.Session, parsed)
	if err != nil {
		return failed("assertion rejected", err)
	}
	f, idx := pu.Find(cred.ID)
	if idx < 0 {
		return failed("credential not registered to this user", nil)
	}
	if pu.Credentials[idx].Authenticator.CloneWarning || cred.Authenticator.CloneWarning {
		// As at sign-in: a key whose counter went backwards is flagged
		// and refused until it is removed (WebAuthn §6.1.1).
		if !pu.Credentials[idx].Authenticator.CloneWarning {
			pu.Credentials[idx].Authenticator.CloneWarning = true
			if err := h.saveCredential(ctx, f, pu.Credentials[idx], h.cfg.Now()); err != nil {
				return err
			}
			if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorSignCountRegression, UserID: u.ID, Outcome: "denied",
				Reason: "signature counter went backwards; credential flagged", Details: map[string]string{"factor": f.ID, "name": f.Name}}); err != nil {
				return err
			}
		}
		return failed("credential blocked", nil)
	}
	if err := h.settle(ctx, keys); err != nil {
		return err
	}
	now := h.cfg.Now()
	if err := h.saveCredential(ctx, f, *cred, now); err != nil {
		return err
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: u.ID, ActorID: u.ID, Outcome: "success",
		Details: map[string]string{"factor": string(stepup.WebAuthn), "credential": f.Name, "during": "password reset",
			"user_verified": fmt.Sprint(parsed.Response.AuthenticatorData.Flags.HasUserVerified())}}); err != nil {
		return err
	}
	if err := h.cfg.Store.ProvePasswordReset(ctx, pr.ID, now); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/recover/reset?" + url.Values{"token": {req.ID}}.Encode()})
	return nil
}
