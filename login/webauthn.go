package login

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// Passkeys and security keys (WebAuthn Level 3). Each ceremony's session
// data is sealed into a short-lived cookie bound to the ceremony and to what
// it is for (an auth request, or the portal user), and its challenge is a
// one-time token in storage, so an assertion verifies once, in the browser
// and for the purpose it was begun for.

const (
	webauthnCookie   = "ks_webauthn"
	webauthnTTL      = factor.WebAuthnTimeout
	webauthnTokenKnd = "webauthn"
	ceremonyLogin    = "login"
	ceremonyRegister = "register"
)

// passkeyUser loads the user's passkeys and security keys.
func (h *Handler) passkeyUser(ctx context.Context, u storage.User) (*factor.PasskeyUser, error) {
	fs, err := h.cfg.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	return factor.NewPasskeyUser(u, fs)
}

// ceremony is what the sealed cookie holds between begin and finish.
type ceremony struct {
	Kind    string               `json:"kind"`
	Bind    string               `json:"bind"` // auth request ID, or user ID for registration
	Session webauthn.SessionData `json:"session"`
	// Nonce is the server nonce of a challenge bound to the request's
	// authorization details (details.Challenge); nil for any other.
	Nonce []byte `json:"nonce,omitempty"`
}

func ceremonyAD(kind, bind string) []byte { return []byte("webauthn:" + kind + ":" + bind) }

func (h *Handler) saveCeremony(ctx context.Context, w http.ResponseWriter, c ceremony) error {
	if err := h.cfg.Store.CreateOneTimeToken(ctx, webauthnTokenKnd, factor.HashToken(c.Session.Challenge), h.cfg.Now().Add(webauthnTTL)); err != nil {
		return err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	sealed := h.cfg.Sealer.Seal(raw, ceremonyAD(c.Kind, c.Bind))
	h.cfg.Cookies.Set(w, webauthnCookie, base64.RawURLEncoding.EncodeToString(sealed), webauthnTTL)
	return nil
}

// errCeremony answers a ceremony whose challenge is missing, spent or
// for something else.
var errCeremony = userError(http.StatusBadRequest, "Try again", "This passkey request has expired. Try again.")

// takeCeremony opens the cookie for (kind, bind) and spends its challenge.
func (h *Handler) takeCeremony(ctx context.Context, w http.ResponseWriter, r *http.Request, kind, bind string) (ceremony, error) {
	raw, err := base64.RawURLEncoding.DecodeString(h.cfg.Cookies.Value(r, webauthnCookie))
	if err != nil || len(raw) == 0 {
		return ceremony{}, errCeremony
	}
	plain, err := h.cfg.Sealer.Open(raw, ceremonyAD(kind, bind))
	if err != nil {
		return ceremony{}, errCeremony
	}
	var c ceremony
	if err := json.Unmarshal(plain, &c); err != nil || c.Kind != kind || c.Bind != bind {
		return ceremony{}, errCeremony
	}
	h.cfg.Cookies.Clear(w, webauthnCookie)
	if err := h.cfg.Store.ConsumeOneTimeToken(ctx, webauthnTokenKnd, factor.HashToken(c.Session.Challenge), h.cfg.Now()); err != nil {
		return ceremony{}, errCeremony
	}
	return c, nil
}

// ---- JSON plumbing ----

type jsonError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handleJSON is handle for the fetch endpoints: errors become JSON with a
// plain message, never internal detail.
func (h *Handler) handleJSON(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withLangNote(r)
		err := fn(w, r)
		if err == nil {
			return
		}
		var pe *pageError
		if errors.As(err, &pe) {
			tr := h.tr(r)
			writeJSON(w, pe.status, jsonError{tr.T(pe.msg, pe.args...)})
			return
		}
		ref := newRef()
		h.cfg.Log.ErrorContext(r.Context(), "passkey request failed", "ref", ref, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, jsonError{h.tr(r).T("Something went wrong. Reference %s", ref)})
	})
}

// readJSON decodes a small JSON body into v.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return userError(http.StatusBadRequest, "Bad request", "The request could not be read.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return userError(http.StatusBadRequest, "Bad request", "The request could not be read.")
	}
	return nil
}

// ---- sign-in and step-up ----

type loginOptionsRequest struct {
	ID string `json:"id"`
}

type loginVerifyRequest struct {
	ID         string          `json:"id"`
	Credential json.RawMessage `json:"credential"`
}

func (h *Handler) passkeysOff() error {
	return userError(http.StatusNotFound, "Passkeys are not available", "Passkeys are not available here. Use another way to sign in.")
}

func (h *Handler) loginOptions(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	var req loginOptionsRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	st, err := h.loadFlow(r, req.ID)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := h.passkeyAllowed(ctx, st); err != nil {
		return err
	}
	var (
		assertion *protocol.CredentialAssertion
		session   *webauthn.SessionData
		opts      []webauthn.LoginOption
		nonce     []byte
	)
	d, err := transaction(st)
	if err != nil {
		return err
	}
	if d != nil {
		// The assertion signs these details: its challenge is derived
		// from them and a fresh server nonce, kept sealed with the
		// ceremony for the check at the end and the audit record.
		if nonce, err = newNonce(); err != nil {
			return err
		}
		opts = append(opts, webauthn.WithChallenge(details.Challenge(d, nonce)))
	}
	if st.hasSess {
		pu, err := h.passkeyUser(ctx, st.user)
		if err != nil {
			return err
		}
		if len(pu.Credentials) == 0 {
			return userError(http.StatusBadRequest, "No passkey", "You haven't added a passkey or security key yet. Use another way.")
		}
		uv, err := h.verificationFor(r, st)
		if err != nil {
			return err
		}
		assertion, session, err = h.cfg.WebAuthn.BeginLogin(pu, append(opts, webauthn.WithUserVerification(uv))...)
		if err != nil {
			return err
		}
	} else {
		// Passwordless: the passkey identifies the user, so it must verify them.
		assertion, session, err = h.cfg.WebAuthn.BeginDiscoverableLogin(append(opts, webauthn.WithUserVerification(protocol.VerificationRequired))...)
		if err != nil {
			return err
		}
	}
	if err := h.saveCeremony(ctx, w, ceremony{Kind: ceremonyLogin, Bind: st.ar.ID, Session: *session, Nonce: nonce}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, assertion)
	return nil
}

func (h *Handler) loginVerify(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	var req loginVerifyRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	st, err := h.loadFlow(r, req.ID)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := h.passkeyAllowed(ctx, st); err != nil {
		return err
	}
	var keys []storage.ThrottleKey
	if st.hasSess {
		keys = factorKeys(st.user.ID, st.ar.ID)
		if err := h.reserve(ctx, keys); err != nil {
			var th errThrottled
			if errors.As(err, &th) {
				return tooManyPasskey(th.until.Sub(h.cfg.Now()))
			}
			return err
		}
	} else {
		// Passwordless: nobody to reserve an attempt against, and a success
		// must not count against a shared address (see passwordKeys); the
		// address is checked here and charged only for a failure.
		until, err := h.ipBlocked(ctx, web.Info(ctx).IP)
		if err != nil {
			return err
		}
		if !until.IsZero() {
			return tooManyPasskey(until.Sub(h.cfg.Now()))
		}
	}
	c, err := h.takeCeremony(ctx, w, r, ceremonyLogin, st.ar.ID)
	if err != nil {
		return err
	}
	session := c.Session
	d, err := transaction(st)
	if err != nil {
		return err
	}
	if d != nil {
		// The ceremony must have been begun for these details: its
		// challenge, which ValidateLogin compares with the one the
		// authenticator signed, is details.Challenge(d, nonce).
		challenge, err := b64.DecodeString(session.Challenge)
		if err != nil || !details.VerifyChallenge(d, c.Nonce, challenge) {
			return h.passkeyFailed(ctx, st, "challenge not bound to the authorization details", nil)
		}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(req.Credential)
	if err != nil {
		return h.passkeyFailed(ctx, st, "unparseable assertion", err)
	}
	var pu *factor.PasskeyUser
	var cred *webauthn.Credential
	if st.hasSess {
		if pu, err = h.passkeyUser(ctx, st.user); err != nil {
			return err
		}
		cred, err = h.cfg.WebAuthn.ValidateLogin(pu, session, parsed)
	} else {
		var u webauthn.User
		u, cred, err = h.cfg.WebAuthn.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			user, err := h.cfg.Store.UserByID(ctx, string(userHandle))
			if err != nil || user.Disabled {
				return nil, errors.New("unknown user")
			}
			return h.passkeyUser(ctx, user)
		}, session, parsed)
		if err == nil {
			pu = u.(*factor.PasskeyUser)
		}
	}
	if err != nil {
		return h.passkeyFailed(ctx, st, "assertion rejected", err)
	}
	f, idx := pu.Find(cred.ID)
	if idx < 0 {
		return h.passkeyFailed(ctx, st, "credential not registered to this user", nil)
	}
	// A flagged credential stays refused. This is checked before the
	// counter: the credential validated above carries the stored flag, and
	// a blocked key must not be flagged and audited again at every try.
	if pu.Credentials[idx].Authenticator.CloneWarning {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: pu.User.ID, ClientID: st.client.ID, Outcome: "denied", Reason: "credential blocked", Details: map[string]string{"factor": string(stepup.WebAuthn), "credential": f.Name}}); err != nil {
			return err
		}
		if err := h.recordRefusal(ctx, st, pu.User.ID, "credential blocked"); err != nil {
			return err
		}
		return userError(http.StatusForbidden, "This key can't be used", "This passkey or security key has been blocked. Use another way to sign in.")
	}
	if cred.Authenticator.CloneWarning {
		// A signature counter that went backwards means the key may be
		// cloned (WebAuthn §6.1.1): the credential is flagged and refused
		// until it is removed.
		pu.Credentials[idx].Authenticator.CloneWarning = true
		if err := h.saveCredential(ctx, f, pu.Credentials[idx], time.Time{}); err != nil {
			return err
		}
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorSignCountRegression, UserID: pu.User.ID, ClientID: st.client.ID, Outcome: "denied", Reason: "signature counter went backwards; credential flagged", Details: map[string]string{"factor": f.ID, "name": f.Name}}); err != nil {
			return err
		}
		if err := h.recordRefusal(ctx, st, pu.User.ID, "signature counter went backwards"); err != nil {
			return err
		}
		return userError(http.StatusForbidden, "This key can't be used", "This passkey or security key looks like it may have been copied, so it has been blocked. Use another way, and tell your administrator.")
	}
	// An id_token_hint names the account the app expects (OIDC Core
	// §3.1.2.1); a passkey of another account does not sign in here.
	if st.ar.IDTokenHintSubject != "" && st.ar.IDTokenHintSubject != pu.User.ID {
		return userError(http.StatusForbidden, "That's a different account", "The app asked for another account. Go back to the app and sign in with the account it expects.")
	}
	if st.hasSess {
		if err := h.settle(ctx, keys); err != nil {
			return err
		}
	}
	now := h.cfg.Now()
	if err := h.saveCredential(ctx, f, *cred, now); err != nil {
		return err
	}
	// A credential waiting for trust becomes phishing-resistant by this
	// use when its cooling-off is over and it comes from a device and
	// network the user has signed in from (DESIGN §3.3).
	since := now // passwordless: any earlier sign-in
	if st.hasSess {
		since = st.sess.CreatedAt
	}
	if err := h.promote(r, pu.User.ID, st.client.ID, &f, pu.Factors, since); err != nil {
		return err
	}
	flags := parsed.Response.AuthenticatorData.Flags
	ev := storage.FactorEvent{
		Method: string(stepup.WebAuthn), At: now, CredentialID: f.ID,
		UserVerified: flags.HasUserVerified(),
		DeviceBound:  !flags.HasBackupEligible(),
		Provisional:  !factor.Trusted(f),
		Request:      st.ar.ID,
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: pu.User.ID, ActorID: pu.User.ID, ClientID: st.client.ID, Outcome: "success",
		Details: map[string]string{"factor": string(stepup.WebAuthn), "credential": f.Name, "user_verified": fmt.Sprint(ev.UserVerified), "device_bound": fmt.Sprint(ev.DeviceBound), "passwordless": fmt.Sprint(!st.hasSess),
			"phishing_resistant": fmt.Sprint(!ev.Provisional)}}); err != nil {
		return err
	}
	if d != nil {
		// The assertion is the approval of these details, kept so that
		// anyone can check it later (keystep audit verify --transaction).
		acr, err := h.reached(r, st, pu.User, ev)
		if err != nil {
			return err
		}
		a := parsed.Raw.AssertionResponse
		if err := h.cfg.Audit.Record(ctx, transactionEvent(st, pu.User.ID, d, stepup.WebAuthn, "success", "", acr, map[string]string{
			"nonce": b64.EncodeToString(c.Nonce), "factor_id": f.ID, "credential_id": b64.EncodeToString(cred.ID),
			"client_data_json": b64.EncodeToString(a.ClientDataJSON), "authenticator_data": b64.EncodeToString(a.AuthenticatorData),
			"signature": b64.EncodeToString(a.Signature), "user_verification": string(session.UserVerification),
		})); err != nil {
			return err
		}
	}
	if _, err := h.addFactor(w, r, pu.User.ID, ev); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/login?id=" + url.QueryEscape(st.ar.ID)})
	return nil
}

// passkeyAllowed refuses, audited, a passkey ceremony at a client whose
// policy does not allow WebAuthn (policy.Client.Factors), with a session
// or without: a passkey proved here would count for this sign-in whether
// it is the first factor or the second.
func (h *Handler) passkeyAllowed(ctx context.Context, st *flowState) error {
	if allowed(st, stepup.WebAuthn) {
		return nil
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "denied", Reason: reasonNotAllowed, Details: map[string]string{"factor": string(stepup.WebAuthn)}}); err != nil {
		return err
	}
	return userError(http.StatusForbidden, "Passkeys aren't used for this app", "This app doesn't accept a passkey or security key. Go back to the sign-in page and use another way.")
}

// verificationFor is the user verification a step-up assertion asks for:
// required when only a user-verified passkey can take the request to its
// target (no other route is left, as for a user without a password asked
// to sign in again), preferred otherwise. Whatever is asked, the level
// counts the UV flag the authenticator signed, never what was requested.
func (h *Handler) verificationFor(r *http.Request, st *flowState) (protocol.UserVerificationRequirement, error) {
	in, _, err := h.decide(r, st)
	if err != nil {
		return "", err
	}
	if st.pol.Levels.NeedsVerification(in) {
		return protocol.VerificationRequired, nil
	}
	return protocol.VerificationPreferred, nil
}

func (h *Handler) saveCredential(ctx context.Context, f storage.Factor, c webauthn.Credential, usedAt time.Time) error {
	f, err := factor.WithCredential(f, c, usedAt)
	if err != nil {
		return err
	}
	return h.cfg.Store.UpdateFactor(ctx, f)
}

func tooManyPasskey(wait time.Duration) error {
	return userError(http.StatusTooManyRequests, "Too many attempts", "Too many attempts. Wait %s and try again.", waitFor(wait))
}

func (h *Handler) passkeyFailed(ctx context.Context, st *flowState, reason string, cause error) error {
	if st.hasSess {
		if _, err := h.cfg.Store.RecordAuthRequestFailure(ctx, st.ar.ID); err != nil {
			return err
		}
	} else if err := h.countIPFailure(ctx, web.Info(ctx).IP); err != nil {
		return err
	}
	details := map[string]string{"factor": string(stepup.WebAuthn)}
	if cause != nil {
		details["detail"] = cause.Error()
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "failure", Reason: reason, Details: details}); err != nil {
		return err
	}
	if err := h.recordRefusal(ctx, st, st.user.ID, reason); err != nil {
		return err
	}
	return userError(http.StatusUnauthorized, "That didn't work", "That passkey or security key wasn't accepted. Try again, or use another way.")
}

// ---- portal registration ----

type registerVerifyRequest struct {
	Name       string          `json:"name"`
	Credential json.RawMessage `json:"credential"`
}

// passkeyGate is the portal rule for adding a WebAuthn credential: the
// level it grants (phr), or the user's highest reachable level when phr is
// out of reach (their first passkey), fresh within 10 minutes; or
// bootstrap, at low risk only.
func (h *Handler) passkeyGate(w http.ResponseWriter, r *http.Request, a *accountState) (bool, error) {
	// Back to this page after the step-up, not to the overview.
	const returnTo = "/account/passkey"
	if !hasSecondFactor(a.factors) {
		return h.bootstrapGate(w, r, a, returnTo)
	}
	_, ok, err := h.requireLevel(w, r, a, h.pol().Levels.ReachableUpTo(h.session(a), stepup.ACRPhishing), reauthForChanges, returnTo)
	return ok, err
}

func (h *Handler) registerOptions(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	a, err := h.requireAccountJSON(r)
	if err != nil {
		return err
	}
	if ok, err := h.passkeyGateJSON(r, a); !ok {
		return err
	}
	return h.beginRegistration(w, r, a.user, a.user.ID+":"+sid(a.sess))
}

// beginRegistration starts adding a passkey for u, the ceremony bound to
// bind (the portal's user and session, or a step-up's request too), and
// answers with the creation options.
func (h *Handler) beginRegistration(w http.ResponseWriter, r *http.Request, u storage.User, bind string) error {
	ctx := r.Context()
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return err
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range pu.Credentials {
		exclude = append(exclude, c.Descriptor())
	}
	creation, session, err := h.cfg.WebAuthn.BeginRegistration(pu,
		webauthn.WithExclusions(exclude),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: protocol.VerificationPreferred,
		}),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementPreferred),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
	)
	if err != nil {
		return err
	}
	if err := h.saveCeremony(ctx, w, ceremony{Kind: ceremonyRegister, Bind: bind, Session: *session}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, creation)
	return nil
}

func (h *Handler) registerVerify(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	a, err := h.requireAccountJSON(r)
	if err != nil {
		return err
	}
	if ok, err := h.passkeyGateJSON(r, a); !ok {
		return err
	}
	var req registerVerifyRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	first := !hasSecondFactor(a.factors)
	f, err := h.finishRegistration(w, r, a.user, a.sess, a.user.ID+":"+sid(a.sess), req, h.levelMet(a, stepup.ACRPhishing),
		storage.AuditEvent{Details: map[string]string{"bootstrap": fmt.Sprint(first)}})
	if err != nil {
		return err
	}
	next := "/account?notice=passkey-added"
	if f.TrustedAt.IsZero() {
		next = "/account?notice=passkey-pending"
	}
	if first {
		h.setFirstCodesMarker(w, a)
		next = "/account/recovery/new"
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": next})
	return nil
}

// finishRegistration verifies and stores the passkey of the ceremony bound
// to bind, for u signed in with sess: audited first (ev's client and
// details, plus what the key is), then created and signalled. atPhr says
// the session adding it is itself at phr. Like an authenticator app, a new
// key adds nothing to the session.
func (h *Handler) finishRegistration(w http.ResponseWriter, r *http.Request, u storage.User, sess storage.Session, bind string, req registerVerifyRequest, atPhr bool, ev storage.AuditEvent) (storage.Factor, error) {
	ctx := r.Context()
	c, err := h.takeCeremony(ctx, w, r, ceremonyRegister, bind)
	if err != nil {
		return storage.Factor{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	if err != nil {
		return storage.Factor{}, userError(http.StatusBadRequest, "That didn't work", "Your browser sent a passkey we couldn't read. Try again.")
	}
	pu, err := h.passkeyUser(ctx, u)
	if err != nil {
		return storage.Factor{}, err
	}
	cred, err := h.cfg.WebAuthn.CreateCredential(pu, c.Session, parsed)
	if err != nil {
		h.cfg.Log.WarnContext(ctx, "passkey registration rejected", "user_id", u.ID, "err", err)
		return storage.Factor{}, userError(http.StatusBadRequest, "That didn't work", "That passkey or security key couldn't be added. Try again.")
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 64 {
		name = "Passkey"
	}
	raw, err := json.Marshal(cred)
	if err != nil {
		return storage.Factor{}, err
	}
	id, err := factor.NewToken()
	if err != nil {
		return storage.Factor{}, err
	}
	// DESIGN §3.3: a phishable session cannot mint phishing resistance. A
	// key added from a session at phr is trusted at once; from any other
	// it counts as mfa until it is used from a known device and network
	// after the cooling-off, or an administrator confirms it.
	now := h.cfg.Now()
	var trustedAt time.Time
	if atPhr || h.cfg.PasskeysTrustedAtOnce {
		trustedAt = now
	}
	ev.Type, ev.UserID, ev.ActorID, ev.Outcome = storage.EventFactorEnrolled, u.ID, u.ID, "success"
	ev.Details["factor"], ev.Details["name"] = string(stepup.WebAuthn), name
	ev.Details["device_bound"], ev.Details["phishing_resistant"] = fmt.Sprint(!cred.Flags.BackupEligible), fmt.Sprint(!trustedAt.IsZero())
	if err := h.cfg.Audit.Record(ctx, ev); err != nil {
		return storage.Factor{}, err
	}
	newPlace, err := h.newPlaceSession(r, u.ID, sess)
	if err != nil {
		return storage.Factor{}, err
	}
	f := storage.Factor{ID: id[:22], UserID: u.ID, Kind: storage.FactorWebAuthn, Name: name, Secret: raw, CreatedAt: now, TrustedAt: trustedAt, AddedInSessionAt: newPlace}
	if err := h.cfg.Store.CreateFactor(ctx, f); err != nil {
		return storage.Factor{}, err
	}
	if err := admin.Signal(ctx, h.cfg.Store, now, admin.CredentialChange(u.ID, admin.CredentialType(storage.FactorWebAuthn), admin.ChangeCreate, name)); err != nil {
		return storage.Factor{}, err
	}
	if err := h.notify(ctx, u, mail.FactorAdded, factorWords(storage.FactorWebAuthn, name)); err != nil {
		return storage.Factor{}, err
	}
	return f, nil
}

// requireAccountJSON is requireAccount for fetch endpoints: no redirects.
func (h *Handler) requireAccountJSON(r *http.Request) (*accountState, error) {
	sess, u, ok, err := h.loadSession(r.Context(), r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, userError(http.StatusUnauthorized, "Signed out", "You're signed out. Reload the page and sign in again.")
	}
	a := &accountState{sess: sess, user: u}
	if a.factors, err = h.cfg.Store.ListFactors(r.Context(), u.ID); err != nil {
		return nil, err
	}
	if a.recovery, err = h.cfg.Store.CountRecoveryCodes(r.Context(), u.ID); err != nil {
		return nil, err
	}
	// The same risk floor as the portal's pages: a stolen cookie must not
	// register the thief's passkey through the JSON endpoints.
	outcome, _, err := h.sessionRisk(r, a)
	if err != nil {
		return nil, err
	}
	if outcome != stepup.Satisfied {
		return nil, userError(http.StatusForbidden, "Confirm it's you first", "Reload the page to confirm it's you, then try again.")
	}
	return a, nil
}

// passkeyGateJSON checks the gate without redirecting; the page that
// offers "Add a passkey" has already sent the user through the step-up.
func (h *Handler) passkeyGateJSON(r *http.Request, a *accountState) (bool, error) {
	acr := h.pol().Levels.ReachableUpTo(h.session(a), stepup.ACRPhishing)
	if !hasSecondFactor(a.factors) {
		why, help, _, err := h.bootstrapRisk(r, a)
		if err != nil {
			return false, err
		}
		if why != "" {
			return false, userError(http.StatusForbidden, "Ask for help to add this", help)
		}
		acr = stepup.ACRSingleFactor
	}
	if h.levelMet(a, acr) {
		return true, nil
	}
	return false, userError(http.StatusForbidden, "Confirm it's you first", "Reload the page to confirm it's you, then add the passkey.")
}
