package conformance

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/keystep/keystep/idp"
)

// A traced sign-in with a step-up (issue 23 item 2): every request is a
// server span with the stable HTTP attributes, the step-up decision a
// span with its target acr inside the request, every statement a storage
// span with the database and operation only, and the access token's
// signature a span inside the token request. Nothing secret (password,
// one-time code, authorization code, tokens, cookies, state, client
// secret) is in any span's name or attribute.
func TestTracesASignInWithoutSecrets(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnv(t, func(c *idp.Config) { c.TracerProvider = tp })
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()

	secrets := []string{alicePass, secret, e.rpSecret}
	a := r.authURL(nil)
	p := b.signIn(b.get(a.url), alice, alicePass)
	code := r.code(p, a)
	first := r.mustExchange(code, a)
	secrets = append(secrets, code, a.state, a.nonce, a.verifier, first.token.AccessToken, first.token.RefreshToken, first.token.Extra("id_token").(string))

	e.clock.Advance(30 * time.Second)
	a = r.authURL(url.Values{"acr_values": {acrMFA}})
	p = b.get(a.url)
	otp := e.totp(secret)
	code = r.code(b.submitCode(p, "/login/otp", otp), a)
	tok := r.mustExchange(code, a)
	if tok.claims.ACR != acrMFA {
		t.Fatalf("acr %q", tok.claims.ACR)
	}
	secrets = append(secrets, otp, code, a.state, a.nonce, a.verifier, p.hidden("id"), tok.token.AccessToken, tok.token.RefreshToken)
	issuer, _ := url.Parse(e.issuer)
	for _, c := range b.client.Jar.Cookies(issuer) {
		secrets = append(secrets, c.Value)
	}

	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	attr := func(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
		for _, kv := range s.Attributes() {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return attribute.Value{}, false
	}
	// within reports whether s has an ancestor that is a server span.
	within := func(s sdktrace.ReadOnlySpan, name string) bool {
		for p, ok := byID[s.Parent().SpanID()]; ok; p, ok = byID[p.Parent().SpanID()] {
			if p.SpanKind() == trace.SpanKindServer && (name == "" || p.Name() == name) {
				return p.SpanContext().TraceID() == s.SpanContext().TraceID()
			}
		}
		return false
	}

	routes := map[string]bool{}
	var decided, stored, signed bool
	for _, s := range spans {
		switch {
		case s.SpanKind() == trace.SpanKindServer:
			for _, k := range []attribute.Key{"http.request.method", "url.path", "http.response.status_code", "server.address"} {
				if _, ok := attr(s, k); !ok {
					t.Errorf("request span %q has no %s", s.Name(), k)
				}
			}
			if v, _ := attr(s, "server.address"); v.AsString() != issuer.Hostname() {
				t.Errorf("request span %q: server.address %q, want the issuer's host", s.Name(), v.AsString())
			}
			if route, ok := attr(s, "http.route"); ok {
				routes[route.AsString()] = true
			}
		case s.Name() == "keystep.stepup.decide":
			if !within(s, "") {
				t.Errorf("decision span outside a request")
			}
			if v, _ := attr(s, "keystep.acr.target"); v.AsString() == acrMFA {
				decided = true
				if o, _ := attr(s, "keystep.decision.outcome"); o.AsString() == "" {
					t.Errorf("decision span without an outcome")
				}
			}
		case s.Name() == "keystep.sign":
			if within(s, "POST /oauth/token") {
				signed = true
			}
		}
		if v, ok := attr(s, "db.system.name"); ok {
			if v.AsString() != "sqlite" {
				t.Errorf("storage span %q: db.system.name %q", s.Name(), v.AsString())
			}
			if op, _ := attr(s, "db.operation.name"); !slices.Contains([]string{"SELECT", "INSERT", "UPDATE", "DELETE"}, op.AsString()) {
				t.Errorf("storage span %q: db.operation.name %q", s.Name(), op.AsString())
			}
			if len(s.Attributes()) != 2 {
				t.Errorf("storage span %q has attributes beyond the system and operation: %v", s.Name(), s.Attributes())
			}
			stored = stored || within(s, "")
		}
	}
	for _, route := range []string{"/authorize", "/login", "/oauth/token", "/authorize/callback"} {
		if !routes[route] {
			t.Errorf("no request span for %s; routes: %v", route, routes)
		}
	}
	if !decided {
		t.Error("no decision span with keystep.acr.target " + acrMFA)
	}
	if !stored {
		t.Error("no storage span inside a request")
	}
	if !signed {
		t.Error("no signing span inside the token request")
	}

	// Every name and attribute of every span, secrets never.
	for _, s := range spans {
		texts := []string{s.Name()}
		for _, kv := range s.Attributes() {
			texts = append(texts, kv.Value.Emit())
			if kv.Key == "url.path" && strings.ContainsAny(kv.Value.AsString(), "?#") {
				t.Errorf("span %q: url.path %q carries a query", s.Name(), kv.Value.AsString())
			}
		}
		for _, ev := range s.Events() {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Value.Emit())
			}
		}
		for _, text := range texts {
			for _, sec := range secrets {
				if sec != "" && strings.Contains(text, sec) {
					t.Errorf("span %q holds a secret in %q", s.Name(), text)
				}
			}
		}
	}
}
