package login

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/storage"
)

// Throttling (DESIGN §6, NIST SP 800-63B §5.2.2). Every guess is recorded
// before it is checked, in one atomic storage call that refuses once a limit
// is reached, so parallel requests cannot get more guesses than the limit.
// A success then clears the short-term counters (account, account+IP).
//
// The hard lock on passwords (100 failures in 24 h) is counted per place:
// failures from a browser that has completed a sign-in for the account, from
// a network that has, and from anywhere else each have a budget of their
// own. A stranger who uses up the last budget, from one address or many,
// stops only password sign-ins from new places; the owner on a known device
// or network, and any passkey sign-in, go on. A success does not refill a
// hard-lock budget, so it bounds the guesses per place per day whatever the
// owner does (README, "Abuse resistance").
//
// Authenticator-app codes and recovery codes each have a lock of their own:
// 100 consecutive failures for the account, with no time window, lock that
// factor until it succeeds (impossible while locked), the owner proves
// another second factor, or an admin unlocks it (NIST SP 800-63B §5.2.2).

// placeOf is the place a password attempt for username counts from. An
// unknown username has no history, so it is always throttle.PlaceOther — as is a
// real account tried from anywhere its owner has not signed in — and it
// costs the same two reads, so neither the answer nor its timing tells
// accounts apart.
func (h *Handler) placeOf(ctx context.Context, r *http.Request, username, ip string) (string, error) {
	if len(username) > 256 {
		return throttle.PlaceOther, nil // no such account (checkPassword's bound)
	}
	var userID string // "" has no history
	switch u, err := h.cfg.Store.UserByUsername(ctx, username); {
	case err == nil:
		userID = u.ID
	case !errors.Is(err, storage.ErrNotFound):
		return "", err
	}
	hist, err := h.cfg.Store.SignInHistory(ctx, userID, h.cfg.Cookies.ExistingBrowserBinding(r), networkOf(ip))
	switch {
	case err != nil:
		return "", err
	case hist.DeviceKnown:
		return throttle.PlaceDevice, nil
	case hist.NetworkKnown:
		return throttle.PlaceNetwork, nil
	}
	return throttle.PlaceOther, nil
}

// networkOf is the network the history knows ip by, "" when ip is no address.
func networkOf(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	return risk.Network(a).String()
}

// passwordKeys are reserved before a password is checked: the account's
// budgets for the place, and the account from this address. The per-IP
// counter is not among them: shared addresses (offices, carrier NAT) would
// see every good sign-in counted against them until it settled. It is
// checked before and counted after a real failure.
func passwordKeys(username, place, ip string) []storage.ThrottleKey {
	a := throttle.AccountKey(username)
	return []storage.ThrottleKey{
		{Scope: storage.ScopeAccount, Key: a + "|" + place},
		throttle.AccountLockKey(username, place),
		storage.AccountIPKey(a, throttle.Addr(ip)),
	}
}

func ipKey(ip string) []storage.ThrottleKey {
	return []storage.ThrottleKey{{Scope: storage.ScopeIP, Key: ip}}
}

// ipBlocked reports whether the address is blocked, and until when.
func (h *Handler) ipBlocked(ctx context.Context, ip string) (time.Time, error) {
	states, err := h.cfg.Store.CheckThrottle(ctx, ipKey(ip), h.cfg.Limits, h.cfg.Now())
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
	err := h.cfg.Store.ReserveMember(ctx, scopeIPAccounts, throttle.Addr(ip), throttle.AccountKey(username), h.cfg.StuffingLimit, time.Hour, h.cfg.Now())
	if errors.Is(err, storage.ErrThrottled) {
		return true, nil
	}
	return false, err
}

func (h *Handler) settleStuffing(ctx context.Context, ip, username string) error {
	return h.cfg.Store.ClearThrottle(ctx, []storage.ThrottleKey{{Scope: scopeIPAccounts, Key: throttle.Addr(ip) + "|" + throttle.AccountKey(username)}})
}

// countIPFailure adds a failure to the address; reaching the limit there
// is fine (the address is then blocked).
func (h *Handler) countIPFailure(ctx context.Context, ip string) error {
	_, err := h.cfg.Store.RecordFailure(ctx, ipKey(ip), h.cfg.Limits, h.cfg.Now())
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

// lockedFactors reports which of the user's guessable factors are locked.
func (h *Handler) lockedFactors(ctx context.Context, userID string) (map[stepup.Method]bool, error) {
	return throttle.LockedFactors(ctx, h.cfg.Store, h.cfg.Limits, userID, h.cfg.Now())
}

// errThrottled carries when the caller may try again, and which keys block.
type errThrottled struct {
	until  time.Time
	states map[storage.ThrottleKey]storage.ThrottleState
}

func (e errThrottled) Error() string { return "throttled until " + e.until.Format(time.RFC3339) }

// blocks reports whether k is among the keys that refused the attempt.
func (e errThrottled) blocks(k storage.ThrottleKey) bool { return !e.states[k].BlockedUntil.IsZero() }

// reserve records one attempt for keys, or refuses when they are blocked.
func (h *Handler) reserve(ctx context.Context, keys []storage.ThrottleKey) error {
	return h.reserveAt(ctx, keys, h.cfg.Now())
}

// reserveAt is reserve at a time the caller keeps, to release the
// reservation (storage.Throttle.ReleaseFailure) if the guess proves right.
func (h *Handler) reserveAt(ctx context.Context, keys []storage.ThrottleKey, now time.Time) error {
	states, err := h.cfg.Store.RecordFailure(ctx, keys, h.cfg.Limits, now)
	if errors.Is(err, storage.ErrThrottled) {
		return errThrottled{until: storage.ThrottledUntil(states), states: states}
	}
	return err
}

// settle clears the counters a success forgives: the short-term password
// counters and, for a second factor, the factor's own lock count. A
// second factor's success is also the owner proving one, which lifts the
// lock of any other locked factor (NIST SP 800-63B §5.2.2). The password
// hard-lock budgets are not cleared: they bound guesses per place per day.
func (h *Handler) settle(ctx context.Context, keys []storage.ThrottleKey) error {
	var clear []storage.ThrottleKey
	for _, k := range keys {
		switch k.Scope {
		case storage.ScopeAccount, storage.ScopeAccountIP, throttle.ScopeFactorLock:
			clear = append(clear, k)
		case storage.ScopeFactorAccount:
			clear = append(clear, k)
			if err := h.liftLocks(ctx, k.Key); err != nil {
				return err
			}
		}
	}
	return h.cfg.Store.ClearThrottle(ctx, clear)
}

// liftLocks ends the locks of the user's locked factors: the owner has
// just proven another second factor. A factor that is not locked keeps its
// count, which only its own success resets.
func (h *Handler) liftLocks(ctx context.Context, userID string) error {
	locked, err := h.lockedFactors(ctx, userID)
	if err != nil || len(locked) == 0 {
		return err
	}
	var keys []storage.ThrottleKey
	for m := range locked {
		keys = append(keys, throttle.FactorLockKey(userID, m))
	}
	return h.cfg.Store.ClearThrottle(ctx, keys)
}

// tooMany renders the throttled page: 429 with Retry-After (RFC 6585 §4).
func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, until time.Time) error {
	return h.slowDown(w, r, until, i18n.N("Too many attempts. Wait %s and try again."))
}

// slowDown is tooMany with its own message, a key whose %s is the wait.
func (h *Handler) slowDown(w http.ResponseWriter, r *http.Request, until time.Time, msg string) error {
	wait := until.Sub(h.cfg.Now())
	if wait < time.Second {
		wait = time.Second
	}
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	tr := h.tr(r)
	return h.render(w, r, http.StatusTooManyRequests, "error", errorPage{Page: h.page(r, "Slow down"), Title: tr.T("Too many attempts"),
		Message: tr.T(msg, humanWait(tr, wait)), Ref: newRef()})
}

// waitFor is a wait as an error page's argument, said in the page's
// language (an i18n.Sayer).
type waitFor time.Duration

func (d waitFor) In(p *i18n.Printer) string { return humanWait(p, time.Duration(d)) }

// String is the wait in English, for the log.
func (d waitFor) String() string { return time.Duration(d).String() }

// humanWait says how long d is, rounded up, in p's language ("a minute",
// "5 minutes", "an hour", "3 days" beyond two days).
func humanWait(p *i18n.Printer, d time.Duration) string {
	switch {
	case d < time.Minute:
		return p.T("a minute")
	case d < time.Hour:
		n := int(math.Ceil(d.Minutes()))
		if n == 1 {
			return p.T("a minute")
		}
		return p.T("%d minutes", n)
	case d <= 48*time.Hour:
		n := int(math.Ceil(d.Hours()))
		if n == 1 {
			return p.T("an hour")
		}
		return p.T("%d hours", n)
	}
	return p.T("%d days", int(math.Ceil(d.Hours()/24)))
}

// throttleRetention is how long each scope's failure rows still matter: a
// rule looks back Window and blocks at most Max after a failure, so older
// rows change nothing (storage.Throttle.DeleteOldThrottleRows). Account+IP
// rows are also read by risk over its window (DistinctAccountsFromIP), and
// the accounts tried from an address over the stuffing hour. A scope whose
// rule has no window — the factor lock, which counts consecutive wrong
// codes across any span of time until a success or an admin ends it —
// keeps its rows.
func throttleRetention(l throttle.Limits, riskWindow time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{scopeIPAccounts: time.Hour}
	for scope, r := range l {
		if r.Window >= throttle.NoWindow || r.Max >= throttle.NoWindow {
			continue
		}
		out[scope] = r.Window + r.Max
	}
	if keep, ok := out[storage.ScopeAccountIP]; ok && keep < riskWindow {
		out[storage.ScopeAccountIP] = riskWindow
	}
	return out
}

// SweepThrottle deletes the failure rows no rule looks at any more and
// returns how many, so the table does not grow without bound; the server's
// maintenance loop calls it.
func (h *Handler) SweepThrottle(ctx context.Context) (int, error) {
	now := h.cfg.Now()
	total := 0
	limits := maps.Clone(h.cfg.Limits)
	maps.Copy(limits, recoveryLimits) // recover.go's own rules
	for scope, keep := range throttleRetention(limits, h.pol().Risk.Window) {
		n, err := h.cfg.Store.DeleteOldThrottleRows(ctx, scope, now.Add(-keep))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
