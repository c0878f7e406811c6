package login

import (
	"maps"
	"slices"

	"github.com/keystep/keystep/login/i18n"

	"github.com/keystep/keystep/storage"
)

// eventTexts are the portal's plain-language names for audit events. The
// portal's activity lists only events with one (activityOf); events_test.go
// lists the ones left out on purpose.
var eventTexts = map[storage.EventType]string{
	storage.EventLoginCompleted:               i18n.N("Signed in"),
	storage.EventLoginFailed:                  i18n.N("Sign-in didn't finish"),
	storage.EventLoginPassword:                i18n.N("Password entered"),
	storage.EventStepupFactor:                 i18n.N("Extra check"),
	storage.EventStepUpTransaction:            i18n.N("Approved a payment or change"),
	storage.EventFactorEnrolled:               i18n.N("Added a way to sign in"),
	storage.EventFactorRemoved:                i18n.N("Removed a way to sign in"),
	storage.EventFactorRecoveryCodeUsed:       i18n.N("Used a recovery code"),
	storage.EventFactorRecoveryCodesGenerated: i18n.N("Made new recovery codes"),
	storage.EventAccountPasswordChanged:       i18n.N("Changed password"),
	storage.EventAccountEmailChangeRequested:  i18n.N("Asked to use a new email address"),
	storage.EventAccountEmailChanged:          i18n.N("Confirmed a new email address"),
	storage.EventAccountLocaleChanged:         i18n.N("Changed the language"),
	storage.EventRecoveryResetRequested:       i18n.N("Asked for a link to reset the password"),
	storage.EventRecoveryResetRefused:         i18n.N("A password reset was refused"),
	storage.EventRecoveryPasswordReset:        i18n.N("Reset the password from an emailed link"),
	storage.EventRecoveryRequested:            i18n.N("Asked to replace lost sign-in methods"),
	storage.EventRecoveryCancelled:            i18n.N("Cancelled a request to replace sign-in methods"),
	storage.EventRecoveryDecided:              i18n.N("An administrator decided a request to replace sign-in methods"),
	storage.EventRecoveryFactorsReplaced:      i18n.N("Removed the old sign-in methods to set up new ones"),
	storage.EventSessionLogout:                i18n.N("Signed out"),
	storage.EventSessionRevokedAll:            i18n.N("Signed out everywhere"),
	storage.EventSessionRevokedOthers:         i18n.N("Signed out other sessions"),
	storage.EventTokenRefreshReuse:            i18n.N("Blocked a reused app token"),
	storage.EventFactorSignCountRegression:    i18n.N("Blocked a passkey that may have been copied"),
	storage.EventFactorLocked:                 i18n.N("Locked a way to sign in after 100 wrong codes"),
	storage.EventFactorTrusted:                i18n.N("A passkey now counts for your strongest sign-in"),
	storage.EventFactorEnrollRefused:          i18n.N("Adding a way to sign in was refused"),
	storage.EventAdminUserConfirmPasskey:      i18n.N("Passkey confirmed by an administrator"),
	storage.EventAdminUserCreated:             i18n.N("Account created"),
	storage.EventAdminUserDisable:             i18n.N("Account disabled by an administrator"),
	storage.EventAdminUserEnable:              i18n.N("Account enabled by an administrator"),
	storage.EventAdminUserUnlock:              i18n.N("Account unlocked by an administrator"),
	storage.EventAdminUserResetFactors:        i18n.N("Second factors reset by an administrator"),
	storage.EventAdminUserSignout:             i18n.N("Signed out everywhere by an administrator"),
	storage.EventAdminClientCreated:           i18n.N("Client created"),
	storage.EventAdminClientUpdated:           i18n.N("Client changed"),
	storage.EventAdminClientDeleted:           i18n.N("Client deleted"),
	storage.EventAdminClientSecretRotated:     i18n.N("Client secret rotated"),
	storage.EventAdminKeysRotated:             i18n.N("Signing keys rotated"),
	storage.EventAdminPolicyChanged:           i18n.N("Policy changed"),
	storage.EventAdminDenied:                  i18n.N("Admin console refused"),
	storage.EventAdminAuditExported:           i18n.N("Audit log exported"),
	storage.EventSSFReceived:                  i18n.N("A security service reported something about your account"),
}

// activityTypes are the event types the portal's activity lists.
var activityTypes = slices.Sorted(maps.Keys(eventTexts))

// eventText is e in p's language: what happened, whether it failed, and
// the app it happened at.
func eventText(p *i18n.Printer, e storage.AuditEvent) string {
	t := string(e.Type)
	if k, ok := eventTexts[e.Type]; ok {
		t = p.T(k)
	}
	if e.Outcome == "failure" || e.Outcome == "denied" {
		t = p.T("%s (failed)", t)
	}
	if e.ClientID != "" {
		t += " · " + e.ClientID
	}
	return t
}
