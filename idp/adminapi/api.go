// Package adminapi is Keystep's admin API: the operations of the admin
// console and the CLI (package admin) as JSON over HTTP under /admin/api,
// for automation (issue 21). A caller is a client granted the API
// (storage.Client.AdminAPI) presenting an access token of its own
// client_credentials grant with ScopeRead or ScopeWrite; package idp
// verifies the token (Config.Authenticate). Every change goes through
// admin.Service, which checks and audits it with the client as the actor
// ("client:ID"); each read call is audited too, as
// storage.EventAdminAPIRead. The API reads no cookies, so a browser's
// session never authenticates a call.
package adminapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// Prefix is where the API is served.
const Prefix = "/admin/api"

// MaxBody bounds a request body.
const MaxBody = 1 << 20

//go:embed openapi.json
var openAPI []byte

// OpenAPI is the OpenAPI 3.1 document of the API, served at
// Prefix/openapi.json.
func OpenAPI() []byte { return slices.Clone(openAPI) }

// Caller is the client making a call, as its verified access token and its
// registration say.
type Caller struct {
	ClientID string
	// Scopes are the access token's.
	Scopes []string
	// Grant is the client's admin API grant now (storage.Client.AdminAPI):
	// a token outlives a grant taken away or narrowed, its calls do not.
	Grant string
}

// Actor is who the audit log names for the caller's changes.
func (c Caller) Actor(reason string) admin.Actor {
	return admin.Actor{ID: "client:" + c.ClientID, Reason: reason}
}

// AuthError refuses a call's access token: 401, with a challenge in the
// scheme the token was sent with (RFC 6750 §3, RFC 9449 §7.1).
type AuthError struct {
	// Scheme is "Bearer" or "DPoP".
	Scheme string
	// Code is invalid_token or invalid_dpop_proof ("" when
	// the request had no credentials, RFC 6750 §3.1).
	Code        string
	Description string
}

func (e *AuthError) Error() string { return e.Code + ": " + e.Description }

// Config is what the API needs.
type Config struct {
	Service *admin.Service
	// Authenticate verifies the access token of r and says who calls; a
	// refusal is an *AuthError.
	Authenticate func(r *http.Request) (Caller, error)
	Now          func() time.Time
	Log          *slog.Logger
}

// Route is one operation of the API: a method and a path pattern as
// http.ServeMux and the OpenAPI document write it ({id}).
type Route struct{ Method, Path string }

// route is an operation and what it needs: ScopeRead, ScopeWrite, or ""
// for the public OpenAPI document.
type route struct {
	method, path string
	need         string
	handle       func(a *api, w http.ResponseWriter, r *http.Request, c Caller) error
}

// routes is every operation of the API, in one table: New registers them
// and the OpenAPI test enumerates them.
var routes = []route{
	{http.MethodGet, "/openapi.json", "", (*api).openAPIDoc},

	{http.MethodGet, "/policy", ScopeRead, (*api).getPolicy},
	{http.MethodPut, "/policy", ScopeWrite, (*api).putPolicy},
	{http.MethodPost, "/policy/check", ScopeRead, (*api).checkPolicy},
	{http.MethodPost, "/policy/rollback", ScopeWrite, (*api).rollbackPolicy},
	{http.MethodGet, "/policy/versions", ScopeRead, (*api).listPolicyVersions},
	{http.MethodGet, "/policy/versions/{n}", ScopeRead, (*api).getPolicyVersion},

	{http.MethodGet, "/clients", ScopeRead, (*api).listClients},
	{http.MethodPost, "/clients", ScopeWrite, (*api).createClient},
	{http.MethodGet, "/clients/{id}", ScopeRead, (*api).getClient},
	{http.MethodPut, "/clients/{id}", ScopeWrite, (*api).updateClient},
	{http.MethodDelete, "/clients/{id}", ScopeWrite, (*api).deleteClient},
	{http.MethodPost, "/clients/{id}/secret", ScopeWrite, (*api).rotateClientSecret},

	{http.MethodGet, "/users", ScopeRead, (*api).listUsers},
	{http.MethodPost, "/users", ScopeWrite, (*api).createUser},
	{http.MethodGet, "/users/{id}", ScopeRead, (*api).getUser},
	{http.MethodPost, "/users/{id}/disable", ScopeWrite, (*api).disableUser},
	{http.MethodPost, "/users/{id}/enable", ScopeWrite, (*api).enableUser},
	{http.MethodPost, "/users/{id}/signout", ScopeWrite, (*api).signOutUser},
	{http.MethodPost, "/users/{id}/unlock", ScopeWrite, (*api).unlockUser},
	{http.MethodPost, "/users/{id}/reset-factors", ScopeWrite, (*api).resetFactors},

	{http.MethodGet, "/audit", ScopeRead, (*api).listAudit},
}

// Routes lists every operation the API serves.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		out[i] = Route{rt.method, Prefix + rt.path}
	}
	return out
}

type api struct{ cfg Config }

// New is the API's handler, for Prefix and everything below it.
func New(cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range routes {
		mux.Handle(rt.method+" "+Prefix+rt.path, a.serve(rt))
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// A known path with another method: 405 with Allow (RFC 9110 §15.5.6),
	// in the API's JSON, not the mux's text.
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(Prefix+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Description: r.Method + " is not allowed here; use " + allow})
		})
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Description: "no such operation; see " + Prefix + "/openapi.json"})
	})
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Description: "no such operation; see " + Prefix + "/openapi.json"})
	})
	return mux
}

// serve authenticates the call, checks the scope rt needs, and runs it.
func (a *api) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c Caller
		if rt.need != "" {
			var err error
			if c, err = a.cfg.Authenticate(r); err != nil {
				var ae *AuthError
				if !errors.As(err, &ae) {
					a.fail(w, r, err)
					return
				}
				challenge(w, ae)
				return
			}
			if c.Grant == "" {
				challenge(w, &AuthError{Scheme: "Bearer", Code: "invalid_token", Description: "this client is not granted the admin API"})
				return
			}
			if !can(c.Scopes, c.Grant, rt.need) {
				// RFC 6750 §3.1: the scope that would do.
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="keystep-admin", error="insufficient_scope", scope=%q`, rt.need))
				writeError(w, &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Description: "this call needs the scope " + rt.need + " and a client granted it"})
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		if rt.need == ScopeRead {
			// Changes are audited by admin.Service; a read is audited here,
			// before it is answered, so no read goes unrecorded.
			if err := a.recordRead(r, c); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		if err := rt.handle(a, w, r, c); err != nil {
			a.fail(w, r, err)
		}
	})
}

// recordRead audits a read call (storage.EventAdminAPIRead) with the
// caller as the actor: the method and path, never the query, whose values
// may be anything the caller sent.
func (a *api) recordRead(r *http.Request, c Caller) error {
	return a.cfg.Service.Audit.Record(r.Context(), storage.AuditEvent{Time: a.now(), Type: storage.EventAdminAPIRead,
		ActorID: c.Actor("").ID, Outcome: "success", Details: map[string]string{"call": r.Method + " " + r.URL.Path}})
}

// challenge answers 401 with a challenge in the scheme of the refused
// token (RFC 6750 §3, RFC 9449 §7.1).
func challenge(w http.ResponseWriter, e *AuthError) {
	scheme := e.Scheme
	if scheme == "" {
		scheme = "Bearer"
	}
	h := scheme + ` realm="keystep-admin"`
	if scheme == dpop.Scheme {
		h += `, algs="` + strings.Join(dpop.AlgNames(), " ") + `"` // RFC 9449 §7.1
	}
	if e.Code != "" {
		h += fmt.Sprintf(`, error=%q, error_description=%q`, e.Code, e.Description)
	}
	w.Header().Set("WWW-Authenticate", h)
	code := e.Code
	if code == "" {
		code = "invalid_token"
	}
	writeError(w, &Error{Status: http.StatusUnauthorized, Code: code, Description: e.Description})
}

// Error is an API error response: {"error", "error_description",
// "problems"} with Status.
type Error struct {
	Status      int
	Code        string
	Description string
	Problems    []admin.Problem
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: fmt.Sprintf(format, args...)}
}

// fail answers err: an *Error as it is, the admin and storage errors
// callers tell apart with their status, anything else 500 (logged, not
// shown).
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = classify(err)
	}
	if e == nil {
		a.cfg.Log.ErrorContext(r.Context(), "admin api", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "the server could not do this; see its log"}
	}
	writeError(w, e)
}

func writeError(w http.ResponseWriter, e *Error) {
	body := map[string]any{"error": e.Code, "error_description": e.Description}
	if e.Problems != nil {
		body["problems"] = e.Problems
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if status != http.StatusNoContent {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// readBody reads the whole body (at most MaxBody).
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request", Description: fmt.Sprintf("the body is larger than %d bytes", MaxBody)}
	}
	if err != nil {
		return nil, badRequest("the body could not be read")
	}
	if !utf8.Valid(b) {
		return nil, badRequest("the body is not valid UTF-8")
	}
	return b, nil
}

// duplicateMember is the first object member of the JSON value in b named
// twice in its object, at any depth ("" when none). Names are compared
// as encoding/json matches them to fields, ignoring case, so "Reason"
// cannot stand in for a second "reason".
func duplicateMember(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var walk func() (string, error)
	walk = func() (string, error) {
		t, err := dec.Token()
		if err != nil {
			return "", err
		}
		d, ok := t.(json.Delim)
		if !ok {
			return "", nil
		}
		seen := map[string]bool{}
		for dec.More() {
			if d == '{' {
				k, err := dec.Token()
				if err != nil {
					return "", err
				}
				name, _ := k.(string)
				if seen[strings.ToLower(name)] {
					return name, nil
				}
				seen[strings.ToLower(name)] = true
			}
			if dup, err := walk(); dup != "" || err != nil {
				return dup, err
			}
		}
		_, err = dec.Token() // the closing delimiter
		return "", err
	}
	return walk()
}

// decode reads a JSON object body into v strictly: unknown members, a
// member named twice, a second value and a missing body are refused.
// optional allows an empty body, leaving v as it is.
func decode(r *http.Request, v any, optional bool) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return badRequest("a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("the body is not the JSON this call takes: %s", err)
	}
	if dec.More() {
		return badRequest("unexpected data after the JSON body")
	}
	if dup, err := duplicateMember(b); err != nil {
		return badRequest("the body is not the JSON this call takes: %s", err)
	} else if dup != "" {
		return badRequest("the member %q is given twice in one object", dup)
	}
	return nil
}

// now is the time of the call.
func (a *api) now() time.Time { return a.cfg.Now().UTC() }
