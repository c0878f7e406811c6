package storage

import "slices"

// EventType names what an audit row records. The strings are stored in each
// row and covered by the hash chain (AuditKey.Hash), and exported logs and
// the operator's own tooling match on them: a constant's value never
// changes once released; a new meaning gets a new name.
type EventType string

// Sign-in: the hosted login pages (login).
const (
	// EventLoginPassword: a password was checked at sign-in; Outcome says
	// whether it was right.
	EventLoginPassword EventType = "login.password"
	// EventLoginThrottled: a sign-in was refused by a throttle (address,
	// credential stuffing or the account's failed-attempt limit).
	EventLoginThrottled EventType = "login.throttled"
	// EventLoginCompleted: an authorization request was completed and its
	// code may be minted; Details carry the requested and achieved acr,
	// and "replay", the decision's input (login/signin Replay), which the
	// policy impact preview decides again.
	EventLoginCompleted EventType = "login.completed"
	// EventLoginFailed: an authorization request ended with an OAuth error
	// sent back to the client (Reason is the error code). Once a session
	// was decided on, Details carry "replay", the last decision's input.
	EventLoginFailed EventType = "login.failed"
)

// Step-up: asking for and checking a second factor (login).
const (
	// EventStepupRequested: the dispatcher asked the user for a stronger
	// factor; Details name the target level and the reasons, and carry
	// "replay", the decision's input.
	EventStepupRequested EventType = "stepup.requested"
	// EventStepupFactor: a second factor (code, recovery code or WebAuthn
	// assertion) was checked; Outcome says whether it counted.
	EventStepupFactor EventType = "stepup.factor"
	// EventStepupThrottled: a second-factor attempt was refused by its
	// throttle before being checked.
	EventStepupThrottled EventType = "stepup.throttled"
	// EventStepUpTransaction: a factor approved (Outcome "success") or failed
	// to approve ("denied") an authorization request's authorization details
	// (RFC 9396). Details: "auth_request", "authorization_details" (the
	// canonical JSON), "details_hash" (base64url SHA-256 of it), "method",
	// "committed" ("true" when the factor signed the details: a WebAuthn
	// assertion over idp/details Challenge), "acr" (reached, "" if not yet);
	// for a WebAuthn approval also "nonce", "factor_id", "credential_id",
	// "client_data_json", "authenticator_data", "signature" (base64url) and
	// "user_verification" (what was asked), so that `keystep audit verify
	// --transaction` can check the signature later.
	EventStepUpTransaction EventType = "stepup.transaction"
)

// Factors: enrolment and life of second factors (login, the account portal).
const (
	// EventFactorEnrolled: the user added an authenticator app or a passkey.
	EventFactorEnrolled EventType = "factor.enrolled"
	// EventFactorEnrollRefused: adding a first second factor was refused
	// because the sign-in did not look like the user's usual place.
	EventFactorEnrollRefused EventType = "factor.enroll_refused"
	// EventFactorRemoved: the user removed a second factor.
	EventFactorRemoved EventType = "factor.removed"
	// EventFactorRecoveryCodesGenerated: the user made a new set of recovery
	// codes (the old set stops working).
	EventFactorRecoveryCodesGenerated EventType = "factor.recovery_codes_generated"
	// EventFactorRecoveryCodeUsed: a recovery code was spent at step-up.
	EventFactorRecoveryCodeUsed EventType = "factor.recovery_code_used"
	// EventFactorSignCountRegression: a WebAuthn assertion's signature
	// counter went backwards (a possibly cloned credential); it was refused
	// and the credential flagged.
	EventFactorSignCountRegression EventType = "factor.sign_count_regression"
	// EventFactorLocked: a factor was locked after too many wrong codes in a
	// row.
	EventFactorLocked EventType = "factor.locked"
	// EventFactorTrusted: a passkey started to count as phishing resistant
	// (DESIGN §3.3).
	EventFactorTrusted EventType = "factor.trusted"
)

// Account and sessions.
const (
	// EventAccountPasswordChanged: the user changed their password in the
	// portal.
	EventAccountPasswordChanged EventType = "account.password_changed"
	// EventAccountEmailChangeRequested: the user asked to use a new email
	// address; a single-use link went to it. Details carry "email".
	EventAccountEmailChangeRequested EventType = "account.email_change_requested"
	// EventAccountEmailChanged: the user opened that link, signed in, and
	// the address became the account's, verified. Details carry "email"
	// and "previous".
	EventAccountEmailChanged EventType = "account.email_changed"
	// EventAccountLocaleChanged: the user chose the language of their
	// pages and email in the portal (Details: locale, previous; "" is
	// Automatic, the browser's language).
	EventAccountLocaleChanged EventType = "account.locale_changed"
	// EventRecoveryResetRequested: someone asked for a "forgot password"
	// link for the account; it went to the account's verified address.
	EventRecoveryResetRequested EventType = "recovery.reset_requested"
	// EventRecoveryResetRefused: a reset link was refused (opened in
	// another browser, used, expired) or a reset request was throttled.
	// Reason says which.
	EventRecoveryResetRefused EventType = "recovery.reset_refused"
	// EventRecoveryPasswordReset: the password was reset from a link,
	// after the account's second factor when it has one; every other
	// session and token was ended. Details carry "factor" ("" for none).
	EventRecoveryPasswordReset EventType = "recovery.password_reset"
	// EventRecoveryRequested: the person, after the password, asked to
	// replace lost second factors; Details carry "request" and
	// "eligible_at" (the end of the cooling-off).
	EventRecoveryRequested EventType = "recovery.requested"
	// EventRecoveryCancelled: the request was cancelled from the link in
	// its notice, or because its owner completed a sign-in with a second
	// factor after filing it (Reason says so). Details carry "request".
	EventRecoveryCancelled EventType = "recovery.cancelled"
	// EventRecoveryDecided: an admin approved (Outcome "approved") or
	// denied (Outcome "denied") a request early, with a reason.
	EventRecoveryDecided EventType = "recovery.decided"
	// EventRecoveryFactorsReplaced: the person used an eligible request:
	// every old second factor and recovery code was removed, sessions
	// ended; new factors may be set up. Details carry "request" and
	// "removed".
	EventRecoveryFactorsReplaced EventType = "recovery.factors_replaced"
	// EventSessionLogout: the user signed out (the portal, or RP-initiated
	// logout at the end-session endpoint).
	EventSessionLogout EventType = "session.logout"
	// EventSessionEnded: the provider ended a browser session: a risk rule
	// refused it (Reason names the signals), the person chose "Use another
	// account", or another sign-in replaced it in the same browser (another
	// person's, or the same person's from another network and browser);
	// Reason says which.
	EventSessionEnded EventType = "session.ended"
	// EventSessionRevokedAll: every session of a user was ended and their
	// apps' tokens revoked (an admin's sign-out, disabling, a factor reset).
	EventSessionRevokedAll EventType = "session.revoked_all"
	// EventSessionRevokedOthers: every session but the current one was ended
	// and the apps' tokens revoked (the user's own choice, a password change).
	EventSessionRevokedOthers EventType = "session.revoked_others"
)

// Outbox: notifications owed to other parties (back-channel logouts). A
// delivery is not audited one by one (a sign-out would write a row per
// app); what needs a person's attention is: a message given up, and an
// admin sending it again.
const (
	// EventOutboxGaveUp: a notification could not be delivered within the
	// delivery bound and was given up; Details carry its kind, target and
	// attempts, Reason the last error.
	EventOutboxGaveUp EventType = "outbox.gave_up"
	// EventOutboxRequeued: an admin queued a given-up notification again.
	EventOutboxRequeued EventType = "outbox.requeued"
)

// Shared Signals (OpenID SSF 1.0): streams Keystep transmits to, and the
// Security Event Tokens it receives from registered transmitters.
const (
	// EventSSFStream: a client created, changed or deleted its stream, or
	// asked for a verification event; Details carry "op" and the stream.
	EventSSFStream EventType = "ssf.stream"
	// EventSSFReceived: a verified SET was received; Details carry its
	// issuer, jti and event type, and "action", what Keystep did.
	EventSSFReceived EventType = "ssf.received"
	// EventSSFRefused: a SET was refused (bad signature, unknown issuer,
	// wrong aud, too old, a replayed jti); Reason says why.
	EventSSFRefused EventType = "ssf.refused"
	// EventAdminSSFReceiverAdded and EventAdminSSFReceiverDeleted: an
	// operator registered a transmitter Keystep receives from, or
	// removed it.
	EventAdminSSFReceiverAdded   EventType = "admin.ssf_receiver_added"
	EventAdminSSFReceiverDeleted EventType = "admin.ssf_receiver_deleted"
)

// Tokens: the OP's token endpoint and friends (idp).
const (
	// EventTokenIssued: tokens were issued for a grant; Details carry the
	// grant type, scope, acr and amr.
	EventTokenIssued EventType = "token.issued"
	// EventTokenCodeReplayed: an authorization code was presented a second
	// time; the tokens of its grant were revoked (RFC 6749 §4.1.2).
	EventTokenCodeReplayed EventType = "token.code_replayed"
	// EventTokenRefreshReuse: a rotated refresh token was presented again;
	// its family was revoked (RFC 9700 §4.14.2).
	EventTokenRefreshReuse EventType = "token.refresh_reuse"
	// EventTokenRevoked: a client revoked a token (RFC 7009).
	EventTokenRevoked EventType = "token.revoked"
	// EventTokenRefreshRefused: a refresh was refused because the active
	// policy now needs a higher level for one of its scopes than the grant
	// was signed in at; Details carry the scope, its minimum and the
	// grant's acr. Nothing was rotated.
	EventTokenRefreshRefused EventType = "token.refresh_refused"
)

// Administration: the console, the CLI and first setup (login/admin). Each
// change is recorded before it is made, with Details "before" and "after";
// if storing the change then fails, a second row with Outcome "failure"
// says it was not applied.
const (
	// EventAdminDenied: someone signed in but not an administrator asked
	// for the console.
	EventAdminDenied EventType = "admin.denied"
	// EventAdminAuditExported: an administrator exported the audit log from
	// the console.
	EventAdminAuditExported EventType = "admin.audit_exported"
	// EventAdminUserCreated: a user was created (console, CLI, first setup,
	// the demo).
	EventAdminUserCreated EventType = "admin.user_created"
	// EventAdminUserDisable: a user was disabled.
	EventAdminUserDisable EventType = "admin.user_disable"
	// EventAdminUserEnable: a user was enabled again.
	EventAdminUserEnable EventType = "admin.user_enable"
	// EventAdminUserUnlock: a user's throttles and locked factors were
	// cleared.
	EventAdminUserUnlock EventType = "admin.user_unlock"
	// EventAdminUserResetFactors: a user's second factors and recovery codes
	// were removed.
	EventAdminUserResetFactors EventType = "admin.user_reset_factors"
	// EventAdminUserSignout: an administrator signed a user out everywhere.
	EventAdminUserSignout EventType = "admin.user_signout"
	// EventAdminUserConfirmPasskey: an administrator confirmed a user's
	// passkey as phishing resistant (DESIGN §3.3).
	EventAdminUserConfirmPasskey EventType = "admin.user_confirm_passkey"
	// EventAdminClientCreated: a client was registered.
	EventAdminClientCreated EventType = "admin.client_created"
	// EventAdminClientUpdated: a client's settings were changed.
	EventAdminClientUpdated EventType = "admin.client_updated"
	// EventAdminClientDeleted: a client was deleted.
	EventAdminClientDeleted EventType = "admin.client_deleted"
	// EventAdminClientSecretRotated: a client's secret was replaced.
	EventAdminClientSecretRotated EventType = "admin.client_secret_rotated"
	// EventAdminKeysRotated: the signing keys were rotated.
	EventAdminKeysRotated EventType = "admin.keys_rotated"
	// EventAdminPolicyChanged: a new policy version was saved and made
	// active (Details: parent, version, diff; a rollback names it in the
	// reason).
	EventAdminPolicyChanged EventType = "admin.policy_changed"
	// EventAdminAPIRead: a client read through the admin API (users,
	// clients, the policy, the audit log); ActorID is "client:ID" and
	// Details "call" the method and path, without the query. One row per
	// call: the API's changes are audited as the change itself.
	EventAdminAPIRead EventType = "admin.api_read"
	// EventAdminBenchProvisioned: `keystep bench` created its test users in
	// the store it runs against.
	EventAdminBenchProvisioned EventType = "admin.bench_provisioned"
)

// EventAuditCheckpoint is a signed checkpoint of the chain: Details hold
// "seq" and "hash" of the row it covers and "checkpoint", the signed form (a
// JWS) an operator can keep elsewhere.
const EventAuditCheckpoint EventType = "audit.checkpoint"

// eventTypes is every type above, in declaration order.
var eventTypes = []EventType{
	EventLoginPassword, EventLoginThrottled, EventLoginCompleted, EventLoginFailed,
	EventStepupRequested, EventStepupFactor, EventStepupThrottled, EventStepUpTransaction,
	EventFactorEnrolled, EventFactorEnrollRefused, EventFactorRemoved, EventFactorRecoveryCodesGenerated,
	EventFactorRecoveryCodeUsed, EventFactorSignCountRegression, EventFactorLocked, EventFactorTrusted,
	EventAccountPasswordChanged, EventAccountEmailChangeRequested, EventAccountEmailChanged, EventAccountLocaleChanged,
	EventRecoveryResetRequested, EventRecoveryResetRefused, EventRecoveryPasswordReset, EventRecoveryRequested, EventRecoveryCancelled,
	EventRecoveryDecided, EventRecoveryFactorsReplaced, EventSessionLogout, EventSessionEnded, EventSessionRevokedAll, EventSessionRevokedOthers,
	EventTokenIssued, EventTokenCodeReplayed, EventTokenRefreshReuse, EventTokenRevoked, EventTokenRefreshRefused,
	EventAdminDenied, EventAdminAuditExported, EventAdminUserCreated, EventAdminUserDisable, EventAdminUserEnable,
	EventAdminUserUnlock, EventAdminUserResetFactors, EventAdminUserSignout, EventAdminUserConfirmPasskey,
	EventAdminClientCreated, EventAdminClientUpdated, EventAdminClientDeleted, EventAdminClientSecretRotated,
	EventAdminKeysRotated, EventAdminPolicyChanged, EventAdminBenchProvisioned, EventAdminAPIRead,
	EventAuditCheckpoint,
	EventOutboxGaveUp, EventOutboxRequeued,
	EventSSFStream, EventSSFReceived, EventSSFRefused, EventAdminSSFReceiverAdded, EventAdminSSFReceiverDeleted,
}

// EventTypes returns every event type Keystep writes, sorted. Rows written
// by an older release may carry others.
func EventTypes() []EventType {
	return slices.Sorted(slices.Values(eventTypes))
}

// FactorKind is the kind of an enrolled second factor (Factor.Kind). It is
// stored; the values never change.
type FactorKind string

const (
	// FactorTOTP is an authenticator app (RFC 6238); Secret is the sealed
	// seed.
	FactorTOTP FactorKind = "totp"
	// FactorWebAuthn is a passkey or security key (WebAuthn Level 3);
	// Secret is the credential record.
	FactorWebAuthn FactorKind = "webauthn"
)
