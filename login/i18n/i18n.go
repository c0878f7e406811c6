// Package i18n holds the hosted UI's message catalogs and chooses the
// language a page speaks. Messages are keyed by their English text, with
// fmt verbs for what varies ("Signed in as %s"); English needs an entry
// only where its plural forms differ. A translation is a string, or an
// object of CLDR plural forms ("one", "other", …) chosen by the first
// argument. Every key the UI uses has a translation in every language
// (a test in package login fails otherwise).
package i18n

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

//go:embed locales
var locales embed.FS

// The languages the UI is translated into; English is the source.
var (
	English = language.English
	German  = language.German
	French  = language.French
	Spanish = language.Spanish
	// Languages lists them, English first (the fallback).
	Languages = []language.Tag{English, German, French, Spanish}
)

// The pseudo-locales (off unless asked for): en-XA lengthens and accents
// every message, so an untranslated or clipped text shows; ar-XB writes
// every message right to left, so a layout that assumes left to right
// shows. Names follow Android's.
var (
	PseudoAccented = language.MustParse("en-XA")
	PseudoRTL      = language.MustParse("ar-XB")
)

// Entry is one message's translation: Text, or plural forms by CLDR
// category ("zero", "one", "two", "few", "many", "other") or exact
// value ("=0").
type Entry struct {
	Text   string
	Plural map[string]string
}

// UnmarshalJSON reads a string or an object of plural forms.
func (e *Entry) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &e.Text)
	}
	return json.Unmarshal(b, &e.Plural)
}

// Catalogs is every language's messages.
type Catalogs struct {
	// Messages: language (its base, "de") → key → entry.
	Messages map[string]map[string]Entry
	tags     []language.Tag
	matcher  language.Matcher
	printers map[language.Tag]*Printer
}

// Options are the catalog's choices.
type Options struct {
	// Pseudo adds the pseudo-locales, for testing layouts (--pseudo-locales).
	Pseudo bool
}

// Load reads the embedded catalogs: locales/<lang>/*.json, each file an
// object of key → translation; a language's files are merged and a key
// in two of them is an error.
func Load(o Options) (*Catalogs, error) {
	c := &Catalogs{Messages: map[string]map[string]Entry{}, tags: slices.Clone(Languages)}
	var errs []error
	for _, tag := range Languages {
		lang := tag.String()
		msgs := map[string]Entry{}
		files, err := fs.Glob(locales, path.Join("locales", lang, "*.json"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := locales.ReadFile(f)
			if err != nil {
				return nil, err
			}
			var m map[string]Entry
			if err := json.Unmarshal(b, &m); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f, err))
				continue
			}
			for k, e := range m {
				if _, dup := msgs[k]; dup {
					errs = append(errs, fmt.Errorf("%s: %q is in another file of %s too", f, k, lang))
				}
				msgs[k] = e
			}
		}
		c.Messages[lang] = msgs
	}
	if o.Pseudo {
		keys := c.Keys()
		c.Messages[PseudoAccented.String()] = pseudo(c, keys, accent)
		c.Messages[PseudoRTL.String()] = pseudo(c, keys, rightToLeft)
		c.tags = append(c.tags, PseudoAccented, PseudoRTL)
	}
	// Pseudo-locales are chosen only by their exact names (match), never
	// as the closest to a real language: Arabic is not ar-XB.
	c.matcher = language.NewMatcher(Languages)
	cat := catalog.NewBuilder(catalog.Fallback(English))
	for _, tag := range c.tags {
		for k, e := range c.Messages[tag.String()] {
			if err := cat.Set(tag, k, e.message()); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", tag, k, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.printers = map[language.Tag]*Printer{}
	for _, tag := range c.tags {
		c.printers[tag] = &Printer{tag: tag, p: message.NewPrinter(tag, message.Catalog(cat)), msgs: c.Messages[tag.String()]}
	}
	return c, nil
}

// pluralOrder is the order plural.Selectf wants the CLDR categories in:
// exact values first, "other" last.
var pluralOrder = []string{"zero", "one", "two", "few", "many", "other"}

func (e Entry) message() catalog.Message {
	if e.Plural == nil {
		return catalog.String(e.Text)
	}
	var cases []any
	for _, k := range slices.Sorted(maps.Keys(e.Plural)) {
		if strings.HasPrefix(k, "=") {
			cases = append(cases, k, e.Plural[k])
		}
	}
	for _, k := range pluralOrder {
		if v, ok := e.Plural[k]; ok {
			cases = append(cases, pluralCase(k), v)
		}
	}
	return plural.Selectf(1, "%d", cases...)
}

func pluralCase(k string) any {
	switch k {
	case "zero":
		return plural.Zero
	case "one":
		return plural.One
	case "two":
		return plural.Two
	case "few":
		return plural.Few
	case "many":
		return plural.Many
	}
	return plural.Other
}

// Keys returns every key of every translated language, sorted.
func (c *Catalogs) Keys() []string {
	set := map[string]bool{}
	for _, tag := range Languages[1:] {
		for k := range c.Messages[tag.String()] {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Tags returns the languages offered, English first.
func (c *Catalogs) Tags() []language.Tag { return slices.Clone(c.tags) }

// Choice is what a page's language is chosen from, strongest first: the
// request's ui_locales (OIDC Core §3.1.2.1), the account's saved
// language, the browser's Accept-Language.
type Choice struct {
	UILocales      []string
	Saved          string
	AcceptLanguage string
}

// Choose returns the language for ch: the first of its sources that names
// a language offered (a regional variant counts: de-CH is German), else
// English.
func (c *Catalogs) Choose(ch Choice) language.Tag {
	for _, l := range ch.UILocales {
		if t, ok := c.match(l); ok {
			return t
		}
	}
	if t, ok := c.match(ch.Saved); ok {
		return t
	}
	if ch.AcceptLanguage != "" && len(ch.AcceptLanguage) <= 1024 {
		if tags, _, err := language.ParseAcceptLanguage(ch.AcceptLanguage); err == nil && len(tags) > 0 {
			if len(tags) > 16 {
				tags = tags[:16]
			}
			for _, t := range tags {
				if c.pseudo(t) {
					return t
				}
			}
			if _, i, conf := c.matcher.Match(tags...); conf >= language.High {
				return Languages[i]
			}
		}
	}
	return English
}

func (c *Catalogs) match(s string) (language.Tag, bool) {
	if s == "" || len(s) > 64 {
		return language.Und, false
	}
	t, err := language.Parse(s)
	if err != nil {
		return language.Und, false
	}
	if c.pseudo(t) {
		return t, true
	}
	_, i, conf := c.matcher.Match(t)
	if conf < language.High {
		return language.Und, false
	}
	return Languages[i], true
}

// pseudo reports whether t is a pseudo-locale the catalogs offer.
func (c *Catalogs) pseudo(t language.Tag) bool {
	return (t == PseudoAccented || t == PseudoRTL) && slices.Contains(c.tags, t)
}

// Printer speaks one language.
type Printer struct {
	tag  language.Tag
	p    *message.Printer
	msgs map[string]Entry
}

// Printer returns the printer of tag, one of Tags (English for another).
func (c *Catalogs) Printer(tag language.Tag) *Printer {
	if p, ok := c.printers[tag]; ok {
		return p
	}
	return c.printers[English]
}

// T returns key in the printer's language, its fmt verbs filled from
// args (numbers in the language's digits and grouping; an argument that
// is a Sayer, such as a Text, said in the same language). Without args
// it is a text, not a format: it is returned as translated, and a text
// the catalog does not know (an OAuth error's description) as it is.
func (p *Printer) T(key string, args ...any) string {
	if len(args) == 0 {
		if e, ok := p.msgs[key]; ok && e.Plural == nil {
			return e.Text
		}
		return key
	}
	said := slices.Clone(args)
	for i, a := range said {
		if s, ok := a.(Sayer); ok {
			said[i] = s.In(p)
		}
	}
	return p.p.Sprintf(key, said...)
}

// Sayer is what is said in a printer's language: a Text, or a value with
// words of its own (a wait: "3 days").
type Sayer interface{ In(p *Printer) string }

// Text is a message chosen in one place and said where it is shown: its
// key (marked with N where it is chosen) and the arguments of its fmt
// verbs.
type Text struct {
	Key  string
	Args []any
}

// Msg is the Text of key with args.
func Msg(key string, args ...any) Text { return Text{Key: key, Args: args} }

// In is t in p's language, its Sayer arguments too.
func (t Text) In(p *Printer) string { return p.T(t.Key, t.Args...) }

// String is t in English, for logs, the CLI and the API (an argument
// that is a Text says its English too).
func (t Text) String() string {
	if len(t.Args) == 0 {
		return t.Key
	}
	return fmt.Sprintf(t.Key, t.Args...)
}

// Error is t in English: a Text may be an error whose words are shown
// translated (In) where a person reads them.
func (t Text) Error() string { return t.String() }

// N marks key as a message without translating it, for a text chosen in
// one place and translated where it is shown (with T).
func N(key string) string { return key }

// Tag is the printer's language.
func (p *Printer) Tag() language.Tag { return p.tag }

// Lang is the printer's language as an HTML lang attribute.
func (p *Printer) Lang() string { return p.tag.String() }

// Dir is the direction the language is written in: "rtl" or "ltr".
func (p *Printer) Dir() string {
	switch b, _ := p.tag.Base(); b.String() {
	case "ar", "he", "fa", "ur":
		return "rtl"
	}
	return "ltr"
}

// dateLayouts are each language's date-and-time layout; times are shown
// in UTC, and say so.
var dateLayouts = map[string]string{
	"en": "2 Jan 2006 15:04 UTC",
	"de": "02.01.2006, 15:04 UTC",
	"fr": "02/01/2006 15:04 UTC",
	"es": "02/01/2006, 15:04 UTC",
}

// Time formats t for a person reading this language, in UTC; the zero
// time is "never".
func (p *Printer) Time(t time.Time) string {
	if t.IsZero() {
		return p.T("never")
	}
	b, _ := p.tag.Base()
	layout, ok := dateLayouts[b.String()]
	if !ok || p.tag == PseudoAccented || p.tag == PseudoRTL {
		layout = dateLayouts["en"]
	}
	return t.UTC().Format(layout)
}

// Number formats n with the language's grouping (1,234 · 1.234 · 1 234).
func (p *Printer) Number(n int) string { return p.p.Sprint(n) }

// ---- pseudo-locales ----

func pseudo(c *Catalogs, keys []string, f func(string) string) map[string]Entry {
	out := map[string]Entry{}
	for _, k := range keys {
		if e, ok := c.Messages["en"][k]; ok && e.Plural != nil {
			pl := map[string]string{}
			for cat, v := range e.Plural {
				pl[cat] = f(v)
			}
			out[k] = Entry{Plural: pl}
			continue
		}
		out[k] = Entry{Text: f(k)}
	}
	return out
}

var accents = map[rune]rune{'a': 'á', 'c': 'ç', 'e': 'é', 'i': 'í', 'n': 'ñ', 'o': 'ö', 'u': 'ü', 'y': 'ý',
	'A': 'Å', 'C': 'Ç', 'E': 'É', 'I': 'Î', 'N': 'Ñ', 'O': 'Ö', 'U': 'Û'}

// accent turns "Sign in" into "[Šíĝñ íñ ~~~]": accented, a third longer,
// bracketed, fmt verbs kept.
func accent(s string) string {
	var b strings.Builder
	b.WriteString("[")
	letters := 0
	eachPart(s, func(text string, verb bool) {
		if verb {
			b.WriteString(text)
			return
		}
		for _, r := range text {
			if a, ok := accents[r]; ok {
				r = a
			}
			if unicode.IsLetter(r) {
				letters++
			}
			b.WriteRune(r)
		}
	})
	b.WriteString(" " + strings.Repeat("~", (letters+2)/3) + "]")
	return b.String()
}

// rightToLeft marks s as right-to-left text (U+202E … U+202C), fmt verbs
// kept, so the page shows it mirrored as an RTL language would be.
func rightToLeft(s string) string { return "\u202e" + s + "\u202c" }

// eachPart calls f with the runs of s that are text and those that are
// fmt verbs (%s, %d, %[1]s, %%).
func eachPart(s string, f func(string, bool)) {
	for s != "" {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			f(s, false)
			return
		}
		if i > 0 {
			f(s[:i], false)
		}
		j := i + 1
		for j < len(s) && strings.IndexByte("+-# 0123456789.[]*", s[j]) >= 0 {
			j++
		}
		if j < len(s) {
			j++
		}
		f(s[i:j], true)
		s = s[j:]
	}
}
