package login

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// Enrolling during step-up ("set one up now", DESIGN §3.3; issue 21): when
// an app needs a level the person cannot reach with the factors they have,
// and the app's policy offers it, the step-up page offers to set up a
// first second factor inside the sign-in. The bootstrap rules of the
// portal hold unchanged: the user has no second factor yet, entered the
// password in this session within the last 10 minutes, and this sign-in's
// risk band is low (not drifted). Enrolling proves possession of the new
// factor, not who the user is: as in the portal, it adds nothing to the
// session, so the dispatcher decides again and asks for the new factor
// like any other. A passkey added here is not phishing-resistant until its
// cooling-off ends or an admin confirms it (unless PasskeysTrustedAtOnce),
// and the page says so instead of looping.

const enrollTOTPCookie = "ks_totp_enroll"

func (h *Handler) registerEnroll(mux *http.ServeMux) {
	mux.Handle("GET /login/enroll/totp", h.handle(h.enrollTOTPPage))
	mux.Handle("POST /login/enroll/totp", h.handle(h.postEnrollTOTP))
	mux.Handle("POST /login/enroll/passkey/options", h.handleJSON(h.enrollPasskeyOptions))
	mux.Handle("POST /login/enroll/passkey/verify", h.handleJSON(h.enrollPasskeyVerify))
	mux.Handle("POST /login/enroll/back", h.handle(h.postEnrollBack))
}

// enrollment is what the step-up may offer a person the decision found
// unable to reach the level (stepup.ErrUnmet).
type enrollment struct {
	// why is the audited reason nothing may be set up here; "" when
	// methods may.
	why string
	// help is what the person reads when nothing may be set up here.
	help i18n.Text
	// methods may be set up now, best first.
	methods []stepup.Method
	// later: a passkey set up now does not let the app in yet (it is not
	// phishing-resistant until trusted); pending: the user already has
	// such a passkey, waiting.
	later, pending bool
}

// offersEnroll reports whether the unreachable-level path of the
// dispatcher shows the "set one up now" page instead of ending the request
// at once: to a person signed in, never under prompt=none (OIDC Core
// §3.1.2.1: no UI). Whether anything may be set up there is enrollment's
// to say; when nothing may, the page says plainly what to do instead and
// its button goes back to the app with the error.
func (h *Handler) offersEnroll(st *flowState, in stepup.Input, d stepup.Decision) bool {
	return st.hasSess && d.Outcome == stepup.Fail && d.Error == stepup.ErrUnmet && !in.PromptNone
}

// enrollment applies the rules to one decision. It is the one place they
// are checked, for the page and for every enrollment endpoint alike.
func (h *Handler) enrollment(st *flowState, in stepup.Input, d stepup.Decision) enrollment {
	name := clientName(st.client)
	bootWhy, bootHelp := bootstrapRefusal(st.tr, st.risk, st.user)
	switch {
	case !st.pol.Client(st.client.ID).EnrollDuringStepUp:
		return enrollment{why: "not offered for this app", help: i18n.Msg(i18n.N("%[1]s doesn't offer setting up a new way to sign in here. Add one in your account, then go back to %[1]s."), name)}
	case in.PromptNone:
		return enrollment{why: "prompt=none", help: i18n.Msg(i18n.N("Go back to %s and sign in again."), name)}
	case !st.hasSess:
		return enrollment{why: "not signed in", help: i18n.Msg(i18n.N("Go back to %s and sign in again."), name)}
	case d.Outcome != stepup.Fail || d.Error != stepup.ErrUnmet:
		return enrollment{why: "the level is not out of reach", help: i18n.Msg(i18n.N("Go back to the sign-in page and follow the steps it shows."))}
	case hasSecondFactor(st.factors):
		e := enrollment{why: "a second factor is already enrolled", help: i18n.Msg(i18n.N("%[1]s needs a stronger way to sign in than your account has. Add a passkey or security key in your account, then go back to %[1]s."), name)}
		if h.pendingPasskey(st, in) {
			e.pending = true
			e.help = i18n.Msg(i18n.N("Your new passkey can't be used for %[1]s yet: a passkey added without your strongest sign-in is accepted there %[2]s after it was added, once you've used it on a device and network you've signed in from before. Your administrator can confirm it sooner."),
				name, fmtDuration(st.tr, h.cfg.PasskeyCoolingOff))
		}
		return e
	case bootWhy != "":
		// The portal's words (bootstrapRefusal), translated where shown.
		return enrollment{why: bootWhy, help: i18n.Msg(bootHelp)}
	case !h.passwordFresh(st):
		return enrollment{why: "password not entered in the last 10 minutes", help: i18n.Msg(i18n.N("To set one up here, sign in again with your password first: go back to %s and sign in again."), name)}
	}
	var e enrollment
	cp := st.pol.Client(st.client.ID)
	if h.cfg.WebAuthn != nil && cp.Allows(stepup.WebAuthn) {
		key := stepup.Enrolled{Method: stepup.WebAuthn, UserVerifying: true, Provisional: !h.cfg.PasskeysTrustedAtOnce}
		switch {
		case st.pol.Levels.Unlocks(in, key):
			e.methods = append(e.methods, stepup.WebAuthn)
		case key.Provisional && st.pol.Levels.Unlocks(in, stepup.Enrolled{Method: stepup.WebAuthn, UserVerifying: true}):
			e.methods, e.later = append(e.methods, stepup.WebAuthn), true
		}
	}
	if cp.Allows(stepup.TOTP) && st.pol.Levels.Unlocks(in, stepup.Enrolled{Method: stepup.TOTP}) {
		e.methods = append(e.methods, stepup.TOTP)
	}
	if len(e.methods) == 0 {
		e.why, e.help = "nothing that can be set up here reaches the level", i18n.Msg(i18n.N("%s needs a way to sign in that can't be set up here. Ask your administrator which one, and add it in your account."), name)
	}
	return e
}

// passwordFresh: the password was entered in this session within the last
// 10 minutes (the bootstrap rule, as the portal's requireLevel(sfa) has it).
func (h *Handler) passwordFresh(st *flowState) bool {
	since := h.cfg.Now().Add(-reauthForChanges)
	return slices.ContainsFunc(st.sess.Factors, func(f storage.FactorEvent) bool {
		return f.Method == string(stepup.Password) && !f.At.Before(since)
	})
}

// pendingPasskey: the user has a passkey that is not trusted yet and that,
// once trusted, would let the request go on.
func (h *Handler) pendingPasskey(st *flowState, in stepup.Input) bool {
	return h.cfg.WebAuthn != nil && slices.ContainsFunc(st.factors, func(f storage.Factor) bool {
		return f.Kind == storage.FactorWebAuthn && !factor.Trusted(f)
	}) && st.pol.Levels.Unlocks(in, stepup.Enrolled{Method: stepup.WebAuthn, UserVerifying: true})
}

// enrollPage is the data of the "set one up now" page and its steps.
type enrollPage struct {
	Page
	RequestID  string
	ClientName string
	Username   string
	Help       string // in the page's language
	TOTP       bool
	Passkey    bool
	Later      string // what a passkey set up now does not do yet
	Pending    bool
	Problem    string
	Setup      *totpEnroll // the authenticator app's QR code and key
	Codes      []string    // recovery codes, shown once
	Continue   string
}

// showEnroll is the dispatcher's page for a level the person cannot reach
// at a client that offers enrolling during step-up: the offer, or what to
// do instead, and a way back to the app in either case.
func (h *Handler) showEnroll(w http.ResponseWriter, r *http.Request, st *flowState, in stepup.Input, d stepup.Decision) error {
	e := h.enrollment(st, in, d)
	title := st.tr.T("%s needs a second way to sign in", clientName(st.client))
	if e.why != "" {
		title = st.tr.T("You can't continue to %s yet", clientName(st.client))
	}
	p := enrollPage{Page: h.page(r, title), RequestID: st.ar.ID, ClientName: clientName(st.client), Username: st.user.Username,
		Help: e.help.In(st.tr), TOTP: slices.Contains(e.methods, stepup.TOTP), Passkey: slices.Contains(e.methods, stepup.WebAuthn), Pending: e.pending}
	if e.later {
		p.Later = st.tr.T("A passkey added now signs you in at once, but %[1]s accepts it only %[2]s after it was added, once you've used it on a device and network you've signed in from before, or sooner if your administrator confirms it.",
			clientName(st.client), fmtDuration(st.tr, h.cfg.PasskeyCoolingOff))
	}
	return h.render(w, r, http.StatusOK, "enroll", p)
}

// enrollGuard loads the request a post names and checks that m may be set
// up for it now; a refusal is audited with why and answered plainly.
func (h *Handler) enrollGuard(r *http.Request, id string, m stepup.Method) (*flowState, error) {
	st, err := h.loadFlow(r, id)
	if err != nil {
		return nil, err
	}
	if st.ar.Done {
		return nil, userError(http.StatusBadRequest, "That step isn't expected now", "This sign-in is already finished. Go back to the app.")
	}
	in, d, err := h.decide(r, st)
	if err != nil {
		return nil, err
	}
	e := h.enrollment(st, in, d)
	if e.why == "" && !slices.Contains(e.methods, m) {
		e.why, e.help = "this factor does not reach the level", i18n.Msg(i18n.N("That can't be set up here for %s. Go back to the sign-in page and follow the steps it shows."), clientName(st.client))
	}
	if e.why == "" {
		return st, nil
	}
	if err := h.cfg.Audit.Record(r.Context(), storage.AuditEvent{Type: storage.EventFactorEnrollRefused, UserID: st.user.ID, ActorID: st.user.ID, ClientID: st.client.ID,
		Outcome: "denied", Reason: e.why, Details: riskDetails(st.risk, map[string]string{"factor": string(m), "during_step_up": "true"})}); err != nil {
		return nil, err
	}
	return nil, userError(http.StatusForbidden, "This can't be set up here", e.help.Key, e.help.Args...)
}

// enrollDetails are a step-up enrollment's audit details.
func enrollDetails(st *flowState) map[string]string {
	return map[string]string{"bootstrap": "true", "during_step_up": "true", "request": st.ar.ID}
}

// enrollAD binds a pending secret or a ceremony to the request, the user
// and the session.
func enrollAD(st *flowState) string {
	return "stepup:" + st.ar.ID + ":" + st.user.ID + ":" + sid(st.sess)
}

func (h *Handler) enrollTOTPPage(w http.ResponseWriter, r *http.Request) error {
	st, err := h.enrollGuard(r, r.URL.Query().Get("id"), stepup.TOTP)
	if err != nil {
		return err
	}
	key, err := factor.NewTOTPKey(h.cfg.ProductName, st.user.Username)
	if err != nil {
		return err
	}
	h.sealPendingTOTP(w, enrollTOTPCookie, key.Secret, []byte("totp-pending:"+enrollAD(st)))
	return h.renderEnrollTOTP(w, r, st, key, "", http.StatusOK)
}

func (h *Handler) renderEnrollTOTP(w http.ResponseWriter, r *http.Request, st *flowState, key factor.TOTPKey, problem string, status int) error {
	setup, err := totpSetup(key)
	if err != nil {
		return err
	}
	p := enrollPage{Page: h.page(r, "Set up an authenticator app"), RequestID: st.ar.ID, ClientName: clientName(st.client), Username: st.user.Username,
		Setup: setup, Problem: problem}
	return h.render(w, r, status, "enroll_totp", p)
}

func (h *Handler) postEnrollTOTP(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	st, err := h.enrollGuard(r, r.PostForm.Get("id"), stepup.TOTP)
	if err != nil {
		return err
	}
	ctx := r.Context()
	back := "/login/enroll/totp?id=" + url.QueryEscape(st.ar.ID)
	secret := h.openPendingTOTP(r, enrollTOTPCookie, []byte("totp-pending:"+enrollAD(st)))
	if secret == "" {
		http.Redirect(w, r, back, http.StatusSeeOther)
		return nil
	}
	step, ok := factor.VerifyTOTP(secret, r.PostForm.Get("code"), h.cfg.Now())
	if !ok {
		key := factor.TOTPKey{Secret: secret, URI: totpURI(h.cfg.ProductName, st.user.Username, secret)}
		return h.renderEnrollTOTP(w, r, st, key, st.tr.T("That code didn't work. Check the time on your phone and try again."), http.StatusBadRequest)
	}
	if err := h.addTOTP(ctx, st.user, secret, r.PostForm.Get("name"), step, storage.AuditEvent{ClientID: st.client.ID, Details: enrollDetails(st)}); err != nil {
		return err
	}
	h.cfg.Cookies.Clear(w, enrollTOTPCookie)
	// The first second factor comes with recovery codes, as in the portal.
	codes, err := h.newRecoveryCodes(ctx, st.user.ID, st.client.ID)
	if err != nil {
		return err
	}
	p := enrollPage{Page: h.page(r, "Your authenticator app is set up"), RequestID: st.ar.ID, ClientName: clientName(st.client), Username: st.user.Username,
		Codes: codes, Continue: "/login?id=" + url.QueryEscape(st.ar.ID)}
	return h.render(w, r, http.StatusOK, "enroll_codes", p)
}

func (h *Handler) enrollPasskeyOptions(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	var req loginOptionsRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	st, err := h.enrollGuard(r, req.ID, stepup.WebAuthn)
	if err != nil {
		return err
	}
	return h.beginRegistration(w, r, st.user, enrollAD(st))
}

// enrollPasskeyRequest is the step-up's registerVerifyRequest: the request
// it is for, too.
type enrollPasskeyRequest struct {
	ID string `json:"id"`
	registerVerifyRequest
}

func (h *Handler) enrollPasskeyVerify(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	var req enrollPasskeyRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	st, err := h.enrollGuard(r, req.ID, stepup.WebAuthn)
	if err != nil {
		return err
	}
	// The session is below phr (the user has no second factor): the key
	// is trusted at once only where PasskeysTrustedAtOnce says so.
	if _, err := h.finishRegistration(w, r, st.user, st.sess, enrollAD(st), req.registerVerifyRequest, false,
		storage.AuditEvent{ClientID: st.client.ID, Details: enrollDetails(st)}); err != nil {
		return err
	}
	// Back to the one dispatcher: it decides again with the key enrolled
	// (asking for it, or saying plainly that the app cannot take it yet).
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/login?id=" + url.QueryEscape(st.ar.ID)})
	return nil
}

// postEnrollBack ends a request whose level is out of reach, sending the
// app unmet_authentication_requirements (OIDC Core §5.5.1.1), as the
// dispatcher does at once for a client without the offer.
func (h *Handler) postEnrollBack(w http.ResponseWriter, r *http.Request) error {
	st, err := h.formFlow(r)
	if err != nil {
		return err
	}
	if st.ar.Done {
		http.Redirect(w, r, h.cfg.Callback(r.Context(), st.ar.ID), http.StatusSeeOther)
		return nil
	}
	in, d, err := h.decide(r, st)
	if err != nil {
		return err
	}
	if !h.offersEnroll(st, in, d) {
		http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
		return nil
	}
	why := h.enrollment(st, in, d).why
	if why == "" {
		why = "declined to set one up now"
	}
	return h.fail(w, r, st, d.Error, "level out of reach: "+why)
}
