package login

import "github.com/keystep/keystep/storage"

// eventTexts are the portal's plain-language names for audit events.
var eventTexts = map[string]string{
	"login.completed":                 "Signed in",
	"login.failed":                    "Sign-in didn't finish",
	"login.password":                  "Password entered",
	"stepup.factor":                   "Extra check",
	"factor.enrolled":                 "Added a way to sign in",
	"factor.removed":                  "Removed a way to sign in",
	"factor.recovery_code_used":       "Used a recovery code",
	"factor.recovery_codes_generated": "Made new recovery codes",
	"account.password_changed":        "Changed password",
	"session.logout":                  "Signed out",
	"session.revoked_others":          "Signed out other sessions",
	"token.refresh_reuse":             "Blocked a reused app token",
	"admin.user_created":              "Account created",
}

func eventText(e storage.AuditEvent) string {
	t, ok := eventTexts[e.Type]
	if !ok {
		t = e.Type
	}
	if e.Outcome == "failure" || e.Outcome == "denied" {
		t += " (failed)"
	}
	if e.ClientID != "" {
		t += " · " + e.ClientID
	}
	return t
}
