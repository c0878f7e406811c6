package main

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/stepup"
)

func TestLoadConfigWithoutAFileUsesTheDefaults(t *testing.T) {
	s, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stepup.DefaultPolicy().Values(), s.policy.Values()); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	if s.scopeMinACR != nil || s.trustedProxies != nil || s.productName != "" {
		t.Errorf("settings %+v, want none", s)
	}
}

func TestLoadConfigReadsCustomLevels(t *testing.T) {
	p := writeConfig(t, `{
		"product_name": "Acme ID",
		"levels": [
			{"acr": "basic", "requires": "any"},
			{"acr": "strong", "aliases": ["urn:acme:strong"], "requires": "mfa", "freshness": "1h",
			 "per_factor_freshness": {"pwd": "30m", "totp": "15m"}},
			{"acr": "phishproof", "requires": "phr", "freshness": "10m"}
		],
		"scope_min_acr": {"payroll": "strong", "admin": "urn:acme:strong"},
		"trusted_proxies": ["10.0.0.0/8", "fd00::/8"]
	}`)
	s, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"basic", "strong", "urn:acme:strong", "phishproof"}, s.policy.Values()); diff != "" {
		t.Errorf("acr values (-want +got):\n%s", diff)
	}
	_, strong, _ := s.policy.Lookup("strong")
	wantFresh := map[stepup.Method]time.Duration{stepup.Password: 30 * time.Minute, stepup.TOTP: 15 * time.Minute}
	if diff := cmp.Diff(wantFresh, strong.Freshness); diff != "" || strong.DefaultFreshness != time.Hour || strong.Requires != stepup.MultiFactor {
		t.Errorf("level strong = %+v (freshness -want +got:\n%s)", strong, diff)
	}
	if diff := cmp.Diff(map[string]string{"payroll": "strong", "admin": "urn:acme:strong"}, s.scopeMinACR); diff != "" {
		t.Errorf("scope_min_acr (-want +got):\n%s", diff)
	}
	wantProxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	if diff := cmp.Diff(wantProxies, s.trustedProxies, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("trusted_proxies (-want +got):\n%s", diff)
	}
	if s.productName != "Acme ID" {
		t.Errorf("product_name %q", s.productName)
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string
		notWant []string
	}{
		{
			name: "several problems are reported together",
			body: `{
				"levels": [
					{"acr": "basic", "requires": "any", "freshness": "soon"},
					{"acr": "strong", "requires": "mfa", "per_factor_freshness": {"totp": "5 minutes"}}
				],
				"scope_min_acr": {"payroll": "gold", "admin": "strong"},
				"trusted_proxies": ["10.0.0.0/33", "192.168.0.0/16", "proxy.example"]
			}`,
			want: []string{
				`levels[0].freshness`, `"soon"`,
				`levels[1].per_factor_freshness.totp`,
				`scope_min_acr.payroll: unknown acr "gold"`,
				`trusted_proxies[0]`, `10.0.0.0/33`,
				`trusted_proxies[2]`, `proxy.example`,
			},
			notWant: []string{"scope_min_acr.admin", "trusted_proxies[1]"},
		},
		{
			name: "an unknown acr in the default levels",
			body: `{"scope_min_acr": {"payroll": "gold"}}`,
			want: []string{`scope_min_acr.payroll: unknown acr "gold"`},
		},
		{
			name:    "invalid levels are reported without blaming the scope minimums that name them",
			body:    `{"levels": [{"acr": "basic", "requires": "sometimes"}], "scope_min_acr": {"payroll": "basic"}}`,
			want:    []string{`unknown requirement "sometimes"`},
			notWant: []string{"scope_min_acr"},
		},
		{
			name: "levels that get weaker going up",
			body: `{"levels": [{"acr": "a", "requires": "mfa"}, {"acr": "b", "requires": "any"}]}`,
			want: []string{"weaker"},
		},
		{
			name: "an unknown field",
			body: `{"product_name": "Acme", "trusted_proxy": ["10.0.0.0/8"]}`,
			want: []string{`unknown field "trusted_proxy"`},
		},
		{
			name: "an unknown field in a level",
			body: `{"levels": [{"acr": "a", "requires": "any", "fresh": "1h"}]}`,
			want: []string{`unknown field "fresh"`},
		},
		{
			name: "broken JSON",
			body: `{"product_name": "Acme",}`,
			want: []string{"invalid character"},
		},
		{
			name: "a value of the wrong type",
			body: `{"trusted_proxies": "10.0.0.0/8"}`,
			want: []string{"trusted_proxies"},
		},
		{
			name: "data after the object",
			body: `{"product_name": "Acme"} {"product_name": "Other"}`,
			want: []string{"after the JSON object"},
		},
		{
			name: "an empty file",
			body: ``,
			want: []string{"empty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.body)
			_, err := loadConfig(p)
			if err == nil {
				t.Fatal("loadConfig succeeded")
			}
			msg := err.Error()
			for _, w := range append([]string{p}, tt.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q:\n%s", w, msg)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("error mentions %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestLoadConfigReportsAMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing.json")
	if _, err := loadConfig(p); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("loadConfig(missing) = %v, want an error naming the file", err)
	}
}

func TestLoadConfigReportsProblemsInAStableOrder(t *testing.T) {
	p := writeConfig(t, `{"scope_min_acr": {"c": "x", "a": "x", "b": "x"},
		"levels": [{"acr": "l", "requires": "any", "per_factor_freshness": {"totp": "?", "pwd": "?", "webauthn": "?"}}]}`)
	_, first := loadConfig(p)
	for range 20 {
		if _, err := loadConfig(p); err == nil || err.Error() != first.Error() {
			t.Fatalf("problems reported in a different order:\n%v\n---\n%v", first, err)
		}
	}
}

func TestServeWithCustomLevelsAdvertisesThem(t *testing.T) {
	p := writeConfig(t, `{"levels": [{"acr": "basic", "requires": "any"}, {"acr": "strong", "requires": "mfa"}], "scope_min_acr": {"payroll": "strong"}}`)
	s := startServe(t, "--data", t.TempDir(), "--config", p)
	body := string(s.get(t, "/.well-known/openid-configuration"))
	if !strings.Contains(body, `"acr_values_supported":["basic","strong"]`) {
		t.Errorf("discovery does not list the configured levels:\n%s", body)
	}
}

func TestLoadConfigRateLimits(t *testing.T) {
	s, err := loadConfig(writeConfig(t, `{"rate_limits": {"token": {"per_second": 5, "burst": 10}, "client": {"per_second": 50, "burst": 100}},
		"clients": [{"id": "svc", "grant_types": ["client_credentials"], "rate_limit": 3000}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.rateLimits["token"]; got.PerSecond != 5 || got.Burst != 10 {
		t.Fatalf("token limit %+v", got)
	}
	if got := s.rateLimits["client"]; got.PerSecond != 50 || got.Burst != 100 {
		t.Fatalf("default client limit %+v", got)
	}
	if got := s.clients[0].RateLimit; got != 3000 {
		t.Fatalf("the client's own rate limit: %d", got)
	}
	if got := s.rateLimits["authorize"]; got.PerSecond == 0 {
		t.Fatal("the authorize default was lost")
	}
	_, err = loadConfig(writeConfig(t, `{"rate_limits": {"tokens": {"per_second": 5, "burst": 10}, "authorize": {"per_second": 5}}}`))
	if err == nil || !strings.Contains(err.Error(), "rate_limits.tokens: unknown group") || !strings.Contains(err.Error(), "rate_limits.authorize: per_second") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadConfigSessionLifetimes(t *testing.T) {
	s, err := loadConfig(writeConfig(t, `{"session": {"idle_timeout": "2h", "max_age": "24h"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.sessionIdleTimeout != 2*time.Hour || s.sessionMaxAge != 24*time.Hour {
		t.Fatalf("idle %s, max age %s", s.sessionIdleTimeout, s.sessionMaxAge)
	}
	// One of the two: the other keeps its default, and is checked against it.
	if s, err := loadConfig(writeConfig(t, `{"session": {"idle_timeout": "30m"}}`)); err != nil || s.sessionIdleTimeout != 30*time.Minute || s.sessionMaxAge != 0 {
		t.Fatalf("idle only: %+v %v", s, err)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"session": {"idle_timeout": "soon"}}`, "session.idle_timeout"},
		{`{"session": {"idle_timeout": "0s"}}`, "session.idle_timeout: must be positive"},
		{`{"session": {"max_age": "-1h"}}`, "session.max_age: must be positive"},
		{`{"session": {"max_age": "2160h"}}`, "session.max_age: at most 720h"},
		{`{"session": {"idle_timeout": "24h"}}`, "longer than the max age 12h"},
		{`{"session": {"idle_timeout": "3h", "max_age": "2h"}}`, "longer than the max age 2h"},
		{`{"session": {"idle": "3h"}}`, `session: unknown field "idle"`},
	} {
		_, err := loadConfig(writeConfig(t, tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.body, err, tt.want)
		}
	}
}
