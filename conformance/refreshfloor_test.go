package conformance

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// A floor raised between the sign-in and the code exchange: the exchange
// keeps the version the sign-in was decided under (payroll:write at sfa),
// but the very next refresh is checked against the active policy and
// refused with invalid_grant, rotating nothing and leaving a
// token.refresh_refused row; the same refresh token then still works for
// the scopes the grant's level meets. client_credentials, which has no
// sign-in, is not held to scope floors.
func TestRefreshHeldToTheActiveScopeFloors(t *testing.T) {
	e := newEnv(t)
	a := policyService(t, e.store, e.key, e.clock, e.server.Policies())
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: acrSFA}}), e.clock.Now())
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	au := r.authURL(url.Values{"scope": {"openid offline_access " + payrollWrite}})
	code := r.code(b.signIn(b.get(au.url), alice, alicePass), au)

	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: stepup.ACRPhishing}}), e.clock.Now())
	tok := r.mustExchange(code, au)
	if sc, _ := tok.token.Extra("scope").(string); !strings.Contains(sc, payrollWrite) || tok.claims.ACR != acrSFA {
		t.Fatalf("the exchange is decided under the sign-in's version: scope %q acr %q", sc, tok.claims.ACR)
	}

	status, body := tokenPost(e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.token.RefreshToken}})
	if desc, _ := body["error_description"].(string); status != http.StatusBadRequest || body["error"] != "invalid_grant" || !strings.Contains(desc, payrollWrite) {
		t.Fatalf("refresh with %s raised to phr: %d %v, want invalid_grant naming the scope", payrollWrite, status, body)
	}
	ev := lastEvent(t, e.store, storage.EventTokenRefreshRefused, rpClient)
	if ev.UserID != "u-alice" || ev.Outcome != "denied" || ev.Details["scope"] != payrollWrite || ev.Details["min_acr"] != stepup.ACRPhishing || ev.Details["acr"] != acrSFA {
		t.Fatalf("audit row %+v", ev)
	}

	// Fewer scopes: the same (unrotated) refresh token works.
	e.clock.Advance(time.Minute)
	status, body = tokenPost(e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.token.RefreshToken}, "scope": {"openid offline_access"}})
	if sc, _ := body["scope"].(string); status != http.StatusOK || strings.Contains(sc, payrollWrite) {
		t.Fatalf("refresh without %s: %d %v", payrollWrite, status, body)
	}

	// client_credentials with the floored scope is untouched by floors.
	status, body, _ = e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rpClient, e.rpSecret)
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
}

// Lowering the floor again lets the same grant refresh with the scope: the
// check is the active policy's at each refresh, nothing is remembered.
func TestRefreshFloorLoweredAgain(t *testing.T) {
	e := newEnv(t)
	a := policyService(t, e.store, e.key, e.clock, e.server.Policies())
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: acrSFA}}), e.clock.Now())
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), url.Values{"scope": {"openid offline_access " + payrollWrite}})
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: acrMFA}}), e.clock.Now())
	if status, body := tokenPost(e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.token.RefreshToken}}); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("raised to mfa: %d %v", status, body)
	}
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: acrSFA}}), e.clock.Now())
	status, body := tokenPost(e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.token.RefreshToken}})
	if sc, _ := body["scope"].(string); status != http.StatusOK || !strings.Contains(sc, payrollWrite) {
		t.Fatalf("lowered to sfa again: %d %v", status, body)
	}
}
