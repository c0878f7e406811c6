package login

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/storage"
)

// Session lifetimes. A browser session ends at whichever comes first: its
// absolute lifetime after the first sign-in, used or not, or its idle
// timeout after the last request that used it.
const (
	// DefaultSessionMaxAge: NIST SP 800-63B §4.2.3, reauthenticate at least
	// every 12 hours regardless of activity.
	DefaultSessionMaxAge = 12 * time.Hour
	// DefaultSessionIdleTimeout is 12 hours without use.
	DefaultSessionIdleTimeout = 12 * time.Hour
	// touchEvery throttles LastSeen writes: a session in use costs at most
	// one write a minute, not one per request. The idle timeout is hours,
	// so a minute's lag changes nothing.
	touchEvery = time.Minute
)

// CheckSessionLifetimes reports what is wrong with an idle timeout and an
// absolute lifetime, both already defaulted.
func CheckSessionLifetimes(idle, maxAge time.Duration) error {
	var errs []error
	if idle <= 0 {
		errs = append(errs, fmt.Errorf("session idle timeout %s must be positive", idle))
	}
	if maxAge <= 0 {
		errs = append(errs, fmt.Errorf("session max age %s must be positive", maxAge))
	}
	if idle > 0 && maxAge > 0 && idle > maxAge {
		errs = append(errs, fmt.Errorf("session idle timeout %s is longer than the max age %s, so it would never apply", idle, maxAge))
	}
	return errors.Join(errs...)
}

// idleOut reports whether s has gone unused for longer than the idle
// timeout at now.
func (h *Handler) idleOut(s storage.Session, now time.Time) bool {
	return now.Sub(s.LastSeen) > h.cfg.SessionIdleTimeout
}

// touch records that s was used at now, at most once per touchEvery.
func (h *Handler) touch(ctx context.Context, s *storage.Session, now time.Time) {
	if now.Sub(s.LastSeen) < touchEvery {
		return
	}
	// A session rotated or ended since it was read is not an error: the
	// request is served as it would have been a moment earlier. A failed
	// write only lets the session look idle sooner (fails closed).
	if err := h.cfg.Store.TouchSession(ctx, s.ID, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.cfg.Log.WarnContext(ctx, "session touch failed", "user_id", s.UserID, "err", err)
		return
	}
	s.LastSeen = now
}
