package stepup

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// DefaultWindow is the freshness window a level uses when it sets none: NIST
// SP 800-63B §4.2.3 and §4.3.3 require reauthentication at least once per 12
// hours at AAL2 and AAL3.
const DefaultWindow = 12 * time.Hour

// Default level names (DESIGN §3.2). phr and phrh are registered by OpenID
// Connect EAP ACR Values 1.0; the PAPE URIs are accepted as aliases.
const (
	ACRSingleFactor = "urn:keystep:acr:sfa"
	ACRMultiFactor  = "urn:keystep:acr:mfa"
	ACRPhishing     = "phr"
	ACRHardware     = "phrh"

	PAPEMultiFactor = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
	PAPEPhishing    = "http://schemas.openid.net/pape/policies/2007/06/phishing-resistant"
)

// Level is one assurance level.
type Level struct {
	// ACR is the canonical acr value. acr values are case-sensitive (OIDC
	// Core §2) and must not contain spaces (acr_values is space-separated).
	ACR string
	// Aliases are other values that name this level, such as PAPE URIs.
	Aliases []string
	// Requires is the rule the counted factors must meet.
	Requires Requirement
	// Freshness is the window per method: a factor older than Now − window
	// does not count for this level. A missing method uses DefaultFreshness.
	Freshness map[Method]time.Duration
	// DefaultFreshness is the window for methods not in Freshness; 0 means
	// DefaultWindow.
	DefaultFreshness time.Duration
}

// window is how old a factor of method m may be and still count for l.
func (l *Level) window(m Method) time.Duration {
	if d, ok := l.Freshness[m]; ok {
		return d
	}
	if l.DefaultFreshness > 0 {
		return l.DefaultFreshness
	}
	return DefaultWindow
}

func (l Level) clone() Level {
	l.Aliases = slices.Clone(l.Aliases)
	l.Freshness = maps.Clone(l.Freshness)
	return l
}

// Policy is an ordered, validated set of levels. It is immutable and safe for
// concurrent use. Build it with [NewPolicy] or [DefaultPolicy].
type Policy struct {
	levels []Level        // low → high, DefaultFreshness normalised
	rank   map[string]int // canonical names and aliases → index in levels
	values []string       // canonical names and aliases, level order
}

// NewPolicy validates levels, ordered low to high, and builds a policy. It
// reports every problem at once (errors.Join):
//   - there is at least one level;
//   - every acr and alias is non-empty, has no whitespace and is unique
//     across the policy (case-sensitive, OIDC Core §2);
//   - every Requires is a known Requirement, and requirements do not decrease
//     from one level to the next;
//   - every Freshness key is a known Method and every window is positive
//     (DefaultFreshness may be 0 for DefaultWindow);
//   - no window is longer than the one the level below uses for the same
//     method: a higher level never accepts an older factor. With
//     non-decreasing requirements this makes levels monotone, so a session
//     that meets a level also meets every level below it.
func NewPolicy(levels []Level) (*Policy, error) {
	var errs []error
	if len(levels) == 0 {
		return nil, errors.New("stepup: policy needs at least one level")
	}
	p := &Policy{rank: make(map[string]int)}
	add := func(i int, what, v string) {
		switch {
		case v == "":
			errs = append(errs, fmt.Errorf("stepup: level %d: empty %s", i, what))
			return
		case strings.ContainsFunc(v, isSpace):
			errs = append(errs, fmt.Errorf("stepup: level %d: %s %q contains whitespace", i, what, v))
			return
		}
		if j, dup := p.rank[v]; dup {
			errs = append(errs, fmt.Errorf("stepup: level %d: %s %q already names level %d", i, what, v, j))
			return
		}
		p.rank[v] = i
		p.values = append(p.values, v)
	}
	for i, l := range levels {
		l = l.clone()
		add(i, "acr", l.ACR)
		for _, a := range l.Aliases {
			add(i, "alias", a)
		}
		name := fmt.Sprintf("level %d (%q)", i, l.ACR)
		r := reqRank(l.Requires)
		if r < 0 {
			errs = append(errs, fmt.Errorf("stepup: %s: unknown requirement %q", name, l.Requires))
		}
		if l.DefaultFreshness < 0 {
			errs = append(errs, fmt.Errorf("stepup: %s: default freshness %s is negative", name, l.DefaultFreshness))
		}
		if l.DefaultFreshness <= 0 {
			l.DefaultFreshness = DefaultWindow
		}
		for _, m := range slices.Sorted(maps.Keys(l.Freshness)) {
			if methodIndex(m) < 0 {
				errs = append(errs, fmt.Errorf("stepup: %s: freshness for unknown method %q", name, m))
			}
			if d := l.Freshness[m]; d <= 0 {
				errs = append(errs, fmt.Errorf("stepup: %s: freshness for %s is %s, want > 0", name, m, d))
			}
		}
		if i > 0 {
			prev := &p.levels[i-1]
			if pr := reqRank(prev.Requires); r >= 0 && pr >= 0 && r < pr {
				errs = append(errs, fmt.Errorf("stepup: %s: requirement %q is weaker than %q of the level below", name, l.Requires, prev.Requires))
			}
			for _, m := range methods {
				if w, pw := l.window(m), prev.window(m); w > pw {
					errs = append(errs, fmt.Errorf("stepup: %s: freshness for %s (%s) is longer than the level below (%s)", name, m, w, pw))
				}
			}
		}
		p.levels = append(p.levels, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

// DefaultLevels returns the four levels of DESIGN §3.2, each with a 12-hour
// window for every factor. The caller may change the copy and pass it to
// [NewPolicy].
func DefaultLevels() []Level {
	return []Level{
		{ACR: ACRSingleFactor, Requires: AnyFactor, DefaultFreshness: DefaultWindow},
		{ACR: ACRMultiFactor, Aliases: []string{PAPEMultiFactor}, Requires: MultiFactor, DefaultFreshness: DefaultWindow},
		{ACR: ACRPhishing, Aliases: []string{PAPEPhishing}, Requires: PhishingResistant, DefaultFreshness: DefaultWindow},
		{ACR: ACRHardware, Requires: PhishingResistantHardware, DefaultFreshness: DefaultWindow},
	}
}

// DefaultPolicy returns the policy built from [DefaultLevels].
func DefaultPolicy() *Policy {
	p, err := NewPolicy(DefaultLevels())
	if err != nil {
		panic("stepup: default levels are invalid: " + err.Error())
	}
	return p
}

// Levels returns a copy of the levels, low to high, with DefaultFreshness
// filled in.
func (p *Policy) Levels() []Level {
	out := make([]Level, len(p.levels))
	for i, l := range p.levels {
		out[i] = l.clone()
	}
	return out
}

// Lookup finds a level by canonical name or alias (exact, case-sensitive
// match, OIDC Core §2). Rank 0 is the lowest level.
func (p *Policy) Lookup(acr string) (rank int, lvl Level, ok bool) {
	r, ok := p.rank[acr]
	if !ok {
		return -1, Level{}, false
	}
	return r, p.levels[r].clone(), true
}

// Values returns every canonical name and alias, level by level, low to high:
// the value of acr_values_supported in discovery.
func (p *Policy) Values() []string { return slices.Clone(p.values) }

// Satisfies reports whether factors meet the level named acr at now, with no
// max_age. It is false for an unknown acr.
func (p *Policy) Satisfies(acr string, factors []Factor, now time.Time) bool {
	r, ok := p.rank[acr]
	if !ok {
		return false
	}
	return meets(p.levels[r].Requires, count(&p.levels[r], latest(factors, now), now, nil).set)
}
