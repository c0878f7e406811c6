package demo

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/resource"
	"github.com/keystep/keystep/idp/stepup"
)

// levelWords says in plain words how someone signed in, from the acr.
func levelWords(acr string) string {
	switch acr {
	case acrSFA:
		return "one step, such as your password"
	case acrMFA, stepup.PAPEMultiFactor:
		return "two steps, such as your password and a code"
	case acrPHR, stepup.PAPEPhishing:
		return "two steps, one of them a passkey or security key"
	case acrPHRH:
		return "two steps, one of them a security key or a passkey that never leaves its device"
	case "":
		return "a way Keystep didn't name"
	}
	return "a level Acme Payroll doesn't know (" + acr + ")"
}

// needWords says what an RFC 9470 challenge asks for. The acr_values are in
// the API's order of preference; the first is the least it accepts here.
func needWords(ch resource.ChallengeInfo) string {
	var s string
	switch {
	case len(ch.ACRValues) == 0:
		s = "a fresh sign-in"
	case slices.Contains(ch.ACRValues, acrMFA) || slices.Contains(ch.ACRValues, stepup.PAPEMultiFactor):
		s = "two steps, such as your password and a code from your authenticator app"
	case slices.Contains(ch.ACRValues, acrPHR) || slices.Contains(ch.ACRValues, stepup.PAPEPhishing):
		s = "a passkey or security key"
	case slices.Contains(ch.ACRValues, acrPHRH):
		s = "a security key, or a passkey that never leaves its device"
	default:
		s = "a stronger sign-in (" + strings.Join(ch.ACRValues, " ") + ")"
	}
	if ch.MaxAge != nil {
		if *ch.MaxAge == 0 {
			s += ", right now"
		} else {
			s += ", used in the last " + durationWords(time.Duration(*ch.MaxAge)*time.Second)
		}
	}
	return s
}

// missingFactor names what to add at Keystep so a challenge can be met.
func missingFactor(ch resource.ChallengeInfo) string {
	if slices.Contains(ch.ACRValues, acrMFA) || slices.Contains(ch.ACRValues, stepup.PAPEMultiFactor) {
		return "an authenticator app (or a passkey)"
	}
	if len(ch.ACRValues) > 0 {
		return "a passkey or security key"
	}
	return ""
}

// amrWords lists the methods of an amr claim (RFC 8176 §2) in plain words.
// Keystep's passkeys come as pop plus hwk or swk, and user when the device
// checked a fingerprint, face or PIN; they read as one method.
func amrWords(amr []string) string {
	key := slices.ContainsFunc(amr, func(m string) bool { return m == "hwk" || m == "swk" || m == "pop" })
	var out []string
	for _, m := range amr {
		var w string
		switch m {
		case "pwd":
			w = "password"
		case "otp":
			w = "one-time code"
		case "hwk", "swk", "pop":
			w = "passkey or security key"
			if slices.Contains(amr, "user") {
				w += ", unlocked with your fingerprint, face or PIN"
			}
		case "user":
			if !key {
				w = "fingerprint, face or PIN"
			}
		case "mfa":
			// A summary of the others, not a method of its own.
		case "sms":
			w = "text message"
		default:
			w = m
		}
		if w != "" && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	switch len(out) {
	case 0:
		return "not stated"
	case 1:
		return out[0]
	}
	return strings.Join(out[:len(out)-1], ", ") + " and " + out[len(out)-1]
}

// whenWords says when the person last proved it was them.
func whenWords(t, now time.Time) string {
	if t.IsZero() {
		return "Keystep didn't say"
	}
	lt := t.Local()
	day := lt.Format("2 January")
	if y, m, d := now.Local().Date(); lt.Year() == y && lt.Month() == m && lt.Day() == d {
		day = "today"
	}
	ago := now.Sub(t)
	if ago < time.Minute {
		return fmt.Sprintf("at %s %s, just now", lt.Format("15:04"), day)
	}
	return fmt.Sprintf("at %s %s, %s ago", lt.Format("15:04"), day, durationWords(ago))
}

func durationWords(d time.Duration) string {
	switch {
	case d < time.Minute:
		return plural(int(d/time.Second), "second")
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
