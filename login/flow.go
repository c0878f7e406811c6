package login

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
	"go.opentelemetry.io/otel/attribute"
)

// flowState is everything the dispatcher looks at for one auth request.
type flowState struct {
	// tr speaks the page's language (ui_locales, the session's saved
	// language, Accept-Language), as chosen when the flow was loaded.
	tr       *i18n.Printer
	pol      *policy.Snapshot // the version the request was parsed under
	ar       storage.AuthRequest
	client   storage.Client
	sess     storage.Session
	user     storage.User
	hasSess  bool // a session for the right user exists
	factors  []storage.Factor
	recovery int
	risk     risk.Assessment
	signIn   storage.SignIn         // this sign-in, recorded as history when it completes
	locked   map[stepup.Method]bool // second factors locked after too many wrong codes
	known    bool                   // from a device and network the user signed in from, when a passkey is ripe (trust.go)
	// approved: the person approved the request's authorization details on
	// the consent page just now; that approval is for this request only
	// and is never stored as a remembered consent.
	approved bool
	// in is the last decision's input, which its audit event records
	// (signin.ReplayKey); decided reports one with a session was made.
	in      stepup.Input
	decided bool
	// disallowed are the user's enrolled factors the client's policy kept
	// from the decision (allowedAt), recorded with the replay.
	disallowed []stepup.Enrolled
	// other is the person whose session this browser holds when it does
	// not count for this request (a hint names someone else): their
	// session ends when another person's first factor is recorded, and
	// the page says so.
	other storage.User
}

var errExpiredRequest = userError(http.StatusBadRequest, "This sign-in link has expired",
	"Go back to the app you came from and start again.")

// loadFlow loads the auth request and checks it belongs to this browser.
func (h *Handler) loadFlow(r *http.Request, id string) (*flowState, error) {
	ctx := r.Context()
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return nil, errExpiredRequest
	}
	ar, err := h.cfg.Store.AuthRequestByID(ctx, id, h.cfg.Now())
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExpired) {
		return nil, errExpiredRequest
	}
	if err != nil {
		return nil, err
	}
	if b := h.cfg.Cookies.ExistingBrowserBinding(r); b == "" || b != ar.BrowserBinding {
		return nil, userError(http.StatusForbidden, "This sign-in started in another browser",
			"For your safety, finish signing in in the browser where you started, or start again from the app here.")
	}
	c, err := h.cfg.Store.ClientByID(ctx, ar.ClientID)
	if err != nil {
		return nil, err
	}
	// The whole sign-in is decided under the policy version it began with.
	pol, err := h.cfg.Policies.At(ctx, ar.PolicyVersion)
	if err != nil {
		return nil, err
	}
	st := &flowState{ar: ar, client: c, pol: pol}
	noteUILocales(ctx, ar.UILocales)
	sess, u, ok, err := h.loadSession(ctx, r)
	if err != nil {
		return nil, err
	}
	// An id_token_hint or login_hint names the user the RP expects (OIDC
	// Core §3.1.2.1); a session of someone else does not count for this
	// request (hintedElse), and the hinted person signs in afresh.
	if ok && hintedElse(ar, sess, u) {
		st.other = u
		noteSaved(ctx, "") // the page is for the hinted person, not u
	} else if ok {
		st.sess, st.user, st.hasSess = sess, u, true
		if err := h.loadFactors(ctx, st); err != nil {
			return nil, err
		}
		if st.known, err = h.knownPlace(r, u.ID, st.factors, sess.CreatedAt); err != nil {
			return nil, err
		}
	}
	st.tr = h.tr(r)
	return st, nil
}

// hintedElse reports whether the request's hints name another person
// than the session's user u. An id_token_hint names a subject exactly. A
// login_hint is compared with the username and the email address, case
// folded; a hint that names nobody counts as another person, so whether
// the session counts never tells whether some account exists. Once the
// session has a factor proved for this very request, the person at the
// browser has chosen: a login_hint is only a hint, and it no longer
// sets their session aside (an id_token_hint still does; the password
// post refuses anyone else).
func hintedElse(ar storage.AuthRequest, sess storage.Session, u storage.User) bool {
	if ar.IDTokenHintSubject != "" && ar.IDTokenHintSubject != u.ID {
		return true
	}
	if ar.LoginHint == "" || provedFor(sess, ar.ID) {
		return false
	}
	return !strings.EqualFold(ar.LoginHint, u.Username) && (u.Email == "" || !strings.EqualFold(ar.LoginHint, u.Email))
}

// provedFor reports whether a factor of session s was proved for request id.
func provedFor(s storage.Session, id string) bool {
	return slices.ContainsFunc(s.Factors, func(f storage.FactorEvent) bool { return f.Request == id })
}

func (h *Handler) loadFactors(ctx context.Context, st *flowState) error {
	fs, err := h.cfg.Store.ListFactors(ctx, st.user.ID)
	if err != nil {
		return err
	}
	n, err := h.cfg.Store.CountRecoveryCodes(ctx, st.user.ID)
	if err != nil {
		return err
	}
	st.factors, st.recovery = fs, n
	return nil
}

// input builds the stepup input for the request and session.
func (h *Handler) input(st *flowState) stepup.Input {
	in := signin.InputOf(st.ar, h.cfg.Now())
	signin.RaiseFloors(&in, st.pol.Levels, st.client, st.pol.ScopeFloors(st.client.ID, st.ar.Scopes))
	in.NoSession = !st.hasSess
	if st.hasSess {
		in.Done = doneAt(st, signin.FactorsOf(st.sess.Factors, st.ar.ID))
		in.Enrolled, st.disallowed = allowedAt(st, h.enrolledAt(st.user, st.factors, st.recovery, st.known))
		in.Preferred = st.pol.Client(st.client.ID).Preferred
	}
	return in
}

// allowed reports whether the client's policy lets this sign-in use m.
func allowed(st *flowState, m stepup.Method) bool { return st.pol.Client(st.client.ID).Allows(m) }

// allowedAt splits the enrolled factors into those the client's policy
// lets the step-up ask for (policy.Client.Allows; the password always)
// and the rest, which the audit records (signin.Replay.Disallowed). The
// decision then neither offers another nor counts a level reachable
// through one, so a person whose only second factors are not allowed here
// meets the same "can't reach" as one who has none, and every factor
// endpoint's expects check refuses them.
//
// Factors already done in the session are filtered the same way
// (doneAt): a client's factors are the factors this app accepts, so a
// TOTP done at another app, or here before an admin narrowed the list,
// does not count here and the step-up asks for an allowed one. The amr
// the token carries comes from the counted factors only, so it names
// exactly what the acr rests on.
func allowedAt(st *flowState, en []stepup.Enrolled) (allowed, not []stepup.Enrolled) {
	c := st.pol.Client(st.client.ID)
	for _, e := range en {
		if c.Allows(e.Method) {
			allowed = append(allowed, e)
		} else {
			not = append(not, e)
		}
	}
	return allowed, not
}

// doneAt keeps the session's done factors the client's policy allows
// (allowedAt says why the others do not count here).
func doneAt(st *flowState, done []stepup.Factor) []stepup.Factor {
	c := st.pol.Client(st.client.ID)
	return slices.DeleteFunc(done, func(f stepup.Factor) bool { return !c.Allows(f.Method) })
}

// flow is the one dispatcher: it runs on entry and after every factor, asks
// stepup.Decide what is missing and shows exactly that, or finishes.
func (h *Handler) flow(w http.ResponseWriter, r *http.Request) error {
	st, err := h.loadFlow(r, r.URL.Query().Get("id"))
	if err != nil {
		return err
	}
	return h.dispatch(w, r, st, r.URL.Query().Get("method"), "")
}

// decide is what the request needs now: the input and decision the
// dispatcher acts on, risk included. It is the one place login asks
// stepup.Decide (TestOneDecision pins it); every factor endpoint asks it
// whether its method is expected (expects) before it checks anything, and
// the consent post asks it again before it finishes.
func (h *Handler) decide(r *http.Request, st *flowState) (stepup.Input, stepup.Decision, error) {
	ctx, span := h.cfg.Tracer.Start(r.Context(), "keystep.stepup.decide")
	defer span.End()
	if span.IsRecording() {
		r = r.WithContext(ctx) // risk's storage calls inside the decision
	}
	in := h.input(st)
	if st.hasSess {
		// Nobody to assess without a session: the first factor comes first.
		if err := h.assessRisk(r, st, &in); err != nil {
			return in, stepup.Decision{}, err
		}
	}
	st.in, st.decided = in, st.hasSess
	d := stepup.Decide(st.pol.Levels, in)
	span.SetAttributes(attribute.String("keystep.acr.target", d.Target), attribute.String("keystep.decision.outcome", d.Outcome.String()))
	return in, d, nil
}

// expects reports whether the request is waiting for method m now, in the
// decision's own terms: a factor only ever adds to what the decision asks
// for next, so a code never stands in for a first factor the decision
// wants (a drifted session's password, say). It changes nothing.
func (h *Handler) expects(r *http.Request, st *flowState, m stepup.Method) (bool, error) {
	if st.ar.Done {
		return false, nil
	}
	_, d, err := h.decide(r, st)
	if err != nil {
		return false, err
	}
	return d.Outcome == stepup.NeedFactor && slices.Contains(d.Next, m), nil
}

func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, st *flowState, method, problem string) error {
	ctx := r.Context()
	if st.ar.Done {
		http.Redirect(w, r, h.cfg.Callback(ctx, st.ar.ID), http.StatusSeeOther)
		return nil
	}
	if h.choosing(r, st) {
		// prompt=select_account: the account choice comes first (OIDC
		// Core §3.1.2.1).
		return h.showChooser(w, r, st)
	}
	in, d, err := h.decide(r, st)
	if err != nil {
		return err
	}
	switch {
	case d.Outcome == stepup.Fail && !st.hasSess:
		return h.fail(w, r, st, d.Error, "no session")
	case d.Outcome == stepup.Fail && h.offersEnroll(st, in, d):
		// Out of reach at a client that offers "set one up now" (enroll.go).
		return h.showEnroll(w, r, st, in, d)
	case d.Outcome == stepup.Fail:
		return h.fail(w, r, st, d.Error, "step-up decision")
	case d.Outcome == stepup.Satisfied:
		return h.finish(w, r, st, d, in)
	case !st.hasSess:
		// The first factor's page: no user yet whose locks to look up or
		// whose step-up to audit.
		return h.showFactor(w, r, st, d, d.Next[0], problem)
	}
	m := d.Next[0]
	if method != "" && slices.Contains(d.Next, stepup.Method(method)) {
		m = stepup.Method(method)
	}
	if st.locked, err = h.lockedFactors(ctx, st.user.ID); err != nil {
		return err
	}
	if method == "" && st.locked[m] {
		// Lead with a way that still works; the page says why.
		if i := slices.IndexFunc(d.Next, func(o stepup.Method) bool { return !st.locked[o] }); i >= 0 {
			m = d.Next[i]
		}
	}
	if method == "" && problem == "" {
		// DESIGN §7: step-up requested, with what was asked and why.
		reasons := make([]string, len(d.Reasons))
		for i, r := range d.Reasons {
			reasons[i] = string(r)
		}
		next := make([]string, len(d.Next))
		for i, n := range d.Next {
			next[i] = string(n)
		}
		if err := h.cfg.Audit.Record(r.Context(), storage.AuditEvent{Type: storage.EventStepupRequested, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "challenged",
			Details: decisionDetails(st, map[string]string{"target": d.Target, "reasons": strings.Join(reasons, " "), "offered": strings.Join(next, " "),
				"requested_acr": strings.Join(in.Requested, " ")})}); err != nil {
			return err
		}
	}
	return h.showFactor(w, r, st, d, m, problem)
}

// assessRisk assesses this sign-in and raises the input accordingly.
func (h *Handler) assessRisk(r *http.Request, st *flowState, in *stepup.Input) error {
	info := web.Info(r.Context())
	a, cur, err := h.assessor(st.pol).Assess(r.Context(), signin.RiskInput{
		User: st.user, ClientID: st.client.ID, Scopes: st.ar.Scopes, IP: info.IP, UserAgent: info.UserAgent,
		DeviceID: h.cfg.Cookies.ExistingBrowserBinding(r), Session: &st.sess,
	})
	if err != nil {
		return err
	}
	st.risk, st.signIn = a, cur
	signin.ApplyRisk(in, a)
	return nil
}

// PolicyVersionKey is the audit detail of every decision event
// (stepup.requested, login.completed, login.failed) naming the policy
// version it was decided under (policy.Snapshot.Version; 0 is the server's
// own configuration).
const PolicyVersionKey = "policy_version"

// decisionDetails are a decision's audit fields: the assessment's and the
// decision's input, for the policy impact preview to decide it again, and
// the policy version it was decided under.
func decisionDetails(st *flowState, d map[string]string) map[string]string {
	if st.decided {
		r := signin.ReplayOf(st.ar.ID, st.ar.Scopes, st.in)
		r.Disallowed = signin.ReplayEnrolled(st.disallowed)
		d[signin.ReplayKey] = r.Encode()
	}
	// The version the decision was made under: a sign-in in flight is
	// decided under the one its request was parsed under to the end.
	d[PolicyVersionKey] = strconv.FormatInt(st.pol.Version, 10)
	return riskDetails(st.risk, d)
}

// riskDetails are an assessment's audit fields.
func riskDetails(a risk.Assessment, d map[string]string) map[string]string {
	d["risk_score"] = strconv.Itoa(a.Score)
	d["risk_band"] = a.Band.String()
	d["risk_signals"] = signin.SignalNames(a)
	return d
}

// finish completes the request once the level is met (and consent given).
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, st *flowState, d stepup.Decision, in stepup.Input) error {
	ctx := r.Context()
	if need, err := h.needsConsent(ctx, st); err != nil {
		return err
	} else if need {
		if in.PromptNone {
			return h.fail(w, r, st, "consent_required", "consent needed")
		}
		return h.showConsent(w, r, st)
	}
	// A passkey proved in this sign-in lifts the lock of a code factor, as a
	// code does when it succeeds (settle): a passwordless sign-in does not
	// pass through settle.
	if slices.ContainsFunc(st.sess.Factors, func(f storage.FactorEvent) bool {
		return f.Method == string(stepup.WebAuthn) && !f.At.Before(st.ar.CreatedAt)
	}) {
		if err := h.liftLocks(ctx, st.user.ID); err != nil {
			return err
		}
	}
	if st.user.PasswordCompromised && st.client.ID != h.cfg.AccountClientID {
		// The password was reported compromised (Shared Signals): the
		// risk floor had a second factor proved, and now the person
		// changes it in the portal before any app gets a sign-in.
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventLoginFailed, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "denied",
			Reason: "password reported compromised: it must be changed first", Details: riskDetails(st.risk, map[string]string{"why": signin.SignalPasswordCompromised})}); err != nil {
			return err
		}
		if slices.Contains(st.ar.Prompt, "none") {
			// OIDC Core §3.1.2.1: no page under prompt=none; the app
			// learns the person has something to do.
			return h.fail(w, r, st, "interaction_required", "the password must be changed first")
		}
		http.Redirect(w, r, passwordChangePath, http.StatusSeeOther)
		return nil
	}
	res := storage.AuthResult{Subject: st.user.ID, ACR: d.ACR, AMR: d.AMR, AuthTime: d.AuthTime, SessionID: sid(st.sess)}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{
		Type: storage.EventLoginCompleted, UserID: st.user.ID, ActorID: st.user.ID, ClientID: st.client.ID, Outcome: "success",
		Details: decisionDetails(st, map[string]string{
			"requested_acr": strings.Join(st.ar.Requirement.ACR, " "), "achieved_acr": d.ACR,
			"amr": strings.Join(d.AMR, " "), "target": d.Target, "risk_waived": strconv.FormatBool(d.RiskWaived),
		}),
	}); err != nil {
		return err
	}
	if err := h.cfg.Store.CompleteAuthRequest(ctx, st.ar.ID, res); err != nil {
		return err
	}
	if err := h.notifySignIn(ctx, st.user, st.risk); err != nil {
		return err
	}
	if err := h.closeRecoveryOnSecondFactor(ctx, st.user, st.sess); err != nil {
		return err
	}
	// A sign-in that fell short of its risk floor (waived: the user had no
	// factor to meet it) does not make its device and network the user's
	// own: else a second sign-in from a stranger's place would look like
	// home, and the bootstrap exception (DESIGN §3.3) would open to it.
	if st.signIn.UserID != "" && !d.RiskWaived {
		if err := h.cfg.Store.RecordSignIn(ctx, st.signIn); err != nil {
			return err
		}
	}
	http.Redirect(w, r, h.cfg.Callback(ctx, st.ar.ID), http.StatusSeeOther)
	return nil
}

// fail ends the request with an OAuth error sent to the client's (already
// validated) redirect URI.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, st *flowState, code, why string) error {
	if err := h.abandon(r.Context(), w, st, code, why); err != nil {
		return err
	}
	http.Redirect(w, r, errorRedirect(st.ar, code, errorDescriptions[code]), http.StatusSeeOther)
	return nil
}

// abandon ends the request without a result: audited with the OAuth
// error code, deleted, and the session ended when risk refused it.
func (h *Handler) abandon(ctx context.Context, w http.ResponseWriter, st *flowState, code, why string) error {
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{
		Type: storage.EventLoginFailed, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "failure", Reason: code,
		Details: decisionDetails(st, map[string]string{"requested_acr": strings.Join(st.ar.Requirement.ACR, " "), "why": why}),
	}); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteAuthRequest(ctx, st.ar.ID); err != nil {
		return err
	}
	if st.hasSess && (st.risk.Deny || st.risk.Band >= risk.High) && code == "access_denied" {
		// Risk refused this context: the password it proved must not
		// leave a session behind for another path (the portal) to use.
		if err := h.endSession(ctx, w, st.sess, "risk: "+signin.SignalNames(st.risk)); err != nil {
			return err
		}
	}
	return nil
}

var errorDescriptions = map[string]string{
	"login_required":                    "the user is not signed in at the requested level",
	"consent_required":                  "the user has not consented to this client",
	"unmet_authentication_requirements": "the requested authentication level cannot be met for this user",
	"access_denied":                     "the request was denied",
	"interaction_required":              "user interaction is required",
}

// errorRedirect builds the authorization error response (RFC 6749 §4.1.2.1).
func errorRedirect(ar storage.AuthRequest, code, desc string) string {
	v := url.Values{"error": {code}}
	if desc != "" {
		v.Set("error_description", desc)
	}
	if ar.State != "" {
		v.Set("state", ar.State)
	}
	u, err := url.Parse(ar.RedirectURI)
	if err != nil {
		return ar.RedirectURI
	}
	if ar.ResponseMode == "fragment" {
		u.Fragment = v.Encode()
		return u.String()
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// ---- pages ----

// factorPage is the data of the password, code and recovery pages.
type factorPage struct {
	Page
	RequestID  string
	ClientName string
	Headline   string
	Reason     string
	Username   string // known user (read-only) or login_hint
	KnownUser  bool
	Problem    string
	Others     []otherWay
	Remaining  int
	Passkeys   bool // passkeys are on: offer "Sign in with a passkey"
	// Locked: this page's factor is locked after too many wrong codes, so
	// it shows LockedNote and the other ways instead of a form.
	Locked     bool
	LockedNote string
	// Approving is the request's authorization details as the person
	// reads them ("You're approving"), shown above the factor.
	Approving []details.Item
	// Cancel is the Cancel button's label, naming where it goes; the
	// page has none when it is "" (purpose.cancel).
	Cancel string
	// Notice is about another person's session in this browser
	// (switchNotice).
	Notice string
}

type otherWay struct {
	Method string
	Label  string
}

// lockedNames say which factor is locked, and why.
var lockedNames = map[stepup.Method]string{
	stepup.TOTP:     i18n.N("Your authenticator app is locked after 100 wrong codes in a row."),
	stepup.Recovery: i18n.N("Your recovery codes are locked after 100 wrong codes in a row."),
}

// lockedNote tells the person which of the offered ways are locked and
// what unlocks them (README, "Abuse resistance"), in tr's language; ""
// when none is.
func lockedNote(tr *i18n.Printer, locked map[stepup.Method]bool, next []stepup.Method, here, others bool) string {
	var note []string
	for _, m := range next {
		if locked[m] {
			note = append(note, tr.T(lockedNames[m]))
		}
	}
	switch {
	case len(note) == 0:
		return ""
	case here && others:
		note = append(note, tr.T("Use another way below; signing in with it unlocks it again."))
	case here:
		note = append(note, tr.T("Ask your administrator to unlock it."))
	default:
		note = append(note, tr.T("Signing in another way unlocks it again."))
	}
	return strings.Join(note, " ")
}

func clientName(c storage.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// explain turns stepup reasons into the page's headline and one plain
// line, in the words of what the sign-in is for (purposeOf): an app by
// its name, the account portal, the admin console. Both are in the
// page's language (st.tr).
func explain(st *flowState, d stepup.Decision, pu purpose) (headline, reason string) {
	tr, name := st.tr, pu.name
	has := func(r stepup.Reason) bool { return slices.Contains(d.Reasons, r) }
	switch {
	case !st.hasSess || has(stepup.ReasonNoSession) && len(st.sess.Factors) == 0:
		return tr.T("Sign in"), pu.continueTo(tr)
	case has(stepup.ReasonRisk):
		if rs := st.risk.Reasons(); len(rs) > 0 {
			// The risk engine's reasons are English keys (risk.Reason).
			return tr.T("Confirm it's you"), tr.T("%s To keep your account safe, we need one more check.", tr.T(rs[0]))
		}
		return tr.T("Confirm it's you"), tr.T("Something about this sign-in is unusual, so we need one more check.")
	case has(stepup.ReasonTransaction) && pu.kind == forApp:
		return tr.T("%s asks you to approve this", name), tr.T("Check the details, then confirm it's you.")
	case pu.kind == forConsole:
		return tr.T("Confirm it's you to open the admin console"), tr.T("The admin console asks for a recent, strong sign-in, because changes there affect everyone who signs in.")
	case pu.kind == forLost:
		return tr.T("Confirm it's you"), tr.T("To report a lost second factor, confirm it's you first.")
	case pu.kind == forAccount:
		// The portal asks again only before a change to the account.
		return tr.T("Confirm it's you"), tr.T("This change to your account needs an extra check.")
	case has(stepup.ReasonRequested), has(stepup.ReasonClientMin), has(stepup.ReasonScope):
		return tr.T("%s needs you to confirm it's you", name), tr.T("This part of %s asks for an extra check.", name)
	case has(stepup.ReasonPromptLogin), has(stepup.ReasonMaxAge):
		return tr.T("Sign in again"), tr.T("%s asks you to confirm it's still you.", name)
	case has(stepup.ReasonStale):
		return tr.T("Confirm it's you"), tr.T("It's been a while since you last signed in.")
	}
	return tr.T("Sign in"), pu.continueTo(tr)
}

func (h *Handler) showFactor(w http.ResponseWriter, r *http.Request, st *flowState, d stepup.Decision, m stepup.Method, problem string) error {
	pu := h.purposeOf(r, st)
	headline, reason := explain(st, d, pu)
	approving, err := h.approving(st)
	if err != nil {
		return err
	}
	p := factorPage{
		Page: h.page(r, headline), RequestID: st.ar.ID, ClientName: clientName(st.client),
		Headline: headline, Reason: reason, Problem: st.tr.T(problem), Passkeys: h.cfg.WebAuthn != nil && allowed(st, stepup.WebAuthn),
		Approving: approving, Cancel: pu.cancel, Notice: switchNotice(r, st),
	}
	switch {
	case st.hasSess:
		p.Username, p.KnownUser = st.user.Username, true
	case r.URL.Query().Get(switchedParam) == "":
		// After a switch the hint may name the person who just left.
		p.Username = st.ar.LoginHint
	}
	for _, o := range d.Next {
		if o != m && !st.locked[o] {
			p.Others = append(p.Others, otherWay{Method: string(o), Label: st.tr.T(signin.Label(o))})
		}
	}
	status := http.StatusOK
	if problem != "" {
		status = http.StatusUnauthorized
	}
	p.Locked = st.locked[m]
	if p.Locked {
		status = http.StatusForbidden
	}
	p.LockedNote = lockedNote(st.tr, st.locked, d.Next, p.Locked, len(p.Others) > 0)
	switch m {
	case stepup.Password:
		name := "signin"
		if p.KnownUser {
			name = "password"
		}
		return h.render(w, r, status, name, p)
	case stepup.TOTP:
		return h.render(w, r, status, "otp", p)
	case stepup.Recovery:
		p.Remaining = st.recovery
		return h.render(w, r, status, "recovery", p)
	case stepup.WebAuthn:
		if h.cfg.WebAuthn != nil {
			return h.render(w, r, status, "webauthn", p)
		}
	}
	return userError(http.StatusNotImplemented, "That sign-in method isn't available", "Use another way to sign in.")
}

type consentPage struct {
	Page
	RequestID  string
	ClientName string
	Username   string
	Scopes     []string
	// Approving is the request's authorization details: the page is then
	// an approval of them, for this request only.
	Approving []details.Item
}

// scopeText says in plain words what each scope lets an app do.
var scopeText = map[string]string{
	"openid":         i18n.N("Know who you are"),
	"profile":        i18n.N("See your username"),
	"email":          i18n.N("See your email address"),
	"offline_access": i18n.N("Stay signed in to the app when you're not using it"),
}

func (h *Handler) needsConsent(ctx context.Context, st *flowState) (bool, error) {
	if st.ar.AuthorizationDetails != "" {
		// RFC 9396: details are approved each time, by every client's
		// user, first-party included; a remembered consent covers scopes,
		// never a transaction.
		return !st.approved, nil
	}
	if st.client.FirstParty || st.client.ID == h.cfg.AccountClientID {
		return false, nil
	}
	if slices.Contains(st.ar.Prompt, "consent") {
		return true, nil
	}
	granted, err := h.cfg.Store.ConsentedScopes(ctx, st.user.ID, st.client.ID)
	if err != nil {
		return false, err
	}
	for _, s := range st.ar.Scopes {
		if !slices.Contains(granted, s) {
			return true, nil
		}
	}
	return false, nil
}

func (h *Handler) showConsent(w http.ResponseWriter, r *http.Request, st *flowState) error {
	approving, err := h.approving(st)
	if err != nil {
		return err
	}
	title := i18n.N("Allow access")
	if approving != nil {
		title = i18n.N("Approve")
	}
	p := consentPage{Page: h.page(r, title), RequestID: st.ar.ID, ClientName: clientName(st.client), Username: st.user.Username, Approving: approving}
	if approving != nil && (st.client.FirstParty || st.client.ID == h.cfg.AccountClientID) {
		// A first-party app is not asked about scopes: the page approves
		// the details only.
		return h.render(w, r, http.StatusOK, "consent", p)
	}
	for _, s := range st.ar.Scopes {
		if t, ok := scopeText[s]; ok {
			p.Scopes = append(p.Scopes, st.tr.T(t))
		}
	}
	return h.render(w, r, http.StatusOK, "consent", p)
}

// ---- form posts ----

// formFlow parses a form and loads the flow it names.
func (h *Handler) formFlow(r *http.Request) (*flowState, error) {
	if err := r.ParseForm(); err != nil {
		return nil, userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	for _, vs := range r.PostForm {
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
			}
		}
	}
	return h.loadFlow(r, r.PostForm.Get("id"))
}

// passwordChangePath is the portal's password page, where a person whose
// password was reported compromised is sent after a second factor.
const passwordChangePath = "/account/password?notice=compromised"

// badCredentials is the one answer to an unknown user and a wrong password.
var badCredentials = i18n.N("That username and password don't match. Check them and try again.")

func (h *Handler) postPassword(w http.ResponseWriter, r *http.Request) error {
	st, err := h.formFlow(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	username := strings.TrimSpace(r.PostForm.Get("username"))
	if st.hasSess && username == "" {
		username = st.user.Username
	}
	password := r.PostForm.Get("password")
	ip := web.Info(ctx).IP
	if until, err := h.ipBlocked(ctx, ip); err != nil {
		return err
	} else if !until.IsZero() {
		h.cfg.Hasher.VerifyDummy(password)
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventLoginThrottled, ClientID: st.client.ID, Outcome: "denied", Reason: "too many failures from this address", Details: map[string]string{"username": username}}); err != nil {
			return err
		}
		return h.tooMany(w, r, until)
	}
	if stuffed, err := h.stuffing(ctx, ip, username); err != nil {
		return err
	} else if stuffed {
		h.cfg.Hasher.VerifyDummy(password)
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventLoginThrottled, ClientID: st.client.ID, Outcome: "denied", Reason: "credential stuffing: too many accounts failing from this address", Details: map[string]string{"username": username}}); err != nil {
			return err
		}
		return h.tooMany(w, r, h.cfg.Now().Add(time.Hour))
	}
	place, err := h.placeOf(ctx, r, username, ip)
	if err != nil {
		return err
	}
	keys, at := passwordKeys(username, place, ip), h.cfg.Now()
	if err := h.reserveAt(ctx, keys, at); err != nil {
		var th errThrottled
		if errors.As(err, &th) {
			if aerr := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventLoginThrottled, ClientID: st.client.ID, Outcome: "denied", Reason: "too many failed attempts", Details: map[string]string{"username": username, "place": place}}); aerr != nil {
				return aerr
			}
			h.cfg.Hasher.VerifyDummy(password) // the same cost as a real check
			if place == throttle.PlaceOther && th.blocks(throttle.AccountLockKey(username, place)) {
				// The new-places budget is spent: the owner still has
				// her known devices and networks, and passkeys.
				return h.slowDown(w, r, th.until, i18n.N("Too many failed sign-ins from new devices. Sign in on a device you've used before, or with a passkey, or wait %s."))
			}
			return h.tooMany(w, r, th.until)
		}
		return err
	}
	u, ok, err := h.checkPassword(ctx, username, password)
	if err != nil {
		return err
	}
	if !ok {
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventLoginPassword, UserID: u.ID, ClientID: st.client.ID, Outcome: "failure", Reason: "bad credentials", Details: map[string]string{"username": username}}); err != nil {
			return err
		}
		if err := h.countIPFailure(ctx, ip); err != nil {
			return err
		}
		st.ar.LoginHint = username
		return h.dispatch(w, r, st, string(stepup.Password), badCredentials)
	}
	if err := h.settle(ctx, keys); err != nil {
		return err
	}
	// The right password takes back its own reservation of the hard-lock
	// budget and no more: the owner's sign-ins neither spend nor refill
	// it, so it bounds a guesser's failures per place and day exactly, and
	// a real account is answered like an unknown one.
	if err := h.cfg.Store.ReleaseFailure(ctx, []storage.ThrottleKey{throttle.AccountLockKey(username, place)}, at); err != nil {
		return err
	}
	if err := h.settleStuffing(ctx, ip, username); err != nil {
		return err
	}
	if st.ar.IDTokenHintSubject != "" && st.ar.IDTokenHintSubject != u.ID {
		return userError(http.StatusForbidden, "That's a different account", "The app asked for another account. Go back to the app and sign in with the account it expects.")
	}
	// Audit first: a security event whose audit write fails must not happen.
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventLoginPassword, UserID: u.ID, ActorID: u.ID, ClientID: st.client.ID, Outcome: "success"}); err != nil {
		return err
	}
	ev := storage.FactorEvent{Method: string(stepup.Password), At: h.cfg.Now(), Request: st.ar.ID}
	if err := h.recordApproval(r, st, u, ev); err != nil {
		return err
	}
	if _, err := h.addFactor(w, r, u.ID, ev); err != nil {
		return err
	}
	http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
	return nil
}

// checkPassword verifies a username and password. Unknown users and disabled
// accounts cost the same hash and get the same answer as a wrong password,
// so the page reveals nothing about which accounts exist.
func (h *Handler) checkPassword(ctx context.Context, username, password string) (storage.User, bool, error) {
	if username == "" || len(username) > 256 || len(password) > 1024 {
		h.cfg.Hasher.VerifyDummy(password)
		return storage.User{}, false, nil
	}
	u, err := h.cfg.Store.UserByUsername(ctx, username)
	if errors.Is(err, storage.ErrNotFound) || err == nil && u.PasswordHash == "" {
		h.cfg.Hasher.VerifyDummy(password)
		return storage.User{}, false, nil
	}
	if err != nil {
		return storage.User{}, false, err
	}
	ok, err := h.cfg.Hasher.Verify(u.PasswordHash, password)
	if err != nil {
		return storage.User{}, false, err
	}
	if !ok || u.Disabled {
		return u, false, nil
	}
	return u, true, nil
}

// reasonNotAllowed is the audit reason of a factor the client's policy
// does not allow (policy.Client.Factors).
const reasonNotAllowed = "factor not allowed for this app"

// secondFactor is shared by the code and recovery-code posts: the session's
// user proves one more factor for this request.
func (h *Handler) secondFactor(w http.ResponseWriter, r *http.Request, m stepup.Method, verify func(ctx context.Context, st *flowState, input string) (storage.FactorEvent, bool, error)) error {
	st, err := h.formFlow(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	// A code only adds to a session whose first factor the decision counts:
	// with no session, or one presented from another network and browser
	// (drift: the password is asked again), it is not what the request
	// waits for, and it is refused before anything is checked or recorded.
	if ok, err := h.expects(r, st, m); err != nil {
		return err
	} else if !ok {
		reason := "factor not expected now"
		if !allowed(st, m) {
			reason = reasonNotAllowed
		}
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "denied", Reason: reason, Details: riskDetails(st.risk, map[string]string{"factor": string(m)})}); err != nil {
			return err
		}
		return userError(http.StatusBadRequest, "That step isn't expected now",
			"This sign-in is waiting for something else. Go back to the sign-in page and follow the steps it shows.")
	}
	// The factor's lock count is reserved with the others: of concurrent
	// guesses no more than the lock's 100 are checked.
	lock := throttle.FactorLockKey(st.user.ID, m)
	keys := append(factorKeys(st.user.ID, st.ar.ID), lock)
	if err := h.reserve(ctx, keys); err != nil {
		var th errThrottled
		if !errors.As(err, &th) {
			return err
		}
		reason := "too many wrong codes"
		if th.blocks(lock) {
			reason = "factor locked"
		}
		if aerr := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupThrottled, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "denied", Reason: reason, Details: map[string]string{"factor": string(m)}}); aerr != nil {
			return aerr
		}
		if th.blocks(lock) {
			return h.dispatch(w, r, st, string(m), "") // the locked page, with the other ways
		}
		return h.tooMany(w, r, th.until)
	}
	ev, ok, err := verify(ctx, st, r.PostForm.Get("code"))
	if err != nil {
		return err
	}
	if ok {
		if err := h.settle(ctx, keys); err != nil {
			return err
		}
	}
	if !ok {
		n, err := h.cfg.Store.RecordAuthRequestFailure(ctx, st.ar.ID)
		if err != nil {
			return err
		}
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "failure", Reason: "wrong code", Details: map[string]string{"factor": string(m)}}); err != nil {
			return err
		}
		if locked, err := h.lockedFactors(ctx, st.user.ID); err != nil {
			return err
		} else if locked[m] {
			// This failure was the 100th in a row (NIST SP 800-63B §5.2.2).
			if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorLocked, UserID: st.user.ID, ClientID: st.client.ID, Outcome: "locked", Reason: "100 wrong codes in a row", Details: map[string]string{"factor": string(m)}}); err != nil {
				return err
			}
		}
		if n >= throttle.MaxCodeFailures {
			return h.fail(w, r, st, "access_denied", "too many wrong codes")
		}
		msg := i18n.N("That code didn't work. Check the time on your phone and try again.")
		if m == stepup.Recovery {
			msg = i18n.N("That recovery code didn't work. Each code works once; try another one.")
		}
		return h.dispatch(w, r, st, string(m), msg)
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventStepupFactor, UserID: st.user.ID, ActorID: st.user.ID, ClientID: st.client.ID, Outcome: "success", Details: map[string]string{"factor": string(m)}}); err != nil {
		return err
	}
	ev.Request = st.ar.ID
	// A code cannot commit to the details; the row records that they were
	// on the page it was typed on (committed=false).
	if err := h.recordApproval(r, st, st.user, ev); err != nil {
		return err
	}
	if _, err := h.addFactor(w, r, st.user.ID, ev); err != nil {
		return err
	}
	http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
	return nil
}

func (h *Handler) postOTP(w http.ResponseWriter, r *http.Request) error {
	return h.secondFactor(w, r, stepup.TOTP, func(ctx context.Context, st *flowState, code string) (storage.FactorEvent, bool, error) {
		return h.verifyTOTP(ctx, st.user.ID, st.factors, code)
	})
}

// verifyTOTP checks code against the user's authenticator apps; each time
// step is accepted once per user (NIST SP 800-63B §5.1.4.2).
func (h *Handler) verifyTOTP(ctx context.Context, userID string, factors []storage.Factor, code string) (storage.FactorEvent, bool, error) {
	now := h.cfg.Now()
	for _, f := range factors {
		if f.Kind != storage.FactorTOTP {
			continue
		}
		secret, err := h.cfg.Sealer.Open(f.Secret, totpAD(userID))
		if err != nil {
			return storage.FactorEvent{}, false, err
		}
		step, ok := factor.VerifyTOTP(string(secret), code, now)
		if !ok {
			continue
		}
		err = h.cfg.Store.UseTOTPStep(ctx, userID, step, now)
		if errors.Is(err, storage.ErrReplayed) {
			return storage.FactorEvent{}, false, nil
		}
		if err != nil {
			return storage.FactorEvent{}, false, err
		}
		f.LastUsedAt = now
		if err := h.cfg.Store.UpdateFactor(ctx, f); err != nil {
			return storage.FactorEvent{}, false, err
		}
		return storage.FactorEvent{Method: string(stepup.TOTP), At: now, CredentialID: f.ID}, true, nil
	}
	return storage.FactorEvent{}, false, nil
}

func totpAD(userID string) []byte { return []byte("totp:" + userID) }

func (h *Handler) postRecovery(w http.ResponseWriter, r *http.Request) error {
	return h.secondFactor(w, r, stepup.Recovery, func(ctx context.Context, st *flowState, code string) (storage.FactorEvent, bool, error) {
		now := h.cfg.Now()
		if len(code) > 64 {
			return storage.FactorEvent{}, false, nil
		}
		left, legacy, err := h.useRecoveryCode(ctx, st.user.ID, code, now)
		if errors.Is(err, storage.ErrNotFound) {
			return storage.FactorEvent{}, false, nil
		}
		if err != nil {
			return storage.FactorEvent{}, false, err
		}
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorRecoveryCodeUsed, UserID: st.user.ID, ActorID: st.user.ID, ClientID: st.client.ID, Outcome: "success", Details: map[string]string{"remaining": itoa(left), "legacy_hash": strconv.FormatBool(legacy)}}); err != nil {
			return storage.FactorEvent{}, false, err
		}
		return storage.FactorEvent{Method: string(stepup.Recovery), At: now}, true, nil
	})
}

// useRecoveryCode spends the user's code stored under its keyed hash, or
// else under the legacy plain SHA-256 of codes issued before keyed hashes
// (factor.HashRecoveryCode): such a code verifies once and is spent like
// any other, so legacy hashes leave the database as their codes are used or
// replaced. legacy reports which one matched.
func (h *Handler) useRecoveryCode(ctx context.Context, userID, code string, now time.Time) (left int, legacy bool, err error) {
	left, err = h.cfg.Store.UseRecoveryCode(ctx, userID, factor.RecoveryCodeMAC(h.cfg.Sealer, userID, code), now)
	if !errors.Is(err, storage.ErrNotFound) {
		return left, false, err
	}
	left, err = h.cfg.Store.UseRecoveryCode(ctx, userID, factor.HashRecoveryCode(code), now)
	return left, true, err
}

func (h *Handler) postConsent(w http.ResponseWriter, r *http.Request) error {
	st, err := h.formFlow(r)
	if err != nil {
		return err
	}
	if !st.hasSess {
		http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
		return nil
	}
	ctx := r.Context()
	if r.PostForm.Get("decision") != "allow" {
		return h.fail(w, r, st, "access_denied", "consent refused")
	}
	if st.ar.AuthorizationDetails != "" {
		// An approval of details holds for this request only: nothing is
		// saved, so the next request asks again.
		st.approved = true
	} else if err := h.cfg.Store.SaveConsent(ctx, st.user.ID, st.client.ID, st.ar.Scopes, h.cfg.Now()); err != nil {
		return err
	}
	// Consent is given; prompt=consent has been honoured for this request.
	st.ar.Prompt = slices.DeleteFunc(st.ar.Prompt, func(p string) bool { return p == "consent" })
	in, d, err := h.decide(r, st)
	if err != nil {
		return err
	}
	if d.Outcome != stepup.Satisfied {
		http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
		return nil
	}
	return h.finish(w, r, st, d, in)
}

func (h *Handler) postCancel(w http.ResponseWriter, r *http.Request) error {
	st, err := h.formFlow(r)
	if err != nil {
		return err
	}
	if pu := h.purposeOf(r, st); pu.kind != forApp && st.hasSess {
		// Keystep's own pages: Cancel goes back to the account's
		// overview, as its label says, not to the callback's error page.
		if err := h.abandon(r.Context(), w, st, "access_denied", "cancelled by the user"); err != nil {
			return err
		}
		h.cfg.Cookies.Clear(w, portalStateCookie)
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return nil
	}
	return h.fail(w, r, st, "access_denied", "cancelled by the user")
}
