package details

import (
	"slices"
	"time"
)

// Demand is what one object asks of the authentication that approves it.
type Demand struct {
	// Type is the object's type.
	Type string
	// MinACR is the lowest acr ("" for none).
	MinACR string
	// MaxAge is how long ago the factors may have been used (0: no limit).
	MaxAge time.Duration
	// Reason says why, in plain words: "Pay an invoice above EUR 1,000.00".
	Reason string
}

// Demands are the demands of every rule that is in force for d: each
// unconditional rule, and each conditional one whose condition holds, once
// per distinct demand. Objects of types not registered have none ([Check]
// refuses them first). The caller merges them with the acr policy, which
// knows the order of the levels; see [Strictest].
func (r *Registry) Demands(d Details) []Demand {
	var out []Demand
	for _, o := range d {
		t := r.lookup(o.Type())
		if t == nil {
			continue
		}
		for _, rule := range t.Rules {
			holds, reason := t.holds(o, rule)
			if !holds {
				continue
			}
			if rule.Reason != "" {
				reason = rule.Reason
			}
			dm := Demand{Type: t.Name, MinACR: rule.MinACR, MaxAge: rule.MaxAge, Reason: reason}
			if !slices.Contains(out, dm) {
				out = append(out, dm)
			}
		}
	}
	return out
}

// holds says whether rule is in force for o, and why. A condition fails
// closed: it holds unless the amount is there, a valid decimal, in the
// threshold's currency and not above the threshold.
func (t *Type) holds(o Object, rule Rule) (bool, string) {
	c := rule.If
	if c == nil {
		return true, t.Title
	}
	threshold := English.Amount(c.Above, c.Currency)
	above := t.Title + " above " + threshold
	var currency string
	if f := t.field(c.Path); f != nil && f.Currency != "" {
		currency, _ = lookupString(o, f.Currency)
		if currency != c.Currency {
			return true, t.Title + " in a currency other than " + c.Currency + " (the " + threshold + " threshold cannot be compared)"
		}
	}
	v, _ := lookup(o, c.Path)
	s, ok := amountString(v)
	if !ok {
		return true, above
	}
	amount, _ := parseDecimal(s)
	limit, ok := parseDecimal(c.Above)
	if !ok || amount.Cmp(limit) > 0 {
		return true, above
	}
	return false, ""
}

func (t *Type) field(path string) *Field {
	for i := range t.Fields {
		if t.Fields[i].Path == path {
			return &t.Fields[i]
		}
	}
	return nil
}

func lookupString(o Object, path string) (string, bool) {
	v, _ := lookup(o, path)
	s, ok := v.(string)
	return s, ok
}

// Strictest folds demands into one requirement: the acr with the highest
// rank and the smallest positive max_age (0 if none sets one). rank is the
// acr policy's order (higher is stronger, negative for unknown). ok is
// false when a demand names an acr rank does not know: a demand that
// cannot be ordered cannot be enforced, so the caller must refuse. With no
// demands it returns "", 0, true.
func Strictest(demands []Demand, rank func(acr string) int) (acr string, maxAge time.Duration, ok bool) {
	best := -1
	for _, d := range demands {
		if d.MinACR != "" {
			r := rank(d.MinACR)
			if r < 0 {
				return "", 0, false
			}
			if r > best {
				best, acr = r, d.MinACR
			}
		}
		if d.MaxAge > 0 && (maxAge == 0 || d.MaxAge < maxAge) {
			maxAge = d.MaxAge
		}
	}
	return acr, maxAge, true
}
