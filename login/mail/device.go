package mail

import (
	"strings"

	"github.com/keystep/keystep/login/i18n"
)

// Unrecognised is what Device says of a User-Agent it does not know (a
// message key, translated by Device).
var Unrecognised = i18n.N("An unrecognised browser")

// Device sums up a User-Agent header in plain words in p's language
// ("Firefox on Windows"), from a fixed list of browser and system names only: a
// User-Agent it does not know becomes Unrecognised, never its own text,
// since whoever signs in chooses it and it lands in Keystep's own mail
// (a line like "re-verify at https://evil.example").
func Device(p *i18n.Printer, ua string) string {
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	os := ""
	for _, o := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"CrOS", "ChromeOS"},
		{"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Macintosh", "macOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			os = o.name
			break
		}
	}
	switch {
	case browser != "" && os != "":
		return p.T("%s on %s", browser, os)
	case browser != "":
		return browser
	case os != "":
		return p.T("A browser on %s", os)
	}
	if ua == "" {
		return ""
	}
	return p.T(Unrecognised)
}
