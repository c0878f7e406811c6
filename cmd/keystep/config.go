package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// fileConfig is the optional --config file, and the file `keystep apply`
// reads and `keystep export` writes: JSON or YAML. Unknown fields are
// errors, so a typo is caught rather than silently ignored.
type fileConfig struct {
	ProductName    string                     `json:"product_name,omitempty"`
	Levels         []levelConfig              `json:"levels,omitempty"`
	ScopeMinACR    map[string]string          `json:"scope_min_acr,omitempty"`
	TrustedProxies []string                   `json:"trusted_proxies,omitempty"`
	Risk           *riskConfig                `json:"risk,omitempty"`
	Admin          *adminConfig               `json:"admin,omitempty"`
	Session        *sessionConfig             `json:"session,omitempty"`
	Passkeys       *passkeyConfig             `json:"passkeys,omitempty"`
	RateLimits     map[string]rateLimitConfig `json:"rate_limits,omitempty"`
	// RequirePAR admits only pushed authorization requests from every
	// client (RFC 9126 §5, idp.Config.RequirePAR); each client can also
	// require them for itself.
	RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
	// AuthorizationDetails registers the authorization_details types (RFC
	// 9396) clients may request, what the person is shown and what each
	// demands (package idp/details).
	AuthorizationDetails *details.Config    `json:"authorization_details_types,omitempty"`
	Clients              []admin.ClientSpec `json:"clients,omitempty"`
}

// rateLimitConfig is one endpoint group's limit: token and authorize per
// client address, client per authenticated client without a rate_limit of
// its own (idp.DefaultRateLimits); per_second 0 turns it off.
type rateLimitConfig struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// adminConfig is the admin console's level and freshness.
type adminConfig struct {
	ACR    string `json:"acr,omitempty"`     // default phr
	MaxAge string `json:"max_age,omitempty"` // Go duration, default 15m
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

// riskConfig overrides the risk engine's defaults (DESIGN §3.4). Omitted
// fields keep their defaults.
type riskConfig struct {
	Weights          map[string]int `json:"weights,omitempty"`
	Medium           *int           `json:"medium,omitempty"`
	High             *int           `json:"high,omitempty"`
	OnMedium         *riskAction    `json:"on_medium,omitempty"`
	OnHigh           *riskAction    `json:"on_high,omitempty"`
	DenyCIDRs        []string       `json:"deny_cidrs,omitempty"`
	SuspiciousCIDRs  []string       `json:"suspicious_cidrs,omitempty"`
	LocationsCSV     string         `json:"locations_csv,omitempty"`
	SensitiveClients []string       `json:"sensitive_clients,omitempty"`
	SensitiveScopes  []string       `json:"sensitive_scopes,omitempty"`
	MaxTravelKmh     *float64       `json:"max_travel_kmh,omitempty"`
}

type riskAction struct {
	Floor string `json:"floor,omitempty"`
	Hard  bool   `json:"hard,omitempty"`
	Deny  bool   `json:"deny,omitempty"`
}

type levelConfig struct {
	ACR       string            `json:"acr"`
	Aliases   []string          `json:"aliases,omitempty"`
	Requires  string            `json:"requires"`            // any | mfa | phr | phrh
	Freshness string            `json:"freshness,omitempty"` // Go duration, default 12h
	PerFactor map[string]string `json:"per_factor_freshness,omitempty"`
}

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
	requirePAR     bool               // every client must push its requests
	details        *details.Registry  // nil without a config file: the types are not known
	clients        []admin.ClientSpec // normalised
	file           fileConfig         // as read, for export

	// Session lifetimes; 0 means the login package's default.
	sessionIdleTimeout, sessionMaxAge time.Duration
}

// loadConfig reads and validates path ("" = defaults), reporting every
// problem at once.
func loadConfig(path string) (settings, error) {
	s := settings{policy: stepup.DefaultPolicy(), risk: signin.DefaultRiskConfig()}
	if path == "" {
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
	policyOK := true
	s.productName = fc.ProductName
	s.requirePAR = fc.RequirePAR
	if len(fc.Levels) > 0 {
		var levels []stepup.Level
		for i, lc := range fc.Levels {
			l := stepup.Level{ACR: lc.ACR, Aliases: lc.Aliases, Requires: stepup.Requirement(lc.Requires)}
			if lc.Freshness != "" {
				d, err := time.ParseDuration(lc.Freshness)
				if err != nil {
					errs = append(errs, fmt.Errorf("levels[%d].freshness: %w", i, err))
				}
				l.DefaultFreshness = d
			}
			for _, m := range slices.Sorted(maps.Keys(lc.PerFactor)) {
				d, err := time.ParseDuration(lc.PerFactor[m])
				if err != nil {
					errs = append(errs, fmt.Errorf("levels[%d].per_factor_freshness.%s: %w", i, m, err))
					continue
				}
				if l.Freshness == nil {
					l.Freshness = map[stepup.Method]time.Duration{}
				}
				l.Freshness[stepup.Method(m)] = d
			}
			levels = append(levels, l)
		}
		p, err := stepup.NewPolicy(levels)
		if err != nil {
			errs = append(errs, fmt.Errorf("levels: %w", err))
			// The scope minimums name the configured levels, not the
			// defaults: checking them against the defaults would only add
			// noise to the levels error above.
			policyOK = false
		} else {
			s.policy = p
		}
	}
	for _, scope := range slices.Sorted(maps.Keys(fc.ScopeMinACR)) {
		acr := fc.ScopeMinACR[scope]
		if _, _, ok := s.policy.Lookup(acr); policyOK && !ok {
			errs = append(errs, fmt.Errorf("scope_min_acr.%s: unknown acr %q", scope, acr))
		}
	}
	s.scopeMinACR = fc.ScopeMinACR
	for i, p := range fc.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %w", i, err))
			continue
		}
		s.trustedProxies = append(s.trustedProxies, prefix)
	}
	if fc.Risk != nil {
		errs = append(errs, applyRisk(&s, fc.Risk, policyOK)...)
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
	if a := fc.Admin; a != nil {
		if a.ACR != "" {
			if _, _, ok := s.policy.Lookup(a.ACR); policyOK && !ok {
				errs = append(errs, fmt.Errorf("admin.acr: unknown acr %q", a.ACR))
			}
			s.adminACR = a.ACR
		}
		if a.MaxAge != "" {
			d, err := time.ParseDuration(a.MaxAge)
			if err == nil && d <= 0 {
				err = errors.New("must be positive")
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("admin.max_age: %w", err))
			}
			s.adminMaxAge = d
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
	errs = append(errs, applyDetails(&s, fc.AuthorizationDetails, policyOK)...)
	errs = append(errs, checkClients(&s, fc.Clients, policyOK)...)
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("config %s:\n%w", path, err)
	}
	return s, nil
}

// decodeConfig decodes a JSON or YAML file. A file that starts with '{' is
// JSON and is decoded as it is, so JSON mistakes are reported with JSON's
// own words and offsets; anything else is YAML, turned into JSON first so
// that both formats share the JSON field names, the strict decoder and the
// checks. Unknown fields do not stop the decoding: they come back as
// problems, all of them, to be reported with every other problem.
func decodeConfig(raw []byte) (fileConfig, []error, error) {
	var fc fileConfig
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return fc, nil, errors.New("empty file; want a JSON or YAML object")
	}
	if trimmed[0] != '{' {
		j, err := yamlToJSON(raw)
		if err != nil {
			return fc, nil, err
		}
		raw = j
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file; want a JSON object")
		}
		return fc, nil, err
	}
	if dec.More() {
		return fc, nil, errors.New("unexpected data after the JSON object")
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return fc, nil, err
	}
	return fc, unknownFields(tree, reflect.TypeFor[fileConfig](), ""), nil
}

// yamlToJSON converts one YAML document to JSON. It reads YAML 1.2
// (go.yaml.in/yaml/v3), not YAML 1.1, where an unquoted y, n, yes, no, on
// or off is a boolean, keys included, so the y coordinate of an EC key and the n modulus of an RSA key in a client's jwks
// would turn into "true" and "false". A key given twice is an error.
func yamlToJSON(raw []byte) ([]byte, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("YAML: %w", err)
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("YAML: more than one document; want one mapping")
	}
	if _, ok := tree.(map[string]any); !ok {
		return nil, errors.New("want a YAML mapping (key: value lines) at the top")
	}
	return json.Marshal(jsonable(tree))
}

// jsonToYAML writes JSON as block-style YAML with go.yaml.in/yaml/v3, the
// one YAML library Keystep uses, keeping the order of keys: JSON is YAML,
// so it is read into a node tree and written back without JSON's flow
// style and quotes. The encoder still quotes a string that would read as
// another type (y, no, 1.0, null), so yamlToJSON gives back the same JSON.
func jsonToYAML(raw []byte) ([]byte, error) {
	var n yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	blockStyle(&n)
	var b bytes.Buffer
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func blockStyle(n *yamlv3.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// jsonable makes a decoded YAML tree encodable as JSON: mapping keys that
// are not strings (1: x) become strings.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
	}
	return v
}

// unknownFields lists the object keys in v that t has no JSON field for,
// named by their path (clients[2].colour), in file order where JSON keeps
// one and sorted otherwise.
func unknownFields(v any, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[json.RawMessage]() || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil // decoded by its own rules, unknown fields included
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		fields := map[string]reflect.Type{}
		for f := range jsonFields(t) {
			fields[f.name] = f.typ
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			ft, known := fields[k]
			if !known {
				where := ""
				if path != "" {
					where = path + ": "
				}
				errs = append(errs, fmt.Errorf("%sunknown field %q", where, k))
				continue
			}
			errs = append(errs, unknownFields(obj[k], ft, join(path, k))...)
		}
	case reflect.Slice:
		list, _ := v.([]any)
		for i, item := range list {
			errs = append(errs, unknownFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		obj, _ := v.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			errs = append(errs, unknownFields(obj[k], t.Elem(), join(path, k))...)
		}
	}
	return errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields yields t's fields by JSON name, embedded structs flattened.
func jsonFields(t reflect.Type) func(func(jsonField) bool) {
	return func(yield func(jsonField) bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if f.Anonymous && name == "" {
				for sub := range jsonFields(f.Type) {
					if !yield(sub) {
						return
					}
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !yield(jsonField{name, f.Type}) {
				return
			}
		}
	}
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
			err = fmt.Errorf("at most %s", shortDuration(limit))
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

// applyDetails builds the authorization details registry from the file,
// its min_acr values checked against the file's levels, every problem
// reported. With the levels in error it checks the rest and leaves the
// acr names to that error.
func applyDetails(s *settings, dc *details.Config, policyOK bool) []error {
	var c details.Config
	if dc != nil {
		c = *dc
	}
	known := func(acr string) bool {
		_, _, ok := s.policy.Lookup(acr)
		return ok || !policyOK
	}
	r, err := details.New(c, known)
	if err != nil {
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for i, e := range errs {
			errs[i] = fmt.Errorf("authorization_details_types: %w", e)
		}
		return errs
	}
	s.details = r
	return nil
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

// applyRisk overlays rc on the default risk settings.
func applyRisk(s *settings, rc *riskConfig, policyOK bool) []error {
	var errs []error
	rules := &s.risk.Rules
	for name, w := range rc.Weights {
		rules.Weights[name] = w
	}
	if rc.Medium != nil {
		rules.Medium = *rc.Medium
	}
	if rc.High != nil {
		rules.High = *rc.High
	}
	if rc.MaxTravelKmh != nil {
		rules.MaxTravelKmh = *rc.MaxTravelKmh
	}
	for band, act := range map[string]struct {
		in  *riskAction
		out *risk.Action
	}{"on_medium": {rc.OnMedium, &rules.OnMedium}, "on_high": {rc.OnHigh, &rules.OnHigh}} {
		if act.in == nil {
			continue
		}
		*act.out = risk.Action{Floor: act.in.Floor, Hard: act.in.Hard, Deny: act.in.Deny}
		if act.in.Floor != "" && policyOK {
			if _, _, ok := s.policy.Lookup(act.in.Floor); !ok {
				errs = append(errs, fmt.Errorf("risk.%s.floor: unknown acr %q", band, act.in.Floor))
			}
		}
	}
	if err := rules.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("risk: %w", err))
	}
	var err error
	if len(rc.DenyCIDRs) > 0 {
		if s.risk.Deny, err = risk.ParsePrefixes(rc.DenyCIDRs); err != nil {
			errs = append(errs, fmt.Errorf("risk.deny_cidrs: %w", err))
		}
	}
	if len(rc.SuspiciousCIDRs) > 0 {
		if s.risk.Suspicious, err = risk.ParsePrefixes(rc.SuspiciousCIDRs); err != nil {
			errs = append(errs, fmt.Errorf("risk.suspicious_cidrs: %w", err))
		}
	}
	if rc.LocationsCSV != "" {
		f, err := os.Open(rc.LocationsCSV)
		if err != nil {
			errs = append(errs, fmt.Errorf("risk.locations_csv: %w", err))
		} else {
			s.risk.Locations, err = risk.ParseLocations(f)
			f.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("risk.locations_csv %s: %w", rc.LocationsCSV, err))
			}
		}
	}
	s.risk.SensitiveClients = rc.SensitiveClients
	s.risk.SensitiveScopes = rc.SensitiveScopes
	return errs
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
	}
}
