package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/keystep/keystep/idp/stepup"
)

// fileConfig is the optional --config file (JSON). Unknown fields are errors,
// so a typo is caught at start rather than silently ignored.
type fileConfig struct {
	ProductName    string            `json:"product_name"`
	Levels         []levelConfig     `json:"levels"`
	ScopeMinACR    map[string]string `json:"scope_min_acr"`
	TrustedProxies []string          `json:"trusted_proxies"`
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
}

// loadConfig reads and validates path ("" = defaults), reporting every
// problem at once.
func loadConfig(path string) (settings, error) {
	s := settings{policy: stepup.DefaultPolicy()}
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
		return s, fmt.Errorf("config %s: %w", path, err)
	}
	var errs []error
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
			for m, v := range lc.PerFactor {
				d, err := time.ParseDuration(v)
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
		} else {
			s.policy = p
		}
	}
	for scope, acr := range fc.ScopeMinACR {
		if _, _, ok := s.policy.Lookup(acr); !ok {
			errs = append(errs, fmt.Errorf("scope_min_acr.%s: unknown acr %q", scope, acr))
		}
	}
	s.scopeMinACR = fc.ScopeMinACR
	for _, p := range fc.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies: %w", err))
			continue
		}
		s.trustedProxies = append(s.trustedProxies, prefix)
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("config %s:\n%w", path, err)
	}
	return s, nil
}
