// Package stepup decides whether the factors completed in a browser session
// meet the authentication level (acr) a relying party needs and, if they do
// not, which factor to ask for next.
//
// Everything here is pure: no I/O, no clock, no logging, standard library
// only. Every input is an argument of [Decide] and every rule below is pinned
// by a row in decide_test.go. Decide answers an authorization request; the
// smaller questions the UI asks outside one (is this session at a level,
// fresh enough? can it get there? does the next passkey need to verify the
// user?) are the queries beside it ([Policy.Fresh], [Policy.Reachable],
// [Policy.Admit] and the others in query.go), built on the same rules.
//
// # Model
//
// A [Level] is a rule over the factors done in this session and how fresh each
// one is; it is never a flow graph. Levels are ordered low to high in a
// [Policy]. The default levels (DESIGN §3.2) are:
//
//	rank  acr (aliases)                      requirement
//	0     urn:keystep:acr:sfa                any one factor
//	1     urn:keystep:acr:mfa (PAPE mfa)     password + (TOTP | recovery | WebAuthn), or a UV passkey
//	2     phr (PAPE phishing-resistant)      mfa, and a trusted WebAuthn is in the satisfying set
//	3     phrh                               phr, with a device-bound trusted WebAuthn credential
//
// phr and phrh are the OpenID Connect EAP ACR Values 1.0 names. Recovery codes
// and TOTP are typed by hand and so are not verifier-impersonation resistant
// (NIST SP 800-63B §5.2.5); they never help reach phr or phrh. Nor does a
// provisional WebAuthn credential: one added from a session that could
// itself have been phished in real time, until it is trusted (DESIGN §3.3).
//
// # Counting
//
// A factor counts towards a level when it is the latest of its method in the
// session, it is not dated after Now, it is within the level's freshness
// window for its method (NIST SP 800-63B §4.2.3 and §4.3.3: reauthenticate at
// least every 12 hours), and, when the request carries max_age or
// prompt=login, it was done at or after RequestTime − max_age (OIDC Core
// §3.1.2.1; prompt=login is max_age=0, so only factors done anew count).
//
// # Transactions
//
// A request with authorization details (RFC 9396) is a transaction to
// approve: Input.TransactionMin is one more floor, Input.TransactionMaxAge
// bounds counting like max_age, and the target is met only once a factor
// was done for this request — the strongest factor of a route to the
// target, so for phr the passkey, which signs the details (idp/details
// Challenge). See [Decide], rule 4, for why.
//
// # Claims
//
// A Satisfied [Decision] carries the acr, amr and auth_time to put in the
// tokens. The acr is never a value the counted factors do not meet (OIDC Core
// §2), and never below the level the request was held to (DESIGN §3.3). The amr uses RFC 8176 values only, plus pop from OpenID EAP ACR Values.
// auth_time is the earliest time in the satisfying set, chosen so that it is
// as late as truthfully possible, so an RP's own auth_time + max_age check
// (OIDC Core §3.1.3.7) stays honest.
package stepup

import "time"

// Method is a kind of factor a user can complete.
type Method string

const (
	// Password is a memorized secret (knowledge).
	Password Method = "pwd"
	// TOTP is a code from an authenticator app (possession; RFC 6238).
	TOTP Method = "totp"
	// Recovery is a single-use look-up secret (possession; NIST SP 800-63B
	// §5.1.2). It never counts toward phr or phrh.
	Recovery Method = "recovery"
	// WebAuthn is a passkey or security key (possession). With user
	// verification it also proves knowledge or inherence, and it is phishing
	// resistant because the signature is bound to the origin (NIST SP 800-63B
	// §5.2.5).
	WebAuthn Method = "webauthn"
)

// Factor is one factor completed in the browser session.
type Factor struct {
	Method       Method
	At           time.Time
	UserVerified bool // WebAuthn UV flag was set
	DeviceBound  bool // WebAuthn credential is not backup-eligible (amr hwk rather than swk)
	// Provisional marks a WebAuthn credential added from a session that
	// was not itself at phr and not trusted since: a phishable session
	// cannot mint phishing resistance (DESIGN §3.3). It counts as a
	// possession factor (and, user-verified, as mfa on its own) but never
	// toward phr or phrh. Its amr is unchanged: it says what happened.
	Provisional bool
	// ForRequest: the factor was done for the request being decided, with
	// what it asks shown on the page. Only such a factor approves a
	// transaction (Input.TransactionMin).
	ForRequest bool
}

// Enrolled is a factor the user could complete. Password is listed when the
// user has one. A WebAuthn entry may describe one credential or summarise all
// of them; several WebAuthn entries are considered one at a time.
type Enrolled struct {
	Method        Method
	DeviceBound   bool // WebAuthn: at least one device-bound credential
	UserVerifying bool // WebAuthn: can perform user verification (passkey)
	// Provisional: WebAuthn credentials that would count as provisional
	// (see Factor.Provisional); they cannot reach phr or phrh.
	Provisional bool
}

// Requirement is the rule a level applies to the counted factors. Each
// requirement implies the ones before it in this list.
type Requirement string

const (
	// AnyFactor is met by any one counted factor.
	AnyFactor Requirement = "any"
	// MultiFactor is met by password plus one of TOTP, recovery code or
	// WebAuthn, or by a user-verified WebAuthn alone (NIST SP 800-63B §4.2.1:
	// a multi-factor authenticator, or a memorized secret plus a possession
	// factor).
	MultiFactor Requirement = "mfa"
	// PhishingResistant is MultiFactor where the satisfying set contains
	// WebAuthn (OpenID EAP ACR Values "phr"; NIST SP 800-63B §4.3.2).
	PhishingResistant Requirement = "phr"
	// PhishingResistantHardware is PhishingResistant with a device-bound
	// WebAuthn credential (OpenID EAP ACR Values "phrh").
	PhishingResistantHardware Requirement = "phrh"
)

// Input is everything one decision depends on. Zero values mean "absent".
type Input struct {
	// Requested lists the requested acr values in order of preference
	// (acr_values, or the values of the claims parameter; the caller merges
	// them). Values the policy does not know are ignored.
	Requested []string
	// Essential reports that acr was requested as an Essential Claim (OIDC
	// Core §5.5.1.1): a requested level that cannot be reached is an error.
	Essential bool
	// Strict is the client's strict mode: requested values are treated as
	// essential (RFC 9470 §5).
	Strict bool
	// ClientMin is the client's floor ("" for none). Unreachable →
	// unmet_authentication_requirements.
	ClientMin string
	// ScopeMins are floors from the requested scopes. Unreachable →
	// unmet_authentication_requirements.
	ScopeMins []string
	// RiskFloor is the floor from the risk assessment ("" for none).
	RiskFloor string
	// RiskDeny reports that risk denies the request outright → access_denied.
	RiskDeny bool
	// RiskHard reports the high risk band: an unreachable RiskFloor is
	// access_denied. Otherwise (medium band) an unreachable RiskFloor is
	// waived: the flow continues at the real level and Decision.RiskWaived is
	// set so the caller can audit it and nudge the user to add a factor.
	RiskHard bool
	// Drifted reports session drift: the session cookie came back from
	// another network and another user agent than it was issued to
	// (idp/risk: session_drift, Assessment.Reauth), so it may be a stolen
	// cookie. Its factors then count for nothing, and the level they met
	// becomes a risk floor: the user proves the session's current level
	// again (DESIGN §3.4).
	Drifted bool
	// MaxAge is the max_age request parameter (nil for none). Only factors
	// done at or after RequestTime − MaxAge count. A negative value is
	// treated as zero.
	MaxAge *time.Duration
	// PromptLogin is prompt=login, which is max_age=0 (OIDC Core §3.1.2.1).
	PromptLogin bool
	// PromptNone is prompt=none: never ask for a factor (OIDC Core §3.1.2.1).
	PromptNone bool
	// TransactionMin is the floor the request's authorization details
	// demand (RFC 9396; idp/details Strictest, "" for none). Unreachable
	// (or unknown) → unmet_authentication_requirements, like ScopeMins. A
	// request with details is a transaction to approve: when TransactionMin
	// is set, the decision also needs a fresh approval (see [Decide], rule
	// 4), even from a session already at the level.
	TransactionMin string
	// TransactionMaxAge is how long ago the factors that approve the
	// transaction may have been done, before RequestTime (nil for no limit
	// beyond MaxAge). It bounds counting as max_age does, and the tighter
	// of the two wins. A negative value is treated as zero. It applies
	// only with TransactionMin.
	TransactionMaxAge *time.Duration
	// RequestTime is when the authorization request arrived.
	RequestTime time.Time
	// Now is the time of the decision.
	Now time.Time
	// NoSession reports that no browser session (of the user an
	// id_token_hint names, if any) comes with the request: nobody is
	// identified, so nothing about the user's factors can be decided and
	// the first factor is a password (a passkey signs in through its own
	// passwordless ceremony). prompt=none then fails with login_required.
	NoSession bool
	// Done lists the factors completed in this session, in any order.
	Done []Factor
	// Enrolled lists the factors the user could complete. When both Enrolled
	// and Done are empty the user is not identified yet (first visit to the
	// login page): every factor is then assumed possible, so no level is
	// refused as unreachable before the user is known.
	Enrolled []Enrolled
	// Preferred is the factor the client prefers (login/policy
	// Client.Preferred; "" for none): when several factors would do
	// equally (each finishes the step-up in one step, or none does), it
	// comes first in Decision.Next. It never adds a factor to Next nor
	// changes what counts.
	Preferred Method
}

// Outcome is what the caller does next.
type Outcome int

const (
	// Satisfied: issue tokens with Decision.ACR, AMR and AuthTime.
	Satisfied Outcome = iota + 1
	// NeedFactor: ask for one of Decision.Next, explaining Decision.Reasons.
	NeedFactor
	// Fail: end the request with Decision.Error.
	Fail
)

func (o Outcome) String() string {
	switch o {
	case Satisfied:
		return "satisfied"
	case NeedFactor:
		return "need_factor"
	case Fail:
		return "fail"
	}
	return "invalid"
}

// Reason says why a factor is asked for. Values are stable identifiers for
// templates, logs and audit; they are not user-facing text.
type Reason string

// Reasons, in the order Decision.Reasons lists them.
const (
	ReasonNoSession   Reason = "no_session"    // no factor counts towards the target
	ReasonRequested   Reason = "app_requested" // the RP asked for a level the counted factors do not meet
	ReasonClientMin   Reason = "client_minimum"
	ReasonScope       Reason = "scope_minimum"
	ReasonRisk        Reason = "risk"
	ReasonMaxAge      Reason = "max_age"      // factors exist but are older than max_age
	ReasonPromptLogin Reason = "prompt_login" // factors exist but predate a prompt=login request
	ReasonStale       Reason = "stale"        // factors exist but are past the level's freshness window
	ReasonTransaction Reason = "transaction"  // the request carries authorization details to approve
)

// OAuth error codes a Fail decision carries.
const (
	// ErrLoginRequired: prompt=none and the session does not satisfy the
	// request (OIDC Core §3.1.2.1).
	ErrLoginRequired = "login_required"
	// ErrUnmet: a required level cannot be reached with the user's factors
	// (OIDC Core §5.5.1.1 and the unmet_authentication_requirements error
	// definition; RFC 9470 §5).
	ErrUnmet = "unmet_authentication_requirements"
	// ErrAccessDenied: risk denied the request.
	ErrAccessDenied = "access_denied"
)

// Decision is the result of [Decide]. Only the fields of its Outcome are set.
type Decision struct {
	Outcome Outcome
	// Target is the canonical acr of the level the request needs. On Fail it
	// names the level that could not be reached, when there is one.
	Target string

	// Satisfied.
	ACR      string    // value for the acr claim
	AMR      []string  // RFC 8176 values for the amr claim
	AuthTime time.Time // value for the auth_time claim

	// NeedFactor.
	Next    []Method // acceptable next factors, best first
	Reasons []Reason // why, deduplicated, in declaration order

	// Fail.
	Error string // ErrLoginRequired, ErrUnmet or ErrAccessDenied

	// RiskWaived reports that an unreachable medium-band risk floor was
	// ignored (any outcome).
	RiskWaived bool
}
