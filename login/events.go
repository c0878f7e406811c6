package login

import (
	"maps"
	"slices"

	"github.com/keystep/keystep/storage"
)

// eventTexts are the portal's plain-language names for audit events. The
// portal's activity lists only events with one (activityOf); events_test.go
// lists the ones left out on purpose.
var eventTexts = map[storage.EventType]string{
	storage.EventLoginCompleted:               "Signed in",
	storage.EventLoginFailed:                  "Sign-in didn't finish",
	storage.EventLoginPassword:                "Password entered",
	storage.EventStepupFactor:                 "Extra check",
	storage.EventStepUpTransaction:            "Approved a payment or change",
	storage.EventFactorEnrolled:               "Added a way to sign in",
	storage.EventFactorRemoved:                "Removed a way to sign in",
	storage.EventFactorRecoveryCodeUsed:       "Used a recovery code",
	storage.EventFactorRecoveryCodesGenerated: "Made new recovery codes",
	storage.EventAccountPasswordChanged:       "Changed password",
	storage.EventAccountEmailChangeRequested:  "Asked to use a new email address",
	storage.EventAccountEmailChanged:          "Confirmed a new email address",
	storage.EventRecoveryResetRequested:       "Asked for a link to reset the password",
	storage.EventRecoveryResetRefused:         "A password reset was refused",
	storage.EventRecoveryPasswordReset:        "Reset the password from an emailed link",
	storage.EventRecoveryRequested:            "Asked to replace lost sign-in methods",
	storage.EventRecoveryCancelled:            "Cancelled a request to replace sign-in methods",
	storage.EventRecoveryDecided:              "An administrator decided a request to replace sign-in methods",
	storage.EventRecoveryFactorsReplaced:      "Removed the old sign-in methods to set up new ones",
	storage.EventSessionLogout:                "Signed out",
	storage.EventSessionRevokedAll:            "Signed out everywhere",
	storage.EventSessionRevokedOthers:         "Signed out other sessions",
	storage.EventTokenRefreshReuse:            "Blocked a reused app token",
	storage.EventFactorSignCountRegression:    "Blocked a passkey that may have been copied",
	storage.EventFactorLocked:                 "Locked a way to sign in after 100 wrong codes",
	storage.EventFactorTrusted:                "A passkey now counts for your strongest sign-in",
	storage.EventFactorEnrollRefused:          "Adding a way to sign in was refused",
	storage.EventAdminUserConfirmPasskey:      "Passkey confirmed by an administrator",
	storage.EventAdminUserCreated:             "Account created",
	storage.EventAdminUserDisable:             "Account disabled by an administrator",
	storage.EventAdminUserEnable:              "Account enabled by an administrator",
	storage.EventAdminUserUnlock:              "Account unlocked by an administrator",
	storage.EventAdminUserResetFactors:        "Second factors reset by an administrator",
	storage.EventAdminUserSignout:             "Signed out everywhere by an administrator",
	storage.EventAdminClientCreated:           "Client created",
	storage.EventAdminClientUpdated:           "Client changed",
	storage.EventAdminClientDeleted:           "Client deleted",
	storage.EventAdminClientSecretRotated:     "Client secret rotated",
	storage.EventAdminKeysRotated:             "Signing keys rotated",
	storage.EventAdminPolicyChanged:           "Policy changed",
	storage.EventAdminDenied:                  "Admin console refused",
	storage.EventAdminAuditExported:           "Audit log exported",
	storage.EventSSFReceived:                  "A security service reported something about your account",
}

// activityTypes are the event types the portal's activity lists.
var activityTypes = slices.Sorted(maps.Keys(eventTexts))

func eventText(e storage.AuditEvent) string {
	t, ok := eventTexts[e.Type]
	if !ok {
		t = string(e.Type)
	}
	if e.Outcome == "failure" || e.Outcome == "denied" {
		t += " (failed)"
	}
	if e.ClientID != "" {
		t += " · " + e.ClientID
	}
	return t
}
