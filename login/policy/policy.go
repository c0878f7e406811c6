// Package policy is Keystep's policy as data (issue 21): the document
// admins write (levels, risk rules, scope minimums, the admin console's
// level, authorization details types, per-client policy), its checks, and
// the compiled [Snapshot] a sign-in is decided under. Versions of the
// document live in storage (storage.Policies); [Live] keeps every instance
// on the active one.
//
// One format everywhere: the --config file's policy fields, the console's
// editor, `keystep apply`, `keystep export` and the admin API all read and
// write a [Document] (JSON, or YAML through [Decode]).
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/signin"
)

// Document is the policy as admins write it. Omitted parts keep their
// defaults; unknown fields are errors ([Decode]).
type Document struct {
	Levels      []Level           `json:"levels,omitempty"`
	ScopeMinACR map[string]string `json:"scope_min_acr,omitempty"`
	Risk        *Risk             `json:"risk,omitempty"`
	Admin       *Admin            `json:"admin,omitempty"`
	// AuthorizationDetails registers the authorization_details types (RFC
	// 9396) clients may request, what the person is shown and what each
	// demands (package idp/details).
	AuthorizationDetails *details.Config `json:"authorization_details_types,omitempty"`
	// ClientPolicies is each client's own policy, by client ID.
	ClientPolicies map[string]ClientPolicy `json:"client_policies,omitempty"`
}

// Level is one assurance level (stepup.Level).
type Level struct {
	ACR       string            `json:"acr"`
	Aliases   []string          `json:"aliases,omitempty"`
	Requires  string            `json:"requires"`            // any | mfa | phr | phrh
	Freshness string            `json:"freshness,omitempty"` // Go duration, default 12h
	PerFactor map[string]string `json:"per_factor_freshness,omitempty"`
}

// Admin is the admin console's level and freshness.
type Admin struct {
	ACR    string `json:"acr,omitempty"`     // default phr
	MaxAge string `json:"max_age,omitempty"` // Go duration, default 15m
}

// Risk overrides the risk engine's defaults (DESIGN §3.4). Omitted fields
// keep their defaults.
type Risk struct {
	Weights          map[string]int `json:"weights,omitempty"`
	Medium           *int           `json:"medium,omitempty"`
	High             *int           `json:"high,omitempty"`
	OnMedium         *RiskAction    `json:"on_medium,omitempty"`
	OnHigh           *RiskAction    `json:"on_high,omitempty"`
	DenyCIDRs        []string       `json:"deny_cidrs,omitempty"`
	SuspiciousCIDRs  []string       `json:"suspicious_cidrs,omitempty"`
	LocationsCSV     string         `json:"locations_csv,omitempty"` // a file on each instance
	SensitiveClients []string       `json:"sensitive_clients,omitempty"`
	SensitiveScopes  []string       `json:"sensitive_scopes,omitempty"`
	MaxTravelKmh     *float64       `json:"max_travel_kmh,omitempty"`
}

// RiskAction is what a risk band does.
type RiskAction struct {
	Floor string `json:"floor,omitempty"`
	Hard  bool   `json:"hard,omitempty"`
	Deny  bool   `json:"deny,omitempty"`
}

// ClientPolicy is one client's own policy. Each part only adds to the
// server-wide policy: a client's scope minimum raises the floor its
// requests with that scope get, never lowers the server's.
type ClientPolicy struct {
	// ScopeMinACR maps a scope to the minimum acr this client's requests
	// with it need ("payroll:write needs phr for the payroll app only").
	ScopeMinACR map[string]string `json:"scope_min_acr,omitempty"`
	// AccessTokenLifetime and RefreshTokenLifetime shorten the server's
	// token lifetimes for this client (Go durations; "" keeps them).
	AccessTokenLifetime  string `json:"access_token_lifetime,omitempty"`
	RefreshTokenLifetime string `json:"refresh_token_lifetime,omitempty"`
	// Factors are the second factors the step-up may ask for at this
	// client ("totp", "webauthn", "recovery"); empty allows all. The
	// password is always allowed.
	Factors []string `json:"factors,omitempty"`
	// PreferredFactor is offered first when several would do.
	PreferredFactor string `json:"preferred_factor,omitempty"`
	// EnrollDuringStepUp offers "set one up now" on the step-up page when
	// the person cannot reach the level this client needs yet (DESIGN §3's
	// bootstrap rules still apply).
	EnrollDuringStepUp bool `json:"enroll_during_step_up,omitempty"`
}

// Client is a ClientPolicy compiled.
type Client struct {
	ScopeMinACR           map[string]string
	AccessTTL, RefreshTTL time.Duration // 0: the server's
	Factors               []stepup.Method
	Preferred             stepup.Method
	EnrollDuringStepUp    bool
}

// Allows reports whether the step-up may ask for m at this client.
func (c Client) Allows(m stepup.Method) bool {
	return m == stepup.Password || len(c.Factors) == 0 || slices.Contains(c.Factors, m)
}

// Snapshot is a policy ready to decide with: a Document compiled, or the
// policy the server was started with (Version 0). It is never changed.
type Snapshot struct {
	// Version is the stored version it was compiled from; 0 for the
	// server's own configuration.
	Version int64
	// Doc is the document it was compiled from (empty for Version 0
	// without one).
	Doc         Document
	Levels      *stepup.Policy
	ScopeMinACR map[string]string
	Risk        signin.RiskConfig
	// AdminACR is the level the admin console needs, AdminMaxAge how
	// recently its factors must have been done ([Complete] fills both).
	AdminACR    string
	AdminMaxAge time.Duration
	Details     *details.Registry // the registered types (none: an empty registry)
	Clients     map[string]Client
}

// Client returns clientID's own policy (the zero Client when it has none).
func (s *Snapshot) Client(clientID string) Client { return s.Clients[clientID] }

// ScopeFloors are the floors a request by clientID with scopes gets: the
// server's scope minimums and the client's own, every one that applies.
func (s *Snapshot) ScopeFloors(clientID string, scopes []string) []string {
	var out []string
	own := s.Clients[clientID].ScopeMinACR
	for _, sc := range scopes {
		for _, m := range []map[string]string{s.ScopeMinACR, own} {
			if acr, ok := m[sc]; ok && !slices.Contains(out, acr) {
				out = append(out, acr)
			}
		}
	}
	return out
}

// Options are what compiling needs besides the document.
type Options struct {
	// RiskWindow is how far back failures are counted (not part of the
	// document: it sizes the throttle tables); 0 means the default.
	RiskWindow time.Duration
	// LocationsCSV is the one risk.locations_csv path a document may
	// name: the file the server's own configuration names ("" for none).
	// A document edited in the console or sent to the API is data, and
	// must not make the server open a file of its choosing.
	LocationsCSV string
	// ReadFile reads risk.locations_csv; nil means readLocations (a
	// regular file of at most 64 MiB).
	ReadFile func(name string) ([]byte, error)
	// KnownClient reports whether a client ID is registered, for
	// client_policies; nil accepts any ID.
	KnownClient func(id string) bool
}

// Compile checks doc and builds its Snapshot, reporting every problem at
// once, each named by its field path.
func Compile(doc Document, opt Options) (*Snapshot, error) {
	s := &Snapshot{Doc: doc, Levels: stepup.DefaultPolicy(), Risk: signin.DefaultRiskConfig(), ScopeMinACR: doc.ScopeMinACR}
	if opt.RiskWindow > 0 {
		s.Risk.Window = opt.RiskWindow
	}
	var errs []error
	policyOK := true
	if len(doc.Levels) > 0 {
		var levels []stepup.Level
		for i, lc := range doc.Levels {
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
			// What names a level is checked against the configured
			// levels, not the defaults: blaming each would only add noise
			// to the levels error above.
			policyOK = false
		} else {
			s.Levels = p
		}
	}
	knownACR := func(acr string) bool {
		_, _, ok := s.Levels.Lookup(acr)
		return ok || !policyOK
	}
	for _, scope := range slices.Sorted(maps.Keys(doc.ScopeMinACR)) {
		if acr := doc.ScopeMinACR[scope]; !knownACR(acr) {
			errs = append(errs, fmt.Errorf("scope_min_acr.%s: unknown acr %q", scope, acr))
		}
	}
	if doc.Risk != nil {
		errs = append(errs, compileRisk(s, doc.Risk, knownACR, opt)...)
	}
	if a := doc.Admin; a != nil {
		if a.ACR != "" {
			if !knownACR(a.ACR) {
				errs = append(errs, fmt.Errorf("admin.acr: unknown acr %q", a.ACR))
			}
			s.AdminACR = a.ACR
		}
		if a.MaxAge != "" {
			d, err := positive(a.MaxAge)
			if err != nil {
				errs = append(errs, fmt.Errorf("admin.max_age: %w", err))
			}
			s.AdminMaxAge = d
		}
	}
	var dc details.Config
	if doc.AuthorizationDetails != nil {
		dc = *doc.AuthorizationDetails
	}
	r, err := details.New(dc, knownACR)
	for _, e := range unjoin(err) {
		errs = append(errs, fmt.Errorf("authorization_details_types: %w", e))
	}
	s.Details = r
	errs = append(errs, compileClients(s, doc.ClientPolicies, knownACR, opt)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return Complete(*s)
}

func compileClients(s *Snapshot, cps map[string]ClientPolicy, knownACR func(string) bool, opt Options) []error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(cps)) {
		cp := cps[id]
		where := "client_policies." + id
		if opt.KnownClient != nil && !opt.KnownClient(id) {
			errs = append(errs, fmt.Errorf("%s: no client %q is registered", where, id))
		}
		c := Client{ScopeMinACR: cp.ScopeMinACR, EnrollDuringStepUp: cp.EnrollDuringStepUp}
		for _, scope := range slices.Sorted(maps.Keys(cp.ScopeMinACR)) {
			if acr := cp.ScopeMinACR[scope]; !knownACR(acr) {
				errs = append(errs, fmt.Errorf("%s.scope_min_acr.%s: unknown acr %q", where, scope, acr))
			}
		}
		for field, in := range map[string]struct {
			v   string
			out *time.Duration
		}{"access_token_lifetime": {cp.AccessTokenLifetime, &c.AccessTTL}, "refresh_token_lifetime": {cp.RefreshTokenLifetime, &c.RefreshTTL}} {
			if in.v == "" {
				continue
			}
			d, err := positive(in.v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %w", where, field, err))
			}
			*in.out = d
		}
		for i, f := range cp.Factors {
			m := stepup.Method(f)
			if !secondFactor(m) {
				errs = append(errs, fmt.Errorf("%s.factors[%d]: unknown factor %q (want %s)", where, i, f, strings.Join(secondFactorNames(), ", ")))
				continue
			}
			c.Factors = append(c.Factors, m)
		}
		if p := cp.PreferredFactor; p != "" {
			switch m := stepup.Method(p); {
			case !secondFactor(m):
				errs = append(errs, fmt.Errorf("%s.preferred_factor: unknown factor %q (want %s)", where, p, strings.Join(secondFactorNames(), ", ")))
			case !c.Allows(m):
				errs = append(errs, fmt.Errorf("%s.preferred_factor: %q is not one of the client's factors", where, p))
			default:
				c.Preferred = m
			}
		}
		if s.Clients == nil {
			s.Clients = map[string]Client{}
		}
		s.Clients[id] = c
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

var secondFactors = []stepup.Method{stepup.TOTP, stepup.WebAuthn, stepup.Recovery}

func secondFactor(m stepup.Method) bool { return slices.Contains(secondFactors, m) }

func secondFactorNames() []string {
	var out []string
	for _, m := range secondFactors {
		out = append(out, string(m))
	}
	return out
}

// compileRisk overlays rc on the default risk settings.
func compileRisk(s *Snapshot, rc *Risk, knownACR func(string) bool, opt Options) []error {
	var errs []error
	rules := &s.Risk.Rules
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
	for _, band := range []struct {
		name string
		in   *RiskAction
		out  *risk.Action
	}{{"on_medium", rc.OnMedium, &rules.OnMedium}, {"on_high", rc.OnHigh, &rules.OnHigh}} {
		if band.in == nil {
			continue
		}
		*band.out = risk.Action{Floor: band.in.Floor, Hard: band.in.Hard, Deny: band.in.Deny}
		if band.in.Floor != "" && !knownACR(band.in.Floor) {
			errs = append(errs, fmt.Errorf("risk.%s.floor: unknown acr %q", band.name, band.in.Floor))
		}
	}
	if err := rules.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("risk: %w", err))
	}
	var err error
	if len(rc.DenyCIDRs) > 0 {
		if s.Risk.Deny, err = risk.ParsePrefixes(rc.DenyCIDRs); err != nil {
			errs = append(errs, fmt.Errorf("risk.deny_cidrs: %w", err))
		}
	}
	if len(rc.SuspiciousCIDRs) > 0 {
		if s.Risk.Suspicious, err = risk.ParsePrefixes(rc.SuspiciousCIDRs); err != nil {
			errs = append(errs, fmt.Errorf("risk.suspicious_cidrs: %w", err))
		}
	}
	if rc.LocationsCSV != "" && rc.LocationsCSV != opt.LocationsCSV {
		allowed := "none"
		if opt.LocationsCSV != "" {
			allowed = strconv.Quote(opt.LocationsCSV)
		}
		errs = append(errs, fmt.Errorf("risk.locations_csv: only the file the server's configuration names may be used (%s)", allowed))
	} else if rc.LocationsCSV != "" {
		read := opt.ReadFile
		if read == nil {
			read = readLocations
		}
		raw, err := read(rc.LocationsCSV)
		if err == nil {
			s.Risk.Locations, err = risk.ParseLocations(bytes.NewReader(raw))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("risk.locations_csv %s: %w", rc.LocationsCSV, err))
		}
	}
	s.Risk.SensitiveClients = rc.SensitiveClients
	s.Risk.SensitiveScopes = rc.SensitiveScopes
	return errs
}

// maxLocationsFile bounds the locations file read into memory.
const maxLocationsFile = 64 << 20

// readLocations reads a regular file of at most maxLocationsFile bytes:
// never a FIFO or a device, which could block or never end.
func readLocations(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > maxLocationsFile {
		return nil, fmt.Errorf("larger than %d MiB", maxLocationsFile>>20)
	}
	return io.ReadAll(io.LimitReader(f, maxLocationsFile+1))
}

func positive(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		err = errors.New("must be positive")
	}
	return d, err
}

// unjoin lists the errors errors.Join made err of.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Canonical is doc's stored form: JSON with sorted keys, so two equal
// documents are equal strings.
func Canonical(doc Document) string {
	raw, err := json.Marshal(doc)
	if err != nil {
		panic("policy: a Document always marshals: " + err.Error())
	}
	return string(raw)
}

// Parse reads a stored document (Canonical's JSON), strictly.
func Parse(raw string) (Document, error) {
	var doc Document
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Document{}, fmt.Errorf("policy document: %w", err)
	}
	return doc, nil
}

// DefaultAdminMaxAge is how recently an admin's factors must have been done
// when the policy does not say.
const DefaultAdminMaxAge = 15 * time.Minute

// DefaultAdminACR is the console's default level: phr when the levels have
// it, else the highest level.
func DefaultAdminACR(p *stepup.Policy) string {
	if _, _, ok := p.Lookup(stepup.ACRPhishing); ok {
		return stepup.ACRPhishing
	}
	levels := p.Levels()
	return levels[len(levels)-1].ACR
}

// Complete fills s's defaults (the admin console's level and freshness,
// the risk rules and window, an empty details registry) and checks what
// names a level, for a Snapshot made from a server's configuration rather
// than compiled from a document.
func Complete(s Snapshot) (*Snapshot, error) {
	var errs []error
	if s.Levels == nil {
		return nil, errors.New("policy: no levels")
	}
	if s.AdminACR == "" {
		s.AdminACR = DefaultAdminACR(s.Levels)
	} else if _, _, ok := s.Levels.Lookup(s.AdminACR); !ok {
		errs = append(errs, fmt.Errorf("admin console: acr %q is not a configured level", s.AdminACR))
	}
	if s.AdminMaxAge <= 0 {
		s.AdminMaxAge = DefaultAdminMaxAge
	}
	def := signin.DefaultRiskConfig()
	if s.Risk.Rules.Weights == nil {
		s.Risk.Rules = def.Rules
	}
	if s.Risk.Window <= 0 {
		s.Risk.Window = def.Window
	}
	if err := s.Risk.Rules.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("risk rules: %w", err))
	}
	for scope, acr := range s.ScopeMinACR {
		if _, _, ok := s.Levels.Lookup(acr); !ok {
			errs = append(errs, fmt.Errorf("scope %q: unknown minimum acr %q", scope, acr))
		}
	}
	if s.Details == nil {
		s.Details, _ = details.New(details.Config{}, nil)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &s, nil
}

// LocationsOf is the risk.locations_csv path d names ("" for none): for
// Options.LocationsCSV where d is the server's own configuration.
func LocationsOf(d Document) string {
	if d.Risk == nil {
		return ""
	}
	return d.Risk.LocationsCSV
}
