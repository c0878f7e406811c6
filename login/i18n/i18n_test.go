package i18n

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
)

func load(t *testing.T, o Options) *Catalogs {
	t.Helper()
	c, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChooseOrder(t *testing.T) {
	c := load(t, Options{})
	for _, tt := range []struct {
		name string
		ch   Choice
		want language.Tag
	}{
		{"nothing: English", Choice{}, English},
		{"the browser", Choice{AcceptLanguage: "de-DE,de;q=0.9,en;q=0.5"}, German},
		{"the browser's best offered one", Choice{AcceptLanguage: "ja, es;q=0.8, de;q=0.5"}, Spanish},
		{"a regional variant", Choice{AcceptLanguage: "fr-CA"}, French},
		{"saved beats the browser", Choice{Saved: "es", AcceptLanguage: "de"}, Spanish},
		{"ui_locales beats saved and browser", Choice{UILocales: []string{"fr"}, Saved: "es", AcceptLanguage: "de"}, French},
		{"the first offered ui_locale", Choice{UILocales: []string{"ja", "de-CH", "fr"}}, German},
		{"no offered ui_locale: saved", Choice{UILocales: []string{"ja"}, Saved: "de"}, German},
		{"garbage everywhere: English", Choice{UILocales: []string{"%%%", strings.Repeat("x", 100)}, Saved: "??", AcceptLanguage: ";;;q=x"}, English},
		{"a language not offered: English", Choice{AcceptLanguage: "ja"}, English},
		{"pseudo-locales are off by default", Choice{UILocales: []string{"ar-XB"}}, English},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Choose(tt.ch); got != tt.want {
				t.Errorf("Choose(%+v) = %v, want %v", tt.ch, got, tt.want)
			}
		})
	}
}

func TestPseudoLocales(t *testing.T) {
	c := load(t, Options{Pseudo: true})
	if got := c.Choose(Choice{UILocales: []string{"ar-XB"}}); got != PseudoRTL {
		t.Fatalf("ar-XB chose %v", got)
	}
	if got := c.Choose(Choice{AcceptLanguage: "ar"}); got == PseudoRTL {
		t.Fatal("Arabic chose the pseudo-locale")
	}
	rtl, acc := c.Printer(PseudoRTL), c.Printer(PseudoAccented)
	if rtl.Dir() != "rtl" || acc.Dir() != "ltr" || c.Printer(German).Dir() != "ltr" {
		t.Errorf("dir: rtl %s, accented %s", rtl.Dir(), acc.Dir())
	}
	got := acc.T("%d days", 3)
	if !strings.HasPrefix(got, "[") || !strings.Contains(got, "3") || strings.Contains(got, "days") {
		t.Errorf("accented %%d days = %q", got)
	}
	if got := rtl.T("%s (failed)", "x"); !strings.HasPrefix(got, "\u202e") || !strings.Contains(got, "x") {
		t.Errorf("rtl = %q", got)
	}
}

func TestPluralsAndNumbers(t *testing.T) {
	c := load(t, Options{})
	en, de, fr := c.Printer(English), c.Printer(German), c.Printer(French)
	for _, tt := range []struct{ got, want string }{
		{en.T("%d days", 1), "1 day"},
		{en.T("%d days", 2), "2 days"},
		{de.T("%d days", 1), "1 Tag"},
		{de.T("%d days", 2), "2 Tage"},
		{fr.T("%d days", 1), "1 jour"},
		{fr.T("%d days", 0), "0 jour"}, // French: 0 takes the singular
		{en.Number(1234567), "1,234,567"},
		{de.Number(1234567), "1.234.567"},
		{en.T("no such key %s", "x"), "no such key x"},
		{de.T("100% sure"), "100% sure"}, // a text without args is never a format
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestTimePerLanguage(t *testing.T) {
	c := load(t, Options{})
	at := time.Date(2026, 12, 7, 14, 5, 0, 0, time.FixedZone("CET", 3600))
	for tag, want := range map[language.Tag]string{
		English: "7 Dec 2026 13:05 UTC",
		German:  "07.12.2026, 13:05 UTC",
		French:  "07/12/2026 13:05 UTC",
		Spanish: "07/12/2026, 13:05 UTC",
	} {
		if got := c.Printer(tag).Time(at); got != want {
			t.Errorf("%v: %q, want %q", tag, got, want)
		}
	}
	if got := c.Printer(German).Time(time.Time{}); got != "nie" {
		t.Errorf("zero time in German = %q", got)
	}
}

// A Text is said where it is shown, in the printer's language, with a
// Text among its arguments said in the same language; in English (its
// String, for logs and the API) it reads as its key filled.
func TestTextIsSaidWhereItIsShown(t *testing.T) {
	c := load(t, Options{})
	inner := Msg("%d days", 3)
	outer := Msg("%s (failed)", inner)
	if got := outer.In(c.Printer(German)); got != "3 Tage (fehlgeschlagen)" {
		t.Errorf("German: %q", got)
	}
	if got := outer.String(); got != "3 days (failed)" {
		t.Errorf("English: %q", got)
	}
	if got := c.Printer(French).T("%s (failed)", inner); got != "3 jours (échec)" {
		t.Errorf("a Text argument of T: %q", got)
	}
}
