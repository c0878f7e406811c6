package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// opMiddleware adapts HTTP facts the OP library does not look at.
type opMiddleware struct {
	cookies web.Cookies
	store   storage.Store
	now     func() time.Time
	ui      *login.Handler
	metrics *metrics
	op      *opServer
	issuer  string
	log     *slog.Logger
	dpop    *dpopGuard
}

// state puts a reqState into the context of every OP request.
func (m *opMiddleware) state(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &reqState{sessionID: m.cookies.SessionID(r)}
		if r.URL.Path == "/authorize" {
			b, err := m.cookies.BrowserBinding(w, r)
			if err != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			st.browser = b
		}
		switch r.URL.Path {
		case userinfoPath: // RFC 6750 §2.1 and §2.2, RFC 9449 §7.1
			if h := r.Header.Get("Authorization"); len(h) > len(oidc.PrefixBearer) && strings.EqualFold(h[:len(oidc.PrefixBearer)], oidc.PrefixBearer) {
				st.bearer = append(st.bearer, h[len(oidc.PrefixBearer):])
			} else if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, dpop.Scheme) && token != "" {
				// The library reads only the Bearer scheme: it gets the
				// token that way, and UserInfo checks the proof.
				st.dpopScheme, st.dpopChallenge = true, true
				st.bearer = append(st.bearer, token)
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", oidc.PrefixBearer+token)
			}
			if t := r.PostFormValue("access_token"); t != "" {
				st.bearer = append(st.bearer, t)
			}
		case "/oauth/introspect": // RFC 7662 §2.1
			if t := r.PostFormValue("token"); t != "" {
				st.bearer = append(st.bearer, t)
			}
		}
		if r.URL.Path == userinfoPath {
			// RFC 6750 §3, RFC 9449 §7.1: a refused token gets a challenge.
			w = &challengeWriter{ResponseWriter: w, st: st}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	})
}

// callback guards /authorize/callback: the library issues a code for any
// done request whose ID it is given; Keystep also requires the browser
// that started the request, so a lured victim's code cannot be collected.
//
// The guard must check the very ID the library then uses. The library
// reads r.Form, where a POST body wins over the query, so the login's 303
// (a GET) is the only method accepted, and exactly one id: the form is
// parsed here once and the library reads the same parsed form.
func (m *opMiddleware) callback(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			m.ui.RenderError(w, r, http.StatusMethodNotAllowed, "This sign-in link is invalid", "Go back to the app you came from and start again.")
			return
		}
		ids := []string(nil)
		if err := r.ParseForm(); err == nil {
			ids = r.Form["id"]
		}
		if len(ids) != 1 || ids[0] == "" {
			m.ui.RenderError(w, r, http.StatusBadRequest, "This sign-in link is invalid", "Go back to the app you came from and start again.")
			return
		}
		id := ids[0]
		ar, err := m.store.AuthRequestByID(r.Context(), id, m.now())
		if err != nil {
			m.ui.RenderError(w, r, http.StatusBadRequest, "This sign-in link has expired", "Go back to the app you came from and start again.")
			return
		}
		if b := m.cookies.ExistingBrowserBinding(r); b == "" || b != ar.BrowserBinding {
			m.ui.RenderError(w, r, http.StatusForbidden, "This sign-in started in another browser", "Finish signing in in the browser where you started.")
			return
		}
		next(w, r)
	}
}

// wrapOP adds what the library leaves out around its endpoints.
func (m *opMiddleware) wrapOP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/authorize":
			if msg := checkParams(r); msg != "" {
				// Without a trustworthy redirect_uri nothing may be redirected
				// (RFC 6749 §4.1.2.1): the error is shown here.
				m.ui.RenderRequestError(w, r, http.StatusBadRequest, "This sign-in request is invalid", msg)
				return
			}
			w = &issWriter{ResponseWriter: w, issuer: m.issuer} // RFC 9207
			if r = m.resolveFront(w, r); r == nil {
				return
			}
			rec := &errorCapture{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			if rec.captured {
				if rec.unknownClient() {
					m.ui.RenderError(w, r, rec.status, "This sign-in request is invalid", "The app that sent you here is not registered with this sign-in service.")
				} else {
					m.ui.RenderRequestError(w, r, rec.status, "This sign-in request is invalid", rec.description())
				}
			}
			return
		case "/authorize/callback":
			next.ServeHTTP(&issWriter{ResponseWriter: w, issuer: m.issuer}, r) // RFC 9207
			return
		case tokenPath:
			// RFC 6749 §5.1: token responses must not be cached.
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
			// RFC 9449 §8.2: every token response carries the current
			// nonce, so a client learns a new one before the old expires
			// (and with a use_dpop_nonce refusal).
			w.Header().Set(dpop.HeaderNonce, m.dpop.nonces.Issue(m.now()))
			if msg := checkParams(r); msg != "" {
				writeOAuthError(w, http.StatusBadRequest, "invalid_request", msg)
				return
			}
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			m.metrics.grant(r.PostForm.Get("grant_type"), rec.status)
			return
		case "/end_session":
			if err := r.ParseForm(); err == nil && r.Form.Get("id_token_hint") == "" && m.cookies.SessionID(r) != "" {
				m.ui.ConfirmLogout(w, r)
				return
			}
			// RP-Initiated Logout 1.0 §3: a logout request that cannot be
			// honoured (an invalid id_token_hint, a post_logout_redirect_uri
			// that is not registered exactly) is shown here, never redirected;
			// the library would answer the browser with raw JSON.
			rec := &errorCapture{ResponseWriter: w}
			next.ServeHTTP(&logoutWriter{ResponseWriter: rec, r: r, cookies: m.cookies}, r)
			if rec.captured {
				m.ui.RenderError(w, r, rec.status, "This sign-out request is invalid",
					"The app that sent you here asked to sign you out in a way this sign-in service can't accept, so nothing was changed. Go back to the app, or sign out from your account page.")
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkParams rejects repeated parameters (RFC 6749 §3.1, §3.2) and
// invalid UTF-8. It parses the form, so the body limit applies first.
//
// The library decodes parameters case-insensitively (zitadel/schema
// matches names with strings.EqualFold), while Keystep reads exact names:
// client_id beside Client_ID was one parameter to one and two to the
// other, so a pushed request could be stored as one client's and run as
// another's. Names equal but for case count as a repeat, and a parameter
// the library reads must be spelled as the protocol spells it.
func checkParams(r *http.Request) string {
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "The request is too large."
		}
		return "The request could not be read."
	}
	return checkNames(r.Form)
}

// checkNames is checkParams for a form however it came: parsed from the
// request, or made from a request object's claims.
func checkNames(form url.Values) string {
	folded := make(map[string]bool, len(form))
	for k, vs := range form {
		if !utf8.ValidString(k) {
			return "The request contains invalid characters."
		}
		lower := strings.ToLower(k)
		if len(vs) > 1 || folded[lower] {
			return "The parameter " + strings.ToValidUTF8(k, "") + " appears more than once."
		}
		folded[lower] = true
		if lower != k && libraryParams[lower] {
			return "The parameter " + k + " must be written " + lower + "."
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return "The parameter " + k + " contains invalid characters."
			}
		}
	}
	return ""
}

// libraryParams are the parameter names the library decodes, read from
// the schema tags of its request types.
var libraryParams = schemaNames(oidc.AuthRequest{}, oidc.AccessTokenRequest{}, oidc.RefreshTokenRequest{},
	oidc.ClientCredentialsRequest{}, oidc.RevocationRequest{}, oidc.IntrospectionRequest{}, op.IntrospectionRequest{},
	oidc.EndSessionRequest{}, oidc.UserInfoRequest{}, oidc.JWTProfileGrantRequest{}, oidc.TokenExchangeRequest{},
	oidc.DeviceAuthorizationRequest{}, oidc.DeviceAccessTokenRequest{}, op.ClientCredentials{})

func schemaNames(types ...any) map[string]bool {
	names := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("schema"), ",")
			switch {
			case name == "-":
			case name != "":
				names[strings.ToLower(name)] = true
			case f.Anonymous:
				walk(f.Type)
			}
		}
	}
	for _, v := range types {
		walk(reflect.TypeOf(v))
	}
	return names
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// errorCapture holds back an error body from /authorize so it can be shown
// as a page instead of raw JSON or text.
type errorCapture struct {
	http.ResponseWriter
	status   int
	captured bool
	buf      bytes.Buffer
}

func (c *errorCapture) WriteHeader(status int) {
	if status >= 400 {
		c.status, c.captured = status, true
		return
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *errorCapture) Write(b []byte) (int, error) {
	if c.captured {
		return c.buf.Write(b)
	}
	return c.ResponseWriter.Write(b)
}

// oauthError is the library's error answer, as captured.
func (c *errorCapture) oauthError() (code, description string) {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(c.buf.Bytes(), &e) != nil {
		return "", ""
	}
	return e.Error, e.Description
}

// unknownClient reports whether the library refused the request's client.
func (c *errorCapture) unknownClient() bool {
	code, _ := c.oauthError()
	return code == "invalid_client" || code == "unauthorized_client"
}

// description is the library's words for the refusal (its
// error_description, else its error code), for the app's developers;
// "" when it gave none.
func (c *errorCapture) description() string {
	code, desc := c.oauthError()
	if desc != "" {
		return desc
	}
	return code
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// challengeWriter turns userinfo refusals into 401 with WWW-Authenticate:
// a Bearer challenge (RFC 6750 §3), or a DPoP one (RFC 9449 §7.1) when
// the request used the DPoP scheme or its token is bound.
type challengeWriter struct {
	http.ResponseWriter
	st *reqState
}

func (c *challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		ch := `Bearer error="invalid_token", error_description="the access token is invalid, expired or revoked"`
		if c.st.dpopChallenge {
			code := c.st.dpopError
			if code == "" {
				code = "invalid_token"
			}
			ch = `DPoP error="` + code + `", error_description="the access token is invalid, expired, revoked or not proven", algs="` + strings.Join(dpop.AlgNames(), " ") + `"`
		}
		c.Header().Set("WWW-Authenticate", ch)
		code = http.StatusUnauthorized
	}
	c.ResponseWriter.WriteHeader(code)
}

// logoutWriter clears the session cookie when end_session succeeds.
type logoutWriter struct {
	http.ResponseWriter
	r       *http.Request
	cookies web.Cookies
}

func (l *logoutWriter) WriteHeader(code int) {
	if code >= 300 && code < 400 {
		l.cookies.ClearSession(l.ResponseWriter)
	}
	l.ResponseWriter.WriteHeader(code)
}

// securityHeaders sets the headers of DESIGN §6 on every response.
func securityHeaders(https bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if https {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies; a larger one fails to parse with a 4xx.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			w.Header().Set("Connection", "close")
			writeOAuthError(w, http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

func dirFS(dir string) fs.FS { return os.DirFS(dir) }
