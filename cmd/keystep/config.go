package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
)

// fileConfig is the optional --config file (JSON). Unknown fields are errors,
// so a typo is caught at start rather than silently ignored.
type fileConfig struct {
	ProductName    string            `json:"product_name"`
	Levels         []levelConfig     `json:"levels"`
	ScopeMinACR    map[string]string `json:"scope_min_acr"`
	TrustedProxies []string          `json:"trusted_proxies"`
	Risk           *riskConfig       `json:"risk"`
}

// riskConfig overrides the risk engine's defaults (DESIGN §3.4). Omitted
// fields keep their defaults.
type riskConfig struct {
	Weights          map[string]int `json:"weights"`
	Medium           *int           `json:"medium"`
	High             *int           `json:"high"`
	OnMedium         *riskAction    `json:"on_medium"`
	OnHigh           *riskAction    `json:"on_high"`
	DenyCIDRs        []string       `json:"deny_cidrs"`
	SuspiciousCIDRs  []string       `json:"suspicious_cidrs"`
	LocationsCSV     string         `json:"locations_csv"`
	SensitiveClients []string       `json:"sensitive_clients"`
	SensitiveScopes  []string       `json:"sensitive_scopes"`
	MaxTravelKmh     *float64       `json:"max_travel_kmh"`
}

type riskAction struct {
	Floor string `json:"floor"`
	Hard  bool   `json:"hard"`
	Deny  bool   `json:"deny"`
}

type levelConfig struct {
	ACR       string            `json:"acr"`
	Aliases   []string          `json:"aliases"`
	Requires  string            `json:"requires"`  // any | mfa | phr | phrh
	Freshness string            `json:"freshness"` // Go duration, default 12h
	PerFactor map[string]string `json:"per_factor_freshness"`
}

// settings is the validated result.
type settings struct {
	productName    string
	policy         *stepup.Policy
	scopeMinACR    map[string]string
	trustedProxies []netip.Prefix
	risk           login.RiskConfig
}

// loadConfig reads and validates path ("" = defaults), reporting every
// problem at once.
func loadConfig(path string) (settings, error) {
	s := settings{policy: stepup.DefaultPolicy(), risk: login.DefaultRiskConfig()}
	if path == "" {
		return s, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("config: %w", err)
	}
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file; want a JSON object")
		}
		return s, fmt.Errorf("config %s: %w", path, err)
	}
	if dec.More() {
		return s, fmt.Errorf("config %s: unexpected data after the JSON object", path)
	}
	var errs []error
	policyOK := true
	s.productName = fc.ProductName
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
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("config %s:\n%w", path, err)
	}
	return s, nil
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
