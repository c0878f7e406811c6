package details

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is how a field's value is checked and shown.
type Kind string

// The field kinds.
const (
	// KindText is a string, number or boolean, shown as it is.
	KindText Kind = "text"
	// KindAmount is a non-negative decimal, as a string ("1250.00") or a
	// number (1250); no exponent, sign or leading zeros. Shown with its
	// currency (Field.Currency) by the [Formatter].
	KindAmount Kind = "amount"
	// KindCurrency is an ISO 4217 code: three upper-case letters.
	KindCurrency Kind = "currency"
	// KindAccount is an account identifier string, shown in groups of four.
	KindAccount Kind = "account"
	// KindIBAN is an IBAN in electronic form (no spaces, upper case) with a
	// valid check sum (ISO 13616), shown in groups of four.
	KindIBAN Kind = "iban"
	// KindDate is a date (2026-12-07) or an RFC 3339 timestamp.
	KindDate Kind = "date"
	// KindList is an array of strings or numbers, shown joined with ", ".
	KindList Kind = "list"
)

var kinds = []Kind{KindText, KindAmount, KindCurrency, KindAccount, KindIBAN, KindDate, KindList}

// Config is the authorization details policy as it appears in the config
// file (JSON, or YAML converted to JSON): the types this server accepts.
type Config struct {
	Types []Type `json:"types"`
}

// Type is one registered authorization details type.
type Type struct {
	// Name is the value of the objects' type field.
	Name string `json:"name"`
	// Title is what the person approves, in a few words: "Pay an invoice".
	Title string `json:"title"`
	// Fields are the fields shown to the person, in this order.
	Fields []Field `json:"fields"`
	// Required are paths of Fields that every object of this type has.
	Required []string `json:"required,omitempty"`
	// Rules say what authentication the type demands.
	Rules []Rule `json:"rules,omitempty"`
	// Actions, when set, are the only values allowed in an object's actions
	// array (RFC 9396 §2.2).
	Actions []string `json:"actions,omitempty"`
	// AllowOtherFields lets objects carry fields outside Fields; they are
	// not shown but counted ("and 2 more details"). Off, such an object is
	// refused (RFC 9396 §5: "an object of known type but containing unknown
	// fields"). The RFC 9396 §2.2 common fields (locations, actions,
	// datatypes, identifier, privileges) are always allowed.
	AllowOtherFields bool `json:"allow_other_fields,omitempty"`
}

// Field is one field of a type.
type Field struct {
	// Path is the dot path into the object: "instructedAmount.amount".
	Path string `json:"path"`
	// Label is shown before the value: "Amount".
	Label string `json:"label"`
	// Kind is how the value is checked and shown.
	Kind Kind `json:"kind"`
	// Currency, for an amount, is the path of its currency field; the
	// amount is then shown with it and the currency field not on its own.
	Currency string `json:"currency,omitempty"`
}

// Rule is an authentication demand of a type, in force when If holds (or
// always, without If).
type Rule struct {
	If *Condition `json:"if,omitempty"`
	// MinACR is the lowest acr the approval needs ("" for none).
	MinACR string `json:"min_acr,omitempty"`
	// MaxAge is how long ago the factors may have been used (0 for no
	// limit beyond the level's own). In the config file: a Go duration,
	// "5m".
	MaxAge time.Duration `json:"-"`
	// Reason is shown to the person and written to the audit log; "" for
	// one made from the type's title and the condition.
	Reason string `json:"reason,omitempty"`
}

// Condition holds when the amount at Path is above a threshold.
type Condition struct {
	// Path is an amount field of the type.
	Path string `json:"path"`
	// Above is the threshold, a decimal: "1000". Equal is not above.
	Above string `json:"above"`
	// Currency is the threshold's currency, required when the amount field
	// has one. An amount in another currency cannot be compared without
	// exchange rates, so the condition holds for it (fail closed).
	Currency string `json:"currency,omitempty"`
}

type ruleJSON struct {
	If     *Condition `json:"if,omitempty"`
	MinACR string     `json:"min_acr,omitempty"`
	MaxAge string     `json:"max_age,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// MarshalJSON writes max_age as people write it: 5m, 1h30m.
func (r Rule) MarshalJSON() ([]byte, error) {
	j := ruleJSON{If: r.If, MinACR: r.MinACR, Reason: r.Reason}
	if r.MaxAge != 0 {
		j.MaxAge = r.MaxAge.String()
		if strings.HasSuffix(j.MaxAge, "m0s") {
			j.MaxAge = strings.TrimSuffix(j.MaxAge, "0s")
		}
		if strings.HasSuffix(j.MaxAge, "h0m") {
			j.MaxAge = strings.TrimSuffix(j.MaxAge, "0m")
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads max_age as a Go duration; unknown fields are errors,
// as in the rest of the config file.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var j ruleJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*r = Rule{If: j.If, MinACR: j.MinACR, Reason: j.Reason}
	if j.MaxAge != "" {
		d, err := time.ParseDuration(j.MaxAge)
		if err != nil {
			return fmt.Errorf("max_age: %w", err)
		}
		r.MaxAge = d
	}
	return nil
}

// Validate reports every problem in c at once. known says whether an acr
// value names a configured level.
func (c Config) Validate(known func(acr string) bool) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := map[string]bool{}
	for i, t := range c.Types {
		at := fmt.Sprintf("authorization details type %d (%q)", i+1, t.Name)
		switch {
		case t.Name == "":
			add("authorization details type %d: name is empty", i+1)
		case strings.ContainsFunc(t.Name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			add("%s: name has spaces or control characters", at)
		case names[t.Name]:
			add("%s: name is used twice", at)
		}
		names[t.Name] = true
		if strings.TrimSpace(t.Title) == "" {
			add("%s: title is empty", at)
		}
		fields := map[string]Field{}
		for _, f := range t.Fields {
			if f.Path == "" || slices.Contains(strings.Split(f.Path, "."), "") {
				add("%s: field path %q is empty or has an empty segment", at, f.Path)
			}
			if _, dup := fields[f.Path]; dup {
				add("%s: field %q is listed twice", at, f.Path)
			}
			fields[f.Path] = f
			if strings.TrimSpace(f.Label) == "" {
				add("%s: field %q has no label", at, f.Path)
			}
			if !slices.Contains(kinds, f.Kind) {
				add("%s: field %q has unknown kind %q (want one of %v)", at, f.Path, f.Kind, kinds)
			}
			if f.Currency != "" && f.Kind != KindAmount {
				add("%s: field %q has a currency but is not an amount", at, f.Path)
			}
		}
		for _, f := range t.Fields {
			for _, g := range t.Fields {
				if strings.HasPrefix(g.Path, f.Path+".") {
					add("%s: field %q is inside field %q", at, g.Path, f.Path)
				}
			}
			if f.Currency != "" {
				if c, ok := fields[f.Currency]; !ok || c.Kind != KindCurrency {
					add("%s: field %q: currency %q is not a currency field of the type", at, f.Path, f.Currency)
				}
			}
		}
		for _, p := range t.Required {
			if _, ok := fields[p]; !ok {
				add("%s: required %q is not one of its fields", at, p)
			}
		}
		for j, a := range t.Actions {
			if a == "" || slices.Contains(t.Actions[:j], a) {
				add("%s: action %q is empty or listed twice", at, a)
			}
		}
		for j, r := range t.Rules {
			rat := fmt.Sprintf("%s rule %d", at, j+1)
			if r.MinACR == "" && r.MaxAge == 0 {
				add("%s: sets neither min_acr nor max_age", rat)
			}
			if r.MinACR != "" && (known == nil || !known(r.MinACR)) {
				add("%s: min_acr %q is not a configured level", rat, r.MinACR)
			}
			if r.MaxAge < 0 {
				add("%s: max_age %v is negative", rat, r.MaxAge)
			}
			if r.If == nil {
				continue
			}
			f, ok := fields[r.If.Path]
			if !ok || f.Kind != KindAmount {
				add("%s: if.path %q is not an amount field of the type", rat, r.If.Path)
			}
			if !slices.Contains(t.Required, r.If.Path) {
				// Otherwise a client could leave the amount out to dodge
				// the rule.
				add("%s: if.path %q must be required", rat, r.If.Path)
			}
			if _, ok := parseDecimal(r.If.Above); !ok {
				add("%s: if.above %q is not a decimal (digits with an optional fraction, no sign or exponent)", rat, r.If.Above)
			}
			switch {
			case r.If.Currency != "" && !isCurrency(r.If.Currency):
				add("%s: if.currency %q is not three upper-case letters", rat, r.If.Currency)
			case ok && f.Currency != "" && r.If.Currency == "":
				add("%s: if.currency is needed: %q has a currency", rat, r.If.Path)
			case ok && f.Currency == "" && r.If.Currency != "":
				add("%s: if.currency is set but %q has no currency field", rat, r.If.Path)
			case ok && f.Currency != "" && !slices.Contains(t.Required, f.Currency):
				add("%s: the currency %q must be required", rat, f.Currency)
			}
		}
	}
	return errors.Join(errs...)
}

// Registry is the validated policy. A nil *Registry knows no types.
type Registry struct {
	types map[string]*Type
	names []string
}

// New validates c (see [Config.Validate]) and builds its registry. It keeps
// its own copy of c.
func New(c Config, known func(acr string) bool) (*Registry, error) {
	if err := c.Validate(known); err != nil {
		return nil, err
	}
	r := &Registry{types: map[string]*Type{}}
	for _, t := range c.Types {
		t = t.clone()
		r.types[t.Name] = &t
		r.names = append(r.names, t.Name)
	}
	slices.Sort(r.names)
	return r, nil
}

func (t Type) clone() Type {
	t.Fields = slices.Clone(t.Fields)
	t.Required = slices.Clone(t.Required)
	t.Actions = slices.Clone(t.Actions)
	t.Rules = slices.Clone(t.Rules)
	for i, rule := range t.Rules {
		if rule.If != nil {
			c := *rule.If
			t.Rules[i].If = &c
		}
	}
	return t
}

// Types are the registered type names, sorted: discovery's
// authorization_details_types_supported.
func (r *Registry) Types() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.names)
}

// Type is a copy of the registered type name.
func (r *Registry) Type(name string) (Type, bool) {
	t := r.lookup(name)
	if t == nil {
		return Type{}, false
	}
	return t.clone(), true
}

func (r *Registry) lookup(name string) *Type {
	if r == nil {
		return nil
	}
	return r.types[name]
}

// commonFields are RFC 9396 §2.2's common data fields, allowed in every
// type.
var commonFields = []string{"type", "locations", "actions", "datatypes", "identifier", "privileges"}

// Check says whether d may be requested by a client registered for the
// types allowed (RFC 9396 §5). It refuses, with an *[Error] whose
// description names the object and the field: a type not registered here,
// a type the client is not registered for, a missing required field, a
// field whose value does not fit its kind, an action the type does not
// list, and a field outside the type's fields unless the type allows them.
func (r *Registry) Check(d Details, allowed []string) error {
	if len(d) == 0 {
		return invalid("authorization_details is empty")
	}
	for i, o := range d {
		name := o.Type()
		t := r.lookup(name)
		if t == nil {
			return invalid("authorization_details[%d]: unknown type %s", i, clip(name))
		}
		if !slices.Contains(allowed, name) {
			return invalid("authorization_details[%d]: the client is not registered for type %s", i, clip(name))
		}
		for _, p := range t.Required {
			if v, _ := lookup(o, p); v == nil {
				return invalid("authorization_details[%d] (%s): %s is required", i, t.Name, p)
			}
		}
		for _, f := range t.Fields {
			v, ok := lookup(o, f.Path)
			if !ok || v == nil {
				continue
			}
			if problem := checkKind(f.Kind, v); problem != "" {
				return invalid("authorization_details[%d] (%s): %s %s", i, t.Name, f.Path, problem)
			}
			if problem := showable(v); problem != "" {
				return invalid("authorization_details[%d] (%s): %s %s", i, t.Name, f.Path, problem)
			}
		}
		if acts, ok := o["actions"].([]any); ok && len(t.Actions) > 0 {
			for _, a := range acts {
				if s, _ := a.(string); !slices.Contains(t.Actions, s) {
					return invalid("authorization_details[%d] (%s): action %s is not allowed (allowed: %s)", i, t.Name, clip(s), strings.Join(t.Actions, ", "))
				}
			}
		}
		if !t.AllowOtherFields {
			var other string
			leaves(o, t, func(path string, shown bool) {
				if !shown && other == "" && !slices.Contains(commonFields, path) {
					other = path
				}
			})
			if other != "" {
				return invalid("authorization_details[%d] (%s): unknown field %s", i, t.Name, clip(other))
			}
		}
	}
	return nil
}

// showable is what keeps v, a value the person is shown, from being shown
// faithfully, or "": two different transactions must never look the same
// on the approval page. A string longer than the page shows (MaxValue)
// would be cut, hiding its tail; characters that show as nothing (format
// characters such as zero-width spaces, soft hyphens, word joiners and
// tags, controls, private-use and unassigned code points) hide what
// differs.
func showable(v any) string {
	switch x := v.(type) {
	case string:
		if utf8.RuneCountInString(x) > MaxValue {
			return fmt.Sprintf("is longer than the %d characters a person can be shown", MaxValue)
		}
		for _, r := range x {
			if unicode.In(r, unicode.Cf, unicode.Cc, unicode.Co) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs) {
				return fmt.Sprintf("contains a character that cannot be shown (U+%04X)", r)
			}
		}
	case []any:
		for _, e := range x {
			if p := showable(e); p != "" {
				return p
			}
		}
	case Object:
		for _, e := range x {
			if p := showable(e); p != "" {
				return p
			}
		}
	case map[string]any:
		for _, e := range x {
			if p := showable(e); p != "" {
				return p
			}
		}
	}
	return ""
}

// checkKind is what is wrong with v as a value of kind k, or "".
func checkKind(k Kind, v any) string {
	s, isString := v.(string)
	switch k {
	case KindText:
		switch v.(type) {
		case string, json.Number, bool:
			return ""
		}
		return "must be a string, number or boolean"
	case KindAmount:
		if _, ok := amountString(v); !ok {
			return "must be a decimal amount such as \"1250.00\" (no sign, exponent or leading zeros)"
		}
	case KindCurrency:
		if !isString || !isCurrency(s) {
			return "must be an ISO 4217 currency code (three upper-case letters)"
		}
	case KindAccount:
		if !isString || strings.TrimSpace(s) == "" {
			return "must be a non-empty string"
		}
	case KindIBAN:
		if !isString || !validIBAN(s) {
			return "must be an IBAN in electronic form (no spaces) with a valid check sum"
		}
	case KindDate:
		if !isString || !validDate(s) {
			return "must be a date (2006-01-02) or an RFC 3339 timestamp"
		}
	case KindList:
		a, ok := v.([]any)
		if !ok {
			return "must be an array of strings or numbers"
		}
		for _, e := range a {
			switch e.(type) {
			case string, json.Number:
			default:
				return "must be an array of strings or numbers"
			}
		}
	}
	return ""
}

// lookup is the value at the dot path p in o, and whether it is there.
func lookup(o Object, p string) (any, bool) {
	var v any = map[string]any(o)
	for seg := range strings.SplitSeq(p, ".") {
		m, ok := asMap(v)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

// leaves calls fn for every leaf of o, in key order: a value at a field
// path of t (shown), or a value that is not an object, or an empty object
// (not shown, unless a field's path). The type field is skipped.
func leaves(o Object, t *Type, fn func(path string, shown bool)) {
	var walk func(m map[string]any, prefix string)
	walk = func(m map[string]any, prefix string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := prefix + k
			if p == "type" {
				continue
			}
			if p == "actions" && t != nil && len(t.Actions) > 0 {
				fn(p, true) // shown by DisplayWith as "Action"
				continue
			}
			if t != nil && slices.ContainsFunc(t.Fields, func(f Field) bool { return f.Path == p }) {
				fn(p, true)
				continue
			}
			if sub, ok := asMap(m[k]); ok && len(sub) > 0 {
				walk(sub, p+".")
				continue
			}
			fn(p, false)
		}
	}
	walk(o, "")
}

var (
	decimalRE  = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]+)?$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	ibanRE     = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)
)

// parseDecimal reads a non-negative plain decimal: digits, an optional
// fraction, no sign, exponent or leading zeros. "1000.00" and "1000" are
// the same value.
func parseDecimal(s string) (*big.Rat, bool) {
	if len(s) > maxNumber || !decimalRE.MatchString(s) {
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

// amountString is an amount value (string or json.Number) as its decimal
// text, if it is one.
func amountString(v any) (string, bool) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = string(v)
	default:
		return "", false
	}
	_, ok := parseDecimal(s)
	return s, ok
}

func isCurrency(s string) bool { return currencyRE.MatchString(s) }

// validIBAN checks the form and the ISO 7064 mod 97-10 check sum.
func validIBAN(s string) bool {
	if !ibanRE.MatchString(s) {
		return false
	}
	rearranged := s[4:] + s[:4]
	rem := 0
	for _, c := range rearranged {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		default: // A=10 … Z=35
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	return rem == 1
}

func validDate(s string) bool {
	if _, err := time.Parse(time.DateOnly, s); err == nil {
		return true
	}
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}
