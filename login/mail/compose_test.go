package mail

import (
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/i18n"
)

// english is the English printer, the language of the tests that are
// not about languages.
func english(t *testing.T) *i18n.Printer {
	t.Helper()
	c, err := i18n.Load(i18n.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Printer(i18n.English)
}

// TestComposeEveryKindInEveryLanguage renders every message in every
// language and in the en-XA pseudo-locale, where each translated text
// is bracketed: a line of the text part, or the subject, with letters
// outside brackets (after the data the message carries is taken out)
// is a text the catalogs do not translate. Each real language's
// message differs from the English one, and says its own words.
func TestComposeEveryKindInEveryLanguage(t *testing.T) {
	cats, err := i18n.Load(i18n.Options{Pseudo: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 14, 7, 0, 0, time.UTC)
	d := Data{Product: "Acme", Username: "ada", When: t0, IP: "203.0.113.7", Device: "Safari on iPhone", Factor: "[x]",
		Address: "new@example.com", Link: "https://id.example.com/x", Expires: 30 * time.Minute, Until: t0.Add(72 * time.Hour)}
	data := []string{d.Product, d.Username, d.IP, d.Device, d.Address, d.Link, "UTC"}
	want := map[string]string{"de": "Hallo ada,", "fr": "Bonjour ada,", "es": "Hola, ada:"}
	for _, k := range Kinds() {
		en, err := Compose(cats.Printer(i18n.English), k, "ada@example.com", d)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range i18n.Languages[1:] {
			m, err := Compose(cats.Printer(tag), k, "ada@example.com", d)
			if err != nil {
				t.Fatalf("%s %s: %v", k, tag, err)
			}
			if m.Subject == en.Subject || m.Text == en.Text || !strings.Contains(m.Text, want[tag.String()]) ||
				!strings.Contains(m.HTML, `lang="`+tag.String()+`"`) {
				t.Errorf("%s in %s is not in %s:\n%s\n%s", k, tag, tag, m.Subject, m.Text)
			}
		}
		m, err := Compose(cats.Printer(i18n.PseudoAccented), k, "ada@example.com", d)
		if err != nil {
			t.Fatal(err)
		}
		p := cats.Printer(i18n.PseudoAccented)
		for _, line := range append(strings.Split(m.Text, "\n"), m.Subject) {
			if left := untranslated(line, append([]string{p.Time(d.When), p.Time(d.Until)}, data...)); left != "" {
				t.Errorf("%s: untranslated %q in %q", k, left, line)
			}
		}
	}
}

// untranslated is what is left of line, the data and the bracketed
// (translated) texts taken out, if it has a letter.
func untranslated(line string, data []string) string {
	for _, d := range data {
		line = strings.ReplaceAll(line, d, "")
	}
	for {
		i := strings.IndexByte(line, '[')
		j := strings.LastIndexByte(line, ']')
		if i < 0 || j < i {
			break
		}
		line = line[:i] + line[j+1:]
	}
	if strings.ContainsFunc(line, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) {
		return strings.TrimSpace(line)
	}
	return ""
}
