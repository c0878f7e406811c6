package login

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/storage"
)

// Throttling (DESIGN §6, NIST SP 800-63B §5.2.2). Every guess is recorded
// before it is checked, in one atomic storage call that refuses once a limit
// is reached, so parallel requests cannot get more guesses than the limit.
// A success then clears the account and account+IP counters (failures must
// be consecutive to count against an account). Per-account limits only slow
// down; the hard lock needs 100 failures, so an attacker cannot cheaply lock
// a user out everywhere — the tight limit is per account+IP.

// Scopes beyond the storage package's own.
const scopeAccountLock = "account_lock"

// Limits are the throttle rules by scope.
type Limits map[string]storage.ThrottleRule

// DefaultLimits are conservative defaults.
func DefaultLimits() Limits {
	return Limits{
		storage.ScopeAccountIP:       {Limit: 5, Window: 15 * time.Minute, Base: time.Minute, Max: time.Hour},
		storage.ScopeAccount:         {Limit: 20, Window: 15 * time.Minute, Base: 10 * time.Second, Max: 5 * time.Minute},
		scopeAccountLock:             {Limit: 100, Window: 24 * time.Hour, Base: 24 * time.Hour, Max: 24 * time.Hour},
		storage.ScopeIP:              {Limit: 100, Window: 5 * time.Minute, Base: time.Minute, Max: 15 * time.Minute},
		storage.ScopeFactorAccount:   {Limit: 10, Window: 15 * time.Minute, Base: time.Minute, Max: time.Hour},
		storage.ScopeFactorChallenge: {Limit: maxCodeFailures, Window: time.Hour, Base: time.Hour, Max: time.Hour},
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
	for _, scope := range []string{storage.ScopeAccountIP, storage.ScopeAccount, scopeAccountLock, storage.ScopeIP, storage.ScopeFactorAccount, storage.ScopeFactorChallenge} {
		if _, ok := l[scope]; !ok {
			errs = append(errs, fmt.Errorf("missing rule %q", scope))
		}
	}
	return errors.Join(errs...)
}

func (l Limits) rules() map[string]storage.ThrottleRule { return l }

// accountKey names an account for throttling by what was typed, so unknown
// usernames are throttled exactly like real ones (no enumeration).
func accountKey(username string) string { return "u:" + strings.ToLower(username) }

// passwordKeys are reserved before a password is checked. The per-IP
// counter is not among them: a success could not take its reservation back,
// and shared addresses (offices, carrier NAT) would pile up "failures" from
// good sign-ins. It is checked before and counted after a real failure.
func passwordKeys(username, ip string) []storage.ThrottleKey {
	a := accountKey(username)
	return []storage.ThrottleKey{
		{Scope: storage.ScopeAccount, Key: a},
		{Scope: scopeAccountLock, Key: a},
		storage.AccountIPKey(a, throttleAddr(ip)),
	}
}

func ipKey(ip string) []storage.ThrottleKey {
	return []storage.ThrottleKey{{Scope: storage.ScopeIP, Key: ip}}
}

// ipBlocked reports whether the address is blocked, and until when.
func (h *Handler) ipBlocked(ctx context.Context, ip string) (time.Time, error) {
	states, err := h.cfg.Store.CheckThrottle(ctx, ipKey(ip), h.cfg.Limits.rules(), h.cfg.Now())
	if err != nil {
		return time.Time{}, err
	}
	if until := storage.ThrottledUntil(states); until.After(h.cfg.Now()) {
		return until, nil
	}
	return time.Time{}, nil
}

// scopeIPAccounts holds, per address, the accounts tried from it.
const scopeIPAccounts = "ip_accounts"

// stuffing reserves this account's place among the accounts tried from
// the address in the last hour, before the password is checked, in one
// atomic storage call: credential stuffing and password spraying try one
// password per account, so per-account limits never fire, and parallel
// requests cannot get more accounts checked than the limit. It reports
// whether the address is over the limit. A success takes the account's
// place back (settleStuffing), so many people signing in from one office
// do not fill it.
func (h *Handler) stuffing(ctx context.Context, ip, username string) (bool, error) {
	if h.cfg.StuffingLimit <= 0 {
		return false, nil
	}
	err := h.cfg.Store.ReserveMember(ctx, scopeIPAccounts, throttleAddr(ip), accountKey(username), h.cfg.StuffingLimit, time.Hour, h.cfg.Now())
	if errors.Is(err, storage.ErrThrottled) {
		return true, nil
	}
	return false, err
}

func (h *Handler) settleStuffing(ctx context.Context, ip, username string) error {
	return h.cfg.Store.ClearThrottle(ctx, []storage.ThrottleKey{{Scope: scopeIPAccounts, Key: throttleAddr(ip) + "|" + accountKey(username)}})
}

// throttleAddr is the address as the limits count it: an IPv4 address, or
// the /64 of an IPv6 one (one subscriber's block), so rotating through a
// prefix does not buy fresh limits.
func throttleAddr(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// countIPFailure adds a failure to the address; reaching the limit there
// is fine (the address is then blocked).
func (h *Handler) countIPFailure(ctx context.Context, ip string) error {
	_, err := h.cfg.Store.RecordFailure(ctx, ipKey(ip), h.cfg.Limits.rules(), h.cfg.Now())
	if errors.Is(err, storage.ErrThrottled) {
		return nil
	}
	return err
}

func factorKeys(userID, requestID string) []storage.ThrottleKey {
	return []storage.ThrottleKey{
		{Scope: storage.ScopeFactorAccount, Key: userID},
		{Scope: storage.ScopeFactorChallenge, Key: requestID},
	}
}

// errThrottled carries when the caller may try again.
type errThrottled struct{ until time.Time }

func (e errThrottled) Error() string { return "throttled until " + e.until.Format(time.RFC3339) }

// reserve records one attempt for keys, or refuses when they are blocked.
func (h *Handler) reserve(ctx context.Context, keys []storage.ThrottleKey) error {
	states, err := h.cfg.Store.RecordFailure(ctx, keys, h.cfg.Limits.rules(), h.cfg.Now())
	if errors.Is(err, storage.ErrThrottled) {
		return errThrottled{until: storage.ThrottledUntil(states)}
	}
	return err
}

// settle clears the counters a success forgives.
func (h *Handler) settle(ctx context.Context, keys []storage.ThrottleKey) error {
	var clear []storage.ThrottleKey
	for _, k := range keys {
		switch k.Scope {
		case storage.ScopeAccount, scopeAccountLock, storage.ScopeAccountIP, storage.ScopeFactorAccount:
			clear = append(clear, k)
		}
	}
	return h.cfg.Store.ClearThrottle(ctx, clear)
}

// Unlock clears an account's password and factor counters (the admin's
// `keystep users unlock`).
func Unlock(ctx context.Context, st storage.Throttle, username, userID string) error {
	a := accountKey(username)
	return st.ClearThrottle(ctx, []storage.ThrottleKey{
		{Scope: storage.ScopeAccount, Key: a}, {Scope: scopeAccountLock, Key: a},
		{Scope: storage.ScopeFactorAccount, Key: userID},
	})
}

// tooMany renders the throttled page: 429 with Retry-After (RFC 6585 §4).
func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, until time.Time) error {
	wait := until.Sub(h.cfg.Now())
	if wait < time.Second {
		wait = time.Second
	}
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	msg := "Too many attempts. Wait " + humanWait(wait) + " and try again."
	return h.r.render(w, http.StatusTooManyRequests, "error", errorPage{Page: h.page(r, "Slow down"), Title: "Too many attempts", Message: msg, Ref: newRef()})
}

func humanWait(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "a minute"
	case d < time.Hour:
		n := int(math.Ceil(d.Minutes()))
		return strconv.Itoa(n) + " minutes"
	default:
		n := int(math.Ceil(d.Hours()))
		if n == 1 {
			return "an hour"
		}
		return strconv.Itoa(n) + " hours"
	}
}
