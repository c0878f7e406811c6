package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// fileConfig is the optional --config file, and the file `keystep apply`
// reads and `keystep export` writes: JSON or YAML. Unknown fields are
// errors, so a typo is caught rather than silently ignored.
type fileConfig struct {
	ProductName string `json:"product_name,omitempty"`
	// Document is the policy: levels, scope minimums, risk, the admin
	// console, authorization details types and per-client policy. It
	// seeds the first stored policy version (package login/policy).
	policy.Document
	TrustedProxies []string                   `json:"trusted_proxies,omitempty"`
	Session        *sessionConfig             `json:"session,omitempty"`
	Passkeys       *passkeyConfig             `json:"passkeys,omitempty"`
	RateLimits     map[string]rateLimitConfig `json:"rate_limits,omitempty"`
	// RequirePAR admits only pushed authorization requests (RFC 9126 §5,
	// idp.Config.RequirePAR); each client can also require them for
	// itself.
	RequirePAR bool               `json:"require_pushed_authorization_requests,omitempty"`
	Clients    []admin.ClientSpec `json:"clients,omitempty"`
}

// rateLimitConfig is one endpoint group's limit: token and authorize per
// client address, client per authenticated client without a rate_limit of
// its own (idp.DefaultRateLimits); per_second 0 turns it off.
type rateLimitConfig struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// sessionConfig is how long a browser session lasts: idle_timeout without
// use, max_age after the first sign-in, whichever ends it first.
type sessionConfig struct {
	IdleTimeout string `json:"idle_timeout,omitempty"` // Go duration, default 12h
	MaxAge      string `json:"max_age,omitempty"`      // Go duration, default 12h
}

// maxSessionMaxAge: NIST SP 800-63B §4.1.3, reauthenticate at least every
// 30 days even at the lowest level.
const maxSessionMaxAge = 30 * 24 * time.Hour

// passkeyConfig is how passkeys added from a session below phr become
// phishing-resistant (DESIGN §3.3).
type passkeyConfig struct {
	CoolingOff string `json:"cooling_off,omitempty"` // Go duration, default 24h
}

// riskConfig is the config file's risk section (policy.Risk), by the name
// preview.go uses; new code uses policy.Risk.
type riskConfig = policy.Risk

// settings is the validated result.
type settings struct {
	productName    string
	policy         *stepup.Policy
	scopeMinACR    map[string]string
	trustedProxies []netip.Prefix
	risk           signin.RiskConfig
	adminACR       string
	adminMaxAge    time.Duration
	coolingOff     time.Duration // 0: login.DefaultPasskeyCoolingOff
	rateLimits     map[string]idp.RateLimit
	snap           *policy.Snapshot   // the file's policy, compiled
	requirePAR     bool               // every client must push its requests
	details        *details.Registry  // nil without a config file: the types are not known
	clients        []admin.ClientSpec // normalised
	file           fileConfig         // as read, for export
	// policyReadOnly: the file's policy decides, stored versions are
	// neither used nor made (--policy-read-only).
	policyReadOnly bool

	// Session lifetimes; 0 means the login package's default.
	sessionIdleTimeout, sessionMaxAge time.Duration
}

// loadConfig reads and validates path ("" = defaults), reporting every
// problem at once.
func loadConfig(path string) (settings, error) {
	s := settings{policy: stepup.DefaultPolicy(), risk: signin.DefaultRiskConfig()}
	if path == "" {
		snap, _ := policy.Compile(policy.Document{}, policy.Options{})
		// Without a file the authorization details types are not known
		// here (unless a stored version says): a client's are checked for
		// their form only, so an operator can register one before the
		// policy has it.
		unknown := *snap
		unknown.Details = nil
		s.snap = &unknown
		return s, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("config: %w", err)
	}
	fc, unknown, err := decodeConfig(raw)
	if err != nil {
		return s, fmt.Errorf("config %s: %w", path, err)
	}
	s.file = fc
	errs := unknown // reported with every other problem
	s.productName = fc.ProductName
	s.requirePAR = fc.RequirePAR
	snap, err := policy.Compile(fc.Document, policy.Options{LocationsCSV: policy.LocationsOf(fc.Document)})
	policyOK := err == nil
	if err != nil {
		for _, e := range unjoinErr(err) {
			errs = append(errs, e)
			if strings.HasPrefix(e.Error(), "levels") {
				policyOK = false
			}
		}
		// Check the rest (clients' min_acr) against the file's levels
		// when they are valid.
		if lv, lerr := policy.Compile(policy.Document{Levels: fc.Levels}, policy.Options{}); lerr == nil {
			snap = lv
		} else {
			snap, _ = policy.Compile(policy.Document{}, policy.Options{})
		}
	} else {
		s.details = snap.Details
	}
	s.snap = snap
	s.policy, s.scopeMinACR, s.risk = snap.Levels, snap.ScopeMinACR, snap.Risk
	s.adminACR, s.adminMaxAge = snap.AdminACR, snap.AdminMaxAge
	for i, p := range fc.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %w", i, err))
			continue
		}
		s.trustedProxies = append(s.trustedProxies, prefix)
	}
	if len(fc.RateLimits) > 0 {
		s.rateLimits = maps.Clone(idp.DefaultRateLimits)
		for _, group := range slices.Sorted(maps.Keys(fc.RateLimits)) {
			rl := fc.RateLimits[group]
			if _, ok := idp.DefaultRateLimits[group]; !ok {
				errs = append(errs, fmt.Errorf("rate_limits.%s: unknown group (want token, authorize or client)", group))
				continue
			}
			if rl.PerSecond < 0 || rl.Burst < 0 || rl.PerSecond > 0 && rl.Burst < 1 {
				errs = append(errs, fmt.Errorf("rate_limits.%s: per_second must be ≥ 0 and burst ≥ 1 when on", group))
				continue
			}
			s.rateLimits[group] = idp.RateLimit{PerSecond: rl.PerSecond, Burst: rl.Burst}
		}
	}
	if sc := fc.Session; sc != nil {
		errs = append(errs, applySession(&s, sc)...)
	}
	if pc := fc.Passkeys; pc != nil && pc.CoolingOff != "" {
		d, err := time.ParseDuration(pc.CoolingOff)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("passkeys.cooling_off: %w", err))
		}
		s.coolingOff = d
	}
	errs = append(errs, checkClients(&s, fc.Clients, policyOK)...)
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("config %s:\n%w", path, err)
	}
	return s, nil
}

// decodeConfig decodes a JSON or YAML config file (policy.Decode).
func decodeConfig(raw []byte) (fileConfig, []error, error) {
	var fc fileConfig
	unknown, err := policy.Decode(raw, &fc)
	return fc, unknown, err
}

// applySession reads the session lifetimes and checks them together, the
// one not given at its default.
func applySession(s *settings, sc *sessionConfig) []error {
	var errs []error
	parse := func(field, v string, limit time.Duration) (time.Duration, bool) {
		if v == "" {
			return 0, true
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
		case d <= 0:
			err = errors.New("must be positive")
		case limit > 0 && d > limit:
			err = fmt.Errorf("at most %s", policy.ShortDuration(limit))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("session.%s: %w", field, err))
			return 0, false
		}
		return d, true
	}
	idle, ok1 := parse("idle_timeout", sc.IdleTimeout, 0)
	maxAge, ok2 := parse("max_age", sc.MaxAge, maxSessionMaxAge)
	s.sessionIdleTimeout, s.sessionMaxAge = idle, maxAge
	if ok1 && ok2 {
		if idle == 0 {
			idle = login.DefaultSessionIdleTimeout
		}
		if maxAge == 0 {
			maxAge = login.DefaultSessionMaxAge
		}
		if err := login.CheckSessionLifetimes(idle, maxAge); err != nil {
			errs = append(errs, fmt.Errorf("session: %w", err))
		}
	}
	return errs
}

// unjoinErr lists the errors errors.Join made err of.
func unjoinErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// checkClients validates the clients: section, each client against the
// file's levels (when they are valid) and authorization details types, and
// no ID twice.
func checkClients(s *settings, list []admin.ClientSpec, policyOK bool) []error {
	var errs []error
	p := s.policy
	if !policyOK {
		p = nil // the levels error says it; no need to blame each min_acr
	}
	seen := map[string]int{}
	for i, c := range list {
		c = c.Normalize()
		where := fmt.Sprintf("clients[%d]", i)
		if c.ID != "" {
			where += " (" + c.ID + ")"
		}
		for _, pr := range append(admin.ValidateClient(c, p, idp.AccountClientID), admin.RegisteredDetailsTypes(c, s.details)...) {
			errs = append(errs, fmt.Errorf("%s.%s: %s", where, pr.Field, pr.Message))
		}
		if j, dup := seen[c.ID]; dup && c.ID != "" {
			errs = append(errs, fmt.Errorf("%s: client ID %q is also clients[%d]", where, c.ID, j))
		}
		seen[c.ID] = i
		s.clients = append(s.clients, c)
	}
	return errs
}

// live is the policy in force for a command run on st: the active stored
// version, else (or with --policy-read-only) the file's (version 0). A
// stored version that does not compile here is reported and the file's
// used.
func (s settings) live(st storage.Store) *policy.Live {
	if s.snap == nil {
		ro := s.policyReadOnly
		s = noConfig()
		s.policyReadOnly = ro
	}
	l := policy.NewLive(st, s.snap, s.policyOptions(), s.policyReadOnly, nil)
	if err := l.Refresh(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "keystep: the stored policy: %v; using the --config file's\n", err)
	}
	return l
}

// serverConfig is the server's configuration from the validated settings.
func (s settings) serverConfig(issuer string, st storage.Store, key []byte, log *slog.Logger) idp.Config {
	return idp.Config{
		Issuer: issuer, Store: st, MasterKey: key, Policy: s.policy,
		ScopeMinACR: s.scopeMinACR, TrustedProxies: s.trustedProxies,
		Logger: log, ProductName: s.productName, Risk: s.risk, RateLimits: s.rateLimits,
		AdminACR: s.adminACR, AdminMaxAge: s.adminMaxAge,
		SessionIdleTimeout: s.sessionIdleTimeout, SessionMaxAge: s.sessionMaxAge,
		PasskeyCoolingOff: s.coolingOff, RequirePAR: s.requirePAR, Details: s.details,
		PolicyDocument: s.snap.Doc, ClientPolicies: s.snap.Clients, PolicyReadOnly: s.policyReadOnly,
	}
}

// policyOptions compile a document on this command's behalf: the
// locations file the --config file names is the one a document may name
// (the operator's own file, read with the operator's rights).
func (s settings) policyOptions() policy.Options {
	o := policy.Options{LocationsCSV: policy.LocationsOf(s.file.Document)}
	if s.snap != nil {
		o.RiskWindow = s.snap.Risk.Window
	}
	return o
}

// noConfig is the settings without a config file: the defaults.
func noConfig() settings {
	s, _ := loadConfig("")
	return s
}
