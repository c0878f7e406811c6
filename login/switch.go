package login

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// Account switching (issue 24). A browser holds one session. A person at
// a browser where someone else is signed in presses "Use another account"
// (or the app sends prompt=select_account and the person picks it on the
// account choice, or the app's login_hint names someone else): the other
// person's session ends in this browser, through admin.EndSessions like
// every session end, and the new person's first factor starts a new
// session with a new ID that holds only their own factors (addFactor).

const (
	// promptSelectAccount asks for the account choice first (OIDC Core
	// §3.1.2.1).
	promptSelectAccount = "select_account"
	// chosenCookie remembers, for one request, that the person chose to
	// go on with the session this browser holds: "<request ID>.<sid>".
	chosenCookie = "ks_chosen"
	// switchedParam on /login says the page follows a switch, so it says
	// the other account was signed out and fills in no login_hint (it may
	// name the person who just left).
	switchedParam = "switched"
)

// Reasons of the session.ended events of a switch.
const (
	reasonSwitched     = "signed out to use another account in this browser"
	reasonReplacedUser = "another account signed in in this browser"
	reasonReplacedSame = "the same account signed in again from another network and browser"
)

// choosing reports whether the request waits for the account choice: the
// app sent prompt=select_account, this browser holds a session for the
// request, and the person has neither chosen it nor proved a factor for
// this request (a sign-in made for it is itself the choice).
func (h *Handler) choosing(r *http.Request, st *flowState) bool {
	return st.hasSess && slices.Contains(st.ar.Prompt, promptSelectAccount) && !provedFor(st.sess, st.ar.ID) &&
		h.cfg.Cookies.Value(r, chosenCookie) != chosenValue(st)
}

func chosenValue(st *flowState) string { return st.ar.ID + "." + sid(st.sess) }

// showChooser is the account choice: go on as the signed-in person, or
// use another account.
func (h *Handler) showChooser(w http.ResponseWriter, r *http.Request, st *flowState) error {
	p := factorPage{
		Page: h.page(r, "Choose an account"), RequestID: st.ar.ID, ClientName: clientName(st.client),
		Headline: st.tr.T("Choose an account"), Username: st.user.Username, KnownUser: true,
	}
	pu := h.purposeOf(r, st)
	p.Reason, p.Cancel = pu.continueTo(st.tr), pu.cancel
	return h.render(w, r, http.StatusOK, "select_account", p)
}

// postSelect is "Continue as …" on the account choice.
func (h *Handler) postSelect(w http.ResponseWriter, r *http.Request) error {
	st, err := h.formFlow(r)
	if err != nil {
		return err
	}
	if st.hasSess {
		h.cfg.Cookies.Set(w, chosenCookie, chosenValue(st), st.ar.ExpiresAt.Sub(h.cfg.Now()))
	}
	http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
	return nil
}

// postSwitch is "Use another account": the session this browser holds
// ends (audited, back-channel logout and session-revoked queued), and the
// request starts again at the sign-in page, which says so. The post is
// bound to the browser that started the request (formFlow) and, like
// every form post, to this site (CrossOriginProtection, SameSite=Lax).
func (h *Handler) postSwitch(w http.ResponseWriter, r *http.Request) error {
	st, err := h.formFlow(r)
	if err != nil {
		return err
	}
	if st.ar.Done {
		return userError(http.StatusBadRequest, "This sign-in is already finished",
			"Go back to the app you came from. To use another account there, sign out of it and sign in again.")
	}
	ctx := r.Context()
	sess, _, ok, err := h.loadSession(ctx, r)
	if err != nil {
		return err
	}
	if ok {
		if err := h.endSession(ctx, w, sess, reasonSwitched); err != nil {
			return err
		}
	}
	h.cfg.Cookies.Clear(w, chosenCookie)
	http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID)+"&"+switchedParam+"=1", http.StatusSeeOther)
	return nil
}

// switchNotice is what the sign-in page says about another person's
// session in this browser: that it was just ended, or that signing in
// ends it; in the page's language.
func switchNotice(r *http.Request, st *flowState) string {
	switch {
	case st.other.ID != "":
		return st.tr.T("%[1]s is signed in in this browser. Signing in with another account signs %[1]s out here.", st.other.Username)
	case !st.hasSess && r.URL.Query().Get(switchedParam) != "":
		return st.tr.T("The other account is signed out in this browser. Sign in with the account you want to use.")
	}
	return ""
}

// purpose is what a sign-in is for, in the words its pages use.
type purpose struct {
	kind purposeKind
	// name is the app's name, for an app (forApp); Keystep's own pages
	// are named by their kind (continueTo).
	name string
	// cancel is the Cancel button's label, naming where it goes, in the
	// page's language; "" when the page has none (the portal's own first
	// sign-in: there is no app to go back to).
	cancel string
}

// continueTo is the line under "Sign in" naming where the person
// continues to, in tr's language.
func (p purpose) continueTo(tr *i18n.Printer) string {
	switch p.kind {
	case forApp:
		return tr.T("to continue to %s", p.name)
	case forConsole:
		return tr.T("to continue to the admin console")
	}
	return tr.T("to continue to your account")
}

type purposeKind int

const (
	forApp     purposeKind = iota // a relying party
	forAccount                    // the account portal: signing in, or a change
	forConsole                    // the admin console
	forLost                       // reporting a lost second factor
)

// purposeOf says what st's sign-in is for. An app's request is for the
// app. The account portal, the console and the lost-factor page all sign
// in as Keystep's own client; which one sent the request is the return
// path kept beside the request's state in the portal's cookie
// (portalAuthorize), read only when that state is this request's.
func (h *Handler) purposeOf(r *http.Request, st *flowState) purpose {
	if st.client.ID != h.cfg.AccountClientID {
		name := clientName(st.client)
		return purpose{kind: forApp, name: name, cancel: st.tr.T("Cancel and go back to %s", name)}
	}
	p := purpose{kind: forAccount}
	state, returnTo, _ := strings.Cut(h.cfg.Cookies.Value(r, portalStateCookie), "|")
	if state != "" && state == st.ar.State {
		switch {
		case adminPath(returnTo):
			p = purpose{kind: forConsole}
		case returnTo == lostFactorsPath:
			p.kind = forLost
		}
	}
	if st.hasSess {
		// Cancel leaves the request and goes back to the account's
		// overview (postCancel), never through the callback's error.
		p.cancel = st.tr.T("Cancel and go back to your account")
	}
	return p
}

// endReplaced ends the session a new one replaces in this browser (addFactor),
// audited with why.
func (h *Handler) endReplaced(r *http.Request, cur storage.Session, userID string) error {
	reason := reasonReplacedSame
	if cur.UserID != userID {
		reason = reasonReplacedUser
	}
	return h.endSession(r.Context(), nil, cur, reason)
}
