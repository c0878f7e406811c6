package details

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxValue is the most characters of one shown value; a longer one ends
// with "…".
const MaxValue = 200

// Item is one object as the person sees it before approving.
type Item struct {
	// Title is the type's title: "Pay an invoice".
	Title string
	// Lines are the type's fields present in the object, in the type's
	// order, then, if the object has fields the type does not show, one
	// line without a label counting them ("and 2 more details").
	Lines []Line
}

// Line is one shown field. Both are plain text: the template escapes them.
type Line struct {
	Label, Value string
}

// Formatter writes the values whose form depends on the reader's language.
// [English] is the default; the i18n work supplies one per locale.
type Formatter interface {
	// Amount formats a non-negative plain decimal ("1250", "0.5") with its
	// ISO 4217 currency code, or with none when currency is "".
	Amount(amount, currency string) string
	// Date formats a date (2006-01-02) or an RFC 3339 timestamp.
	Date(s string) string
	// More is the line counting n fields that are not shown.
	More(n int) string
}

// English is the default [Formatter]: a neutral "EUR 1,250.00", dates as
// sent.
var English Formatter = english{}

type english struct{}

// minorUnits are the ISO 4217 currencies whose minor unit is not 2 digits
// (the common ones); amounts are padded to it, never cut.
var minorUnits = map[string]int{
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}

func (english) Amount(amount, currency string) string {
	whole, frac, _ := strings.Cut(amount, ".")
	if currency != "" {
		units, ok := minorUnits[currency]
		if !ok {
			units = 2
		}
		if len(frac) < units {
			frac += strings.Repeat("0", units-len(frac))
		}
	}
	var b strings.Builder
	if currency != "" {
		b.WriteString(currency + " ")
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

func (english) Date(s string) string { return s }

func (english) More(n int) string {
	if n == 1 {
		return "and 1 more detail"
	}
	return "and " + strconv.Itoa(n) + " more details"
}

// Display is d as the person sees it, in [English]; see [Registry.DisplayWith].
func (r *Registry) Display(d Details) []Item { return r.DisplayWith(d, English) }

// DisplayWith is d as the person sees it: one [Item] per object with the
// type's title and a line per field present, values formatted by kind
// (amounts with their currency by f, accounts and IBANs in groups of four,
// lists joined with ", "), each at most [MaxValue] characters, with control
// characters turned into spaces and bidirectional-text controls into U+FFFD
// so that a creditor name cannot reorder what is shown around it. Fields
// the type does not show are counted in a last line, so nothing is hidden
// silently. An object of a type not registered (which [Registry.Check]
// refuses) is titled with its type and all its fields are counted.
func (r *Registry) DisplayWith(d Details, f Formatter) []Item {
	items := make([]Item, 0, len(d))
	for _, o := range d {
		t := r.lookup(o.Type())
		item := Item{}
		if t == nil {
			item.Title = "Unregistered type " + plain(o.Type())
		} else {
			item.Title = t.Title
			// A currency shown with its amount gets no line of its own;
			// one that cannot be (no valid amount, not a currency code)
			// does.
			currencies := map[string]bool{}
			for _, fl := range t.Fields {
				if fl.Currency == "" {
					continue
				}
				v, _ := lookup(o, fl.Path)
				c, _ := lookupString(o, fl.Currency)
				if _, ok := amountString(v); ok && isCurrency(c) {
					currencies[fl.Currency] = true
				}
			}
			for _, fl := range t.Fields {
				v, ok := lookup(o, fl.Path)
				if !ok || v == nil || currencies[fl.Path] {
					continue
				}
				item.Lines = append(item.Lines, Line{Label: fl.Label, Value: plain(show(o, fl, v, f))})
			}
			// The RFC 9396 §2.2 actions of a type that lists its actions
			// (Check has refused any other): what the person allows.
			if acts, ok := o["actions"].([]any); ok && len(t.Actions) > 0 && len(acts) > 0 {
				var names []string
				for _, a := range acts {
					if s, ok := a.(string); ok {
						names = append(names, s)
					}
				}
				item.Lines = append(item.Lines, Line{Label: "Action", Value: plain(strings.Join(names, ", "))})
			}
		}
		hidden := 0
		leaves(o, t, func(_ string, shown bool) {
			if !shown {
				hidden++
			}
		})
		if hidden > 0 {
			item.Lines = append(item.Lines, Line{Value: f.More(hidden)})
		}
		items = append(items, item)
	}
	return items
}

// show formats v, the value of field fl in o.
func show(o Object, fl Field, v any, f Formatter) string {
	if checkKind(fl.Kind, v) != "" {
		return string(canonicalValue(v)) // not what the kind expects: show it raw
	}
	switch fl.Kind {
	case KindAmount:
		s, _ := amountString(v)
		c, _ := lookupString(o, fl.Currency)
		if !isCurrency(c) {
			c = "" // and the currency has a line of its own
		}
		return f.Amount(s, c)
	case KindAccount, KindIBAN:
		return Groups(strings.ReplaceAll(v.(string), " ", ""))
	case KindDate:
		return f.Date(v.(string))
	case KindList:
		var parts []string
		for _, e := range v.([]any) {
			parts = append(parts, scalar(e))
		}
		return strings.Join(parts, ", ")
	}
	return scalar(v)
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return string(canonicalValue(v))
}

// Groups writes s in groups of four characters, as an account number is
// printed: "GB82 WEST 1234 5698 7654 32".
func Groups(s string) string {
	var b strings.Builder
	for i, r := range []rune(s) {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// plain makes a client-supplied value safe to show as one line of text:
// control characters become spaces, bidirectional controls U+FFFD (they
// could make "1,250" read as "052,1" or move a name), and it is cut at
// [MaxValue] characters.
func plain(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case isBidiControl(r):
			return utf8.RuneError
		case unicode.IsControl(r):
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > MaxValue {
		s = string([]rune(s)[:MaxValue-1]) + "…"
	}
	return s
}

func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F ||
		(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}
