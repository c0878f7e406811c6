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

	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// User is an account that can sign in.
type User struct {
	ID           string
	Username     string // unique, compared case-sensitively after the caller normalises it
	Email        string
	PasswordHash string // argon2id PHC string; empty when the user has no password
	Admin        bool
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
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
	// (username, email, password hash, admin, disabled, updated at).
	UpdateUser(ctx context.Context, u User) error
}

// Client is a registered relying party.
type Client struct {
	ID                      string
	Name                    string
	SecretHash              string // empty for public and private_key_jwt clients
	RedirectURIs            []string
	PostLogoutRedirectURIs  []string
	Public                  bool   // a public client authenticates with "none" and must use PKCE
	Native                  bool   // native app: RFC 8252 loopback port exception applies
	AuthMethod              string // client_secret_basic | client_secret_post | private_key_jwt | none
	GrantTypes              []string
	IDTokenAlg              string // RS256 (default), ES256 or EdDSA
	AccessTokenFormat       string // "jwt" (default) or "opaque"
	JWKS                    string // public keys for private_key_jwt, a JSON Web Key Set
	MinACR                  string // the client's floor; empty for none
	Strict                  bool   // RFC 9470 §5: requested acr values are treated as essential
	FirstParty              bool   // skips the consent page
	RequirePKCE             bool
	AllowEnrollDuringStepUp bool // offer "set one up now" to users with no second factor
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// Clients stores relying parties.
type Clients interface {
	// CreateClient inserts c; ErrAlreadyExists when the ID is taken.
	CreateClient(ctx context.Context, c Client) error
	ClientByID(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	UpdateClient(ctx context.Context, c Client) error
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
	MaxAge              *int64 // seconds; nil when absent
	ACRValues           []string
	Claims              string // the raw `claims` parameter (JSON), validated at /authorize
	LoginHint           string
	IDTokenHintSubject  string
	UILocales           []string
	BrowserBinding      string // hash of the cookie of the browser that started it
	CreatedAt           time.Time
	ExpiresAt           time.Time

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
}

// FactorEvent is one factor completed in a browser session.
type FactorEvent struct {
	Method       string    // "pwd", "totp", "recovery", "webauthn"
	At           time.Time // when it was completed
	CredentialID string    // the factor or WebAuthn credential used, if any
	UserVerified bool      // WebAuthn UV flag
	DeviceBound  bool      // WebAuthn credential not backup-eligible
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
}

// AccessToken is an issued access token (JWT or opaque). ID is the jti.
type AccessToken struct {
	ID        string
	Grant     Grant
	RefreshID string // the refresh token issued with it, if any
	CreatedAt time.Time
	ExpiresAt time.Time
	Revoked   bool
}

// RefreshToken is an issued refresh token. ID is the hash of the token value.
// Tokens rotated from one another share a FamilyID.
type RefreshToken struct {
	ID        string
	FamilyID  string
	Grant     Grant
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // set when rotated; zero while current
	Revoked   bool
}

// Tokens stores access and refresh tokens.
type Tokens interface {
	CreateAccessToken(ctx context.Context, t AccessToken) error
	// AccessTokenByID returns ErrNotFound when unknown or revoked and
	// ErrExpired when past ExpiresAt at now.
	AccessTokenByID(ctx context.Context, id string, now time.Time) (AccessToken, error)
	// CreateRefreshToken stores a new token (the head of a new family, or a
	// token made by RotateRefreshToken).
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RefreshTokenByID returns the token unless it is unknown or revoked
	// (ErrNotFound), expired (ErrExpired) or already rotated (ErrReplayed; the
	// family is not touched by this read).
	RefreshTokenByID(ctx context.Context, id string, now time.Time) (RefreshToken, error)
	// RotateRefreshToken marks oldID used and stores next in its family, in
	// one transaction. Exactly one of several concurrent rotations of oldID
	// succeeds. Presenting an already-rotated token revokes its whole family
	// and every access token issued from it, and returns ErrReplayed
	// (OAuth 2.0 Security BCP §4.14.2).
	RotateRefreshToken(ctx context.Context, oldID string, next RefreshToken, now time.Time) error
	// RevokeAccessToken revokes one access token; unknown IDs are not an error
	// (RFC 7009 §2.2).
	RevokeAccessToken(ctx context.Context, id string) error
	// RevokeRefreshFamily revokes the family of the refresh token id and the
	// access tokens issued from it; unknown IDs are not an error.
	RevokeRefreshFamily(ctx context.Context, id string) error
	// RevokeGrant revokes every token issued under the auth request grantID.
	RevokeGrant(ctx context.Context, grantID string) error
	// RevokeUserClientTokens revokes the tokens of subject at clientID
	// (all clients when clientID is empty).
	RevokeUserClientTokens(ctx context.Context, subject, clientID string) error
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
	Kind       string // "totp" or "webauthn"
	Name       string // user-chosen label
	Secret     []byte // TOTP: sealed seed; WebAuthn: the credential record (JSON)
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// Factors stores second factors, used TOTP steps and recovery codes.
type Factors interface {
	CreateFactor(ctx context.Context, f Factor) error
	ListFactors(ctx context.Context, userID string) ([]Factor, error)
	FactorByID(ctx context.Context, id string) (Factor, error)
	// UpdateFactor replaces the name, secret and last-used time of f.ID.
	UpdateFactor(ctx context.Context, f Factor) error
	DeleteFactor(ctx context.Context, userID, id string) error
	// DeleteUserFactors removes every factor and recovery code of the user.
	DeleteUserFactors(ctx context.Context, userID string) error
	// UseTOTPStep records that the user spent the time step; a second use of
	// the same step gives ErrReplayed, also under concurrency
	// (NIST SP 800-63B §5.1.4.2).
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
