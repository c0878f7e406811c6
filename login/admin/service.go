// Package admin is Keystep's admin operations as plain Go, without HTTP:
// clients, users, keys, passkey confirmation and policy checks. The CLI
// (`keystep users`, `keystep clients`, `keystep apply`, ...) and the admin
// console in package login both call them, so a change is checked and
// audited the same way whoever makes it. It never imports package login.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// Service makes the changes of the admin console, the CLI and `keystep
// apply`, so all three check and record them the same way. Each change is
// checked, then audited with who made it and the object before and after
// (never a secret), then made: the audit row comes first, so a change whose
// audit write fails does not happen (DESIGN §6). A change that fails after
// its audit row is recorded again with outcome "failure".
type Service struct {
	Store storage.Store
	// Policies is the policy in force: the levels and authorization
	// details types clients are checked against, and where saved policy
	// versions take effect.
	Policies *policy.Live
	Audit    *web.Auditor
	Hasher   *factor.PasswordHasher
	Limits   throttle.Limits // nil: throttle.DefaultLimits
	// BuiltIn is the account portal's client: it cannot be changed here.
	BuiltIn string
	// RotateKeys makes new signing keys; nil when keys cannot be rotated.
	RotateKeys func(ctx context.Context, activateIn time.Duration) ([]storage.SigningKey, error)
	// RecoveryApproved tells the owner of req that an admin approved it
	// and it can be used now (DecideRecovery); nil refuses approvals.
	RecoveryApproved func(ctx context.Context, req storage.RecoveryRequest) error
}

// Actor is who makes a change, and why.
type Actor struct {
	ID     string // the admin's user ID, or "cli"
	Reason string
}

// Errors callers tell apart.
var (
	ErrBuiltInClient = errors.New("the account portal's client is built in and cannot be changed or deleted")
	ErrNeedsReason   = errors.New("a reason is required")
	// ErrBadReason is a reason longer than MaxReason characters or
	// holding control characters (it is wrapped with which).
	ErrBadReason = errors.New("the reason is not acceptable")
	ErrNoSecret  = errors.New("this client does not authenticate with a secret")
)

// MaxReason is the most characters a change's reason may have.
const MaxReason = 500

// CheckReason is the one rule for the reason of a change, whoever makes
// it (console, CLI, admin API): it comes back trimmed of surrounding
// space; a blank one is ErrNeedsReason when required; one longer than
// MaxReason characters or holding a control character (a newline, an
// escape: it is printed in terminals and logs) is ErrBadReason.
func CheckReason(reason string, required bool) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "" && required:
		return "", ErrNeedsReason
	case !utf8.ValidString(reason):
		return "", fmt.Errorf("%w: it is not valid UTF-8", ErrBadReason)
	case utf8.RuneCountInString(reason) > MaxReason:
		return "", fmt.Errorf("%w: it is longer than %d characters", ErrBadReason, MaxReason)
	case strings.IndexFunc(reason, unicode.IsControl) >= 0:
		return "", fmt.Errorf("%w: it holds control characters (a newline, a tab, an escape)", ErrBadReason)
	}
	return reason, nil
}

// checked is by with its reason checked by CheckReason.
func (by Actor) checked(required bool) (Actor, error) {
	r, err := CheckReason(by.Reason, required)
	by.Reason = r
	return by, err
}

// record audits a change before it is made; a reason CheckReason refuses
// refuses the change.
func (a *Service) record(ctx context.Context, by Actor, typ storage.EventType, userID, clientID string, details map[string]string) error {
	by, err := by.checked(false)
	if err != nil {
		return err
	}
	return a.Audit.Record(ctx, storage.AuditEvent{Type: typ, UserID: userID, ClientID: clientID, ActorID: by.ID,
		Outcome: "success", Reason: by.Reason, Details: details})
}

// failed records that a change audited as made did not happen after all.
func (a *Service) failed(ctx context.Context, by Actor, typ storage.EventType, userID, clientID string, cause error) error {
	_ = a.Audit.Record(ctx, storage.AuditEvent{Type: typ, UserID: userID, ClientID: clientID, ActorID: by.ID,
		Outcome: "failure", Reason: "not applied: storage error"})
	return cause
}

func beforeAfter(before, after any) map[string]string {
	d := map[string]string{}
	if s := snapshot(before); s != "" && s != "null" {
		d["before"] = s
	}
	if s := snapshot(after); s != "" && s != "null" {
		d["after"] = s
	}
	return d
}

// ---- clients ----

// ValidateClient reports every problem with s: ValidateClient against the
// levels, and RegisteredDetailsTypes against the details policy when the
// service knows it. The console shows the same problems a save would
// report.
func (a *Service) ValidateClient(s ClientSpec) []Problem {
	p := a.Policies.Current()
	return append(ValidateClient(s, p.Levels, a.BuiltIn), RegisteredDetailsTypes(s, p.Details)...)
}

// clientRecord is a client as audited: its spec and whether it has a secret.
type clientRecord struct {
	ClientSpec
	HasSecret bool `json:"has_secret,omitempty"`
}

func newSecret() (plain, hash string, err error) {
	plain, err = factor.NewToken()
	if err != nil {
		return "", "", err
	}
	return plain, factor.HashToken(plain), nil
}

// CreateClient registers s. A client that authenticates with a secret gets
// a new one, returned here once and stored hashed.
func (a *Service) CreateClient(ctx context.Context, by Actor, s ClientSpec, now time.Time) (secret string, err error) {
	s = s.Normalize()
	if ps := a.ValidateClient(s); len(ps) > 0 {
		return "", &InvalidError{Problems: ps}
	}
	if _, err := a.Store.ClientByID(ctx, s.ID); err == nil {
		return "", fmt.Errorf("client %q: %w", s.ID, storage.ErrAlreadyExists)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	c := s.Client()
	c.CreatedAt, c.UpdatedAt = now, now
	if s.UsesSecret() {
		if secret, c.SecretHash, err = newSecret(); err != nil {
			return "", err
		}
	}
	if err := a.record(ctx, by, storage.EventAdminClientCreated, "", s.ID, beforeAfter(nil, clientRecord{s, c.SecretHash != ""})); err != nil {
		return "", err
	}
	if err := a.Store.CreateClient(ctx, c); err != nil {
		return "", a.failed(ctx, by, storage.EventAdminClientCreated, "", s.ID, err)
	}
	return secret, nil
}

// UpdateClient replaces the settings of the client s.ID. It returns the
// changes (none: nothing is written or audited) and, when the client newly
// needs a secret, that secret, shown once. A client that no longer uses a
// secret loses its old one.
func (a *Service) UpdateClient(ctx context.Context, by Actor, s ClientSpec, now time.Time) (changes []string, secret string, err error) {
	s = s.Normalize()
	if a.BuiltIn != "" && s.ID == a.BuiltIn {
		return nil, "", ErrBuiltInClient
	}
	if ps := a.ValidateClient(s); len(ps) > 0 {
		return nil, "", &InvalidError{Problems: ps}
	}
	old, err := a.Store.ClientByID(ctx, s.ID)
	if err != nil {
		return nil, "", fmt.Errorf("client %q: %w", s.ID, err)
	}
	before := SpecOf(old)
	changes = DiffClients(before, s)
	c := s.Client()
	c.CreatedAt, c.UpdatedAt, c.SecretHash = old.CreatedAt, now, old.SecretHash
	switch {
	case !s.UsesSecret():
		c.SecretHash = ""
	case old.SecretHash == "":
		if secret, c.SecretHash, err = newSecret(); err != nil {
			return nil, "", err
		}
		changes = append(changes, "secret: new secret issued")
	}
	if c.SecretHash == "" && old.SecretHash != "" {
		changes = append(changes, "secret: removed")
	}
	if len(changes) == 0 {
		return nil, "", nil
	}
	d := beforeAfter(clientRecord{before, old.SecretHash != ""}, clientRecord{s, c.SecretHash != ""})
	d["changes"] = fmt.Sprint(len(changes))
	if err := a.record(ctx, by, storage.EventAdminClientUpdated, "", s.ID, d); err != nil {
		return nil, "", err
	}
	if err := a.Store.UpdateClient(ctx, c); err != nil {
		return nil, "", a.failed(ctx, by, storage.EventAdminClientUpdated, "", s.ID, err)
	}
	return changes, secret, nil
}

// RotateClientSecret replaces the client's secret; the old one stops working
// at once. The new secret is returned once.
func (a *Service) RotateClientSecret(ctx context.Context, by Actor, id string, now time.Time) (string, error) {
	if a.BuiltIn != "" && id == a.BuiltIn {
		return "", ErrBuiltInClient
	}
	c, err := a.Store.ClientByID(ctx, id)
	if err != nil {
		return "", fmt.Errorf("client %q: %w", id, err)
	}
	s := SpecOf(c)
	if !s.UsesSecret() {
		return "", ErrNoSecret
	}
	secret, hash, err := newSecret()
	if err != nil {
		return "", err
	}
	d := beforeAfter(clientRecord{s, c.SecretHash != ""}, clientRecord{s, true})
	d["secret"] = "rotated"
	if err := a.record(ctx, by, storage.EventAdminClientSecretRotated, "", id, d); err != nil {
		return "", err
	}
	c.SecretHash, c.UpdatedAt = hash, now
	if err := a.Store.UpdateClient(ctx, c); err != nil {
		return "", a.failed(ctx, by, storage.EventAdminClientSecretRotated, "", id, err)
	}
	return secret, nil
}

// DeleteClient removes the client after revoking every token issued to it
// and dropping the consents users gave it, so a client later created with
// the same ID starts from nothing. A failure before the delete leaves the
// client in place for a retry.
func (a *Service) DeleteClient(ctx context.Context, by Actor, id string) error {
	if a.BuiltIn != "" && id == a.BuiltIn {
		return ErrBuiltInClient
	}
	c, err := a.Store.ClientByID(ctx, id)
	if err != nil {
		return fmt.Errorf("client %q: %w", id, err)
	}
	if err := a.record(ctx, by, storage.EventAdminClientDeleted, "", id, beforeAfter(clientRecord{SpecOf(c), c.SecretHash != ""}, nil)); err != nil {
		return err
	}
	if err := forgetClient(ctx, a.Store, id); err != nil {
		return a.failed(ctx, by, storage.EventAdminClientDeleted, "", id, err)
	}
	if err := a.Store.DeleteClient(ctx, id); err != nil {
		return a.failed(ctx, by, storage.EventAdminClientDeleted, "", id, err)
	}
	return nil
}

// forgetClient revokes the client's tokens, per subject ("" is the subject
// of client_credentials tokens), and the consents users gave it.
func forgetClient(ctx context.Context, st storage.Store, id string) error {
	list, err := st.ListUsers(ctx)
	if err != nil {
		return err
	}
	if err := st.RevokeUserClientTokens(ctx, "", id); err != nil {
		return err
	}
	for _, u := range list {
		if err := st.RevokeUserClientTokens(ctx, u.ID, id); err != nil {
			return err
		}
		if err := st.DeleteConsent(ctx, u.ID, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// ---- users ----

// userRecord is a user as audited.
type userRecord struct {
	Username string `json:"username"`
	Email    string `json:"email,omitempty"`
	// EmailVerified: the admin vouched for the address (an address set
	// by an admin is otherwise unverified).
	EmailVerified bool `json:"email_verified,omitempty"`
	Admin         bool `json:"admin,omitempty"`
	Disabled      bool `json:"disabled,omitempty"`
}

func recordOf(u storage.User) userRecord {
	return userRecord{Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Admin: u.Admin, Disabled: u.Disabled}
}

// NewUser is a user the console or the CLI creates.
type NewUser struct {
	Username, Email, Password string
	// EmailVerified says the admin vouches for Email (`keystep users
	// create --email-verified`); else it stays unverified until its
	// owner confirms it in the portal.
	EmailVerified bool
	Admin         bool
}

// Validate reports every problem with n at once.
func (n NewUser) Validate() []Problem {
	var out []Problem
	// ValidateUsername's and ValidatePassword's errors are messages (keys)
	// as they are: marked with i18n.N in ValidateUsername, and where the
	// portal shows the password's (passwordProblem).
	if err := ValidateUsername(n.Username); err != nil {
		out = append(out, NewProblem("username", err.Error()))
	}
	if n.Email != "" {
		if m, err := mail.ParseAddress(n.Email); err != nil || m.Address != n.Email {
			out = append(out, NewProblem("email", "%q is not an email address.", n.Email))
		}
	} else if n.EmailVerified {
		out = append(out, NewProblem("email_verified", "There is no email address to vouch for."))
	}
	if err := factor.ValidatePassword(n.Password); err != nil {
		out = append(out, NewProblem("password", err.Error()))
	}
	return out
}

// NewUserID makes a user ID: 128 random bits, base64url.
func NewUserID() (string, error) {
	t, err := factor.NewToken()
	if err != nil {
		return "", err
	}
	return t[:22], nil
}

// ValidateUsername accepts 1–64 characters without spaces, control
// characters or ':' (the authenticator-app label uses it as a separator).
func ValidateUsername(s string) error {
	if s == "" {
		return errors.New(i18n.N("Enter a username."))
	}
	if len(s) > 64 {
		return errors.New(i18n.N("Usernames can be at most 64 characters."))
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == ':' {
			return errors.New(i18n.N("Usernames can't contain spaces, control characters or ':'."))
		}
	}
	return nil
}

// CreateUser creates an account with a password.
func (a *Service) CreateUser(ctx context.Context, by Actor, n NewUser, now time.Time) (storage.User, error) {
	if ps := n.Validate(); len(ps) > 0 {
		return storage.User{}, &InvalidError{Problems: ps}
	}
	if _, err := a.Store.UserByUsername(ctx, n.Username); err == nil {
		return storage.User{}, fmt.Errorf("user %q: %w", n.Username, storage.ErrAlreadyExists)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, err
	}
	hash, err := a.Hasher.Hash(n.Password)
	if err != nil {
		return storage.User{}, err
	}
	id, err := NewUserID()
	if err != nil {
		return storage.User{}, err
	}
	u := storage.User{ID: id, Username: n.Username, Email: n.Email, PasswordHash: hash, Admin: n.Admin, CreatedAt: now, UpdatedAt: now}
	if n.Email != "" && n.EmailVerified {
		u.EmailVerified, u.EmailVerifiedAt = true, now
	}
	if err := a.record(ctx, by, storage.EventAdminUserCreated, id, "", beforeAfter(nil, recordOf(u))); err != nil {
		return storage.User{}, err
	}
	if err := a.Store.CreateUser(ctx, u); err != nil {
		return storage.User{}, a.failed(ctx, by, storage.EventAdminUserCreated, id, "", err)
	}
	return u, nil
}

// SetDisabled disables or enables the user. Disabling also ends every
// session and revokes every token the user's apps hold.
func (a *Service) SetDisabled(ctx context.Context, by Actor, userID string, disabled bool, now time.Time) (storage.User, error) {
	u, err := a.Store.UserByID(ctx, userID)
	if err != nil {
		return u, err
	}
	typ := storage.EventAdminUserEnable
	if disabled {
		typ = storage.EventAdminUserDisable
	}
	after := u
	after.Disabled, after.UpdatedAt = disabled, now
	if err := a.record(ctx, by, typ, u.ID, "", beforeAfter(recordOf(u), recordOf(after))); err != nil {
		return u, err
	}
	if err := a.Store.UpdateUser(ctx, after); err != nil {
		return u, a.failed(ctx, by, typ, u.ID, "", err)
	}
	if u.Disabled != disabled {
		// RISC account-disabled or account-enabled to the streams.
		if err := Signal(ctx, a.Store, now, AccountStatus(u.ID, disabled)); err != nil {
			return after, err
		}
	}
	if disabled {
		if _, err := EndAccess(ctx, a.Store, a.Audit, by.ID, u.ID, "", "account disabled"); err != nil {
			return after, a.failed(ctx, by, typ, u.ID, "", err)
		}
	}
	return after, nil
}

// Lock is where an account stands with the throttles an admin can clear.
type Lock struct {
	Failures     int       `json:"failures"`
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
	// LockedFactors are the second factors locked after 100 wrong codes
	// ("totp", "recovery") until the owner proves another or an admin
	// unlocks.
	LockedFactors []string `json:"locked_factors,omitempty"`
}

// LockState reads the account's password and factor throttles.
func (a *Service) LockState(ctx context.Context, u storage.User, now time.Time) (Lock, error) {
	limits := a.Limits
	if limits == nil {
		limits = throttle.DefaultLimits()
	}
	keys := throttle.LockKeys(u.Username, u.ID)
	states, err := a.Store.CheckThrottle(ctx, keys, limits, now)
	if err != nil {
		return Lock{}, err
	}
	var l Lock
	for _, k := range keys {
		l.Failures = max(l.Failures, states[k].Failures)
		if k.Scope != throttle.ScopeFactorLock && states[k].BlockedUntil.After(l.BlockedUntil) {
			l.BlockedUntil = states[k].BlockedUntil
		}
	}
	for _, m := range throttle.Guessable { // locked until unlocked, not until a time
		if !states[throttle.FactorLockKey(u.ID, m)].BlockedUntil.IsZero() {
			l.LockedFactors = append(l.LockedFactors, string(m))
		}
	}
	return l, nil
}

// Unlock clears the account's password and factor throttles (the
// per-account+IP counters of other addresses expire by themselves).
func (a *Service) Unlock(ctx context.Context, by Actor, userID string, now time.Time) error {
	u, err := a.Store.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	before, err := a.LockState(ctx, u, now)
	if err != nil {
		return err
	}
	if err := a.record(ctx, by, storage.EventAdminUserUnlock, u.ID, "", beforeAfter(before, Lock{})); err != nil {
		return err
	}
	if err := throttle.Unlock(ctx, a.Store, u.Username, u.ID); err != nil {
		return a.failed(ctx, by, storage.EventAdminUserUnlock, u.ID, "", err)
	}
	return nil
}

// factorsRecord is a user's second factors as audited: names, never secrets.
type factorsRecord struct {
	Factors       []string `json:"factors"`
	RecoveryCodes int      `json:"recovery_codes"`
	Sessions      int      `json:"sessions"`
}

func (a *Service) factorsRecord(ctx context.Context, userID string, now time.Time) (factorsRecord, error) {
	fs, err := a.Store.ListFactors(ctx, userID)
	if err != nil {
		return factorsRecord{}, err
	}
	n, err := a.Store.CountRecoveryCodes(ctx, userID)
	if err != nil {
		return factorsRecord{}, err
	}
	ss, err := a.Store.ListUserSessions(ctx, userID, now)
	if err != nil {
		return factorsRecord{}, err
	}
	r := factorsRecord{Factors: []string{}, RecoveryCodes: n, Sessions: len(ss)}
	for _, f := range fs {
		r.Factors = append(r.Factors, string(f.Kind)+": "+f.Name)
	}
	slices.Sort(r.Factors)
	return r, nil
}

// ResetFactors removes every second factor and recovery code of the user
// and ends their sessions and tokens, for a user who lost them (or whose
// factors an attacker may hold). It needs a reason.
func (a *Service) ResetFactors(ctx context.Context, by Actor, userID string, now time.Time) error {
	by, err := by.checked(true)
	if err != nil {
		return err
	}
	u, err := a.Store.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	before, err := a.factorsRecord(ctx, u.ID, now)
	if err != nil {
		return err
	}
	if err := a.record(ctx, by, storage.EventAdminUserResetFactors, u.ID, "", beforeAfter(before, factorsRecord{Factors: []string{}})); err != nil {
		return err
	}
	factors, err := a.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return err
	}
	if err := a.Store.DeleteUserFactors(ctx, u.ID); err != nil {
		return a.failed(ctx, by, storage.EventAdminUserResetFactors, u.ID, "", err)
	}
	var evs []storage.SecurityEvent
	for _, f := range factors {
		evs = append(evs, CredentialChange(u.ID, CredentialType(f.Kind), ChangeDelete, f.Name))
	}
	if err := Signal(ctx, a.Store, now, evs...); err != nil {
		return err
	}
	if _, err := EndAccess(ctx, a.Store, a.Audit, by.ID, u.ID, "", "factors reset"); err != nil {
		return a.failed(ctx, by, storage.EventAdminUserResetFactors, u.ID, "", err)
	}
	return nil
}

// SignOut ends every session of the user and revokes the tokens their apps
// hold. keep is a session to leave alone ("" for none).
func (a *Service) SignOut(ctx context.Context, by Actor, userID, keep string, now time.Time) (int, error) {
	u, err := a.Store.UserByID(ctx, userID)
	if err != nil {
		return 0, err
	}
	ss, err := a.Store.ListUserSessions(ctx, u.ID, now)
	if err != nil {
		return 0, err
	}
	left := 0
	if keep != "" && slices.ContainsFunc(ss, func(s storage.Session) bool { return s.ID == keep }) {
		left = 1
	}
	d := beforeAfter(map[string]int{"sessions": len(ss)}, map[string]int{"sessions": left})
	if err := a.record(ctx, by, storage.EventAdminUserSignout, u.ID, "", d); err != nil {
		return 0, err
	}
	n, err := EndAccess(ctx, a.Store, a.Audit, by.ID, u.ID, keep, "signed out everywhere")
	if err != nil {
		return n, a.failed(ctx, by, storage.EventAdminUserSignout, u.ID, "", err)
	}
	return n, nil
}

// ---- keys ----

// keyRecord is a signing key as audited: its ID and algorithm, never the key.
type keyRecord struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
}

// RotateSigningKeys makes a new key per algorithm, signing from activateIn
// from now; the old keys stay published for a day after that.
func (a *Service) RotateSigningKeys(ctx context.Context, by Actor, activateIn time.Duration, now time.Time) ([]storage.SigningKey, error) {
	if a.RotateKeys == nil {
		return nil, errors.New("key rotation is not available here")
	}
	if activateIn < 0 {
		return nil, fmt.Errorf("activation delay %s is negative", activateIn)
	}
	keys, err := a.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	var before []keyRecord
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			before = append(before, keyRecord{k.ID, k.Algorithm})
		}
	}
	added, err := a.RotateKeys(ctx, activateIn)
	if err != nil {
		return nil, err
	}
	var after []keyRecord
	for _, k := range added {
		after = append(after, keyRecord{k.ID, k.Algorithm})
	}
	// Unlike the other changes this row follows the change: the new key IDs
	// only exist once the rotation made them, and a rotation only adds keys
	// (the old ones keep verifying), so it weakens nothing if the row fails.
	d := beforeAfter(before, after)
	d["signing_from"] = now.Add(activateIn).UTC().Format(time.RFC3339)
	if err := a.record(ctx, by, storage.EventAdminKeysRotated, "", "", d); err != nil {
		return added, err
	}
	return added, nil
}
