package conformance

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/policy"
)

// Attacker's review of issue 21 (policy as data). Every test here fails
// on the code as merged, for the reason its doc comment names, unless it
// says it is a regression pin.

// TestReview21RefreshAfterScopeFloorRaised: HOLE. A refresh token issued
// while payroll:write needed only sfa at the app keeps minting access
// tokens with payroll:write after an admin raised that scope's minimum to
// phr: the token endpoint never looks at the active policy's scope floors,
// so "payroll:write needs phr" does not hold for a single refresh-token
// holder for the whole refresh lifetime (a stolen refresh token included).
// The refreshed token keeps its acr (sfa), which is right (OIDC Core §12.2);
// what is wrong is the scope it still carries.
// Fix: at a refresh, drop (or refuse, invalid_scope) every scope whose
// active floor is above the grant's acr.
func TestReview21RefreshAfterScopeFloorRaised(t *testing.T) {
	e := newEnv(t)
	a := policyService(t, e.store, e.key, e.clock, e.server.Policies())
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: acrSFA}}), e.clock.Now())
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), url.Values{"scope": {"openid offline_access " + payrollWrite}})
	if got, _ := tok.token.Extra("scope").(string); !strings.Contains(got, payrollWrite) || tok.claims.ACR != acrSFA {
		t.Fatalf("setup: scope %q acr %q, want %s at sfa", got, tok.claims.ACR, payrollWrite)
	}
	if tok.token.RefreshToken == "" {
		t.Fatal("setup: no refresh token")
	}

	// The admin raises the floor: payroll:write needs phr at this app.
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: stepup.ACRPhishing}}), e.clock.Now())
	e.clock.Advance(time.Minute)
	status, body := tokenPost(e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.token.RefreshToken}})
	if status == http.StatusOK {
		if sc, _ := body["scope"].(string); strings.Contains(sc, payrollWrite) {
			t.Fatalf("refresh after payroll:write was raised to phr: scope %q still carries it for a sign-in at sfa", sc)
		}
	}
}

// TestReview21PolicyCheckReadsServerFiles: HOLE. risk.locations_csv is a
// path on the server, and the console's "Check" (no save, no reason, no
// version) reads whatever file it names with the server's rights and
// echoes the first field of every line that has 3 or 4 comma-separated
// fields back in the problem list ("bad CIDR \"...\""). An admin session
// (or whoever rides one) reads server files the console was never meant
// to expose; the same path through the admin API.
// Fix: do not take file paths from the console/API (store the CSV's
// contents in the version, or accept only the path --config named), and
// never quote file contents in problems.
func TestReview21PolicyCheckReadsServerFiles(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	path := filepath.Join(t.TempDir(), "secrets.env")
	if err := os.WriteFile(path, []byte("DB_PASSWORD=hunter2-TOPSECRET,x,y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := keepAdmin + "risk:\n  locations_csv: " + path + "\n"
	p := b.post("/admin/policy", url.Values{"document": {doc}, "parent": {"0"}, "action": {"check"}})
	if strings.Contains(p.body, "TOPSECRET") {
		t.Fatalf("the console's check quoted a server file named by the document (status %d):\n%s", p.status, excerpt(p.body, "TOPSECRET"))
	}
}

// TestReview21PolicyCheckHangsOnAFIFO: HOLE. The same path is read with
// os.ReadFile and no limit: a FIFO (or /dev/stdin) hangs the request for
// ever, and /dev/zero or /dev/urandom grows memory until the process dies
// (not tried here: it would kill the test binary). One "Check" click from
// any console session, no reason, nothing audited.
// Fix: as above; at least open with O_NONBLOCK, require a regular file,
// and read through io.LimitReader.
func TestReview21PolicyCheckHangsOnAFIFO(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	fifo := filepath.Join(t.TempDir(), "locations.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	doc := keepAdmin + "risk:\n  locations_csv: " + fifo + "\n"
	done := make(chan page, 1)
	go func() {
		done <- b.post("/admin/policy", url.Values{"document": {doc}, "parent": {"0"}, "action": {"check"}})
	}()
	select {
	case p := <-done:
		if p.status == http.StatusOK {
			t.Errorf("a FIFO accepted as the locations file: %d", p.status)
		}
	case <-time.After(3 * time.Second):
		// Unblock the server's reader so the test can end.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("the console's check hung reading a FIFO named by risk.locations_csv")
	}
}

// TestReview21PolicySaveLocksTheConsole: HOLE. An admin at the console's
// level (mfa, an authenticator app) saves a version raising admin.acr to
// phr on a server where passkeys cannot work (an IP-address issuer), or
// where no admin has a trusted passkey: the save succeeds, and the next
// page of the console is refused to everyone. The help the refusal gives
// ("set admin.acr in the configuration file and restart") no longer works
// either: the stored version wins over --config at start. Only someone
// with the database or the CLI on a server host gets the console back.
// Fix: SavePolicy refuses (a Problem on admin.acr) a document whose admin
// level the saving admin's own session/enrolled factors cannot reach.
func TestReview21PolicySaveLocksTheConsole(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	doc := "admin:\n  acr: phr\n"
	p := b.post("/admin/policy", url.Values{"document": {doc}, "parent": {"0"}, "reason": {"tighten"}, "action": {"save"}})
	saved, _ := e.activePolicy()
	p = b.get(e.issuer + "/admin/policy")
	if saved != 0 && p.status != http.StatusOK {
		t.Fatalf("version %d was saved and the console is now closed to the admin who saved it (%d):\n%.1500s", saved, p.status, p.body)
	}
}

// TestReview21YAMLAliasBomb: regression pin (passes). A billion-laughs
// document posted to the console's check is refused quickly by the YAML
// decoder's alias limit, not expanded into memory: go.yaml.in/yaml/v3
// keeps that limit, and policy.Decode must keep using a decoder that has
// one.
func TestReview21YAMLAliasBomb(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	var sb strings.Builder
	sb.WriteString("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for i := 1; i < 10; i++ {
		prev := "*a" + string(rune('0'+i-1))
		sb.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(prev+",", 8) + prev + "]\n")
	}
	start := time.Now()
	p := b.post("/admin/policy", url.Values{"document": {sb.String()}, "parent": {"0"}, "action": {"check"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("alias bomb: status %d, want 400\n%.1500s", p.status, p.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("alias bomb took %s", d)
	}
	if n, _ := e.activePolicy(); n != 0 {
		t.Fatalf("alias bomb stored version %d", n)
	}
}

// excerpt is s around the first want, for a failure message.
func excerpt(s, want string) string {
	i := strings.Index(s, want)
	if i < 0 {
		return ""
	}
	return s[max(0, i-200):min(len(s), i+200)]
}

// TestReview21RollbackFromAStalePage: HOLE. The console's rollback form
// sends only the version to restore; RollbackPolicy restores it "from the
// active one", whatever that is by now. An admin looking at a page where
// version 2 is active clicks "Roll back to 1" after another admin saved
// version 3 (say, an emergency floor): version 4 silently undoes 3. The
// editor refuses the same stale edit (ErrPolicyMoved); the rollback does
// not. The test posts parent=2 as the editor form does; the server
// ignores it.
// Fix: the rollback form carries parent (the active version the page
// showed) and RollbackPolicy passes it to SavePolicy instead of Current().
func TestReview21RollbackFromAStalePage(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	save := func(doc string) {
		t.Helper()
		n, _ := e.activePolicy()
		p := b.post("/admin/policy", url.Values{"document": {keepAdmin + doc}, "parent": {strconv.FormatInt(n, 10)}, "reason": {"r"}, "action": {"save"}})
		if p.status != http.StatusOK {
			t.Fatalf("save: %d\n%.2000s", p.status, p.body)
		}
	}
	save("scope_min_acr:\n  payroll:write: urn:keystep:acr:mfa\n")
	save("scope_min_acr:\n  payroll:write: urn:keystep:acr:sfa\n")
	// The page now shows version 2 active, with "Roll back to 1".
	// Meanwhile another admin saves version 3.
	save("scope_min_acr:\n  payroll:write: phr\n")
	p := b.post("/admin/policy/rollback", url.Values{"version": {"1"}, "parent": {"2"}, "reason": {"undo 2"}})
	if n, doc := e.activePolicy(); n != 3 {
		t.Fatalf("a rollback from a page that showed version 2 replaced version 3 (now %d, payroll:write %s; status %d)", n, doc.ScopeMinACR[payrollWrite], p.status)
	}
}

// TestReview21FirstSaveDropsTheServersPolicy: HOLE. Version 0 is the
// server's own policy, but its Doc is only Config.PolicyDocument: the
// compiled pieces an embedder (and `keystep demo`, which passes Details
// and ScopeMinACR but no document) gives idp.Config — ScopeMinACR,
// AdminACR, ClientPolicies, Details — are not in it. The first console
// edit is made from that Doc, so saving one client's token lifetime on
// the client page stores a version without the server's scope floors and
// with the default admin level: payroll:write, phr at every client
// before, is open at sfa after; and the console itself jumps to phr
// (the reason conformance's keepAdmin exists). The diff shown says only
// "client_policies.rp".
// Fix: NewServer builds version 0's Doc from the compiled pieces (or
// refuses pieces without a matching PolicyDocument), so Doc and Snapshot
// of version 0 always agree.
func TestReview21FirstSaveDropsTheServersPolicy(t *testing.T) {
	e, secret := adminEnv(t, func(c *idp.Config) { c.ScopeMinACR = map[string]string{payrollWrite: stepup.ACRPhishing} })
	if got := e.server.Policies().Current().ScopeMinACR[payrollWrite]; got != stepup.ACRPhishing {
		t.Fatalf("setup: version 0 floor %q", got)
	}
	b := e.browser()
	b.adminLogin(secret)
	p := b.post("/admin/clients/"+rpClient+"/policy", url.Values{"access_token_lifetime": {"5m"}, "parent": {"0"}, "reason": {"shorter tokens"}})
	if n, _ := e.activePolicy(); n != 1 {
		t.Fatalf("setup: the client page saved nothing (%d)\n%.2000s", p.status, p.body)
	}
	cur := e.server.Policies().Current()
	if got := cur.ScopeMinACR[payrollWrite]; got != stepup.ACRPhishing {
		t.Errorf("saving rp's token lifetime dropped the server's payroll:write floor: now %q", got)
	}
	if cur.AdminACR != acrMFA {
		t.Errorf("saving rp's token lifetime moved the console from mfa to %q", cur.AdminACR)
	}
}

// TestReview21DisallowedFactorFromTheSession: DESIGN HOLE (documented as a
// choice in login/flow.go allowedAt). rp's policy allows only passkeys as
// a second factor; a session that did TOTP a minute earlier (here at rp
// itself, before the policy changed; another app does the same) gets rp a
// code at mfa with amr otp, without being asked anything. An admin who
// writes "factors: [webauthn]" for an app reads it as "this app's users
// prove themselves with a passkey"; today it only changes what the
// step-up offers. The amr is truthful, but the RP did not set the policy,
// the admin did, and Keystep enforces it only half.
// Fix: count in.Done only for factors the client allows (the decision
// then asks for an allowed one), or rename the field "offered_factors".
func TestReview21DisallowedFactorFromTheSession(t *testing.T) {
	e := newEnv(t)
	totp := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(essentialACR(acrMFA))
	p := b.signIn(b.get(a.url), alice, alicePass)
	r.mustExchange(r.code(b.submitCode(p, "/login/otp", e.totp(totp)), a), a)

	svc := policyService(t, e.store, e.key, e.clock, e.server.Policies())
	savePolicy(t, svc, clientPolicy(rpClient, policy.ClientPolicy{Factors: []string{string(stepup.WebAuthn)}}), e.clock.Now())
	e.clock.Advance(time.Minute)
	a = r.authURL(essentialACR(acrMFA))
	p = b.get(a.url)
	if p.redirect != nil && p.redirect.Query().Get("code") != "" {
		tok := r.mustExchange(p.redirect.Query().Get("code"), a)
		t.Fatalf("rp allows only passkeys, yet a session's TOTP got it acr %q amr %v without a passkey", tok.claims.ACR, tok.claims.AMR)
	}
}
