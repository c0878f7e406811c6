package stepup

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewPolicyRejects(t *testing.T) {
	level := func(acr string, r Requirement) Level { return Level{ACR: acr, Requires: r} }
	tests := []struct {
		name   string
		levels []Level
		want   []string // substrings, one per reported problem
	}{
		{
			name: "no levels at all",
			want: []string{"at least one level"},
		},
		{
			name:   "an empty acr and an empty alias",
			levels: []Level{{Requires: AnyFactor, Aliases: []string{""}}},
			want:   []string{"level 0: empty acr", "level 0: empty alias"},
		},
		{
			name:   "an acr with a space cannot travel in acr_values",
			levels: []Level{level("gold level", AnyFactor)},
			want:   []string{`acr "gold level" contains whitespace`},
		},
		{
			name: "a name used twice, as an acr and as an alias",
			levels: []Level{
				level("a", AnyFactor),
				{ACR: "b", Aliases: []string{"a"}, Requires: MultiFactor},
			},
			want: []string{`alias "a" already names level 0`},
		},
		{
			name:   "an unknown requirement",
			levels: []Level{level("a", "aal9")},
			want:   []string{`unknown requirement "aal9"`},
		},
		{
			name:   "requirements that go down",
			levels: []Level{level("a", PhishingResistant), level("b", MultiFactor)},
			want:   []string{`requirement "mfa" is weaker than "phr"`},
		},
		{
			name: "a freshness window for an unknown method, a zero window and a negative default",
			levels: []Level{{
				ACR: "a", Requires: AnyFactor,
				Freshness:        map[Method]time.Duration{"sms": time.Hour, TOTP: 0},
				DefaultFreshness: -time.Second,
			}},
			want: []string{"default freshness -1s is negative", `unknown method "sms"`, "freshness for totp is 0s"},
		},
		{
			name: "a higher level that accepts older factors than the level below",
			levels: []Level{
				{ACR: "a", Requires: AnyFactor, DefaultFreshness: time.Hour},
				{ACR: "b", Requires: MultiFactor, Freshness: map[Method]time.Duration{WebAuthn: 2 * time.Hour}, DefaultFreshness: time.Hour},
			},
			want: []string{"freshness for webauthn (2h0m0s) is longer than the level below (1h0m0s)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.levels)
			if err == nil {
				t.Fatalf("NewPolicy() = %v, want error", p)
			}
			msg := err.Error()
			if got := len(strings.Split(msg, "\n")); got != len(tt.want) {
				t.Errorf("NewPolicy() reported %d problems, want %d:\n%s", got, len(tt.want), msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("NewPolicy() error = %q, want it to contain %q", msg, w)
				}
			}
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	wantValues := []string{sfa, mfa, PAPEMultiFactor, phr, PAPEPhishing, phrh}
	if diff := cmp.Diff(wantValues, p.Values()); diff != "" {
		t.Errorf("Values() mismatch (-want +got):\n%s", diff)
	}
	for _, l := range p.Levels() {
		for _, m := range methods {
			if got := l.window(m); got != 12*time.Hour {
				t.Errorf("level %s: window(%s) = %s, want 12h", l.ACR, m, got)
			}
		}
	}

	rank, lvl, ok := p.Lookup(PAPEPhishing)
	if !ok || rank != 2 || lvl.ACR != phr || lvl.Requires != PhishingResistant {
		t.Errorf("Lookup(PAPE phishing-resistant) = %d, %+v, %v; want 2, phr, true", rank, lvl, ok)
	}
	if _, _, ok := p.Lookup("urn:keystep:acr:MFA"); ok {
		t.Errorf("Lookup() matched a differently cased acr; acr is case-sensitive (OIDC Core §2)")
	}

	// Callers get copies: changing them does not change the policy.
	lvl.Aliases[0] = "changed"
	p.Levels()[1].Aliases[0] = "changed"
	p.Values()[0] = "changed"
	if diff := cmp.Diff(wantValues, p.Values()); diff != "" {
		t.Errorf("policy changed through a returned copy (-want +got):\n%s", diff)
	}
	if _, l, _ := p.Lookup(phr); l.Aliases[0] != PAPEPhishing {
		t.Errorf("Lookup(phr).Aliases = %q after a caller edited a copy", l.Aliases)
	}
}

func TestSatisfies(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		name    string
		acr     string
		factors []Factor
		want    bool
	}{
		{"password meets sfa", sfa, []Factor{pwdAt(time.Hour)}, true},
		{"password alone does not meet mfa", mfa, []Factor{pwdAt(time.Hour)}, false},
		{"password and TOTP meet mfa by its alias", PAPEMultiFactor, []Factor{pwdAt(time.Hour), totpAt(time.Hour)}, true},
		{"password and recovery code do not meet phr", phr, []Factor{pwdAt(time.Hour), recAt(time.Hour)}, false},
		{"a stale password does not meet sfa", sfa, []Factor{pwdAt(13 * time.Hour)}, false},
		{"password and a provisional key meet mfa", mfa, []Factor{pwdAt(time.Hour), pendingAt(time.Hour, false, true)}, true},
		{"password and a provisional key do not meet phr", phr, []Factor{pwdAt(time.Hour), pendingAt(time.Hour, false, true)}, false},
		{"password and a trusted key meet phr", phr, []Factor{pwdAt(time.Hour), keyAt(time.Hour, false, false)}, true},
		{"an unknown acr is never met", "gold", []Factor{pwdAt(time.Hour)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Satisfies(tt.acr, tt.factors, t0); got != tt.want {
				t.Errorf("Satisfies(%q) = %v, want %v", tt.acr, got, tt.want)
			}
		})
	}
}
