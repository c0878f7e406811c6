// Package throttle is the scheme behind Keystep's guessing limits (DESIGN
// §6, NIST SP 800-63B §5.2.2): the rules by scope, and how an account, a
// place and a factor are named as storage throttle keys. The sign-in pages
// count attempts against these keys; the admin operations read and clear
// them. One definition serves both, so an unlock always clears what a
// sign-in counted. No HTTP; storage does the counting.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

// Scopes beyond the storage package's own.
const (
	ScopeAccountLock = "account_lock" // Key: AccountKey + "|" + place
	ScopeFactorLock  = "factor_lock"  // Key: user ID + "|" + method
)

// NoWindow is a window or block that only a success or an admin ends. A
// hundred years keeps every time in range of the backends' int64
// nanoseconds.
const NoWindow = 100 * 365 * 24 * time.Hour

// MaxCodeFailures is how many wrong codes one auth request may see before
// it is abandoned.
const MaxCodeFailures = 5

// Limits are the throttle rules by scope.
type Limits map[string]storage.ThrottleRule

// DefaultLimits are conservative defaults.
func DefaultLimits() Limits {
	return Limits{
		storage.ScopeAccountIP:       {Limit: 5, Window: 15 * time.Minute, Base: time.Minute, Max: time.Hour},
		storage.ScopeAccount:         {Limit: 20, Window: 15 * time.Minute, Base: 10 * time.Second, Max: 5 * time.Minute},
		ScopeAccountLock:             {Limit: 100, Window: 24 * time.Hour, Base: 24 * time.Hour, Max: 24 * time.Hour},
		storage.ScopeIP:              {Limit: 100, Window: 5 * time.Minute, Base: time.Minute, Max: 15 * time.Minute},
		storage.ScopeFactorAccount:   {Limit: 10, Window: 15 * time.Minute, Base: time.Minute, Max: time.Hour},
		storage.ScopeFactorChallenge: {Limit: MaxCodeFailures, Window: time.Hour, Base: time.Hour, Max: time.Hour},
		ScopeFactorLock:              {Limit: 100, Window: NoWindow, Base: NoWindow, Max: NoWindow},
	}
}

// Validate reports every bad rule at once.
func (l Limits) Validate() error {
	var errs []error
	for scope, r := range l {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", scope, err))
		}
	}
	for _, scope := range []string{storage.ScopeAccountIP, storage.ScopeAccount, ScopeAccountLock, storage.ScopeIP, storage.ScopeFactorAccount, storage.ScopeFactorChallenge, ScopeFactorLock} {
		if _, ok := l[scope]; !ok {
			errs = append(errs, fmt.Errorf("missing rule %q", scope))
		}
	}
	return errors.Join(errs...)
}

// AccountKey names an account for throttling by what was typed, so unknown
// usernames are throttled exactly like real ones (no enumeration).
func AccountKey(username string) string { return "u:" + strings.ToLower(username) }

// Places a password attempt comes from, each with its own per-account
// budgets (ScopeAccount and ScopeAccountLock).
const (
	PlaceDevice  = "device"  // this browser completed a sign-in for the account
	PlaceNetwork = "network" // this network (/24, /48) did
	PlaceOther   = "other"   // neither; every attempt on an unknown username
)

var places = []string{PlaceDevice, PlaceNetwork, PlaceOther}

// AccountLockKey is the account's hard-lock budget for a place.
func AccountLockKey(username, place string) storage.ThrottleKey {
	return storage.ThrottleKey{Scope: ScopeAccountLock, Key: AccountKey(username) + "|" + place}
}

// AccountKeys are the account's counters in scope in every place.
func AccountKeys(scope, username string) []storage.ThrottleKey {
	a := AccountKey(username)
	keys := make([]storage.ThrottleKey, len(places))
	for i, p := range places {
		keys[i] = storage.ThrottleKey{Scope: scope, Key: a + "|" + p}
	}
	return keys
}

// Addr is the address as the limits count it: an IPv4 address, or the /64
// of an IPv6 one (one subscriber's block), so rotating through a prefix
// does not buy fresh limits.
func Addr(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// Guessable are the second factors whose codes can be guessed, each with a
// lock of its own.
var Guessable = []stepup.Method{stepup.TOTP, stepup.Recovery}

// FactorLockKey is the lock of one of the user's guessable factors.
func FactorLockKey(userID string, m stepup.Method) storage.ThrottleKey {
	return storage.ThrottleKey{Scope: ScopeFactorLock, Key: userID + "|" + string(m)}
}

// LockedFactors reports which of the user's guessable factors are locked.
func LockedFactors(ctx context.Context, st storage.Throttle, l Limits, userID string, now time.Time) (map[stepup.Method]bool, error) {
	keys := make([]storage.ThrottleKey, len(Guessable))
	for i, m := range Guessable {
		keys[i] = FactorLockKey(userID, m)
	}
	states, err := st.CheckThrottle(ctx, keys, l, now)
	if err != nil {
		return nil, err
	}
	locked := map[stepup.Method]bool{}
	for i, m := range Guessable {
		if !states[keys[i]].BlockedUntil.IsZero() {
			locked[m] = true
		}
	}
	return locked, nil
}

// LockKeys are the counters an admin's unlock clears: the account's
// password budgets in every place, its second-factor counter and the locks
// of its factors (the per-account+IP counters of other addresses expire by
// themselves).
func LockKeys(username, userID string) []storage.ThrottleKey {
	keys := append(AccountKeys(storage.ScopeAccount, username), AccountKeys(ScopeAccountLock, username)...)
	keys = append(keys, storage.ThrottleKey{Scope: storage.ScopeFactorAccount, Key: userID})
	for _, m := range Guessable {
		keys = append(keys, FactorLockKey(userID, m))
	}
	return keys
}

// Unlock clears an account's password and factor counters and locks (the
// admin's `keystep users unlock` and the console's Unlock button).
func Unlock(ctx context.Context, st storage.Throttle, username, userID string) error {
	return st.ClearThrottle(ctx, LockKeys(username, userID))
}
