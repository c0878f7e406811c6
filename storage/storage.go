// Package storage is Keystep's storage contract: the domain types every backend
// persists and the interfaces they implement. It imports only the standard library.
//
// Guarantees stated on a method hold for every backend and are checked by the
// shared suite in storage/storagetest, concurrency rows included. Times go in and
// come out as UTC. Secrets never reach this package in the clear: passwords are
// argon2id PHC strings, tokens and codes are hashes, TOTP seeds and private keys
// are sealed with the master key before they are stored.
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	ErrNotFound      = errors.New("storage: not found")
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrReplayed reports a single-use secret (authorization code, refresh
	// token, TOTP step, recovery code, one-time token) presented a second time.
	ErrReplayed = errors.New("storage: already used")
	// ErrExpired reports a record found but past its expiry.
	ErrExpired = errors.New("storage: expired")
	// ErrConflict reports a concurrent change that lost its race.
	ErrConflict = errors.New("storage: conflict")
	// ErrThrottled reports that RecordFailure refused a failure because a
	// throttle key is blocked.
	ErrThrottled = errors.New("storage: throttled")
)

// Store is everything a Keystep server needs from a backend.
type Store interface {
	Users
	Clients
	AuthRequests
	Sessions
	Tokens
	Keys
	Factors
	Consents
	OneTimeTokens
	Audit
	Throttle
	History
	Outbox
	SharedSignals
	Policies
	Recovery

	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// User is an account that can sign in.
type User struct {
	ID       string
	Username string // unique, compared case-sensitively after the caller normalises it
	Email    string
	// EmailVerified: the person proved they receive mail at Email, by
	// opening the single-use link sent to it, at EmailVerifiedAt. An
	// address set any other way (an admin, an import) is not verified
	// unless the admin says so; changing Email clears it.
	EmailVerified   bool
	EmailVerifiedAt time.Time
	PasswordHash    string // argon2id PHC string; empty when the user has no password
	Admin           bool
	Disabled        bool
	// PasswordCompromised: a transmitter reported the password
	// compromised (SSF credential-compromise). It is refused at sign-in
	// until the person changes it after a second factor.
	PasswordCompromised bool
	// RiskFloor is an acr every sign-in must reach until RiskFloorUntil,
	// set by a received signal (SSF device-compliance-change);
	// RiskFloorReason says which.
	RiskFloor       string
	RiskFloorUntil  time.Time
	RiskFloorReason string
	// RiskFloorNewDevices limits RiskFloor to sign-ins from devices that
	// never completed one for the user (set after a password reset).
	RiskFloorNewDevices bool
	// Locale is the language the person chose for pages and emails, a
	// BCP 47 tag ("de"); "" leaves it to their browser.
	Locale    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Users stores accounts.
type Users interface {
	// CreateUser inserts u; ErrAlreadyExists when the ID or username is taken.
	CreateUser(ctx context.Context, u User) error
	UserByID(ctx context.Context, id string) (User, error)
	UserByUsername(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	CountUsers(ctx context.Context) (int, error)
	// UpdateUser replaces every mutable field of the user with u.ID
	// (username, email and whether and when it was verified, password
	// hash, admin, disabled, the received signal's marks, the saved
	// language, updated at).
	UpdateUser(ctx context.Context, u User) error
	// SetUserLocale sets only the saved language of user id (a person's
	// own choice, which must not race an administrator's change of any
	// other field); ErrNotFound for no such user.
	SetUserLocale(ctx context.Context, id, locale string) error
}

// Client is a registered relying party.
type Client struct {
	ID                     string
	Name                   string
	SecretHash             string // empty for public and private_key_jwt clients
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Public                 bool   // a public client authenticates with "none" and must use PKCE
	Native                 bool   // native app: RFC 8252 loopback port exception applies
	AuthMethod             string // client_secret_basic | client_secret_post | private_key_jwt | none
	GrantTypes             []string
	IDTokenAlg             string // RS256 (default), ES256 or EdDSA
	AccessTokenFormat      string // "jwt" (default) or "opaque"
	JWKS                   string // public keys for private_key_jwt, a JSON Web Key Set
	MinACR                 string // the client's floor; empty for none
	Strict                 bool   // RFC 9470 §5: requested acr values are treated as essential
	FirstParty             bool   // skips the consent page
	RequirePKCE            bool
	RateLimit              int // token endpoints, requests/s once authenticated (burst 2 s' worth); 0: server default
	// RefreshReuseInterval is how long after a rotation the refresh token
	// just rotated may be presented again by this client and get the same
	// successor (parallel refreshes, a response lost on the way): 0 means
	// DefaultRefreshReuseInterval, a negative value none. After it, or from
	// another client, reuse revokes the family.
	RefreshReuseInterval time.Duration
	// RequirePAR admits only pushed authorization requests at /authorize
	// (RFC 9126 §6, require_pushed_authorization_requests).
	RequirePAR bool
	// DPoPBoundAccessTokens issues this client only DPoP-bound tokens: a
	// token request without a DPoP proof is refused (RFC 9449 §5.2,
	// dpop_bound_access_tokens).
	DPoPBoundAccessTokens bool
	// Profile names a security profile the client is held to: "" for none,
	// ProfileFAPI2 for the FAPI 2.0 Security Profile.
	Profile string
	// BackchannelLogoutURI receives logout tokens (OIDC Back-Channel
	// Logout 1.0 §2.2); "" for none. BackchannelLogoutSessionRequired asks
	// for sid in them.
	BackchannelLogoutURI             string
	BackchannelLogoutSessionRequired bool
	// AuthorizationDetailsTypes are the authorization_details types (RFC
	// 9396 §2) the client may request; none when empty.
	AuthorizationDetailsTypes []string
	// AdminAPI grants the client Keystep's admin API under /admin/api with
	// its client_credentials tokens: "" none, AdminAPIRead or AdminAPIWrite.
	AdminAPI  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Client.AdminAPI values: the admin API's scopes a client may be issued.
// AdminAPIRead allows keystep:admin:read; AdminAPIWrite also keystep:admin,
// which writes and reads.
const (
	AdminAPIRead  = "read"
	AdminAPIWrite = "write"
)

// ProfileFAPI2 is Client.Profile for the FAPI 2.0 Security Profile.
const ProfileFAPI2 = "fapi2"

// DefaultRefreshReuseInterval is a client's RefreshReuseInterval when it
// sets none, like Auth0's and Okta's default grace periods.
const DefaultRefreshReuseInterval = 10 * time.Second

// ReuseInterval is c's refresh reuse interval in force: zero for none.
func (c Client) ReuseInterval() time.Duration {
	switch {
	case c.RefreshReuseInterval == 0:
		return DefaultRefreshReuseInterval
	case c.RefreshReuseInterval < 0:
		return 0
	}
	return c.RefreshReuseInterval
}

// Clients stores relying parties.
type Clients interface {
	// CreateClient inserts c; ErrAlreadyExists when the ID is taken.
	CreateClient(ctx context.Context, c Client) error
	ClientByID(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	UpdateClient(ctx context.Context, c Client) error
	// DeleteClient deletes the client, its Shared Signals stream and the SETs
	// still owed to it; ErrNotFound when there is no such client.
	DeleteClient(ctx context.Context, id string) error
}

// AuthRequest is one authorization request from /authorize until its code is
// redeemed or it expires. The login UI completes it by setting the result fields.
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	Scopes              []string
	ResponseType        string
	ResponseMode        string
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string
	MaxAge              *int64   // seconds; nil when absent
	ACRValues           []string // as the client sent them
	// Requirement is what the request asks of the sign-in, parsed and
	// merged once at /authorize; the login UI and the audit read only it.
	Requirement        Requirement
	LoginHint          string
	IDTokenHintSubject string
	UILocales          []string
	BrowserBinding     string // hash of the cookie of the browser that started it
	// DPoPJKT is the dpop_jkt parameter: the thumbprint of the DPoP key
	// the code may be redeemed with only (RFC 9449 §10); "" for any.
	DPoPJKT string
	// AuthorizationDetails is what the request asks the person to approve
	// (RFC 9396), in canonical JSON (RFC 8785); "" for none.
	AuthorizationDetails string
	// PolicyVersion is the policy version the request was parsed under
	// and every decision of its sign-in is made under (0: the policy the
	// server was started with, none stored).
	PolicyVersion int64
	CreatedAt     time.Time
	ExpiresAt     time.Time

	// Result, set by CompleteAuthRequest.
	Done      bool
	Subject   string
	ACR       string
	AMR       []string
	AuthTime  time.Time
	SessionID string // the sid claim

	// Set by SaveAuthCode.
	CodeHash      string
	CodeExpiresAt time.Time

	// FailedAttempts counts wrong second-factor codes for this request.
	FailedAttempts int
}

// Requirement is what an authorization request asks of authentication
// beyond max_age and prompt: the acr values requested through acr_values and
// the claims parameter, merged, and the floors that applied when it was made.
// A backend that cannot read a stored Requirement returns an error, so a
// corrupt row fails the request closed instead of weakening it.
type Requirement struct {
	// ACR lists the requested acr values in order of preference: those of
	// the claims parameter first, then acr_values, without repeats.
	ACR []string `json:"acr,omitempty"`
	// Essential: acr was requested as an Essential Claim (OIDC Core §5.5.1.1).
	Essential bool `json:"essential,omitempty"`
	// ClientMin is the client's minimum acr; Strict, the client's RFC 9470
	// §5 setting: an unreachable level is an error rather than a best effort.
	ClientMin string `json:"client_min,omitempty"`
	Strict    bool   `json:"strict,omitempty"`
	// ScopeMins holds the minimum acr of each requested scope that has one.
	ScopeMins []string `json:"scope_mins,omitempty"`
	// TransactionMin and TransactionMaxAge (seconds, 0 for none) are what
	// the request's authorization_details demand (RFC 9396; the strictest
	// rule of the details policy that applies). A level demanded this way
	// must be met with a factor done for this request, which commits to
	// the details it approves.
	TransactionMin    string `json:"transaction_min,omitempty"`
	TransactionMaxAge int64  `json:"transaction_max_age,omitempty"`
}

// AuthResult is what the login UI writes onto a completed request.
type AuthResult struct {
	Subject   string
	ACR       string
	AMR       []string
	AuthTime  time.Time
	SessionID string
}

// AuthRequests stores authorization requests and their codes.
type AuthRequests interface {
	CreateAuthRequest(ctx context.Context, r AuthRequest) error
	// AuthRequestByID returns ErrNotFound for an unknown ID and ErrExpired
	// once ExpiresAt has passed at now.
	AuthRequestByID(ctx context.Context, id string, now time.Time) (AuthRequest, error)
	// CompleteAuthRequest marks the request done with res.
	CompleteAuthRequest(ctx context.Context, id string, res AuthResult) error
	// SaveAuthCode attaches the hash of a freshly minted code to a done request.
	SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error
	// ConsumeAuthCode redeems a code exactly once: among any number of
	// concurrent calls with the same hash, one returns the request and the
	// rest ErrReplayed. A replay also revokes every token issued under the
	// request (the grant), in the same transaction (RFC 6749 §4.1.2). A code
	// past its expiry gives ErrExpired.
	ConsumeAuthCode(ctx context.Context, codeHash string, now time.Time) (AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error
	// RecordAuthRequestFailure atomically adds one to FailedAttempts and
	// returns the new count.
	RecordAuthRequestFailure(ctx context.Context, id string) (int, error)
	// DeleteExpiredAuthRequests removes requests that expired before now.
	DeleteExpiredAuthRequests(ctx context.Context, now time.Time) (int, error)
	// DeleteUserAuthRequests removes every request completed for subject
	// (its code minted or not, redeemed or not) and returns how many, so
	// that no code of theirs can be redeemed any more. Requests not yet
	// completed are kept. It is rare (ending a user's access), so it may
	// scan the table.
	DeleteUserAuthRequests(ctx context.Context, subject string) (int, error)

	// CreatePushedRequest stores a validated pushed authorization request
	// (RFC 9126); ErrAlreadyExists when its ID is taken.
	CreatePushedRequest(ctx context.Context, p PushedRequest) error
	// ConsumePushedRequest spends pushed request id of clientID once:
	// ErrNotFound when unknown or another client's, ErrExpired past its
	// expiry, ErrReplayed when already spent. DeleteExpiredAuthRequests
	// sweeps expired ones.
	ConsumePushedRequest(ctx context.Context, id, clientID string, now time.Time) (PushedRequest, error)
}

// PushedRequest is an authorization request pushed to the PAR endpoint,
// waiting for the browser to bring its request_uri to /authorize.
type PushedRequest struct {
	ID        string // the hash of the request_uri's random part
	ClientID  string
	Params    string // the validated parameters, form-encoded
	ExpiresAt time.Time
}

// FactorEvent is one factor completed in a browser session.
type FactorEvent struct {
	Method       string    // "pwd", "totp", "recovery", "webauthn"
	At           time.Time // when it was completed
	CredentialID string    // the factor or WebAuthn credential used, if any
	UserVerified bool      // WebAuthn UV flag
	DeviceBound  bool      // WebAuthn credential not backup-eligible
	// Provisional: the WebAuthn credential was not trusted as phishing
	// resistant when it was used (Factor.TrustedAt was zero): the session
	// counts it as mfa only (DESIGN §3.3).
	Provisional bool
	// Request is the authorization request the factor was done for, ""
	// when it was done elsewhere (the portal): a transaction is approved
	// only by a factor done for its own request (idp/stepup).
	Request string
}

// Session is a browser SSO session. ID is the hash of the cookie value.
type Session struct {
	ID        string
	UserID    string
	Factors   []FactorEvent
	IP        string
	UserAgent string
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
}

// Sessions stores browser sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	// SessionByID returns ErrNotFound for unknown IDs and ErrExpired for
	// sessions past ExpiresAt at now.
	SessionByID(ctx context.Context, id string, now time.Time) (Session, error)
	// RotateSession atomically replaces the session oldID with next (a new ID,
	// usually with a changed factor set). Exactly one of several concurrent
	// rotations of the same oldID succeeds; the others get ErrNotFound.
	RotateSession(ctx context.Context, oldID string, next Session) error
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	DeleteSession(ctx context.Context, id string) error
	ListUserSessions(ctx context.Context, userID string, now time.Time) ([]Session, error)
	// DeleteUserSessions removes the user's sessions except keepID (may be empty).
	DeleteUserSessions(ctx context.Context, userID, keepID string) (int, error)
	// DeleteExpiredSessions removes sessions past ExpiresAt at now, in
	// batches that let other writes through, and returns how many.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// SessionClients returns the IDs of the clients given tokens under the
	// session sid — CreateFamily with a grant of that SessionID remembers
	// its client until the session ends (EndSessions) or
	// ForgetSessionClients sweeps it; a family or a completed
	// authorization request of sid counts too — sorted, each once.
	SessionClients(ctx context.Context, sid string) ([]string, error)
	// ForgetSessionClients forgets the clients remembered (SessionClients)
	// before before, when their sessions have ended anyway, and returns
	// how many.
	ForgetSessionClients(ctx context.Context, before time.Time) (int, error)
	// EndSessions ends sessions everywhere in one transaction: it deletes
	// each session's row (a row already gone is not an error), revokes
	// every token family, refresh token and access token of its user
	// issued under its SID, deletes the authorization requests completed
	// in it (so a code not yet redeemed never is), forgets its clients,
	// and stores msgs (the notifications of the end) as pending outbox
	// messages. Either all of it happens or none. Like
	// RevokeUserClientTokens, a rotation running at the same time cannot
	// slip through.
	EndSessions(ctx context.Context, ends []SessionEnd, msgs []OutboxMessage) error
	// ExpiredSessions returns up to limit sessions past ExpiresAt at now
	// or last seen before idleBefore, oldest first, so they can be ended
	// (EndSessions) rather than only deleted.
	ExpiredSessions(ctx context.Context, now, idleBefore time.Time, limit int) ([]Session, error)
}

// Grant is what a token carries about the authentication behind it. It is
// fixed when the authorization code is redeemed and never changes on refresh
// (OIDC Core §12.2, RFC 9470 §6.1).
type Grant struct {
	GrantID   string // the auth request the tokens descend from
	ClientID  string
	Subject   string // empty for client credentials
	Scopes    []string
	Audience  []string
	ACR       string
	AMR       []string
	AuthTime  time.Time
	SessionID string
	// JKT is the JWK SHA-256 thumbprint of the DPoP key the tokens are
	// bound to (cnf.jkt, RFC 9449 §6); "" for bearer tokens.
	JKT string
	// AuthorizationDetails is what the person approved (RFC 9396 §7), in
	// canonical JSON (RFC 8785); "" for none. A refresh may narrow it for
	// one token, never widen it.
	AuthorizationDetails string
}

// AccessToken is an access token with a row: an opaque one, or a JWT
// issued before families (a JWT issued since has no row; see Family). ID is
// the jti.
type AccessToken struct {
	ID        string
	Grant     Grant
	RefreshID string // the family (or, before families, the refresh token) it was issued with, if any
	CreatedAt time.Time
	ExpiresAt time.Time
	Revoked   bool
}

// Family is one token family: the tokens issued by one grant (a code
// redemption) and every refresh token rotated from them. It is one row,
// updated in place by each rotation, so a family's storage does not grow
// with its refreshes.
//
// A refresh token names its family and Generation and carries a MAC over
// both (the MAC key never reaches storage): the token of Generation is the
// current one, every lower generation was rotated away, so presenting one
// is reuse (OAuth 2.0 Security BCP §4.14.2). JWT access tokens have no row:
// they name their family, and are live while it is.
type Family struct {
	ID    string
	Grant Grant // Grant.Scopes narrows when a refresh asks for less (RFC 6749 §6)
	// Generation of the current refresh token: 0 when issued, one more
	// with each rotation.
	Generation int64
	// RotatedAt is when Generation was reached (zero before the first
	// rotation): a client's reuse interval runs from it.
	RotatedAt time.Time
	CreatedAt time.Time
	ExpiresAt time.Time // rotation does not extend it
	Revoked   bool
	// AuditedGeneration and AuditedAt are the generation and time of the
	// last token.issued row written for the family's refreshes (zero
	// before the first): refreshes are summarised, not logged one by one,
	// so refreshing does not grow the database (MarkFamilyAudited).
	AuditedGeneration int64
	AuditedAt         time.Time
}

// RefreshToken is a refresh token issued before families (a row per token).
// ID is the hash of the token value; tokens rotated from one another share
// a FamilyID. Such a token keeps working until it expires or is rotated:
// UpgradeRefreshToken rotates it into a Family with ID FamilyID.
type RefreshToken struct {
	ID        string
	FamilyID  string
	Grant     Grant
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // set when rotated; zero while current
	Revoked   bool
}

// Tokens stores token families, the access tokens that have a row, and the
// refresh tokens issued before families.
//
// A revocation never misses a token a rotation under way at the same
// moment hands out: a family is revoked in its row, and a rotation is a
// compare-and-swap on that row that fails once it is revoked.
type Tokens interface {
	// CreateAccessToken stores an access token that has a row (opaque).
	// When t.RefreshID names a family, it is stored only while that
	// family is not revoked (ErrNotFound otherwise), ordered with
	// RevokeFamily by the family's row: a token written in the same moment
	// as a revocation is either refused or revoked with the family.
	CreateAccessToken(ctx context.Context, t AccessToken) error
	// AccessTokenByID returns ErrNotFound when unknown or revoked — the
	// family its RefreshID names revoked included — and ErrExpired when
	// past ExpiresAt at now.
	AccessTokenByID(ctx context.Context, id string, now time.Time) (AccessToken, error)
	// RevokeAccessToken revokes one access token that has a row; unknown
	// IDs are not an error (RFC 7009 §2.2).
	RevokeAccessToken(ctx context.Context, id string) error
	// RevokeRowlessAccessToken records that the access token id, which has
	// no row (a JWT), is revoked; the record is kept until expiresAt, when
	// the token has expired anyway. Revoking it again is not an error.
	RevokeRowlessAccessToken(ctx context.Context, id string, expiresAt time.Time) error
	// RowlessAccessTokenFamily answers whether the access token id without
	// a row, issued with family familyID ("" for none: client
	// credentials), is live at now, in one read: ErrNotFound when the
	// family is unknown or revoked or the token was revoked
	// (RevokeRowlessAccessToken), ErrExpired when the family has expired.
	// It returns the family (zero for "").
	RowlessAccessTokenFamily(ctx context.Context, id, familyID string, now time.Time) (Family, error)

	// CreateFamily stores f as a new family and, when access is not nil,
	// the access token issued with it (its RefreshID set to f.ID), in one
	// transaction.
	CreateFamily(ctx context.Context, f Family, access *AccessToken) error
	// FamilyByID returns the family as stored, revoked or expired alike
	// (the caller says why it cannot be used), ErrNotFound when unknown.
	FamilyByID(ctx context.Context, id string) (Family, error)
	// RotateFamily moves family id from generation gen to gen+1 at now,
	// narrowing its scopes to scopes, and stores access (its RefreshID set
	// to id) when it is not nil, in one transaction; it returns the
	// family as rotated. Exactly one of several concurrent calls with one
	// gen succeeds. Otherwise nothing is stored and the error says why:
	// ErrReplayed when gen is below the family's generation — also once
	// the family is revoked, so every reuse is seen as one — with the
	// family returned, so the caller can tell a retry from reuse and say
	// whose family it is; ErrNotFound when the family is unknown or
	// revoked or gen is above its generation; ErrExpired past ExpiresAt.
	// It never revokes: the caller decides whether a reuse does.
	RotateFamily(ctx context.Context, id string, gen int64, scopes []string, access *AccessToken, now time.Time) (Family, error)
	// BindFamily binds family id, issued unbound, to the DPoP key jkt (RFC
	// 9449 §5: a public client's refresh token is bound to the key of the
	// first refresh that proves one) and returns the family as it now
	// stands: a family already bound keeps its key, which the caller
	// compares. ErrNotFound for an unknown family.
	BindFamily(ctx context.Context, id, jkt string) (Family, error)
	// RevokeFamily revokes family id, and with it every access token issued
	// with it, also once the family's row has been swept at its expiry (an
	// access token may outlive its family); unknown IDs are not an error.
	RevokeFamily(ctx context.Context, id string) error
	// MarkFamilyAudited records that the token.issued row covering family
	// id's refreshes up to generation gen was written at at. It never
	// moves the mark back: of two instances marking at once, the higher
	// generation stays. Unknown IDs are not an error.
	MarkFamilyAudited(ctx context.Context, id string, gen int64, at time.Time) error

	// CreateRefreshToken stores a refresh token the way they were stored
	// before families (the head of a pre-family chain) and, when access is
	// not nil, the access token issued with it, in one transaction. Only
	// tests and migrations make them now.
	CreateRefreshToken(ctx context.Context, t RefreshToken, access *AccessToken) error
	// RefreshTokenByID returns the pre-family token unless it is unknown or
	// revoked (ErrNotFound), expired (ErrExpired) or already rotated
	// (ErrReplayed; the family is not touched by this read). With
	// ErrReplayed the rotated token is returned too, family and grant
	// included, so the caller can say whose family it revokes.
	RefreshTokenByID(ctx context.Context, id string, now time.Time) (RefreshToken, error)
	// UpgradeRefreshToken rotates the current pre-family token oldID into
	// next, a new Family with ID the token's FamilyID and its grant
	// (whatever next says), at generation 1 — the pre-family token being
	// generation 0 — and stores access with it when not nil, in one
	// transaction. Exactly one of several concurrent calls succeeds; the
	// rest store nothing and get ErrReplayed, as does a token rotated
	// before, with ErrNotFound for unknown or revoked tokens and
	// ErrExpired for expired ones. Like RotateFamily it never revokes.
	UpgradeRefreshToken(ctx context.Context, oldID string, next Family, access *AccessToken, now time.Time) error
	// RevokeRefreshFamily revokes the family of the pre-family refresh
	// token id — its pre-family tokens, the Family it was upgraded into,
	// and the access tokens issued from them; unknown IDs are not an
	// error.
	RevokeRefreshFamily(ctx context.Context, id string) error

	// RevokeGrant revokes every token issued under the auth request grantID.
	RevokeGrant(ctx context.Context, grantID string) error
	// RevokeUserClientTokens revokes the tokens of subject at clientID
	// (all clients when clientID is empty). A rotation running at the same
	// time cannot slip through: once it returns, the token any rotation
	// wrote is revoked and no later rotation of the subject's tokens works.
	RevokeUserClientTokens(ctx context.Context, subject, clientID string) error
	// DeleteExpiredTokens removes families, tokens and revocation records
	// that expired before now.
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error)
}

// SigningKey is a token-signing key. Private is sealed with the master key.
type SigningKey struct {
	ID        string // the kid
	Algorithm string // RS256, ES256, EdDSA
	Private   []byte // sealed PKCS #8 DER
	Public    []byte // PKIX DER
	CreatedAt time.Time
	// ActiveAt is when the key starts signing; keys are published in the JWKS
	// from CreatedAt so verifiers learn them before the first token.
	ActiveAt time.Time
	// RetiredAt is when a newer key replaced it for signing; zero while active.
	RetiredAt time.Time
	// ExpiresAt is when it leaves the JWKS; zero while signing.
	ExpiresAt time.Time
}

// Keys stores signing keys.
type Keys interface {
	CreateSigningKey(ctx context.Context, k SigningKey) error
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RetireSigningKeys sets RetiredAt=at and ExpiresAt=expires on every
	// key of algorithm alg that is not yet retired, except keepID.
	RetireSigningKeys(ctx context.Context, alg, keepID string, at, expires time.Time) error
	DeleteExpiredSigningKeys(ctx context.Context, now time.Time) (int, error)
}

// Factor is an enrolled second factor (authenticator app or WebAuthn credential).
type Factor struct {
	ID         string
	UserID     string
	Kind       FactorKind
	Name       string // user-chosen label
	Secret     []byte // TOTP: sealed seed; WebAuthn: the credential record (JSON)
	CreatedAt  time.Time
	LastUsedAt time.Time
	// TrustedAt is when a WebAuthn credential started to count as phishing
	// resistant (DESIGN §3.3): when it was added from a session at phr, first
	// used from a known device and network after the cooling-off, or
	// confirmed by an admin. Zero while it counts as mfa only.
	TrustedAt time.Time
	// AddedInSessionAt is when the browser session that added the factor
	// began, recorded when that session came from a device and a network
	// both new to the user (a relayed sign-in's shape): a device or network
	// first seen in that session never vouches for the factor. Zero
	// otherwise, and for factors added before it was recorded.
	AddedInSessionAt time.Time
}

// Factors stores second factors, used TOTP steps and recovery codes.
type Factors interface {
	CreateFactor(ctx context.Context, f Factor) error
	ListFactors(ctx context.Context, userID string) ([]Factor, error)
	FactorByID(ctx context.Context, id string) (Factor, error)
	// UpdateFactor replaces the name, secret and last-used time of f.ID.
	UpdateFactor(ctx context.Context, f Factor) error
	// TrustFactor sets TrustedAt of the user's factor id to at, once:
	// ErrNotFound when the user has no such factor, ErrConflict when it is
	// trusted already (the first time stays). Of concurrent calls exactly
	// one succeeds, so a trust is audited once. Nothing else changes it.
	TrustFactor(ctx context.Context, userID, id string, at time.Time) error
	DeleteFactor(ctx context.Context, userID, id string) error
	// DeleteUserFactors removes every factor and recovery code of the user.
	DeleteUserFactors(ctx context.Context, userID string) error
	// UseTOTPStep records the time step as the user's latest accepted one,
	// if it is later than every step accepted for the user before; the same
	// step or an older one gives ErrReplayed (RFC 6238 §5.2, NIST SP 800-63B
	// §5.1.4.2), so after step t+1 the unused step t is refused too. Check
	// and record are one atomic step: of concurrent calls with one step
	// exactly one succeeds, and none succeeds after a later step has.
	UseTOTPStep(ctx context.Context, userID string, step int64, now time.Time) error
	// ReplaceRecoveryCodes discards the user's recovery codes and stores hashes.
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, now time.Time) error
	// UseRecoveryCode spends the unused code with this hash; ErrNotFound when
	// no unused code matches. Among concurrent calls with one code exactly one
	// succeeds (NIST SP 800-63B §5.1.2.2). It returns the codes left.
	UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) (remaining int, err error)
	CountRecoveryCodes(ctx context.Context, userID string) (remaining int, err error)
}

// Consents remembers the scopes a user granted to a third-party client.
type Consents interface {
	SaveConsent(ctx context.Context, userID, clientID string, scopes []string, now time.Time) error
	// ConsentedScopes returns nil (and no error) when there is no consent.
	ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error)
	DeleteConsent(ctx context.Context, userID, clientID string) error
}

// OneTimeTokens stores hashed single-use tokens, such as the first-admin
// setup link.
type OneTimeTokens interface {
	CreateOneTimeToken(ctx context.Context, kind, hash string, expiresAt time.Time) error
	// ConsumeOneTimeToken spends the token once: ErrNotFound when unknown,
	// ErrExpired when past its expiry, ErrReplayed when already spent.
	ConsumeOneTimeToken(ctx context.Context, kind, hash string, now time.Time) error
}

// Throttle scopes. A scope names the rule its keys are counted under; the
// key says whose failures they are.
const (
	ScopeAccount         = "account"          // Key: the account (user ID, or the normalised name of an unknown user)
	ScopeAccountIP       = "account_ip"       // Key: made by AccountIPKey
	ScopeIP              = "ip"               // Key: the client IP
	ScopeFactorAccount   = "factor_account"   // second-factor failures (TOTP, recovery code, WebAuthn); Key: the user ID
	ScopeFactorChallenge = "factor_challenge" // Key: the auth request or ceremony the code or assertion was for
)

// ThrottleKey names one failure counter.
type ThrottleKey struct {
	Scope string
	Key   string
}

// AccountIPKey is the key of account's failures from ip. The IP comes first
// so that DistinctAccountsFromIP finds an IP's keys by prefix; IP addresses
// never contain "|".
func AccountIPKey(account, ip string) ThrottleKey {
	return ThrottleKey{Scope: ScopeAccountIP, Key: ip + "|" + account}
}

// ThrottleRule limits the failures of every key in one scope.
//
// A failure counts for Window after it happened: at now it counts while
// now − at < Window. The failure that brings a key's count to Limit or more
// blocks the key until that failure + Backoff(count − Limit): Base when the
// limit is reached, doubling with each failure past it (each recorded only
// after the block before it ended), never more than Max. The block is fixed
// when the failure is recorded and runs its full length even if failures
// leave the window meanwhile.
//
// A hard lock is a rule with Base = Max = the lock duration. NIST SP 800-63B
// §5.2.2 allows at most 100 consecutive failures per account, for example
//
//	ThrottleRule{Limit: 100, Window: 24 * time.Hour, Base: time.Hour, Max: time.Hour}
type ThrottleRule struct {
	Limit     int           // failures allowed within Window; the one reaching it blocks
	Window    time.Duration // sliding window
	Base, Max time.Duration // first block, and the cap of the doubling
}

// Validate reports every problem with the rule at once.
func (r ThrottleRule) Validate() error {
	var errs []error
	if r.Limit < 1 {
		errs = append(errs, errors.New("limit must be at least 1"))
	}
	if r.Window <= 0 {
		errs = append(errs, errors.New("window must be positive"))
	}
	if r.Base <= 0 {
		errs = append(errs, errors.New("base delay must be positive"))
	}
	if r.Max < r.Base {
		errs = append(errs, errors.New("max delay must be at least the base delay"))
	}
	return errors.Join(errs...)
}

// Backoff is the block after over failures past the limit: Base doubled
// over times, at most Max.
func (r ThrottleRule) Backoff(over int) time.Duration {
	d := r.Base
	for range over {
		if d > r.Max/2 {
			return r.Max // doubling again would pass Max (or overflow)
		}
		d *= 2
	}
	return min(d, r.Max)
}

// BlockedUntil is when a key stops being blocked whose newest failure, at
// newest, brought its count within the window to n; zero below the limit.
// Backends compute blocks with it, so they all agree.
func (r ThrottleRule) BlockedUntil(n int, newest time.Time) time.Time {
	if n < r.Limit {
		return time.Time{}
	}
	return newest.Add(r.Backoff(n - r.Limit))
}

// ThrottleState is one key's standing at a moment.
type ThrottleState struct {
	Failures     int       // failures within the window
	BlockedUntil time.Time // when the key may fail again; zero when it is not blocked
}

// ThrottledUntil is the latest BlockedUntil among states, zero when no key
// is blocked: when a refused request may be retried (Retry-After).
func ThrottledUntil(states map[ThrottleKey]ThrottleState) time.Time {
	var until time.Time
	for _, st := range states {
		if st.BlockedUntil.After(until) {
			until = st.BlockedUntil
		}
	}
	return until
}

// Throttle counts authentication failures in the database, so limits hold
// across restarts and instances. Failures are kept as events, so windows
// slide exactly.
//
// Methods taking rules need a valid rule for the scope of every key; a key
// without one is an error, never a pass. Duplicate keys count once.
type Throttle interface {
	// CheckThrottle reports each key's state at now and changes nothing.
	CheckThrottle(ctx context.Context, keys []ThrottleKey, rules map[string]ThrottleRule, now time.Time) (map[ThrottleKey]ThrottleState, error)
	// RecordFailure counts one failure at now against every key, or against
	// none: if any key is blocked at now it records nothing and returns the
	// states at now together with ErrThrottled. Deciding and recording are
	// one atomic step: of any number of concurrent calls on a key with room
	// for k more failures, exactly k record and the rest get ErrThrottled.
	// The call that reaches a limit succeeds; its state carries the block.
	//
	// The guarantee bounds recorded failures. A caller that records only
	// after a secret proved wrong lets requests that were already past
	// CheckThrottle verify theirs; recording first closes that gap.
	RecordFailure(ctx context.Context, keys []ThrottleKey, rules map[string]ThrottleRule, now time.Time) (map[ThrottleKey]ThrottleState, error)
	// ReleaseFailure takes back one failure that RecordFailure recorded at
	// at for each key: the attempt it reserved turned out to be right, and a
	// budget that a success must not reset (a hard lock) must not be spent
	// by it either. The states it leaves are those of the remaining
	// failures. A key without a failure at at is not an error. Releases on
	// a key are serialized with RecordFailure's decisions on it, so two
	// releases never take back more than two failures.
	ReleaseFailure(ctx context.Context, keys []ThrottleKey, at time.Time) error
	// ClearThrottle forgets every failure of the keys, ending their blocks.
	// After a successful sign-in the account+IP key is cleared (NIST SP
	// 800-63B §5.2.2: failures from that IP are then disregarded). Unknown
	// keys are not an error.
	ClearThrottle(ctx context.Context, keys []ThrottleKey) error
	// DistinctAccountsFromIP counts the accounts with a failure from ip
	// (ScopeAccountIP keys) at or after since: the credential-stuffing signal.
	DistinctAccountsFromIP(ctx context.Context, ip string, since time.Time) (int, error)
	// ReserveMember adds member to the set (scope, group) — stored as the
	// key group+"|"+member — unless the set already has limit distinct
	// members since now-window, in which case it returns ErrThrottled and
	// records nothing. A member already in the set is always accepted.
	// One transaction: concurrent calls never let the set grow past limit
	// (credential stuffing: distinct accounts per address). ClearThrottle
	// with the member's key takes it out again.
	ReserveMember(ctx context.Context, scope, group, member string, limit int, window time.Duration, now time.Time) error
	// DeleteOldThrottleRows removes the failures of scope that happened
	// before before, in batches that let other writes through, and returns
	// how many. Removing a failure a rule still looks at ends blocks early:
	// pass at most now minus the scope's rule's Window + Max (and, for
	// ScopeAccountIP, no later than the since of DistinctAccountsFromIP).
	DeleteOldThrottleRows(ctx context.Context, scope string, before time.Time) (int, error)
}

// SignIn is one completed sign-in, kept as the user's history for risk:
// which devices and networks are the user's own, and where they last were.
type SignIn struct {
	UserID   string
	At       time.Time
	IP       string
	Network  string // the IP's /24 (IPv4) or /48 (IPv6)
	DeviceID string // hash of the browser's long-lived device cookie
	// Location, when the operator configured CIDR→location data.
	HasLocation bool
	Lat, Lon    float64
	Place       string
}

// HistoryFacts is what a user's history says about a sign-in attempt.
type HistoryFacts struct {
	Any          bool   // the user has signed in before
	DeviceKnown  bool   // this device completed a sign-in for the user before
	NetworkKnown bool   // this network did
	Last         SignIn // the latest sign-in (zero when none)
}

// History stores sign-in history for the risk engine.
type History interface {
	// RecordSignIn stores s and marks its device and network as known for
	// the user (first and last seen).
	RecordSignIn(ctx context.Context, s SignIn) error
	// SignInHistory answers, in one read, what the history says about a
	// sign-in from deviceID on network.
	SignInHistory(ctx context.Context, userID, deviceID, network string) (HistoryFacts, error)
	// ForgetDevice removes one known device of a user.
	ForgetDevice(ctx context.Context, userID, deviceID string) error
	// KnownSince returns when deviceID and network first completed a
	// sign-in for the user; zero for one that never did. A caller asking
	// whether they were the user's before some moment (a passkey's trust,
	// DESIGN §3.3) compares, so a sign-in just made does not vouch for itself.
	KnownSince(ctx context.Context, userID, deviceID, network string) (device, net time.Time, err error)
	// FirstSignInAt returns when the user first completed a sign-in (the
	// earliest first sighting of any of their networks); zero if never.
	FirstSignInAt(ctx context.Context, userID string) (time.Time, error)
}

// PolicyVersion is one numbered version of the policy (levels, risk rules,
// scope minimums, the admin console's level, per-client policy): a JSON
// document (package login/policy reads it) and who made it, when and why.
// Versions are never changed; the active one is a pointer.
type PolicyVersion struct {
	Number   int64
	Document string // JSON
	// Parent is the version it was made from, the active one when it was
	// saved (0 for the first).
	Parent    int64
	Author    string // who: "user:ID", "client:ID", "config FILE", "cli"
	Reason    string
	Diff      string // what changed from Parent, for people
	CreatedAt time.Time
}

// Policies stores policy versions and the pointer to the active one.
type Policies interface {
	// CreatePolicyVersion stores v as the next number and makes it the
	// active version, in one transaction, when the active version is still
	// v.Parent (0: none); ErrConflict otherwise, so two admins editing the
	// same version cannot silently undo each other. It returns v as stored.
	CreatePolicyVersion(ctx context.Context, v PolicyVersion) (PolicyVersion, error)
	// ActivePolicyNumber is the active version's number, 0 when none is
	// stored: one small read, for every instance to poll.
	ActivePolicyNumber(ctx context.Context) (int64, error)
	// PolicyVersionByNumber returns ErrNotFound for an unknown number.
	PolicyVersionByNumber(ctx context.Context, n int64) (PolicyVersion, error)
	// ListPolicyVersions returns up to limit versions, newest first,
	// without their documents.
	ListPolicyVersions(ctx context.Context, limit int) ([]PolicyVersion, error)
}

// PasswordReset is one "forgot password" link (issue 22). ID is a hash of
// the link's token, never the token; BrowserHash a hash of the cookie set
// in the browser that asked, so the link works there only. A row whose
// UserID is "" is the decoy written for an address that matched no
// account: it does the same work and can never be used.
type PasswordReset struct {
	ID          string
	UserID      string
	BrowserHash string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	// FactorAt is when the account's second factor was proved for this
	// reset; zero until then.
	FactorAt time.Time
	UsedAt   time.Time
}

// RecoveryStatus is where a recovery request stands.
type RecoveryStatus string

// Recovery request statuses. A request starts pending; the person cancels
// it (from the notice's link), an admin approves or denies it, and once
// eligible (approved, or pending past EligibleAt) the person uses it.
const (
	RecoveryPending   RecoveryStatus = "pending"
	RecoveryCancelled RecoveryStatus = "cancelled"
	RecoveryApproved  RecoveryStatus = "approved"
	RecoveryDenied    RecoveryStatus = "denied"
	RecoveryUsed      RecoveryStatus = "used"
)

// RecoveryRequest is a person's request to replace lost second factors
// after the password, with neither a factor nor a recovery code left. It
// can be used once pending past EligibleAt (the cooling-off) or approved.
type RecoveryRequest struct {
	ID         string
	UserID     string
	CreatedAt  time.Time
	EligibleAt time.Time
	Status     RecoveryStatus
	DecidedBy  string // who moved it out of pending: the user's or an admin's ID
	Reason     string // the admin's reason, for an approval or a denial
	DecidedAt  time.Time
}

// RecoveryApprovalTTL is how long an admin's approval of a recovery
// request can be used, from its DecidedAt: long enough for the person to
// come back, short enough that an approval nobody used does not wait for
// whoever learns the password later.
const RecoveryApprovalTTL = 7 * 24 * time.Hour

// Eligible reports whether the request lets its user set up new factors at
// now: approved less than RecoveryApprovalTTL ago, or still pending once
// the cooling-off is over.
func (r RecoveryRequest) Eligible(now time.Time) bool {
	return r.approvalLive(now) || r.Status == RecoveryPending && !now.Before(r.EligibleAt)
}

// Open reports whether the request still stands at now: pending, or
// approved and not yet expired. An open request can be cancelled, and
// while one is open its user cannot file another.
func (r RecoveryRequest) Open(now time.Time) bool {
	return r.Status == RecoveryPending || r.approvalLive(now)
}

func (r RecoveryRequest) approvalLive(now time.Time) bool {
	return r.Status == RecoveryApproved && now.Before(r.DecidedAt.Add(RecoveryApprovalTTL))
}

// Recovery stores self-service account recovery (issue 22): password
// reset links and recovery requests.
type Recovery interface {
	// UsersByEmail returns the accounts whose Email is email, compared
	// without regard to ASCII case, verified or not, by username; none is
	// no error. Addresses are not unique.
	UsersByEmail(ctx context.Context, email string) ([]User, error)
	// CreatePasswordReset stores r and queues msgs in one transaction, so
	// a link is never mailed without its row nor stored with its mail
	// lost. ErrAlreadyExists when r.ID is taken.
	CreatePasswordReset(ctx context.Context, r PasswordReset, msgs []OutboxMessage) error
	// PasswordReset returns the reset id: ErrNotFound when unknown,
	// ErrReplayed when used, ErrExpired when now is after its ExpiresAt.
	PasswordReset(ctx context.Context, id string, now time.Time) (PasswordReset, error)
	// ProvePasswordReset records that the reset's second factor was proved
	// at at. ErrNotFound when unknown.
	ProvePasswordReset(ctx context.Context, id string, at time.Time) error
	// UsePasswordReset spends the reset once, with PasswordReset's errors;
	// of concurrent callers exactly one succeeds.
	UsePasswordReset(ctx context.Context, id string, now time.Time) error
	// DeleteExpiredPasswordResets removes resets that expired before now.
	DeleteExpiredPasswordResets(ctx context.Context, now time.Time) (int, error)

	// CreateRecoveryRequest stores r; ErrAlreadyExists when r.ID is taken.
	CreateRecoveryRequest(ctx context.Context, r RecoveryRequest) error
	RecoveryRequestByID(ctx context.Context, id string) (RecoveryRequest, error)
	// LatestRecoveryRequest is the user's newest request (by CreatedAt);
	// ErrNotFound when there is none.
	LatestRecoveryRequest(ctx context.Context, userID string) (RecoveryRequest, error)
	// ListRecoveryRequests lists requests in status (every status when
	// ""), newest first, at most limit.
	ListRecoveryRequests(ctx context.Context, status RecoveryStatus, limit int) ([]RecoveryRequest, error)
	// DecideRecoveryRequest moves request id from status from to status
	// to, recording by, reason and at, atomically: ErrConflict when it is
	// no longer in from (decided meanwhile), ErrNotFound when unknown.
	DecideRecoveryRequest(ctx context.Context, id string, from, to RecoveryStatus, by, reason string, at time.Time) error
}
