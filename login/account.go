package login

import (
	"context"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// The account portal is an ordinary relying party of Keystep: when it needs
// a stronger or fresher session it sends the browser through /authorize with
// acr_values and max_age, so step-up for account changes runs through the
// same dispatcher as any app's. It never adds a factor to the session itself:
// enrolling proves possession of a new factor, not the user's identity.

const (
	portalStateCookie = "ks_portal"
	pendingTOTPCookie = "ks_totp_pending"
)

func (h *Handler) registerAccount(mux *http.ServeMux) {
	mux.Handle("GET /account", h.handle(h.accountHome))
	mux.Handle("GET /account/callback", h.handle(h.accountCallback))
	mux.Handle("GET /account/password", h.handle(h.accountPasswordPage))
	mux.Handle("POST /account/password", h.handle(h.postAccountPassword))
	mux.Handle("GET /account/email", h.handle(h.accountEmailPage))
	mux.Handle("POST /account/email", h.handle(h.postAccountEmail))
	mux.Handle("GET /account/email/confirm", h.handle(h.confirmEmail))
	mux.Handle("GET /account/totp", h.handle(h.accountTOTPPage))
	mux.Handle("POST /account/totp", h.handle(h.postAccountTOTP))
	mux.Handle("POST /account/totp/delete", h.handle(h.postAccountTOTPDelete))
	mux.Handle("POST /account/recovery", h.handle(h.postAccountRecovery))
	mux.Handle("GET /account/recovery/new", h.handle(h.firstRecoveryCodes))
	mux.Handle("GET /account/passkey", h.handle(h.accountPasskeyPage))
	mux.Handle("POST /account/passkey/options", h.handleJSON(h.registerOptions))
	mux.Handle("POST /account/passkey/verify", h.handleJSON(h.registerVerify))
	mux.Handle("POST /account/sessions/revoke-others", h.handle(h.postRevokeOthers))
	mux.Handle("POST /account/signout", h.handle(h.postSignOut))
	mux.Handle("POST /account/sessions/signout", h.handle(h.postSignOutSession))
	mux.Handle("POST /account/language", h.handle(h.postAccountLanguage))
}

// accountState is the signed-in user as the portal sees them.
type accountState struct {
	sess     storage.Session
	user     storage.User
	factors  []storage.Factor
	recovery int
	known    bool // from a known device and network, when a passkey is ripe (trust.go); set by the console
}

// requireAccount returns the signed-in user, or sends the browser to sign in
// at sfa and returns nil.
func (h *Handler) requireAccount(w http.ResponseWriter, r *http.Request) (*accountState, error) {
	sess, u, ok, err := h.loadSession(r.Context(), r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, h.portalAuthorize(w, r, stepup.ACRSingleFactor, 0, here(r))
	}
	a := &accountState{sess: sess, user: u}
	if a.factors, err = h.cfg.Store.ListFactors(r.Context(), u.ID); err != nil {
		return nil, err
	}
	if a.recovery, err = h.cfg.Store.CountRecoveryCodes(r.Context(), u.ID); err != nil {
		return nil, err
	}
	// The portal is one more way in, so it meets the same risk floor as
	// a sign-in: a password alone from a risky context does not open it.
	if ok, err := h.portalRisk(w, r, a); !ok {
		return nil, err
	}
	return a, nil
}

// here is where a sign-in started by a portal request comes back to: a
// GET with its query (an emailed link carries its token in it), a form
// post to its path (a post is not replayed).
func here(r *http.Request) string {
	if r.Method == http.MethodGet {
		return r.URL.RequestURI()
	}
	return r.URL.Path
}

// portalRisk applies the risk assessment to a portal visit: a session whose
// context risk denies is ended; one below the risk floor is sent through the
// step-up. It reports whether the visit may go on.
func (h *Handler) portalRisk(w http.ResponseWriter, r *http.Request, a *accountState) (bool, error) {
	outcome, ra, err := h.sessionRisk(r, a)
	if err != nil {
		return false, err
	}
	switch outcome {
	case stepup.Satisfied:
		return true, nil
	case stepup.NeedFactor:
		return false, h.portalAuthorize(w, r, stepup.ACRSingleFactor, 0, here(r))
	}
	if err := h.endSession(r.Context(), w, a.sess, "risk: "+signin.SignalNames(ra)); err != nil {
		return false, err
	}
	return false, userError(http.StatusForbidden, "We couldn't confirm it's you", "Something about this sign-in looks unsafe, so we stopped it. Try again from a device and network you've used before, or contact your administrator.")
}

// sessionRisk assesses a portal or console request with a session and
// says whether the session's factors meet the risk floor (Satisfied), need
// one more (NeedFactor) or are refused (Fail).
func (h *Handler) sessionRisk(r *http.Request, a *accountState) (stepup.Outcome, risk.Assessment, error) {
	info := web.Info(r.Context())
	ra, _, err := h.assessor(h.pol()).Assess(r.Context(), signin.RiskInput{User: a.user, ClientID: h.cfg.AccountClientID, IP: info.IP,
		UserAgent: info.UserAgent, DeviceID: h.cfg.Cookies.ExistingBrowserBinding(r), Session: &a.sess})
	if err != nil {
		return 0, ra, err
	}
	return h.pol().Levels.Admit(h.session(a), signin.RiskOf(ra)), ra, nil
}

// session is the portal's session as stepup sees it.
func (h *Handler) session(a *accountState) stepup.Session {
	return stepup.Session{Done: signin.FactorsOf(a.sess.Factors, ""), Enrolled: h.enrolledAt(a.user, a.factors, a.recovery, a.known), Now: h.cfg.Now()}
}

// endSession ends a session everywhere (admin.EndSessions: back-channel
// logout and session-revoked queued), audited with reason, and deletes
// its cookie when w is not nil (a caller that sets the next session's
// cookie passes nil).
func (h *Handler) endSession(ctx context.Context, w http.ResponseWriter, s storage.Session, reason string) error {
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventSessionEnded, UserID: s.UserID, Outcome: "success", Reason: reason}); err != nil {
		return err
	}
	if err := admin.EndSessions(ctx, h.cfg.Store, h.cfg.Now(), s.End()); err != nil {
		return err
	}
	if w != nil {
		h.cfg.Cookies.ClearSession(w)
	}
	return nil
}

// errRedirected tells a handler the response has been written (a redirect).
var errRedirected = errors.New("redirected")

// portalAuthorize sends the browser through /authorize as the account client.
func (h *Handler) portalAuthorize(w http.ResponseWriter, r *http.Request, acr string, maxAge time.Duration, returnTo string) error {
	state, err := factor.NewToken()
	if err != nil {
		return err
	}
	h.cfg.Cookies.Set(w, portalStateCookie, state+"|"+returnTo, 30*time.Minute)
	v := url.Values{
		"client_id":     {h.cfg.AccountClientID},
		"redirect_uri":  {h.cfg.Issuer + "/account/callback"},
		"response_type": {"code"},
		"scope":         {"openid"},
		"state":         {state},
		"acr_values":    {acr},
		// Essential: a portal change must never go ahead below its level.
		"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + acr + `"]}}}`},
	}
	if maxAge > 0 {
		v.Set("max_age", strconv.Itoa(int(maxAge/time.Second)))
	}
	http.Redirect(w, r, "/authorize?"+v.Encode(), http.StatusSeeOther)
	return errRedirected
}

func (h *Handler) accountCallback(w http.ResponseWriter, r *http.Request) error {
	raw := h.cfg.Cookies.Value(r, portalStateCookie)
	state, returnTo, _ := strings.Cut(raw, "|")
	q := r.URL.Query()
	if state == "" || q.Get("state") != state {
		return userError(http.StatusBadRequest, "That sign-in link is stale", "Open your account page again.")
	}
	h.cfg.Cookies.Clear(w, portalStateCookie)
	admin := adminPath(returnTo)
	if e := q.Get("error"); e != "" && admin {
		return h.adminCallbackError(e)
	}
	if e := q.Get("error"); e != "" {
		msg := i18n.N("You can't make that change yet.")
		if e == "unmet_authentication_requirements" {
			msg = i18n.N("That change needs a stronger way to sign in than your account has. Add an authenticator app first.")
		}
		return userError(http.StatusForbidden, "That change needs more", msg)
	}
	if !strings.HasPrefix(returnTo, "/account") && !admin && returnTo != lostFactorsPath {
		returnTo = "/account"
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
	return nil
}

// requireLevel is the one gate of the account portal, the admin console
// and the passkey pages: the session must hold acr with factors done
// within `within` (DESIGN §3.3: 10 minutes for a change to the account,
// NIST SP 800-63B §6.1.2.1; the console's own max age). Otherwise the
// browser goes through the step-up (/authorize with acr essential and
// max_age, so the one dispatcher runs it) and comes back to returnTo, or
// to its area's home page after a form post, which cannot be replayed; a
// user who cannot reach acr at all is told so instead. ok is false when
// the gate has answered: with a redirect (err nil) or a page (err). at is
// the level's auth_time when ok.
func (h *Handler) requireLevel(w http.ResponseWriter, r *http.Request, a *accountState, acr string, within time.Duration, returnTo string) (at time.Time, ok bool, err error) {
	s := h.session(a)
	if at, ok := h.pol().Levels.Fresh(s, acr, within); ok {
		return at, true, nil
	}
	if !h.pol().Levels.Reachable(s, acr, within) {
		return time.Time{}, false, userError(http.StatusForbidden, "That change needs more", "That change needs a stronger way to sign in than your account has.")
	}
	if r.Method != http.MethodGet {
		returnTo = "/account"
		if adminPath(r.URL.Path) {
			returnTo = "/admin"
		}
	}
	return time.Time{}, false, ignoreRedirect(h.portalAuthorize(w, r, acr, within, returnTo))
}

// levelMet reports whether the session holds acr, fresh within 10 minutes:
// requireLevel's test, for the places that must not redirect.
func (h *Handler) levelMet(a *accountState, acr string) bool {
	_, ok := h.pol().Levels.Fresh(h.session(a), acr, reauthForChanges)
	return ok
}

// adminPath reports whether p is the admin console's.
func adminPath(p string) bool { return p == "/admin" || strings.HasPrefix(p, "/admin/") }

// bootstrapRisk is the risk condition of DESIGN §3.3's one exception (a
// user with no second factor adds the first one with the password alone):
// bootstrapRefusal of the portal's own assessment. A sign-in whose risk
// floor was waived does not make its device and network known (finish),
// so signing in again from the same strange place does not turn it low.
// It returns why and what to tell the person when refused ("" when not).
func (h *Handler) bootstrapRisk(r *http.Request, a *accountState) (why, help string, ra risk.Assessment, err error) {
	info := web.Info(r.Context())
	ra, _, err = h.assessor(h.pol()).Assess(r.Context(), signin.RiskInput{User: a.user, ClientID: h.cfg.AccountClientID, IP: info.IP,
		UserAgent: info.UserAgent, DeviceID: h.cfg.Cookies.ExistingBrowserBinding(r), Session: &a.sess})
	if err != nil {
		return "", "", ra, err
	}
	why, help = bootstrapRefusal(h.tr(r), ra, a.user)
	return why, help, ra, nil
}

// bootstrapRefusal is the risk half of the bootstrap rule, asked alike by
// the portal and the step-up (enroll.go): it returns why a first second
// factor may not be added under ra, and what to tell the person, or ""
// when it may. Refused: a stored risk floor in force for this sign-in (a
// password reset's floor for devices new to the account, or a risk a
// security service reported), else any band but low, a denial or a drift.
// A reset floor counts although the sign-in could not meet it (waived at
// the account's level): otherwise whoever reads the mailbox resets the
// password from a new device on the owner's network and binds their own
// authenticator app.
func bootstrapRefusal(p *i18n.Printer, ra risk.Assessment, u storage.User) (why, help string) {
	if ra.Has(signin.SignalReceivedRisk) {
		why = "a risk floor is in force for this sign-in: " + u.RiskFloorReason
		if u.RiskFloorNewDevices {
			return why, p.T("Your password was reset recently, and this device is new to your account. Until %s, a first authenticator app or passkey can't be added from here. Add it from a computer or phone you used before then, or ask your administrator to help you set one up.", p.Time(u.RiskFloorUntil))
		}
		return why, p.T("A security service reported a risk on your account. Until %s, a first authenticator app or passkey can't be added from here. Add it from a computer or phone you used before then, or ask your administrator to help you set one up.", p.Time(u.RiskFloorUntil))
	}
	if ra.Band != risk.Low || ra.Deny || ra.Reauth {
		return "a first second factor needs a low-risk sign-in", p.T(bootstrapHelp)
	}
	return "", ""
}

// bootstrapGate lets a user with no second factor add the first one: at
// low risk, with the password entered in the last 10 minutes (asked again
// otherwise). Above low risk the page explains who can help instead; it
// has no enrollment form.
func (h *Handler) bootstrapGate(w http.ResponseWriter, r *http.Request, a *accountState, returnTo string) (bool, error) {
	why, help, ra, err := h.bootstrapRisk(r, a)
	if err != nil {
		return false, err
	}
	if why != "" {
		return false, h.bootstrapRefused(w, r, a, ra, why, help)
	}
	_, ok, err := h.requireLevel(w, r, a, stepup.ACRSingleFactor, reauthForChanges, returnTo)
	return ok, err
}

// bootstrapHelp is what a person is told when the first second factor
// cannot be added from where they are.
var bootstrapHelp = i18n.N("For your safety, a first authenticator app or passkey can only be added when you sign in from a device and network you've used before, and this sign-in doesn't look like one of those. Your administrator can help you set one up. Or try again later from the computer or phone you usually sign in with.")

func (h *Handler) bootstrapRefused(w http.ResponseWriter, r *http.Request, a *accountState, ra risk.Assessment, why, help string) error {
	if err := h.cfg.Audit.Record(r.Context(), storage.AuditEvent{Type: storage.EventFactorEnrollRefused, UserID: a.user.ID, ActorID: a.user.ID, Outcome: "denied",
		Reason: why, Details: riskDetails(ra, map[string]string{"path": r.URL.Path})}); err != nil {
		return err
	}
	p, err := h.accountData(r.Context(), r, a, i18n.N("Ask for help to add this"))
	if err != nil {
		return err
	}
	p.Help = help
	return h.renderAccount(w, r, http.StatusForbidden, "account_help", p)
}

type accountPage struct {
	Page
	User      storage.User
	Nav       string
	Factors   []storage.Factor
	Recovery  int
	HasTOTP   bool
	Sessions  []sessionRow
	Activity  []storage.AuditEvent
	Notice    string
	Problem   string
	Codes     []string
	CodesURL  template.URL
	TOTP      *totpEnroll
	Bootstrap bool
	Passkeys  bool     // passkeys are on: offer to add one
	Keys      []keyRow // the user's passkeys and security keys
	Help      string   // why a change can't be made here, and who can help
	MailOff   bool     // email is not set up: addresses cannot be confirmed
	Languages []languageOption
}

// languageOption is one choice of the overview's language form.
type languageOption struct {
	Tag      string // "de"
	Name     string // the language's name in itself ("Deutsch")
	Selected bool
}

// languageNames are the offered languages' names, each in itself (they
// are not translated: a person finds their own language by its name).
var languageNames = map[string]string{"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español"}

// languageOptions lists i18n.Languages for the form, saved selected.
func languageOptions(saved string) []languageOption {
	var out []languageOption
	for _, t := range i18n.Languages {
		tag := t.String()
		name := languageNames[tag]
		if name == "" {
			name = tag
		}
		out = append(out, languageOption{Tag: tag, Name: name, Selected: tag == saved})
	}
	return out
}

// savedLanguage returns v as a language to save: "" (Automatic: the
// browser decides) or one of i18n.Languages, exactly as it names it.
func savedLanguage(v string) (string, bool) {
	if v == "" {
		return "", true
	}
	for _, t := range i18n.Languages {
		if v == t.String() {
			return v, true
		}
	}
	return "", false
}

// postAccountLanguage saves the language of the person's pages and
// email (storage.User.Locale): a sign-in's ui_locales still wins over
// it, and it wins over the browser's Accept-Language. A session is
// enough: the language changes nothing of the account's security.
func (h *Handler) postAccountLanguage(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	locale, ok := savedLanguage(r.PostForm.Get("locale"))
	if !ok {
		return userError(http.StatusBadRequest, "That language isn't offered", "Choose one of the languages in the list.")
	}
	if locale != a.user.Locale {
		ctx := r.Context()
		if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventAccountLocaleChanged, UserID: a.user.ID, ActorID: a.user.ID,
			Outcome: "success", Details: map[string]string{"locale": locale, "previous": a.user.Locale}}); err != nil {
			return err
		}
		// Only the locale: a whole-user update here could undo an
		// administrator's change made since this request loaded the user
		// (disabling the account, say). UpdatedAt stays: the overview
		// shows it as the password's date.
		if err := h.cfg.Store.SetUserLocale(ctx, a.user.ID, locale); err != nil {
			return err
		}
	}
	http.Redirect(w, r, "/account?notice=language", http.StatusSeeOther)
	return nil
}

// keyRow is one passkey or security key as the portal lists it.
type keyRow struct {
	storage.Factor
	Kind    string // what it is, in plain words (a message key)
	Blocked bool   // flagged after a signature counter went backwards
	// Warning, on the last usable key, names the apps that need one.
	Warning string
	// Pending: it counts as mfa only until it is used from a known device
	// and network at or after TrustFrom, or an administrator confirms it
	// (DESIGN §3.3).
	Pending   bool
	TrustFrom time.Time
}

// keyRowOf describes a WebAuthn factor from its stored credential.
func keyRowOf(f storage.Factor) keyRow {
	row := keyRow{Factor: f, Kind: i18n.N("Passkey")}
	c, err := factor.ReadCredentialFlags(f.Secret)
	if err != nil {
		return row
	}
	row.Blocked = c.CloneWarning
	switch {
	case c.BackupEligible:
		row.Kind = i18n.N("Passkey, synced across your devices")
	case c.CrossPlatform:
		row.Kind = i18n.N("Security key")
	default:
		row.Kind = i18n.N("Passkey, kept on one device")
	}
	return row
}

type sessionRow struct {
	Current             bool
	SID                 string // names it to the sign-out form (storage.Session.SID)
	IP, UserAgent       string
	CreatedAt, LastSeen time.Time
	Apps                []string // the apps signed in under it, by name
	AppList             string   // Apps, joined with commas
}

type totpEnroll struct {
	Secret string
	URI    template.URL
	QR     template.URL // data:image/png;base64,…
}

func (h *Handler) accountData(ctx context.Context, r *http.Request, a *accountState, title string) (accountPage, error) {
	p := accountPage{Page: h.page(r, title), User: a.user, Factors: a.factors, Recovery: a.recovery, Notice: r.URL.Query().Get("notice"), Passkeys: h.cfg.WebAuthn != nil}
	for _, f := range a.factors {
		switch f.Kind {
		case storage.FactorTOTP:
			p.HasTOTP = true
		case storage.FactorWebAuthn:
			row := keyRowOf(f)
			row.Pending, row.TrustFrom = !factor.Trusted(f), h.trustFrom(f)
			p.Keys = append(p.Keys, row)
		}
	}
	if err := h.warnLastKey(ctx, h.tr(r), p.Keys); err != nil {
		return p, err
	}
	sessions, err := h.cfg.Store.ListUserSessions(ctx, a.user.ID, h.cfg.Now())
	if err != nil {
		return p, err
	}
	for _, s := range sessions {
		if h.idleOut(s, h.cfg.Now()) {
			continue // ended: it is deleted when next presented
		}
		apps, err := h.sessionApps(ctx, s)
		if err != nil {
			return p, err
		}
		p.Sessions = append(p.Sessions, sessionRow{Current: s.ID == a.sess.ID, SID: s.SID(), IP: s.IP, UserAgent: s.UserAgent,
			CreatedAt: s.CreatedAt, LastSeen: s.LastSeen, Apps: apps, AppList: strings.Join(apps, ", ")})
	}
	// Only what the portal has words for (activityTypes), chosen by the
	// query: token issues and steps inside a sign-in are machine steps,
	// shown in the console only, and however many of them there are they
	// never push a change to the account out of view (DESIGN §3.3).
	p.Activity, err = h.cfg.Store.ListAudit(ctx, storage.AuditFilter{UserID: a.user.ID, Types: activityTypes, Newest: true, Limit: 20})
	return p, err
}

var notices = map[string]string{
	"totp-added":     i18n.N("Your authenticator app is set up."),
	"totp-removed":   i18n.N("The authenticator app was removed."),
	"passkey-added":  i18n.N("Your passkey is ready. You can use it to sign in."),
	"password":       i18n.N("Your password was changed. Other sessions were signed out."),
	"email":          i18n.N("Your email address is confirmed."),
	"sessions":       i18n.N("Your other sessions were signed out."),
	"session":        i18n.N("That session was signed out, and its apps were told."),
	"factor-removed": i18n.N("The passkey or security key was removed."),
	"language":       i18n.N("Your language is saved. Pages and email now use it."),
	"recovered":      i18n.N("Your old authenticator apps, passkeys and recovery codes were removed, and your other sessions signed out. Set up a new authenticator app or passkey now."),
}

// recoveryCodeNotice heads the portal for a session that signed in with a
// recovery code (issue 22): the way in it used is spent, so it leads to a
// new factor first.
var recoveryCodeNotice = i18n.N("You signed in with a recovery code. If you lost your authenticator app or passkey, set up a new one now and make new recovery codes, so you're never left without a way in.")

// usedRecoveryCode reports whether session s proved a recovery code.
func usedRecoveryCode(s storage.Session) bool {
	return slices.ContainsFunc(s.Factors, func(f storage.FactorEvent) bool { return f.Method == string(stepup.Recovery) })
}

// passkeyPendingNotice follows adding a passkey from a session below phr;
// %s is the cooling-off (DESIGN §3.3).
var passkeyPendingNotice = i18n.N("Your passkey is ready, and you can sign in with it now. Apps that need your strongest sign-in accept it after %s, once you've used it on a device you've signed in with before.")

func (h *Handler) accountHome(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	p, err := h.accountData(r.Context(), r, a, i18n.N("Your account"))
	if err != nil {
		return err
	}
	key := p.Notice
	p.Notice = notices[key]
	if key == "passkey-pending" {
		p.Notice = h.tr(r).T(passkeyPendingNotice, fmtDuration(h.tr(r), h.cfg.PasskeyCoolingOff))
	}
	if p.Notice == "" && usedRecoveryCode(a.sess) {
		p.Notice = recoveryCodeNotice
	}
	p.Nav, p.Languages = "overview", languageOptions(a.user.Locale)
	return h.renderAccount(w, r, http.StatusOK, "account", p)
}

// renderAccount renders a portal page, its notice, problem and help
// (message keys, or texts already translated) in the page's language.
func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, status int, name string, p accountPage) error {
	tr := h.tr(r)
	p.Notice, p.Problem, p.Help = tr.T(p.Notice), tr.T(p.Problem), tr.T(p.Help)
	return h.render(w, r, status, name, p)
}

// passwordProblem is what a person is told of a password
// factor.ValidatePassword refused (a message key).
func passwordProblem(err error) string {
	switch {
	case errors.Is(err, factor.ErrPasswordTooShort):
		return i18n.N("Your password must be at least 8 characters long.")
	case errors.Is(err, factor.ErrPasswordTooLong):
		return i18n.N("Your password is too long.")
	}
	return i18n.N("Your password contains characters that cannot be used.")
}

func ignoreRedirect(err error) error {
	if errors.Is(err, errRedirected) {
		return nil
	}
	return err
}

// ---- password ----

func (h *Handler) passwordLevel(a *accountState) string {
	if hasSecondFactor(a.factors) {
		return stepup.ACRMultiFactor
	}
	return stepup.ACRSingleFactor
}

func (h *Handler) accountPasswordPage(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if _, ok, err := h.requireLevel(w, r, a, h.passwordLevel(a), reauthForChanges, "/account/password"); !ok {
		return err
	}
	p, err := h.accountData(r.Context(), r, a, i18n.N("Change password"))
	if err != nil {
		return err
	}
	p.Nav, p.Notice = "password", ""
	if a.user.PasswordCompromised {
		p.Notice = compromisedNotice
	}
	return h.renderAccount(w, r, http.StatusOK, "account_password", p)
}

// compromisedNotice heads the password page while the password is marked
// compromised (a received Shared Signals event).
var compromisedNotice = i18n.N("Your password was reported as exposed, so it no longer signs you in. Choose a new one; then go back to the app and sign in again.")

func (h *Handler) postAccountPassword(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if _, ok, err := h.requireLevel(w, r, a, h.passwordLevel(a), reauthForChanges, "/account/password"); !ok {
		return err
	}
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	pw, confirm := r.PostForm.Get("new_password"), r.PostForm.Get("confirm_password")
	problem := ""
	if err := factor.ValidatePassword(pw); err != nil {
		problem = passwordProblem(err)
	} else if pw != confirm {
		problem = i18n.N("The two passwords don't match.")
	}
	if problem != "" {
		p, err := h.accountData(ctx, r, a, i18n.N("Change password"))
		if err != nil {
			return err
		}
		p.Nav, p.Problem = "password", problem
		return h.renderAccount(w, r, http.StatusBadRequest, "account_password", p)
	}
	hash, err := h.cfg.Hasher.Hash(pw)
	if err != nil {
		return err
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventAccountPasswordChanged, UserID: a.user.ID, ActorID: a.user.ID, Outcome: "success"}); err != nil {
		return err
	}
	// A new password is no longer the one reported compromised.
	a.user.PasswordHash, a.user.PasswordCompromised, a.user.UpdatedAt = hash, false, h.cfg.Now()
	if err := h.cfg.Store.UpdateUser(ctx, a.user); err != nil {
		return err
	}
	if err := admin.Signal(ctx, h.cfg.Store, a.user.UpdatedAt, admin.CredentialChange(a.user.ID, admin.CredentialType(""), admin.ChangeUpdate, "")); err != nil {
		return err
	}
	if err := h.notify(ctx, a.user, mail.PasswordChanged, nil); err != nil {
		return err
	}
	// A password is changed because it may be known to someone else, who
	// may hold a session or an app's refresh token by now. Every other
	// session ends, and every token family of the user at every client is
	// revoked — the user's own apps included, even those signed in from
	// this browser, since a thief's token cannot be told from the user's.
	// Only the browser session that made the change stays.
	if _, err := admin.EndAccess(ctx, h.cfg.Store, h.cfg.Audit, a.user.ID, a.user.ID, a.sess.ID, "password changed"); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?notice=password", http.StatusSeeOther)
	return nil
}

// ---- authenticator app ----

// pendingTOTP is the secret being enrolled, sealed into a short-lived cookie
// bound to the user and session so it cannot be moved elsewhere.
func (h *Handler) pendingAD(a *accountState) []byte {
	return []byte("totp-pending:" + a.user.ID + ":" + sid(a.sess))
}

func (h *Handler) totpGate(w http.ResponseWriter, r *http.Request, a *accountState, returnTo string) (bool, error) {
	if !hasSecondFactor(a.factors) {
		return h.bootstrapGate(w, r, a, returnTo)
	}
	_, ok, err := h.requireLevel(w, r, a, stepup.ACRMultiFactor, reauthForChanges, returnTo)
	return ok, err
}

func (h *Handler) accountTOTPPage(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if ok, err := h.totpGate(w, r, a, "/account/totp"); !ok {
		return err
	}
	key, err := factor.NewTOTPKey(h.cfg.ProductName, a.user.Username)
	if err != nil {
		return err
	}
	h.sealPendingTOTP(w, pendingTOTPCookie, key.Secret, h.pendingAD(a))
	return h.renderTOTP(w, r, a, key, "", http.StatusOK)
}

func (h *Handler) renderTOTP(w http.ResponseWriter, r *http.Request, a *accountState, key factor.TOTPKey, problem string, status int) error {
	setup, err := totpSetup(key)
	if err != nil {
		return err
	}
	p, err := h.accountData(r.Context(), r, a, i18n.N("Set up an authenticator app"))
	if err != nil {
		return err
	}
	p.Nav, p.Problem, p.TOTP = "totp", problem, setup
	p.Bootstrap = !hasSecondFactor(a.factors)
	return h.renderAccount(w, r, status, "account_totp", p)
}

func (h *Handler) postAccountTOTP(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if ok, err := h.totpGate(w, r, a, "/account/totp"); !ok {
		return err
	}
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	secret := h.openPendingTOTP(r, pendingTOTPCookie, h.pendingAD(a))
	if secret == "" {
		http.Redirect(w, r, "/account/totp", http.StatusSeeOther)
		return nil
	}
	now := h.cfg.Now()
	step, ok := factor.VerifyTOTP(secret, r.PostForm.Get("code"), now)
	if !ok {
		key := factor.TOTPKey{Secret: secret, URI: totpURI(h.cfg.ProductName, a.user.Username, secret)}
		return h.renderTOTP(w, r, a, key, i18n.N("That code didn't work. Check the time on your phone and try again."), http.StatusBadRequest)
	}
	first := !hasSecondFactor(a.factors)
	if err := h.addTOTP(ctx, a.user, secret, r.PostForm.Get("name"), step, storage.AuditEvent{
		Details: map[string]string{"bootstrap": strconv.FormatBool(first)}}); err != nil {
		return err
	}
	h.cfg.Cookies.Clear(w, pendingTOTPCookie)
	if first {
		a.factors = append(a.factors, storage.Factor{Kind: storage.FactorTOTP})
		return h.issueRecoveryCodes(w, r, a, i18n.N("Your authenticator app is set up. Save these recovery codes now."))
	}
	http.Redirect(w, r, "/account?notice=totp-added", http.StatusSeeOther)
	return nil
}

// addTOTP stores a confirmed authenticator app: audited first (with ev's
// client and details), then created, signalled (Shared Signals) and its
// confirming code's step spent, so that code cannot also pass a sign-in.
// Enrolling proves possession of the new app, not who the user is: it
// adds nothing to the session (the portal's rule, and the step-up's).
func (h *Handler) addTOTP(ctx context.Context, u storage.User, secret, name string, step int64, ev storage.AuditEvent) error {
	now, userID := h.cfg.Now(), u.ID
	id, err := factor.NewToken()
	if err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 {
		name = "Authenticator app"
	}
	ev.Type, ev.UserID, ev.ActorID, ev.Outcome = storage.EventFactorEnrolled, userID, userID, "success"
	ev.Details["factor"] = string(stepup.TOTP)
	if err := h.cfg.Audit.Record(ctx, ev); err != nil {
		return err
	}
	if err := h.cfg.Store.CreateFactor(ctx, storage.Factor{ID: id[:22], UserID: userID, Kind: storage.FactorTOTP, Name: name, Secret: h.cfg.Sealer.Seal([]byte(secret), totpAD(userID)), CreatedAt: now}); err != nil {
		return err
	}
	if err := admin.Signal(ctx, h.cfg.Store, now, admin.CredentialChange(userID, admin.CredentialType(storage.FactorTOTP), admin.ChangeCreate, name)); err != nil {
		return err
	}
	if err := h.notify(ctx, u, mail.FactorAdded, factorWords(storage.FactorTOTP, name)); err != nil {
		return err
	}
	if err := h.cfg.Store.UseTOTPStep(ctx, userID, step, now); err != nil && !errors.Is(err, storage.ErrReplayed) {
		return err
	}
	return nil
}

// sealPendingTOTP keeps a secret being enrolled in a short-lived cookie,
// sealed for ad (the user, session and purpose), so it cannot be moved
// elsewhere; openPendingTOTP reads it back, "" when absent or expired.
func (h *Handler) sealPendingTOTP(w http.ResponseWriter, cookie, secret string, ad []byte) {
	sealed := h.cfg.Sealer.Seal([]byte(secret+"|"+strconv.FormatInt(h.cfg.Now().Add(15*time.Minute).Unix(), 10)), ad)
	h.cfg.Cookies.Set(w, cookie, base64.RawURLEncoding.EncodeToString(sealed), 15*time.Minute)
}

func (h *Handler) openPendingTOTP(r *http.Request, cookie string, ad []byte) string {
	raw, _ := base64.RawURLEncoding.DecodeString(h.cfg.Cookies.Value(r, cookie))
	plain, err := h.cfg.Sealer.Open(raw, ad)
	secret, expStr, _ := strings.Cut(string(plain), "|")
	exp, _ := strconv.ParseInt(expStr, 10, 64)
	if err != nil || secret == "" || h.cfg.Now().Unix() > exp {
		return ""
	}
	return secret
}

// totpSetup is the enrollment page's QR code, link and key for key.
func totpSetup(key factor.TOTPKey) (*totpEnroll, error) {
	png, err := factor.TOTPQRCodePNG(key.URI, 240)
	if err != nil {
		return nil, err
	}
	return &totpEnroll{Secret: key.Secret, URI: template.URL(key.URI), QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))}, nil
}

func totpURI(issuer, account, secret string) string {
	v := url.Values{"secret": {secret}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + url.PathEscape(issuer+":"+account) + "?" + v.Encode()
}

// endSessionsUsing ends the user's other sessions that counted factor id:
// a factor the owner removes (lost, or used by someone else) must stop
// vouching for any session, and the apps signed in under those sessions
// are told (admin.EndSessions). The session removing it, just proved
// afresh, stays.
func (h *Handler) endSessionsUsing(ctx context.Context, a *accountState, id string) error {
	sessions, err := h.cfg.Store.ListUserSessions(ctx, a.user.ID, h.cfg.Now())
	if err != nil {
		return err
	}
	var ends []storage.SessionEnd
	for _, s := range sessions {
		if s.ID != a.sess.ID && slices.ContainsFunc(s.Factors, func(e storage.FactorEvent) bool { return e.CredentialID == id }) {
			ends = append(ends, s.End())
		}
	}
	return admin.EndSessions(ctx, h.cfg.Store, h.cfg.Now(), ends...)
}

func (h *Handler) postAccountTOTPDelete(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Go back and try again.")
	}
	id := r.PostForm.Get("factor")
	f, err := h.cfg.Store.FactorByID(ctx, id)
	if err != nil || f.UserID != a.user.ID {
		return userError(http.StatusNotFound, "That factor doesn't exist", "It may have been removed already.")
	}
	// Removing a factor needs the level it grants (or the highest the
	// user can reach), fresh within 10 minutes.
	need := stepup.ACRMultiFactor
	if f.Kind == storage.FactorWebAuthn {
		need = h.pol().Levels.ReachableUpTo(h.session(a), stepup.ACRPhishing)
	}
	if _, ok, err := h.requireLevel(w, r, a, need, reauthForChanges, "/account"); !ok {
		return err
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorRemoved, UserID: a.user.ID, ActorID: a.user.ID, Outcome: "success", Details: map[string]string{"factor": string(f.Kind), "name": f.Name}}); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteFactor(ctx, a.user.ID, id); err != nil {
		return err
	}
	if err := h.endSessionsUsing(ctx, a, id); err != nil {
		return err
	}
	if err := admin.Signal(ctx, h.cfg.Store, h.cfg.Now(), admin.CredentialChange(a.user.ID, admin.CredentialType(f.Kind), admin.ChangeDelete, f.Name)); err != nil {
		return err
	}
	if err := h.notify(ctx, a.user, mail.FactorRemoved, factorWords(f.Kind, f.Name)); err != nil {
		return err
	}
	rest, err := h.cfg.Store.ListFactors(ctx, a.user.ID)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		// Recovery codes back up a second factor; with none left they go too.
		if err := h.cfg.Store.ReplaceRecoveryCodes(ctx, a.user.ID, nil, h.cfg.Now()); err != nil {
			return err
		}
	}
	notice := "totp-removed"
	if f.Kind == storage.FactorWebAuthn {
		notice = "factor-removed"
	}
	http.Redirect(w, r, "/account?notice="+notice, http.StatusSeeOther)
	return nil
}

// ---- recovery codes ----

func (h *Handler) postAccountRecovery(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if !hasSecondFactor(a.factors) {
		return userError(http.StatusBadRequest, "Add an authenticator app first", "Recovery codes back up a second factor. Set one up first.")
	}
	if _, ok, err := h.requireLevel(w, r, a, stepup.ACRMultiFactor, reauthForChanges, "/account"); !ok {
		return err
	}
	return h.issueRecoveryCodes(w, r, a, i18n.N("Your new recovery codes. The old ones no longer work."))
}

func (h *Handler) issueRecoveryCodes(w http.ResponseWriter, r *http.Request, a *accountState, notice string) error {
	ctx := r.Context()
	codes, err := h.newRecoveryCodes(ctx, a.user.ID, "")
	if err != nil {
		return err
	}
	a.recovery = len(codes)
	p, err := h.accountData(ctx, r, a, i18n.N("Recovery codes"))
	if err != nil {
		return err
	}
	p.Nav, p.Notice, p.Codes = "recovery", notice, codes
	p.CodesURL = template.URL("data:text/plain;charset=utf-8," + url.PathEscape(h.tr(r).T("%s recovery codes for %s", h.cfg.ProductName, a.user.Username)+"\n\n"+strings.Join(codes, "\n")+"\n"))
	return h.renderAccount(w, r, http.StatusOK, "account_recovery", p)
}

// newRecoveryCodes replaces the user's recovery codes with ten new ones,
// audited (with the client they were made for, if any), and returns them
// to be shown once.
func (h *Handler) newRecoveryCodes(ctx context.Context, userID, clientID string) ([]string, error) {
	codes, err := factor.NewRecoveryCodes(10)
	if err != nil {
		return nil, err
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = factor.RecoveryCodeMAC(h.cfg.Sealer, userID, c)
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorRecoveryCodesGenerated, UserID: userID, ActorID: userID, ClientID: clientID, Outcome: "success"}); err != nil {
		return nil, err
	}
	if err := h.cfg.Store.ReplaceRecoveryCodes(ctx, userID, hashes, h.cfg.Now()); err != nil {
		return nil, err
	}
	return codes, nil
}

// ---- sessions ----

// sessionApps names the apps signed in under s (the clients given tokens
// under its sid), the portal itself left out.
func (h *Handler) sessionApps(ctx context.Context, s storage.Session) ([]string, error) {
	ids, err := h.cfg.Store.SessionClients(ctx, s.SID())
	if err != nil {
		return nil, err
	}
	var names []string
	for _, id := range ids {
		if id == h.cfg.AccountClientID {
			continue
		}
		c, err := h.cfg.Store.ClientByID(ctx, id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue
		case err != nil:
			return nil, err
		case c.Name != "":
			names = append(names, c.Name)
		default:
			names = append(names, c.ID)
		}
	}
	return names, nil
}

// postSignOutSession signs one of the user's other sessions out, named by
// its sid: it ends everywhere (admin.EndSessions), so the apps signed in
// under it are told and lose their refresh tokens.
func (h *Handler) postSignOutSession(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	// As sensitive as signing all the others out (postRevokeOthers).
	if _, ok, err := h.requireLevel(w, r, a, h.passwordLevel(a), reauthForChanges, "/account"); !ok {
		return err
	}
	ctx := r.Context()
	sid := r.PostFormValue("sid")
	sessions, err := h.cfg.Store.ListUserSessions(ctx, a.user.ID, time.Time{})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(sessions, func(s storage.Session) bool { return sid != "" && s.SID() == sid })
	if i < 0 {
		return userError(http.StatusNotFound, "Session not found", "That session has already ended.")
	}
	s := sessions[i]
	if s.ID == a.sess.ID {
		return userError(http.StatusBadRequest, "This is your current session", "Use Sign out to end the session in this browser.")
	}
	if err := admin.EndSessions(ctx, h.cfg.Store, h.cfg.Now(), s.End()); err != nil {
		return err
	}
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventSessionLogout, UserID: a.user.ID, ActorID: a.user.ID,
		Outcome: "success", Reason: "signed out another session", Details: map[string]string{"sid": s.SID()}}); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?notice=session", http.StatusSeeOther)
	return nil
}

func (h *Handler) postRevokeOthers(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	// Signing others out is as sensitive as a password change (it is how a
	// thief would lock the owner's other devices out), so it needs the same
	// fresh level; a post that must step up lands back on /account.
	if _, ok, err := h.requireLevel(w, r, a, h.passwordLevel(a), reauthForChanges, "/account"); !ok {
		return err
	}
	// Other sessions end and every app token of the user is revoked: one
	// of them may be what the user wants gone.
	if _, err := admin.EndAccess(r.Context(), h.cfg.Store, h.cfg.Audit, a.user.ID, a.user.ID, a.sess.ID, "signed out other sessions"); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?notice=sessions", http.StatusSeeOther)
	return nil
}

func (h *Handler) postSignOut(w http.ResponseWriter, r *http.Request) error {
	sess, _, ok, err := h.loadSession(r.Context(), r)
	if err != nil {
		return err
	}
	if ok {
		if err := admin.EndSessions(r.Context(), h.cfg.Store, h.cfg.Now(), sess.End()); err != nil {
			return err
		}
		if err := h.cfg.Audit.Record(r.Context(), storage.AuditEvent{Type: storage.EventSessionLogout, UserID: sess.UserID, ActorID: sess.UserID, Outcome: "success"}); err != nil {
			return err
		}
	}
	h.cfg.Cookies.ClearSession(w)
	http.Redirect(w, r, "/logged-out", http.StatusSeeOther)
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// firstRecoveryCodes issues the first set of recovery codes right after the
// first second factor was added through a passkey (the JSON ceremony cannot
// render them itself). It only works while the user has a second factor,
// no recovery codes yet, and a password entered in the last 10 minutes — or
// a session at mfa.
func (h *Handler) firstRecoveryCodes(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	// Only the registration of this session's first passkey (a one-shot,
	// sealed marker) or an mfa session may mint codes here: a password
	// alone must never yield a second factor (DESIGN §3.3).
	marked := h.takeFirstCodesMarker(w, r, a)
	if !hasSecondFactor(a.factors) || a.recovery > 0 || !marked && !h.levelMet(a, stepup.ACRMultiFactor) {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return nil
	}
	return h.issueRecoveryCodes(w, r, a, i18n.N("Your passkey is ready. Save these recovery codes now."))
}

// accountPasskeyPage offers "Add a passkey" once the session may add one.
func (h *Handler) accountPasskeyPage(w http.ResponseWriter, r *http.Request) error {
	a, err := h.requireAccount(w, r)
	if a == nil {
		return ignoreRedirect(err)
	}
	if h.cfg.WebAuthn == nil {
		return h.passkeysOff()
	}
	if ok, err := h.passkeyGate(w, r, a); !ok {
		return err
	}
	p, err := h.accountData(r.Context(), r, a, i18n.N("Add a passkey"))
	if err != nil {
		return err
	}
	p.Nav, p.Bootstrap = "passkey", !hasSecondFactor(a.factors)
	return h.renderAccount(w, r, http.StatusOK, "account_passkey", p)
}

// warnLastKey marks the user's last usable passkey or security key when
// apps require a phishing-resistant level: removing it locks the user out
// of them (removal itself needs a phr session, DESIGN §3.3).
func (h *Handler) warnLastKey(ctx context.Context, tr *i18n.Printer, keys []keyRow) error {
	last := -1
	for i, k := range keys {
		if !k.Blocked {
			if last >= 0 {
				return nil // more than one usable key
			}
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	phr, _, ok := h.pol().Levels.Lookup(stepup.ACRPhishing)
	if !ok {
		return nil
	}
	clients, err := h.cfg.Store.ListClients(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, c := range clients {
		if rank, _, ok := h.pol().Levels.Lookup(c.MinACR); ok && rank >= phr && c.ID != h.cfg.AccountClientID {
			names = append(names, clientName(c))
		}
	}
	if len(names) > 0 {
		keys[last].Warning = tr.T("This is your last passkey or security key. %s needs one to let you in: remove it only if you'll add another.", strings.Join(names, ", "))
	}
	return nil
}

const firstCodesCookie = "ks_first_codes"

func firstCodesAD(a *accountState) []byte {
	return []byte("first-codes:" + a.user.ID + ":" + sid(a.sess))
}

// setFirstCodesMarker lets this session fetch its first recovery codes once,
// within a few minutes, right after registering its first passkey.
func (h *Handler) setFirstCodesMarker(w http.ResponseWriter, a *accountState) {
	exp := strconv.FormatInt(h.cfg.Now().Add(5*time.Minute).Unix(), 10)
	sealed := h.cfg.Sealer.Seal([]byte(exp), firstCodesAD(a))
	h.cfg.Cookies.Set(w, firstCodesCookie, base64.RawURLEncoding.EncodeToString(sealed), 5*time.Minute)
}

func (h *Handler) takeFirstCodesMarker(w http.ResponseWriter, r *http.Request, a *accountState) bool {
	raw, err := base64.RawURLEncoding.DecodeString(h.cfg.Cookies.Value(r, firstCodesCookie))
	if err != nil || len(raw) == 0 {
		return false
	}
	h.cfg.Cookies.Clear(w, firstCodesCookie)
	plain, err := h.cfg.Sealer.Open(raw, firstCodesAD(a))
	if err != nil {
		return false
	}
	exp, err := strconv.ParseInt(string(plain), 10, 64)
	return err == nil && h.cfg.Now().Unix() <= exp
}
