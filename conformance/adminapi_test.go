package conformance

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/adminapi"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// Issue 21 item 5: the admin API under /admin/api, called by automation
// with a client's own client_credentials access token.

const (
	robot       = "robot"
	robotSecret = "robot-secret-0123456789"
)

// addRobot registers a confidential client_credentials client granted the
// admin API (grant "read" or "write", "" for none).
func (e *env) addRobot(id, grant string) {
	e.t.Helper()
	e.addClient(storage.Client{ID: id, Name: "Automation", SecretHash: factor.HashToken(robotSecret),
		AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, AdminAPI: grant})
}

// ccToken asks for a client_credentials token with scope.
func (e *env) ccToken(id, secret, scope string) (int, map[string]any) {
	e.t.Helper()
	code, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, id, secret)
	return code, out
}

// mustCCToken is a client_credentials access token with scope.
func (e *env) mustCCToken(id, scope string) string {
	e.t.Helper()
	code, out := e.ccToken(id, robotSecret, scope)
	tok, _ := out["access_token"].(string)
	if code != http.StatusOK || tok == "" {
		e.t.Fatalf("client_credentials %s: %d %v", scope, code, out)
	}
	return tok
}

// apiResult is an admin API answer.
type apiResult struct {
	status int
	body   map[string]any
	header http.Header
	raw    string
}

// api calls the admin API with Authorization "scheme token" (none when
// token is ""), body as JSON (a string is sent as it is), and proof in
// the DPoP header when set.
func (e *env) api(method, path, scheme, token string, body any, proof string) apiResult {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.issuer+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", scheme+" "+token)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return apiResult{resp.StatusCode, out, resp.Header, string(raw)}
}

// apiActivePolicy is GET /admin/api/policy: the active version's number and
// its document.
func (e *env) apiActivePolicy(token string) (float64, map[string]any) {
	e.t.Helper()
	r := e.api(http.MethodGet, "/admin/api/policy", "Bearer", token, nil, "")
	if r.status != http.StatusOK {
		e.t.Fatalf("GET policy: %d %s", r.status, r.raw)
	}
	v, _ := r.body["version"].(map[string]any)
	doc, _ := v["document"].(map[string]any)
	n, _ := v["version"].(float64)
	return n, doc
}

// A client granted "write" gets a token by client_credentials and changes
// the policy: the new version is active at once, and the audit log names
// the client as the actor. A bad document is refused with every problem
// and stores nothing; an edit from a version no longer active is refused
// with 409.
func TestAdminAPIWriteClientChangesThePolicy(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)

	n, doc := e.apiActivePolicy(tok)
	if n != 0 {
		t.Fatalf("active version %v before any save, want 0", n)
	}
	doc["scope_min_acr"] = map[string]any{"email": "phr"}
	r := e.api(http.MethodPut, "/admin/api/policy", "Bearer", tok,
		map[string]any{"document": doc, "parent": 0, "reason": "email needs a passkey"}, "")
	if r.status != http.StatusOK || r.body["changed"] != true {
		t.Fatalf("PUT policy: %d %s", r.status, r.raw)
	}
	if got := e.server.Policies().Current(); got.Version != 1 || got.ScopeMinACR["email"] != "phr" {
		t.Fatalf("the server decides under version %d with scope minimums %v", got.Version, got.ScopeMinACR)
	}
	n, doc = e.apiActivePolicy(tok)
	if mins, _ := doc["scope_min_acr"].(map[string]any); n != 1 || mins["email"] != "phr" {
		t.Fatalf("GET after PUT: version %v, document %v", n, doc)
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: storage.EventAdminPolicyChanged})
	if err != nil || len(evs) != 1 {
		t.Fatalf("policy audit events: %v %v", evs, err)
	}
	if ev := evs[0]; ev.ActorID != "client:"+robot || ev.Reason != "email needs a passkey" || ev.Outcome != "success" {
		t.Fatalf("audit event %+v", ev)
	}
	v, err := e.store.PolicyVersionByNumber(context.Background(), 1)
	if err != nil || v.Author != "client:"+robot {
		t.Fatalf("version 1: %+v %v", v, err)
	}

	// A stale parent: someone saved version 1 since this edit began at 0.
	doc["scope_min_acr"] = map[string]any{"email": "urn:keystep:acr:mfa"}
	r = e.api(http.MethodPut, "/admin/api/policy", "Bearer", tok, map[string]any{"document": doc, "parent": 0, "reason": "late"}, "")
	if r.status != http.StatusConflict || r.body["error"] != "conflict" {
		t.Fatalf("stale parent: %d %s", r.status, r.raw)
	}

	// A bad document: an unknown member and an unknown level, both listed.
	bad := map[string]any{"scope_min_acr": map[string]any{"email": "gold"}, "levelz": []any{}}
	r = e.api(http.MethodPut, "/admin/api/policy", "Bearer", tok, map[string]any{"document": bad, "parent": 1, "reason": "typo"}, "")
	probs, _ := r.body["problems"].([]any)
	if r.status != http.StatusUnprocessableEntity || len(probs) < 2 || !strings.Contains(r.raw, "levelz") || !strings.Contains(r.raw, "gold") {
		t.Fatalf("bad document: %d %s", r.status, r.raw)
	}
	// The check endpoint reports the same problems without saving.
	r = e.api(http.MethodPost, "/admin/api/policy/check", "Bearer", tok, bad, "")
	if checked, _ := r.body["problems"].([]any); r.status != http.StatusOK || r.body["valid"] != false || len(checked) != len(probs) {
		t.Fatalf("check: %d %s", r.status, r.raw)
	}
	if vs, _ := e.store.ListPolicyVersions(context.Background(), 10); len(vs) != 1 {
		t.Fatalf("refused saves stored versions: %d", len(vs))
	}
	if got := e.server.Policies().Current().Version; got != 1 {
		t.Fatalf("active version %d after refused saves, want 1", got)
	}

	// Roll back to version 1's document from version 1: nothing changes,
	// as its document is the active one.
	r = e.api(http.MethodPost, "/admin/api/policy/rollback", "Bearer", tok, map[string]any{"version": 1, "reason": "same"}, "")
	if r.status != http.StatusOK || r.body["changed"] != false {
		t.Fatalf("rollback to the active version: %d %s", r.status, r.raw)
	}
}

// Only a client granted the admin API gets its scopes, and only the ones
// its grant allows: asking for more is invalid_scope (RFC 6749 §5.2), not
// a token silently without them. A read token cannot write. A user's
// token never carries the scopes, whatever its client is granted.
func TestAdminAPIScopesOnlyForGrantedClients(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIRead)
	e.addRobot("plain", "")

	for _, tc := range []struct{ id, scope string }{
		{"plain", adminapi.ScopeRead},
		{"plain", adminapi.ScopeWrite},
		{robot, adminapi.ScopeWrite},
		{robot, adminapi.ScopeRead + " " + adminapi.ScopeWrite},
	} {
		if code, out := e.ccToken(tc.id, robotSecret, tc.scope); code != http.StatusBadRequest || out["error"] != "invalid_scope" {
			t.Errorf("%s asking for %q: %d %v", tc.id, tc.scope, code, out)
		}
	}
	if code, out := e.ccToken(rpClient, e.rpSecret, adminapi.ScopeRead); code != http.StatusBadRequest || out["error"] != "invalid_scope" {
		t.Errorf("the RP asking for %q: %d %v", adminapi.ScopeRead, code, out)
	}
	// Other scopes are still the client's to ask for, as before.
	plain := e.mustCCToken("plain", "reports.read")
	if r := e.api(http.MethodGet, "/admin/api/policy", "Bearer", plain, nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("a client without the grant: %d %s", r.status, r.raw)
	}

	read := e.mustCCToken(robot, adminapi.ScopeRead)
	if r := e.api(http.MethodGet, "/admin/api/clients", "Bearer", read, nil, ""); r.status != http.StatusOK {
		t.Fatalf("read token, GET clients: %d %s", r.status, r.raw)
	}
	r := e.api(http.MethodPut, "/admin/api/policy", "Bearer", read, map[string]any{"document": map[string]any{}, "parent": 0, "reason": "x"}, "")
	if r.status != http.StatusForbidden || r.body["error"] != "insufficient_scope" ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), `scope="keystep:admin"`) {
		t.Fatalf("read token, PUT policy: %d %s %q", r.status, r.raw, r.header.Get("WWW-Authenticate"))
	}
	if r := e.api(http.MethodPost, "/admin/api/users/u-alice/disable", "Bearer", read, nil, ""); r.status != http.StatusForbidden {
		t.Fatalf("read token, disable: %d %s", r.status, r.raw)
	}
	if u, _ := e.store.UserByID(context.Background(), "u-alice"); u.Disabled {
		t.Fatal("a read token disabled a user")
	}

	// A user's token: even from a client granted write, /authorize drops
	// the scope, and the API refuses the token.
	c, _ := e.store.ClientByID(context.Background(), rpClient)
	c.AdminAPI = storage.AdminAPIWrite
	if err := e.store.UpdateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	user := e.rp(rpClient, e.rpSecret).login(e.browser(), url.Values{"scope": {"openid " + adminapi.ScopeWrite}})
	if s, _ := user.token.Extra("scope").(string); strings.Contains(s, "keystep:admin") {
		t.Fatalf("a user's token got the scope: %q", s)
	}
	if r := e.api(http.MethodGet, "/admin/api/policy", "Bearer", user.token.AccessToken, nil, ""); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("a user's token: %d %s", r.status, r.raw)
	}
}

// The API's refusals: no token, a garbage token, a browser's cookies, a
// DPoP-bound token without (or with a wrong) proof, a client whose grant
// was taken away; and bad input, which changes nothing.
func TestAdminAPIRefusals(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)

	r := e.api(http.MethodGet, "/admin/api/users", "", "", nil, "")
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "Bearer", "garbage", nil, ""); r.status != http.StatusUnauthorized || r.body["error"] != "invalid_token" {
		t.Fatalf("garbage: %d %s", r.status, r.raw)
	}

	// A browser signed in as an admin: its cookies authenticate nothing
	// here, and a cross-site POST is refused as unauthenticated too.
	u, _ := e.store.UserByID(context.Background(), "u-alice")
	u.Admin = true
	if err := e.store.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	e.rp(rpClient, e.rpSecret).login(b, nil)
	resp, err := b.client.Get(e.issuer + "/admin/api/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a browser's session: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/admin/api/users/u-alice/disable", strings.NewReader(`{}`))
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if u, _ := e.store.UserByID(context.Background(), "u-alice"); resp.StatusCode != http.StatusUnauthorized || u.Disabled {
		t.Fatalf("a cross-site POST with cookies: %d, disabled %v", resp.StatusCode, u.Disabled)
	}
	// A bearer call with a browser's cross-origin headers is not refused
	// by the console's cross-origin protection: it carries no cookies.
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)
	req, _ = http.NewRequest(http.MethodPost, e.issuer+"/admin/api/users/u-alice/signout", strings.NewReader(`{"reason":"test"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://automation.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a bearer call with cross-site headers: %d, CORS %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}

	// Bad input: unknown members, a body that is not JSON, two values, a
	// wrong method, an unknown path, a body too large, a bad parameter.
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"an unknown member", http.MethodPost, "/admin/api/users/u-alice/disable", `{"reason":"x","force":true}`, http.StatusBadRequest},
		{"not JSON", http.MethodPut, "/admin/api/policy", `document=1`, http.StatusBadRequest},
		{"two values", http.MethodPost, "/admin/api/users/u-alice/disable", `{"reason":"x"}{}`, http.StatusBadRequest},
		{"no parent", http.MethodPut, "/admin/api/policy", `{"document":{},"reason":"x"}`, http.StatusBadRequest},
		{"a wrong method", http.MethodPatch, "/admin/api/policy", nil, http.StatusMethodNotAllowed},
		{"an unknown path", http.MethodGet, "/admin/api/nothing", nil, http.StatusNotFound},
		{"a body too large", http.MethodPost, "/admin/api/users/u-alice/disable", `{"reason":"` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge},
		{"an unknown event type", http.MethodGet, "/admin/api/audit?type=nope", nil, http.StatusBadRequest},
		{"a bad since", http.MethodGet, "/admin/api/audit?since=yesterday", nil, http.StatusBadRequest},
		{"a client ID that differs from the path", http.MethodPut, "/admin/api/clients/rp", `{"client":{"id":"other"}}`, http.StatusBadRequest},
	} {
		r := e.api(tc.method, tc.path, "Bearer", tok, tc.body, "")
		if r.status != tc.status || r.body["error"] == nil {
			t.Errorf("%s: %d %.300s, want %d with an error", tc.name, r.status, r.raw, tc.status)
		}
		if tc.status == http.StatusMethodNotAllowed && !strings.Contains(r.header.Get("Allow"), "PUT") {
			t.Errorf("%s: Allow %q", tc.name, r.header.Get("Allow"))
		}
	}
	if u, _ := e.store.UserByID(context.Background(), "u-alice"); u.Disabled {
		t.Fatal("a refused call disabled the user")
	}

	// A DPoP-bound token: refused as a bearer token and without a proof,
	// accepted with a proof of its key for this request.
	k := e.newDPoPKey()
	code, out := k.token(url.Values{"grant_type": {"client_credentials"}, "scope": {adminapi.ScopeRead}}, protoAuth{method: "basic", id: robot, secret: robotSecret})
	bound, _ := out["access_token"].(string)
	if code != http.StatusOK || out["token_type"] != "DPoP" {
		t.Fatalf("DPoP client_credentials: %d %v", code, out)
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "Bearer", bound, nil, ""); r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DPoP") {
		t.Fatalf("bound token as a bearer token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "DPoP", bound, nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("bound token without a proof: %d %s", r.status, r.raw)
	}
	other := e.newDPoPKey()
	if r := e.api(http.MethodGet, "/admin/api/users", "DPoP", bound, nil, other.proof(http.MethodGet, "/admin/api/users", bound, nil)); r.status != http.StatusUnauthorized {
		t.Fatalf("bound token with another key's proof: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "DPoP", bound, nil, k.proof(http.MethodGet, "/admin/api/clients", bound, nil)); r.status != http.StatusUnauthorized {
		t.Fatalf("bound token with a proof for another URL: %d %s", r.status, r.raw)
	}
	proof := k.proof(http.MethodGet, "/admin/api/users", bound, nil)
	if r := e.api(http.MethodGet, "/admin/api/users", "DPoP", bound, nil, proof); r.status != http.StatusOK {
		t.Fatalf("bound token with its proof: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "DPoP", bound, nil, proof); r.status != http.StatusUnauthorized {
		t.Fatalf("a replayed proof: %d %s", r.status, r.raw)
	}

	// The grant narrowed to read: the write token cannot write any more;
	// taken away: the token is refused.
	// The robot narrows its own grant through the API: fetched, edited,
	// put back.
	setGrant := func(grant string) {
		t.Helper()
		r := e.api(http.MethodGet, "/admin/api/clients/"+robot, "Bearer", tok, nil, "")
		spec, _ := r.body["client"].(map[string]any)
		if r.status != http.StatusOK || spec["admin_api"] != storage.AdminAPIWrite || spec["has_secret"] != true {
			t.Fatalf("GET robot: %d %s", r.status, r.raw)
		}
		spec["admin_api"] = grant
		if r := e.api(http.MethodPut, "/admin/api/clients/"+robot, "Bearer", tok, map[string]any{"client": spec, "reason": "least privilege"}, ""); r.status != http.StatusOK {
			t.Fatalf("PUT robot: %d %s", r.status, r.raw)
		}
	}
	setGrant(storage.AdminAPIRead)
	if r := e.api(http.MethodPost, "/admin/api/users/u-alice/signout", "Bearer", tok, nil, ""); r.status != http.StatusForbidden {
		t.Fatalf("write token after the grant became read: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "Bearer", tok, nil, ""); r.status != http.StatusOK {
		t.Fatalf("write token reading after the grant became read: %d %s", r.status, r.raw)
	}
	// Taken away by another admin client.
	e.addRobot("boss", storage.AdminAPIWrite)
	boss := e.mustCCToken("boss", adminapi.ScopeWrite)
	r = e.api(http.MethodGet, "/admin/api/clients/"+robot, "Bearer", boss, nil, "")
	spec, _ := r.body["client"].(map[string]any)
	delete(spec, "admin_api")
	if r := e.api(http.MethodPut, "/admin/api/clients/"+robot, "Bearer", boss, map[string]any{"client": spec, "reason": "retired"}, ""); r.status != http.StatusOK {
		t.Fatalf("boss revokes: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "Bearer", tok, nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("a token of a client no longer granted: %d %s", r.status, r.raw)
	}
}

// Client and user operations through the API go through admin.Service:
// checked with every problem, audited with the client as the actor.
func TestAdminAPIClientsAndUsers(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)

	r := e.api(http.MethodPost, "/admin/api/clients", "Bearer", tok, map[string]any{"reason": "new app",
		"client": map[string]any{"id": "billing", "redirect_uris": []string{"http://billing.example/cb"}, "id_token_alg": "HS256"}}, "")
	if probs, _ := r.body["problems"].([]any); r.status != http.StatusUnprocessableEntity || len(probs) != 2 {
		t.Fatalf("bad client: %d %s", r.status, r.raw)
	}
	r = e.api(http.MethodPost, "/admin/api/clients", "Bearer", tok, map[string]any{"reason": "new app",
		"client": map[string]any{"id": "billing", "redirect_uris": []string{"https://billing.example/cb"}}}, "")
	if r.status != http.StatusCreated || r.body["secret"] == "" {
		t.Fatalf("create client: %d %s", r.status, r.raw)
	}
	if strings.Contains(r.raw, "secret_hash") {
		t.Fatalf("the answer shows a hash: %s", r.raw)
	}
	r = e.api(http.MethodPut, "/admin/api/clients/billing", "Bearer", tok, map[string]any{"reason": "floor",
		"client": map[string]any{"redirect_uris": []string{"https://billing.example/cb"}, "min_acr": "phr"}}, "")
	if ch, _ := r.body["changes"].([]any); r.status != http.StatusOK || len(ch) != 1 {
		t.Fatalf("update client: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodDelete, "/admin/api/clients/billing", "Bearer", tok, nil, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete client: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodGet, "/admin/api/clients/billing", "Bearer", tok, nil, ""); r.status != http.StatusNotFound {
		t.Fatalf("deleted client: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodDelete, "/admin/api/clients/keystep-account", "Bearer", tok, nil, ""); r.status != http.StatusForbidden {
		t.Fatalf("the built-in client: %d %s", r.status, r.raw)
	}

	if r := e.api(http.MethodPost, "/admin/api/users/u-alice/disable", "Bearer", tok, map[string]any{"reason": "left"}, ""); r.status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}
	if u, _ := e.store.UserByID(context.Background(), "u-alice"); !u.Disabled {
		t.Fatal("not disabled")
	}
	r = e.api(http.MethodGet, "/admin/api/users/u-alice", "Bearer", tok, nil, "")
	if r.status != http.StatusOK || strings.Contains(r.raw, "argon2") || strings.Contains(r.raw, "password_hash") {
		t.Fatalf("get user: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodPost, "/admin/api/users/u-alice/reset-factors", "Bearer", tok, nil, ""); r.status != http.StatusBadRequest {
		t.Fatalf("reset without a reason: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodPost, "/admin/api/users/nobody/enable", "Bearer", tok, nil, ""); r.status != http.StatusNotFound {
		t.Fatalf("unknown user: %d %s", r.status, r.raw)
	}

	// Every change above is in the log with the client as actor; the
	// audit endpoint shows them.
	r = e.api(http.MethodGet, "/admin/api/audit?type="+string(storage.EventAdminUserDisable), "Bearer", tok, nil, "")
	evs, _ := r.body["events"].([]any)
	if r.status != http.StatusOK || len(evs) != 1 {
		t.Fatalf("audit: %d %s", r.status, r.raw)
	}
	if ev := evs[0].(map[string]any); ev["actor_id"] != "client:"+robot || ev["reason"] != "left" {
		t.Fatalf("audit event %v", ev)
	}
	all, err := e.store.ListAudit(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var byRobot []storage.EventType
	for _, ev := range all {
		if ev.ActorID == "client:"+robot && ev.Outcome == "success" {
			byRobot = append(byRobot, ev.Type)
		}
	}
	for _, want := range []storage.EventType{storage.EventAdminClientCreated, storage.EventAdminClientUpdated, storage.EventAdminClientDeleted, storage.EventAdminUserDisable} {
		if !slices.Contains(byRobot, want) {
			t.Errorf("no %s event by client:%s (got %v)", want, robot, byRobot)
		}
	}
}

// The OpenAPI document and the handlers agree: every operation the
// document lists answers, with a valid token, something other than 404 or
// 405, and every route the API registers is in the document.
func TestAdminAPIOpenAPIMatchesTheHandlers(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	e.addRobot("victim", "")
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)
	_, doc := e.apiActivePolicy(tok)
	if r := e.api(http.MethodPut, "/admin/api/policy", "Bearer", tok, map[string]any{"document": doc, "parent": 0, "reason": "seed"}, ""); r.status != http.StatusOK {
		t.Fatalf("seed version 1: %d %s", r.status, r.raw)
	}

	r := e.api(http.MethodGet, "/admin/api/openapi.json", "", "", nil, "")
	var spec struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.raw), &spec); r.status != http.StatusOK || err != nil || spec.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: %d %v %.200s", r.status, err, r.raw)
	}
	var documented []adminapi.Route
	for path, ops := range spec.Paths {
		for method := range ops {
			documented = append(documented, adminapi.Route{Method: strings.ToUpper(method), Path: path})
		}
	}
	key := func(r adminapi.Route) string { return r.Method + " " + r.Path }
	registered := adminapi.Routes()
	for _, rt := range registered {
		if !slices.ContainsFunc(documented, func(d adminapi.Route) bool { return key(d) == key(rt) }) {
			t.Errorf("%s is served but not in the OpenAPI document", key(rt))
		}
	}
	// Deletes last: the objects the other calls name must still be there.
	slices.SortFunc(documented, func(a, b adminapi.Route) int {
		return strings.Compare(strings.Replace(key(a), "DELETE", "~", 1), strings.Replace(key(b), "DELETE", "~", 1))
	})
	for _, d := range documented {
		if !slices.ContainsFunc(registered, func(rt adminapi.Route) bool { return key(rt) == key(d) }) {
			t.Errorf("%s is in the OpenAPI document but not served", key(d))
			continue
		}
		path := strings.NewReplacer("{n}", "1").Replace(d.Path)
		if strings.HasPrefix(path, "/admin/api/users/") {
			path = strings.Replace(path, "{id}", "u-alice", 1)
		}
		path = strings.Replace(path, "{id}", "victim", 1)
		var body any
		if d.Method != http.MethodGet && d.Method != http.MethodDelete {
			body = `{}`
		}
		res := e.api(d.Method, path, "Bearer", tok, body, "")
		if res.status == http.StatusNotFound || res.status == http.StatusMethodNotAllowed {
			t.Errorf("%s (%s %s): %d %.200s", key(d), d.Method, path, res.status, res.raw)
		}
	}
}

// A client that authenticates with private_key_jwt gets its admin token
// the same way, and on a server whose policy is read-only (its --config
// file's) a save is refused with 409 read_only and stores nothing.
func TestAdminAPIPrivateKeyJWTAndReadOnlyPolicy(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) { c.PolicyReadOnly = true })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	raw, _ := json.Marshal(set)
	e.addClient(storage.Client{ID: "svc", Name: "Service", AuthMethod: "private_key_jwt", JWKS: string(raw),
		GrantTypes: []string{"client_credentials"}, AdminAPI: storage.AdminAPIWrite})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	assertion, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "svc", Subject: "svc", Audience: jwt.Audience{e.issuer},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: randomString()}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {adminapi.ScopeWrite},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "", "")
	tok, _ := out["access_token"].(string)
	if code != http.StatusOK || tok == "" || out["scope"] != adminapi.ScopeWrite {
		t.Fatalf("private_key_jwt client_credentials: %d %v", code, out)
	}
	r := e.api(http.MethodGet, "/admin/api/policy", "Bearer", tok, nil, "")
	if r.status != http.StatusOK || r.body["read_only"] != true {
		t.Fatalf("GET policy: %d %s", r.status, r.raw)
	}
	_, doc := e.apiActivePolicy(tok)
	r = e.api(http.MethodPut, "/admin/api/policy", "Bearer", tok, map[string]any{"document": doc, "parent": 0, "reason": "try"}, "")
	if r.status != http.StatusConflict || r.body["error"] != "read_only" {
		t.Fatalf("PUT on a read-only policy: %d %s", r.status, r.raw)
	}
	if n, err := e.store.ActivePolicyNumber(context.Background()); err != nil || n != 0 {
		t.Fatalf("active version %d %v after a refused save", n, err)
	}
}

// The console shows a client's admin API grant and keeps it on save; an
// admin grants and takes it away there too, checked like the CLI's.
func TestAdminConsoleShowsAndKeepsTheAdminAPIGrant(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	f := newClientForm(rpClient)
	f.Set("admin_api", "write")
	if p := b.post("/admin/clients/"+rpClient, f); !strings.Contains(p.body, "Your changes were saved") {
		t.Fatalf("grant:\n%.3000s", p.body)
	}
	if c, _ := e.store.ClientByID(context.Background(), rpClient); c.AdminAPI != storage.AdminAPIWrite {
		t.Fatalf("stored %q", c.AdminAPI)
	}
	p := b.get(e.issuer + "/admin/clients/" + rpClient)
	if !strings.Contains(p.body, `<option value="write" selected>`) {
		t.Fatalf("the client's page does not show the grant:\n%.8000s", p.body)
	}
	// Without client_credentials the grant is refused, with its reason.
	f.Del("grant_types")
	f["grant_types"] = []string{"authorization_code"}
	if p := b.post("/admin/clients/"+rpClient, f); p.status != http.StatusBadRequest || !strings.Contains(p.body, "client_credentials tokens") {
		t.Fatalf("grant without client_credentials: %d\n%.3000s", p.status, p.body)
	}
	f["grant_types"] = []string{"authorization_code", "client_credentials"}
	f.Set("admin_api", "")
	b.post("/admin/clients/"+rpClient, f)
	if c, _ := e.store.ClientByID(context.Background(), rpClient); c.AdminAPI != "" {
		t.Fatalf("taken away, still %q", c.AdminAPI)
	}
}

// A client whose policy shortens its access tokens gets them short, and can
// use one issued right after it was registered: a client's own token names
// the registration it was issued to (keystep_client_registration), rather
// than the server working out its issue time from exp and a lifetime.
func TestAdminAPIShortLivedTokenOfANewClient(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) {
		c.ClientPolicies = map[string]policy.Client{robot: {AccessTTL: time.Minute}}
	})
	e.addRobot(robot, storage.AdminAPIRead)
	code, out := e.ccToken(robot, robotSecret, adminapi.ScopeRead)
	if code != http.StatusOK || out["expires_in"] != float64(60) {
		t.Fatalf("token: %d expires_in %v, want 60", code, out["expires_in"])
	}
	tok, _ := out["access_token"].(string)
	if r := e.api(http.MethodGet, "/admin/api/policy", "Bearer", tok, nil, ""); r.status != http.StatusOK {
		t.Fatalf("a fresh client's 1-minute token: %d %s", r.status, r.raw)
	}
}
