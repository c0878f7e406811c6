package demo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/resource"
)

// RFC 9470 §3 and RFC 6750 §3.1 error codes the app reacts to.
const (
	errInsufficientAuth = "insufficient_user_authentication"
	errInvalidToken     = "invalid_token"
)

// home is the signed-out front page.
func (a *App) home(w http.ResponseWriter, r *http.Request) error {
	s := a.sessions.get(r)
	if s != nil {
		defer s.mu.Unlock()
		if s.signedIn() {
			http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
			return nil
		}
	}
	a.render(w, r, http.StatusOK, "home", homePage{
		frame: a.frame(s, "Welcome"),
		// Keystep sends back the state given at sign-out (OIDC RP-Initiated
		// Logout §3); it only picks this message.
		SignedOut: r.URL.Query().Get("state") == "signed-out",
	})
	return nil
}

// login starts a sign-in at the level Keystep picks (none asked for).
func (a *App) login(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connect(r.Context())
	if err != nil {
		return keystepDown(a.cfg.Issuer, err)
	}
	s := a.sessions.get(r)
	if s == nil {
		s = a.sessions.create(w, a.secure)
	}
	defer s.mu.Unlock()
	if s.signedIn() {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		return nil
	}
	return a.authorize(w, r, s, c, "/dashboard", nil, false)
}

// authorize sends the browser to Keystep's authorization endpoint: code
// flow with PKCE S256 (RFC 7636) and a nonce (OIDC Core §3.1.2.1), pushed
// to Keystep first (RFC 9126), so the browser carries only client_id and
// request_uri. The request names the session's DPoP key (dpop_jkt, RFC
// 9449 §10): the code redeems only with a proof of it. state is kept in
// the session and in a cookie scoped to /callback, so a callback is
// accepted only in the browser that started it. extra carries a
// challenge's acr_values and max_age (RFC 9470 §4). retry means returnTo
// is a page whose API call was refused: the callback marks it, so a second
// refusal there stops instead of looping.
func (a *App) authorize(w http.ResponseWriter, r *http.Request, s *session, c *conn, returnTo string, extra url.Values, retry bool) error {
	if s.key == nil {
		k, err := newSessionKey()
		if err != nil {
			return err
		}
		s.key = k
	}
	p := &pendingAuth{
		state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier(),
		returnTo: returnTo, stepUp: retry, started: a.cfg.Now(), details: extra.Get("authorization_details"),
	}
	params := url.Values{
		"response_type": {"code"}, "client_id": {a.cfg.ClientID}, "redirect_uri": {c.oauth.RedirectURL},
		"scope": {strings.Join(c.oauth.Scopes, " ")}, "state": {p.state}, "nonce": {p.nonce},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(p.verifier)}, "code_challenge_method": {"S256"},
		"dpop_jkt": {s.key.JKT},
	}
	for k := range extra {
		params.Set(k, extra.Get(k))
	}
	to, err := a.push(r.Context(), c, params)
	if err != nil {
		return &publicError{status: http.StatusBadGateway, title: "Sign-in didn't start",
			detail: "Acme Payroll couldn't send your sign-in to Keystep. Try again in a moment.", err: err}
	}
	s.pending = p
	setCookie(w, stateCookie, p.state, "/callback", int(authTimeout/time.Second), a.secure)
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

var errExpiredSignIn = &publicError{status: http.StatusBadRequest, title: "This sign-in has expired",
	detail: "It took too long, or it started in another browser. Start again from the home page."}

// callback finishes a sign-in: it checks state against the session and the
// cookie, redeems the code with the PKCE verifier, verifies the ID token
// (signature, iss, aud, exp) and its nonce, and keeps the tokens.
func (a *App) callback(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	s := a.sessions.get(r)
	if s == nil {
		return errExpiredSignIn
	}
	defer s.mu.Unlock()
	q := r.URL.Query()
	p := s.pending
	ck, _ := r.Cookie(stateCookie)
	if p == nil || ck == nil || q.Get("state") == "" || q.Get("state") != p.state || ck.Value != p.state ||
		a.cfg.Now().Sub(p.started) > authTimeout {
		return errExpiredSignIn
	}
	s.pending = nil
	setCookie(w, stateCookie, "", "/callback", -1, a.secure)

	if e := q.Get("error"); e != "" {
		s.note(a.cfg.Now(), "Keystep did not sign you in.", "error="+e+" "+q.Get("error_description"))
		if p.details != "" && s.signedIn() {
			s.payment = nil
			s.flash = "Nothing was paid: Keystep didn't get your approval."
			switch e {
			case "access_denied":
				s.flash = "You didn't approve the payment, so nothing was paid."
			case "unmet_authentication_requirements":
				s.flash = "Nothing was paid: this payment needs your passkey or security key, and your Keystep account doesn't have one yet. Add one in your Keystep account, then pay again."
			}
			http.Redirect(w, r, "/invoice", http.StatusSeeOther)
			return nil
		}
		if s.signedIn() {
			s.flash = "Keystep didn't confirm it's you, so that page stays closed. You're still signed in as before."
			http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
			return nil
		}
		return &publicError{status: http.StatusForbidden, title: "You're not signed in",
			detail: "Keystep didn't finish signing you in. Start again from the home page when you're ready."}
	}
	c, err := a.connect(ctx)
	if err != nil {
		return keystepDown(a.cfg.Issuer, err)
	}
	notFinished := func(err error) error {
		return &publicError{status: http.StatusBadGateway, title: "Sign-in didn't finish",
			detail: "Acme Payroll couldn't complete the sign-in with Keystep. Start again from the home page.", err: err}
	}
	tok, err := a.exchange(ctx, c, s.key, q.Get("code"), p.verifier)
	if err != nil {
		return notFinished(err)
	}
	raw := tok.IDToken
	idt, err := c.idVerifier.Verify(ctx, raw)
	if err != nil {
		return notFinished(err)
	}
	var cl struct {
		Nonce    string   `json:"nonce"`
		ACR      string   `json:"acr"`
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
		Username string   `json:"preferred_username"`
		Name     string   `json:"name"`
	}
	if err := idt.Claims(&cl); err != nil {
		return notFinished(err)
	}
	if cl.Nonce != p.nonce {
		return notFinished(fmt.Errorf("nonce mismatch"))
	}
	// The access token as the API will see it: its cnf.jkt must be the
	// session's key, or the API would refuse every call.
	at, err := c.verifier.VerifyHeld(ctx, tok.AccessToken, s.key.JKT)
	if err != nil {
		return notFinished(err)
	}
	if p.details != "" && (!sameJSON([]byte(p.details), tok.AuthorizationDetails) || !sameJSON([]byte(p.details), at.AuthorizationDetails)) {
		// Keystep grants what was approved, which is what the app asked
		// for (RFC 9396 §7): anything else is not this payment.
		return notFinished(fmt.Errorf("authorization_details granted %s (token response) and %s (access token), asked for %s",
			tok.AuthorizationDetails, at.AuthorizationDetails, p.details))
	}
	u := user{Subject: idt.Subject, Username: cl.Username, Name: cl.Name, ACR: cl.ACR, AMR: cl.AMR, JKT: at.JKT}
	if len(at.AuthorizationDetails) > 0 {
		u.Details = indentJSON(at.AuthorizationDetails)
	}
	if u.Username == "" {
		// Keystep puts profile claims in userinfo, not the ID token (OIDC
		// Core §5.4). A name is nice to have, not a reason to fail.
		if info, err := a.userinfo(ctx, c, s.key, tok.AccessToken); err != nil {
			a.log.WarnContext(ctx, "demo userinfo failed", "error", err)
		} else if info["sub"] == u.Subject {
			u.Username, _ = info["preferred_username"].(string)
			u.Name, _ = info["name"].(string)
		}
	}
	if cl.AuthTime > 0 {
		u.AuthTime = time.Unix(cl.AuthTime, 0)
	}
	if s.signedIn() && s.user.Subject != u.Subject {
		// Someone else signed in at Keystep: nothing of the last person's carries over.
		s.change, s.payment, s.events, s.retried = nil, nil, nil, ""
	}
	s.user, s.accessToken, s.tokenType, s.rawIDToken, s.stolen = u, tok.AccessToken, tok.TokenType, raw, nil
	a.sessions.rotate(w, s, a.secure)
	if p.stepUp {
		s.retried = p.returnTo
	}
	s.note(a.cfg.Now(), "Keystep signed you in: "+levelWords(u.ACR)+".",
		fmt.Sprintf("ID token: acr=%s amr=%s auth_time=%d; access token: token_type=%s cnf.jkt=%s", u.ACR, strings.Join(u.AMR, ","), cl.AuthTime, tok.TokenType, u.JKT))
	if p.details != "" && s.payment != nil && s.payment.receipt == nil {
		// The approval of the payment: its token pays it (invoice.go).
		s.payment.approval = &approval{accessToken: tok.AccessToken, response: tok.AuthorizationDetails, claims: at}
		s.note(a.cfg.Now(), "Keystep approved the payment with "+amrWords(at.AMR)+".", "access token: authorization_details="+string(at.AuthorizationDetails))
	}
	http.Redirect(w, r, p.returnTo, http.StatusSeeOther)
	return nil
}

// signedIn wraps a page for signed-in people; others are sent to sign in
// and brought back.
func (a *App) signedIn(h func(http.ResponseWriter, *http.Request, *session, *conn) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := a.connect(r.Context())
		if err != nil {
			return keystepDown(a.cfg.Issuer, err)
		}
		s := a.sessions.get(r)
		if s == nil {
			s = a.sessions.create(w, a.secure)
		}
		defer s.mu.Unlock()
		if !s.signedIn() {
			back := r.URL.Path
			if r.Method != http.MethodGet {
				back = "/dashboard"
			}
			return a.authorize(w, r, s, c, back, nil, false)
		}
		return h(w, r, s, c)
	}
}

// retrying reports, once, whether this request is the retry after a
// step-up for its page.
func (s *session) retrying(r *http.Request) bool {
	ok := s.retried != "" && s.retried == r.URL.Path
	s.retried = ""
	return ok
}

// apiResponse is what the app's API answered.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// callAPI calls the app's API as any client of a resource server would:
// over HTTP with the user's access token under the DPoP scheme and a proof
// of the session's key for this very request (RFC 9449 §7.1).
func (a *App) callAPI(ctx context.Context, s *session, method, path string, body any) (apiResponse, error) {
	req, err := newRequest(ctx, method, a.cfg.URL+path, body)
	if err != nil {
		return apiResponse{}, err
	}
	if err := dpopRequest(req, dpop.Scheme, s.accessToken, s.key, a.cfg.Now()); err != nil {
		return apiResponse{}, err
	}
	return a.send(req)
}

// refused handles a 401 from the API. An RFC 9470 challenge sends the
// browser to Keystep with the challenge's acr_values and max_age, then back
// to path, where the call is retried. An expired access token gets a new one
// the same way (Keystep's session usually makes that invisible). If the API
// still refuses right after Keystep sent the person back, Keystep could not
// give more (the account lacks the factor): the page says what to add.
func (a *App) refused(w http.ResponseWriter, r *http.Request, s *session, c *conn, res apiResponse, what, path string, retried bool) error {
	header := strings.Join(res.header.Values("WWW-Authenticate"), ", ")
	ch, err := resource.ParseChallenge(header)
	if err != nil {
		return fmt.Errorf("API answered 401 with a bad challenge %q: %w", header, err)
	}
	now := a.cfg.Now()
	switch ch.Error {
	case errInsufficientAuth:
		s.note(now, what+": the API wants "+needWords(ch)+".", "401 WWW-Authenticate: "+header)
		if retried {
			a.render(w, r, http.StatusForbidden, "needmore", needMorePage{
				frame: a.frame(s, what), What: what, Needs: needWords(ch), Have: levelWords(s.user.ACR),
				Missing: missingFactor(ch), Retry: path, Header: header,
			})
			return nil
		}
		params := ch.AuthorizeParams()
		s.note(now, "Sent you to Keystep for more.", "pushed (PAR) with "+paramText(params))
		return a.authorize(w, r, s, c, path, params, true)
	case errInvalidToken, "":
		if retried {
			return fmt.Errorf("API refused a fresh access token: %q", header)
		}
		s.note(now, "The access token had expired; asked Keystep for a new one.", "401 WWW-Authenticate: "+header)
		return a.authorize(w, r, s, c, path, nil, true)
	}
	return fmt.Errorf("API answered 401 with %q", header)
}

// paramText shows query parameters as a person reads them: a=b c=d, unescaped.
func paramText(v url.Values) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, k+"="+strings.Join(v[k], ","))
	}
	return strings.Join(parts, " ")
}

// apiFailed is any other unexpected answer from the API.
func apiFailed(res apiResponse, err error) error {
	if err == nil {
		err = fmt.Errorf("API status %d", res.status)
	}
	return &publicError{status: http.StatusBadGateway, title: "Payroll is unavailable",
		detail: "Acme Payroll couldn't load that just now. Try again in a moment.", err: err}
}

// ---- pages ----

func (a *App) dashboard(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		now := a.cfg.Now()
		p := dashboardPage{
			frame: a.frame(s, "Dashboard"), Username: s.user.Username, Subject: s.user.Subject,
			Level: levelWords(s.user.ACR), ACR: s.user.ACR,
			Factors: amrWords(s.user.AMR), AMR: strings.Join(s.user.AMR, " "),
			When: whenWords(s.user.AuthTime, now),
			JKT:  s.user.JKT, TokenType: s.tokenType, Stolen: s.stolen, Details: s.user.Details,
		}
		p.Nav = "dashboard"
		if !s.user.AuthTime.IsZero() {
			p.AuthTime = fmt.Sprintf("%d (%s)", s.user.AuthTime.Unix(), s.user.AuthTime.UTC().Format(time.RFC3339))
		}
		for i := len(s.events) - 1; i >= 0; i-- {
			e := s.events[i]
			p.Events = append(p.Events, eventLine{Time: e.Time.Local().Format("15:04:05"), Text: e.Text, Detail: e.Detail})
		}
		a.render(w, r, http.StatusOK, "dashboard", p)
		return nil
	})(w, r)
}

func (a *App) payslips(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		retried := s.retrying(r)
		res, err := a.callAPI(r.Context(), s, http.MethodGet, "/api/payslips", nil)
		if err != nil {
			return apiFailed(res, err)
		}
		switch res.status {
		case http.StatusOK:
		case http.StatusUnauthorized:
			return a.refused(w, r, s, c, res, "Payslips", "/payslips", retried)
		default:
			return apiFailed(res, nil)
		}
		var out payslipsJSON
		if err := json.Unmarshal(res.body, &out); err != nil {
			return apiFailed(res, err)
		}
		s.note(a.cfg.Now(), "Payslips: the API said yes.", "200 OK")
		p := payslipsPage{frame: a.frame(s, "Payslips"), Payslips: out.Payslips}
		p.Nav = "payslips"
		a.render(w, r, http.StatusOK, "payslips", p)
		return nil
	})(w, r)
}

func (a *App) bank(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		retried := s.retrying(r)
		return a.bankPage(w, r, s, c, http.StatusOK, "", "", retried)
	})(w, r)
}

// bankPage shows the account on file (which needs what payslips need) and
// the form to change it.
func (a *App) bankPage(w http.ResponseWriter, r *http.Request, s *session, c *conn, status int, entered, problem string, retried bool) error {
	res, err := a.callAPI(r.Context(), s, http.MethodGet, "/api/bank-account", nil)
	if err != nil {
		return apiFailed(res, err)
	}
	switch res.status {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return a.refused(w, r, s, c, res, "Bank account", "/bank", retried)
	default:
		return apiFailed(res, nil)
	}
	var acct bankAccountJSON
	if err := json.Unmarshal(res.body, &acct); err != nil {
		return apiFailed(res, err)
	}
	p := bankPage{frame: a.frame(s, "Bank account"), Ending: lastFour(acct.IBAN), Entered: entered, Problem: problem}
	p.Nav = "bank"
	a.render(w, r, status, "bank", p)
	return nil
}

// bankSubmit keeps the new account in the session and tries the change.
func (a *App) bankSubmit(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		entered := r.PostFormValue("iban")
		iban, ok := normalizeIBAN(entered)
		if !ok {
			return a.bankPage(w, r, s, c, http.StatusUnprocessableEntity, entered,
				"That doesn't look like an IBAN. Check it and try again.", false)
		}
		s.change = &bankChange{IBAN: iban, At: a.cfg.Now()}
		return a.applyChange(w, r, s, c, false)
	})(w, r)
}

// bankResume is where Keystep's callback brings the browser back after the
// step-up for a change. It only finishes a change this session itself
// posted (through CrossOriginProtection) in the last ten minutes, so a link
// from elsewhere can do no more than the person already asked for.
func (a *App) bankResume(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		retried := s.retrying(r)
		if s.change == nil || a.cfg.Now().Sub(s.change.At) > authTimeout {
			s.change = nil
			http.Redirect(w, r, "/bank", http.StatusSeeOther)
			return nil
		}
		return a.applyChange(w, r, s, c, retried)
	})(w, r)
}

func (a *App) applyChange(w http.ResponseWriter, r *http.Request, s *session, c *conn, retried bool) error {
	res, err := a.callAPI(r.Context(), s, http.MethodPut, "/api/bank-account", bankAccountJSON{IBAN: s.change.IBAN})
	if err != nil {
		return apiFailed(res, err)
	}
	switch res.status {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return a.refused(w, r, s, c, res, "Changing your bank account", "/bank/resume", retried)
	default:
		return apiFailed(res, nil)
	}
	s.note(a.cfg.Now(), "Bank account change: the API said yes.", "200 OK")
	s.flash = "Done. From the next payday your salary goes to the account ending in " + lastFour(s.change.IBAN) + "."
	s.change = nil
	http.Redirect(w, r, "/bank", http.StatusSeeOther)
	return nil
}

// logout ends the app's session and then Keystep's, through RP-Initiated
// Logout 1.0 §2 with id_token_hint and post_logout_redirect_uri.
func (a *App) logout(w http.ResponseWriter, r *http.Request) error {
	s := a.sessions.get(r)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	hint := s.rawIDToken
	a.sessions.delete(w, s, a.secure)
	s.mu.Unlock()
	c, err := a.connect(r.Context())
	if err != nil || c.endSession == "" {
		http.Redirect(w, r, "/?state=signed-out", http.StatusSeeOther)
		return nil
	}
	q := url.Values{
		"client_id":                {a.cfg.ClientID},
		"post_logout_redirect_uri": {a.cfg.URL + "/"},
		"state":                    {"signed-out"},
	}
	if hint != "" {
		q.Set("id_token_hint", hint)
	}
	http.Redirect(w, r, c.endSession+"?"+q.Encode(), http.StatusSeeOther)
	return nil
}

// ---- page data ----

type homePage struct {
	frame
	SignedOut bool
}

type dashboardPage struct {
	frame
	Username, Subject string
	Level, ACR        string
	Factors, AMR      string
	When, AuthTime    string
	JKT, TokenType    string // the access token's cnf.jkt and token_type
	Details           string // the access token's authorization_details, indented
	Stolen            []replay
	Events            []eventLine
}

type eventLine struct{ Time, Text, Detail string }

type payslipsPage struct {
	frame
	Payslips []payslipJSON
}

type bankPage struct {
	frame
	Ending           string
	Entered, Problem string
}

type needMorePage struct {
	frame
	What, Needs, Have, Missing string
	Retry                      string
	Header                     string
}

type errorPage struct {
	frame
	Detail string
}
