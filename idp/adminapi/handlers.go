package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// classify is the status and code of the errors of package admin and the
// storage sentinels; nil for anything else (a server error).
func classify(err error) *Error {
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Description: "the input has problems; every one is listed", Problems: inv.Problems}
	case errors.Is(err, admin.ErrPolicyMoved):
		return &Error{Status: http.StatusConflict, Code: "conflict", Description: err.Error()}
	case errors.Is(err, admin.ErrPolicyReadOnly):
		return &Error{Status: http.StatusConflict, Code: "read_only", Description: err.Error()}
	case errors.Is(err, admin.ErrBuiltInClient):
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Description: err.Error()}
	case errors.Is(err, admin.ErrNeedsReason):
		return badRequest("a reason is required for this change")
	case errors.Is(err, admin.ErrBadReason):
		return badRequest("%s", err)
	case errors.Is(err, admin.ErrNoSecret):
		return &Error{Status: http.StatusConflict, Code: "conflict", Description: err.Error()}
	case errors.Is(err, storage.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Description: "no such object"}
	case errors.Is(err, storage.ErrAlreadyExists):
		return &Error{Status: http.StatusConflict, Code: "conflict", Description: err.Error()}
	}
	return nil
}

// ---- policy ----

// versionJSON is a stored policy version; Document is left out of lists.
type versionJSON struct {
	Version   int64           `json:"version"`
	Parent    int64           `json:"parent"`
	Author    string          `json:"author,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Diff      string          `json:"diff,omitempty"`
	CreatedAt time.Time       `json:"created_at,omitzero"`
	Active    bool            `json:"active"`
	Document  json.RawMessage `json:"document,omitempty"`
}

func versionOf(v storage.PolicyVersion, active int64, withDoc bool) versionJSON {
	out := versionJSON{Version: v.Number, Parent: v.Parent, Author: v.Author, Reason: v.Reason, Diff: v.Diff,
		CreatedAt: v.CreatedAt, Active: v.Number == active}
	if withDoc {
		out.Document = json.RawMessage(v.Document)
	}
	return out
}

func (a *api) openAPIDoc(w http.ResponseWriter, r *http.Request, _ Caller) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
	return nil
}

// getPolicy is the active version and its document: what an edit starts
// from (its number is the parent of a PUT). Version 0 is the server's own
// policy, none stored yet.
func (a *api) getPolicy(w http.ResponseWriter, r *http.Request, _ Caller) error {
	v, doc, err := a.cfg.Service.ActivePolicy(r.Context())
	if err != nil {
		return err
	}
	out := versionOf(v, v.Number, false)
	out.Document = json.RawMessage(policy.Canonical(doc))
	writeJSON(w, http.StatusOK, map[string]any{"version": out, "read_only": a.cfg.Service.Policies.ReadOnly()})
	return nil
}

// decodeDocument reads a policy document (JSON, or YAML as in a file);
// unknown fields are problems, reported with every other.
func decodeDocument(raw []byte) (policy.Document, []admin.Problem, error) {
	var doc policy.Document
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		// JSON: a member named twice is refused as in every body (YAML
		// refuses a key given twice itself).
		if dup, err := duplicateMember(t); err == nil && dup != "" {
			return doc, nil, badRequest("the policy document names %q twice in one object", dup)
		}
	}
	unknown, err := policy.Decode(raw, &doc)
	if err != nil {
		return doc, nil, badRequest("the policy document cannot be read: %s", err)
	}
	var probs []admin.Problem
	for _, u := range unknown {
		probs = append(probs, admin.Problems(u)...)
	}
	return doc, probs, nil
}

// checkPolicy reports every problem saving the document would refuse,
// without saving it.
func (a *api) checkPolicy(w http.ResponseWriter, r *http.Request, _ Caller) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	doc, probs, err := decodeDocument(raw)
	if err != nil {
		return err
	}
	more, err := a.cfg.Service.CheckPolicyDocument(r.Context(), doc)
	if err != nil {
		return err
	}
	probs = append(probs, more...)
	writeJSON(w, http.StatusOK, map[string]any{"valid": len(probs) == 0, "problems": orEmpty(probs)})
	return nil
}

// putPolicy stores a document as the next version and activates it, made
// from parent, the version the edit started from.
func (a *api) putPolicy(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in struct {
		Document json.RawMessage `json:"document"`
		Parent   *int64          `json:"parent"`
		Reason   string          `json:"reason"`
	}
	if err := decode(r, &in, false); err != nil {
		return err
	}
	switch {
	case len(in.Document) == 0 || string(in.Document) == "null":
		return badRequest("document is required")
	case in.Parent == nil:
		return badRequest("parent is required: the version the edit started from (GET %s/policy)", Prefix)
	}
	doc, probs, err := decodeDocument(in.Document)
	if err != nil {
		return err
	}
	if len(probs) > 0 {
		// Every problem at once: the unknown fields and what compiling says.
		more, err := a.cfg.Service.CheckPolicyDocument(r.Context(), doc)
		if err != nil {
			return err
		}
		return &admin.InvalidError{Problems: append(probs, more...)}
	}
	v, changed, err := a.cfg.Service.SavePolicy(r.Context(), c.Actor(in.Reason), "client:"+c.ClientID, doc, *in.Parent, a.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": versionOf(v, v.Number, false), "changed": changed})
	return nil
}

// rollbackPolicy makes an earlier version's document active again, as a
// new version.
func (a *api) rollbackPolicy(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in struct {
		Version *int64 `json:"version"`
		Parent  *int64 `json:"parent"`
		Reason  string `json:"reason"`
	}
	if err := decode(r, &in, false); err != nil {
		return err
	}
	if in.Version == nil || *in.Version < 1 {
		return badRequest("version is required: the stored version (1 or more) to make active again")
	}
	parent := int64(-1) // whatever is active
	if in.Parent != nil {
		if *in.Parent < 0 {
			return badRequest("parent must be a version number (0 or more)")
		}
		parent = *in.Parent
	}
	v, changed, err := a.cfg.Service.RollbackPolicy(r.Context(), c.Actor(in.Reason), "client:"+c.ClientID, *in.Version, parent, a.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": versionOf(v, v.Number, false), "changed": changed})
	return nil
}

// listPolicyVersions lists stored versions, newest first, without their
// documents.
func (a *api) listPolicyVersions(w http.ResponseWriter, r *http.Request, _ Caller) error {
	limit, err := intParam(r.URL.Query(), "limit", 50, 1000)
	if err != nil {
		return err
	}
	st := a.cfg.Service.Store
	active, err := st.ActivePolicyNumber(r.Context())
	if err != nil {
		return err
	}
	vs, err := st.ListPolicyVersions(r.Context(), limit)
	if err != nil {
		return err
	}
	out := make([]versionJSON, len(vs))
	for i, v := range vs {
		out[i] = versionOf(v, active, false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": active, "versions": out})
	return nil
}

func (a *api) getPolicyVersion(w http.ResponseWriter, r *http.Request, _ Caller) error {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 1 {
		return badRequest("version %q: want a stored version number, 1 or more", r.PathValue("n"))
	}
	st := a.cfg.Service.Store
	active, err := st.ActivePolicyNumber(r.Context())
	if err != nil {
		return err
	}
	v, err := st.PolicyVersionByNumber(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": versionOf(v, active, true)})
	return nil
}

// ---- clients ----

// clientJSON is a client as the API shows it: its spec, and whether it has
// a secret (never the secret). Read back, it is accepted as input, so a
// client can be fetched, edited and put back; has_secret is then ignored.
type clientJSON struct {
	admin.ClientSpec
	HasSecret bool `json:"has_secret"`
}

func clientOf(c storage.Client) clientJSON {
	return clientJSON{admin.SpecOf(c), c.SecretHash != ""}
}

// clientInput is the body of a client's create or update.
type clientInput struct {
	Client *clientJSON `json:"client"`
	Reason string      `json:"reason"`
}

func (a *api) listClients(w http.ResponseWriter, r *http.Request, _ Caller) error {
	cs, err := a.cfg.Service.Store.ListClients(r.Context())
	if err != nil {
		return err
	}
	out := make([]clientJSON, len(cs))
	for i, c := range cs {
		out[i] = clientOf(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
	return nil
}

func (a *api) getClient(w http.ResponseWriter, r *http.Request, _ Caller) error {
	c, err := a.cfg.Service.Store.ClientByID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"client": clientOf(c)})
	return nil
}

// createClient registers a client; a secret made for it is in the answer,
// once.
func (a *api) createClient(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in clientInput
	if err := decode(r, &in, false); err != nil {
		return err
	}
	if in.Client == nil {
		return badRequest("client is required")
	}
	secret, err := a.cfg.Service.CreateClient(r.Context(), c.Actor(in.Reason), in.Client.ClientSpec, a.now())
	if err != nil {
		return err
	}
	stored, err := a.cfg.Service.Store.ClientByID(r.Context(), in.Client.Normalize().ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/clients/"+url.PathEscape(stored.ID))
	writeJSON(w, http.StatusCreated, map[string]any{"client": clientOf(stored), "secret": secret})
	return nil
}

// updateClient replaces the client's settings with the spec given.
func (a *api) updateClient(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in clientInput
	if err := decode(r, &in, false); err != nil {
		return err
	}
	if in.Client == nil {
		return badRequest("client is required")
	}
	id := r.PathValue("id")
	s := in.Client.ClientSpec
	switch s.ID {
	case "":
		s.ID = id
	case id:
	default:
		return badRequest("client.id %q is not the client in the path, %q; a client's ID cannot be changed", s.ID, id)
	}
	changes, secret, err := a.cfg.Service.UpdateClient(r.Context(), c.Actor(in.Reason), s, a.now())
	if err != nil {
		return err
	}
	stored, err := a.cfg.Service.Store.ClientByID(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"client": clientOf(stored), "changes": orEmpty(changes), "secret": secret})
	return nil
}

// reasonInput is the optional body of a change that takes only a reason.
type reasonInput struct {
	Reason string `json:"reason"`
}

func (a *api) reason(r *http.Request) (string, error) {
	var in reasonInput
	err := decode(r, &in, true)
	return in.Reason, err
}

func (a *api) deleteClient(w http.ResponseWriter, r *http.Request, c Caller) error {
	reason, err := a.reason(r)
	if err != nil {
		return err
	}
	if err := a.cfg.Service.DeleteClient(r.Context(), c.Actor(reason), r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}

// rotateClientSecret replaces the client's secret; the new one is in the
// answer, once.
func (a *api) rotateClientSecret(w http.ResponseWriter, r *http.Request, c Caller) error {
	reason, err := a.reason(r)
	if err != nil {
		return err
	}
	secret, err := a.cfg.Service.RotateClientSecret(r.Context(), c.Actor(reason), r.PathValue("id"), a.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"secret": secret})
	return nil
}

// ---- users ----

// userJSON is an account as the API shows it: never a password hash.
type userJSON struct {
	ID                  string    `json:"id"`
	Username            string    `json:"username"`
	Email               string    `json:"email,omitempty"`
	Admin               bool      `json:"admin"`
	Disabled            bool      `json:"disabled"`
	PasswordCompromised bool      `json:"password_compromised,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

func userOf(u storage.User) userJSON {
	return userJSON{ID: u.ID, Username: u.Username, Email: u.Email, Admin: u.Admin, Disabled: u.Disabled,
		PasswordCompromised: u.PasswordCompromised, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// factorJSON is a second factor as the API shows it: never its secret.
type factorJSON struct {
	ID         string             `json:"id"`
	Kind       storage.FactorKind `json:"kind"`
	Name       string             `json:"name"`
	CreatedAt  time.Time          `json:"created_at"`
	LastUsedAt time.Time          `json:"last_used_at,omitzero"`
	TrustedAt  time.Time          `json:"trusted_at,omitzero"`
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request, _ Caller) error {
	us, err := a.cfg.Service.Store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, len(us))
	for i, u := range us {
		out[i] = userOf(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

// getUser is the account, its factors, recovery codes left, live sessions
// and throttle state.
func (a *api) getUser(w http.ResponseWriter, r *http.Request, _ Caller) error {
	ctx, st, now := r.Context(), a.cfg.Service.Store, a.now()
	u, err := st.UserByID(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	fs, err := st.ListFactors(ctx, u.ID)
	if err != nil {
		return err
	}
	factors := make([]factorJSON, len(fs))
	for i, f := range fs {
		factors[i] = factorJSON{ID: f.ID, Kind: f.Kind, Name: f.Name, CreatedAt: f.CreatedAt, LastUsedAt: f.LastUsedAt, TrustedAt: f.TrustedAt}
	}
	codes, err := st.CountRecoveryCodes(ctx, u.ID)
	if err != nil {
		return err
	}
	ss, err := st.ListUserSessions(ctx, u.ID, now)
	if err != nil {
		return err
	}
	lock, err := a.cfg.Service.LockState(ctx, u, now)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": userOf(u), "factors": factors, "recovery_codes": codes,
		"sessions": len(ss), "lock": lock})
	return nil
}

// createUser creates an account with a password.
func (a *api) createUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in struct {
		Username string `json:"username"`
		Email    string `json:"email"`
		Password string `json:"password"`
		Admin    bool   `json:"admin"`
		Reason   string `json:"reason"`
	}
	if err := decode(r, &in, false); err != nil {
		return err
	}
	u, err := a.cfg.Service.CreateUser(r.Context(), c.Actor(in.Reason), admin.NewUser{Username: in.Username, Email: in.Email, Password: in.Password, Admin: in.Admin}, a.now())
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/users/"+url.PathEscape(u.ID))
	writeJSON(w, http.StatusCreated, map[string]any{"user": userOf(u)})
	return nil
}

func (a *api) setDisabled(w http.ResponseWriter, r *http.Request, c Caller, disabled bool) error {
	reason, err := a.reason(r)
	if err != nil {
		return err
	}
	u, err := a.cfg.Service.SetDisabled(r.Context(), c.Actor(reason), r.PathValue("id"), disabled, a.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": userOf(u)})
	return nil
}

func (a *api) disableUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	return a.setDisabled(w, r, c, true)
}

func (a *api) enableUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	return a.setDisabled(w, r, c, false)
}

// signOutUser ends every session of the user and revokes their apps' tokens.
func (a *api) signOutUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	reason, err := a.reason(r)
	if err != nil {
		return err
	}
	n, err := a.cfg.Service.SignOut(r.Context(), c.Actor(reason), r.PathValue("id"), "", a.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions_ended": n})
	return nil
}

func (a *api) unlockUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	reason, err := a.reason(r)
	if err != nil {
		return err
	}
	if err := a.cfg.Service.Unlock(r.Context(), c.Actor(reason), r.PathValue("id"), a.now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}

// resetFactors removes every second factor of the user; it needs a reason.
func (a *api) resetFactors(w http.ResponseWriter, r *http.Request, c Caller) error {
	reason, err := a.reason(r)
	if err != nil {
		return err
	}
	if err := a.cfg.Service.ResetFactors(r.Context(), c.Actor(reason), r.PathValue("id"), a.now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusNoContent, nil)
	return nil
}

// ---- audit ----

// listAudit lists audit events in order, oldest first: of one type, from
// a time, after a sequence number (to page: after = the last seq seen),
// for a user or client, at most limit.
func (a *api) listAudit(w http.ResponseWriter, r *http.Request, _ Caller) error {
	q := r.URL.Query()
	for name, vs := range q {
		if !slices.Contains([]string{"type", "since", "after", "limit", "user_id", "client_id"}, name) {
			return badRequest("unknown parameter %q (want type, since, after, limit, user_id, client_id)", name)
		}
		if len(vs) > 1 {
			return badRequest("parameter %q is given more than once", name)
		}
	}
	f := storage.AuditFilter{UserID: q.Get("user_id"), ClientID: q.Get("client_id")}
	if t := q.Get("type"); t != "" {
		if !slices.Contains(storage.EventTypes(), storage.EventType(t)) {
			return badRequest("type %q is not an audit event type", t)
		}
		f.Type = storage.EventType(t)
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return badRequest("since %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
		}
		f.Since = t
	}
	after, err := intParam(q, "after", 0, 1<<62)
	if err != nil {
		return err
	}
	f.AfterSeq = int64(after)
	if f.Limit, err = intParam(q, "limit", 100, 1000); err != nil {
		return err
	}
	evs, err := a.cfg.Service.Store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]admin.AuditJSON, len(evs))
	for i, e := range evs {
		out[i] = admin.AuditJSONOf(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
	return nil
}

// intParam is query parameter name as a number from 0 (1 for a limit) to
// most, def when absent.
func intParam(q url.Values, name string, def, most int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	least := 0
	if name == "limit" {
		least = 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least || n > most {
		return 0, badRequest("%s %q: want a whole number from %d to %d", name, s, least, most)
	}
	return n, nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
