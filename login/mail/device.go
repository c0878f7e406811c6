package mail

import "strings"

// Unrecognised is what Device says of a User-Agent it does not know.
const Unrecognised = "An unrecognised browser"

// Device sums up a User-Agent header in plain words ("Firefox on
// Windows"), from a fixed list of browser and system names only: a
// User-Agent it does not know becomes Unrecognised, never its own text,
// since whoever signs in chooses it and it lands in Keystep's own mail
// (a line like "re-verify at https://evil.example").
func Device(ua string) string {
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
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "A browser on " + os
	}
	if ua == "" {
		return ""
	}
	return Unrecognised
}
