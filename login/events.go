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
	"session.revoked_all":             "Signed out everywhere",
	"session.revoked_others":          "Signed out other sessions",
	"token.refresh_reuse":             "Blocked a reused app token",
	"factor.sign_count_regression":    "Blocked a passkey that may have been copied",
	"factor.locked":                   "Locked a way to sign in after 100 wrong codes",
	"factor.trusted":                  "A passkey now counts for your strongest sign-in",
	"factor.enroll_refused":           "Adding a way to sign in was refused",
	"admin.user_confirm_passkey":      "Passkey confirmed by an administrator",
	"admin.user_created":              "Account created",
	"admin.user_disable":              "Account disabled by an administrator",
	"admin.user_enable":               "Account enabled by an administrator",
	"admin.user_unlock":               "Account unlocked by an administrator",
	"admin.user_reset_factors":        "Second factors reset by an administrator",
	"admin.user_signout":              "Signed out everywhere by an administrator",
	"admin.client_created":            "Client created",
	"admin.client_updated":            "Client changed",
	"admin.client_deleted":            "Client deleted",
	"admin.client_secret_rotated":     "Client secret rotated",
	"admin.keys_rotated":              "Signing keys rotated",
	"admin.denied":                    "Admin console refused",
	"admin.audit_exported":            "Audit log exported",
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
