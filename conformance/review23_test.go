package conformance

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/adminapi"
	"github.com/keystep/keystep/storage"
)

// Attacker's review of the admin API (issue 21 item 5). Every test here
// names a hole and fails on the code as it was reviewed (h/review23).

// Hole: a reason made only of spaces counts as a reason. Resetting a
// user's second factors needs one (admin.ErrNeedsReason); the console
// trims what it is given (login/admin_users.go), SavePolicy and
// RollbackPolicy trim, but the API hands "   " to ResetFactors, whose
// check is `by.Reason == ""`, so automation wipes a user's factors with
// an audit row that says nothing. Fix: strings.TrimSpace the reason in
// adminapi (Caller.Actor) and in Service.ResetFactors's check.
func TestReview23ResetFactorsWithABlankReason(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)

	r := e.api(http.MethodPost, "/admin/api/users/u-alice/reset-factors", "Bearer", tok, map[string]any{"reason": " \t "}, "")
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: storage.EventAdminUserResetFactors})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusBadRequest || len(evs) != 0 {
		t.Fatalf("reset-factors with a blank reason: %d %s, %d audit events; want 400 and nothing done", r.status, r.raw, len(evs))
	}
}

// Hole: the API's reason has no length limit. The console cuts a reason
// at 500 characters (login/admin_users.go); the API writes whatever the
// body holds (up to MaxBody, 1 MiB) into the audit chain, once per call,
// so a write token fills the audit log, its exports and the --audit-log
// stream with megabytes per request. Fix: refuse (400) a reason longer
// than 500 characters in adminapi, one limit shared with the console.
func TestReview23ReasonIsUnbounded(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)

	long := strings.Repeat("y", 100_000)
	r := e.api(http.MethodPost, "/admin/api/users/u-alice/signout", "Bearer", tok, map[string]any{"reason": long}, "")
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: storage.EventAdminUserSignout})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if len(ev.Reason) > 500 {
			t.Fatalf("the API stored a %d-byte reason in the audit chain (status %d); the console keeps 500 at most", len(ev.Reason), r.status)
		}
	}
	if r.status != http.StatusBadRequest {
		t.Errorf("a 100,000-character reason: %d, want 400", r.status)
	}
}

// Hole: invalid UTF-8 in a JSON body is accepted and silently replaced
// with U+FFFD (encoding/json's behaviour), so POST /admin/api/users makes
// an account whose name is not what was sent. DESIGN §6: invalid UTF-8
// gets a clear error and changes nothing (the OP's checkParams refuses
// it). Fix: utf8.Valid(body) in adminapi.readBody, else 400.
func TestReview23InvalidUTF8IsAccepted(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)

	body := "{\"username\":\"mallory\xff\",\"password\":\"another correct horse battery\",\"reason\":\"ticket-7\"}"
	r := e.api(http.MethodPost, "/admin/api/users", "Bearer", tok, body, "")
	us, err := e.store.ListUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		if strings.HasPrefix(u.Username, "mallory") {
			t.Fatalf("invalid UTF-8 made user %q (status %d %s); want 400 and no account", u.Username, r.status, r.raw)
		}
	}
	if r.status != http.StatusBadRequest {
		t.Fatalf("invalid UTF-8: %d %s, want 400", r.status, r.raw)
	}
}

// Hole: a JSON member given twice is accepted, the last one winning.
// The API is otherwise strict (unknown members, trailing data refused),
// but {"redirect_uris":["https://rp.example/cb"],"redirect_uris":
// ["https://attacker.example/cb"]} passes a review, a WAF or a log reader
// that sees the first and stores the second. Fix: refuse duplicate
// members in adminapi.decode (walk the tokens with json.Decoder.Token, or
// encoding/json/v2's jsontext which rejects them by default), 400.
func TestReview23DuplicateJSONMembers(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)

	r := e.api(http.MethodGet, "/admin/api/clients/"+rpClient, "Bearer", tok, nil, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET rp: %d %s", r.status, r.raw)
	}
	body := `{"reason":"ticket-9","client":{"id":"rp","name":"Acme Payroll","redirect_uris":["https://rp.example/cb"],` +
		`"redirect_uris":["https://attacker.example/cb"],"grant_types":["authorization_code"],"auth_method":"client_secret_basic"}}`
	r = e.api(http.MethodPut, "/admin/api/clients/"+rpClient, "Bearer", tok, body, "")
	c, err := e.store.ClientByID(context.Background(), rpClient)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range c.RedirectURIs {
		if strings.Contains(u, "attacker.example") {
			t.Fatalf("a body naming redirect_uris twice stored the second (%v), status %d; want 400 and nothing changed", c.RedirectURIs, r.status)
		}
	}
	if r.status != http.StatusBadRequest {
		t.Fatalf("duplicate members: %d %s, want 400", r.status, r.raw)
	}
}

// Hole (against the issue's text): issue 21 item 5 says "each call
// audited with the client as actor"; the API audits changes only
// (adminapi package doc: "reads are not audited"). A read-granted robot,
// or whoever holds its secret, downloads every account, every client
// and the whole audit log and leaves no trace. Fix: record one event per
// read call (a new storage.EventAdminAPIRead with the route and the
// client as actor), or amend the issue; the lead decides.
func TestReview23ReadsLeaveNoAuditTrail(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIRead)
	tok := e.mustCCToken(robot, adminapi.ScopeRead)

	last, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Newest: true, Limit: 1})
	if err != nil || len(last) != 1 {
		t.Fatal(len(last), err)
	}
	for _, p := range []string{"/admin/api/users", "/admin/api/users/u-alice", "/admin/api/clients", "/admin/api/audit"} {
		if r := e.api(http.MethodGet, p, "Bearer", tok, nil, ""); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, r.status, r.raw)
		}
	}
	after, err := e.store.ListAudit(context.Background(), storage.AuditFilter{AfterSeq: last[0].Seq})
	if err != nil {
		t.Fatal(err)
	}
	var byRobot int
	for _, ev := range after {
		if ev.ActorID == "client:"+robot {
			byRobot++
		}
	}
	if byRobot == 0 {
		t.Fatalf("four admin API calls (every user, a user's factors and sessions, every client, the audit log) wrote no audit event naming client:%s", robot)
	}
}

// Hole: a reason may hold control characters (ESC, BEL, newlines); the
// API stores them in the audit chain as sent, and `keystep users show`
// prints them raw (cmd/keystep TestReview23UsersShowPrintsControlCharacters),
// so a write token injects terminal escapes and forged activity lines into
// the operator's terminal. Fix: refuse (400) a reason with
// unicode.IsControl runes in adminapi, like an over-long one.
func TestReview23ReasonWithControlCharacters(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	tok := e.mustCCToken(robot, adminapi.ScopeWrite)

	r := e.api(http.MethodPost, "/admin/api/users/u-alice/signout", "Bearer", tok, map[string]any{"reason": "ticket-1\x1b]0;pwned\x07\x1b[2J\nforged"}, "")
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: storage.EventAdminUserSignout})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if strings.ContainsAny(ev.Reason, "\x1b\x07\n") {
			t.Fatalf("the audit chain holds the reason %q (status %d); want 400 and nothing done", ev.Reason, r.status)
		}
	}
	if r.status != http.StatusBadRequest {
		t.Fatalf("a reason with control characters: %d %s, want 400", r.status, r.raw)
	}
}

// Hole (narrow): a client_credentials JWT access token of a deleted
// client comes back to life when a client with the same ID is created
// within the second the token was issued in. Rowless client_credentials
// tokens are "revoked" on delete only by comparing the new client's
// CreatedAt with the token's exp − accessTokenTTL + 1 s
// (opStorage.liveAccessToken), so a delete-and-recreate (a script that
// re-registers the robot, apply of a file that replaces it) made right
// after a stolen token was minted hands the thief the new client's write
// grant for 15 minutes. admin.DeleteClient promises "a client later
// created with the same ID starts from nothing". Fix: put the client's
// registration generation (CreatedAt in nanoseconds, or a random
// per-registration ID) in the token as a private claim and require it to
// equal the live client's.
func TestReview23DeletedClientsTokenRevivedBySameSecondRecreate(t *testing.T) {
	e := newEnv(t)
	e.addRobot(robot, storage.AdminAPIWrite)
	e.addRobot("boss", storage.AdminAPIWrite)
	stolen := e.mustCCToken(robot, adminapi.ScopeWrite)
	boss := e.mustCCToken("boss", adminapi.ScopeWrite)

	r := e.api(http.MethodGet, "/admin/api/clients/"+robot, "Bearer", boss, nil, "")
	spec := r.body["client"]
	if r := e.api(http.MethodDelete, "/admin/api/clients/"+robot, "Bearer", boss, map[string]any{"reason": "secret leaked"}, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "Bearer", stolen, nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("the deleted client's token: %d", r.status)
	}
	e.clock.Advance(500 * time.Millisecond)
	if r := e.api(http.MethodPost, "/admin/api/clients", "Bearer", boss, map[string]any{"client": spec, "reason": "re-registered with a new secret"}, ""); r.status != http.StatusCreated {
		t.Fatalf("recreate: %d %s", r.status, r.raw)
	}
	if r := e.api(http.MethodGet, "/admin/api/users", "Bearer", stolen, nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("the deleted client's token works again for the client made anew under its ID: %d", r.status)
	}
}

// Hole (issue 23 item 1, "the Forwarded/X-Forwarded-* headers honoured
// only from those"): from a trusted proxy, X-Forwarded-For is read but
// the standard Forwarded header (RFC 7239) is not (web.ClientIP). Behind
// a proxy that sends only Forwarded (HAProxy's option forwarded, Envoy,
// several CDNs), every request seems to come from the proxy: the per-IP
// and per-account+IP throttles lump all users together (one attacker
// locks everyone out, or nobody is limited), and the audit log records
// the proxy's address for every sign-in. Fix: in web.ClientIP, read the
// for= parameters of Forwarded like X-Forwarded-For (right-most
// untrusted), preferring Forwarded when both are present.
func TestReview23ForwardedHeaderIgnored(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	e.addRobot(robot, "")
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(robot, robotSecret)
	req.Header.Set("Forwarded", "for=203.0.113.9;proto=https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: storage.EventTokenIssued, ClientID: robot})
	if err != nil || len(evs) != 1 {
		t.Fatalf("token.issued events: %d %v", len(evs), err)
	}
	if evs[0].IP != "203.0.113.9" {
		t.Fatalf("a request through a trusted proxy with Forwarded: for=203.0.113.9 is recorded from %q", evs[0].IP)
	}
}
