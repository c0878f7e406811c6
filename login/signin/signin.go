// Package signin gathers what a sign-in is, in the terms the pure deciders
// take: what the authorization request asks (parsed and merged once at
// /authorize into a storage.Requirement), the risk facts read from storage
// and assessed by idp/risk, and the factors the user has done and could
// complete, for idp/stepup. It decides nothing itself and only reads, so
// the hosted login (login) and the admin's explain tool (login/admin) run
// the same code, the tool with no effect.
package signin

import (
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/i18n"
)

// labels name each method to people: the factor page's other ways and the
// explain tool's summary say it the same way.
var labels = map[stepup.Method]string{
	stepup.Password: i18n.N("Enter your password"),
	stepup.TOTP:     i18n.N("Use your authenticator app"),
	stepup.Recovery: i18n.N("Use a recovery code"),
	stepup.WebAuthn: i18n.N("Use a passkey or security key"),
}

// Label is how a method is offered to a person, in English: a message
// key, translated where it is shown.
func Label(m stepup.Method) string { return labels[m] }
