package idp

import (
	"context"
	"slices"
	"time"

	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// endSessionOf ends, everywhere (admin.EndSessions), the browser session
// whose sid a grant carries: its row if it is still there, the token
// families of every client under it, and a back-channel logout to each of
// them. A grant without a session (client credentials) ends nothing.
func (s *opStorage) endSessionOf(ctx context.Context, g storage.Grant) error {
	if g.SessionID == "" || g.Subject == "" {
		return nil
	}
	end := storage.SessionEnd{UserID: g.Subject, SID: g.SessionID}
	sessions, err := s.store.ListUserSessions(ctx, g.Subject, time.Time{})
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(sessions, func(x storage.Session) bool { return x.SID() == g.SessionID }); i >= 0 {
		end.ID = sessions[i].ID
	}
	return admin.EndSessions(ctx, s.store, s.now(), end)
}

// sweepSessions ends the sessions past their absolute lifetime or idle
// timeout through admin.EndSessions, a batch at a time, so the apps under
// them are told; it returns how many ended.
func (s *Server) sweepSessions(ctx context.Context, now time.Time) (int, error) {
	const batch = 100
	idle := s.cfg.SessionIdleTimeout
	if idle == 0 {
		idle = login.DefaultSessionIdleTimeout
	}
	total := 0
	for {
		expired, err := s.cfg.Store.ExpiredSessions(ctx, now, now.Add(-idle), batch)
		if err != nil {
			return total, err
		}
		if len(expired) == 0 {
			break
		}
		ends := make([]storage.SessionEnd, len(expired))
		for i, x := range expired {
			ends[i] = x.End()
		}
		if err := admin.EndSessions(ctx, s.cfg.Store, now, ends...); err != nil {
			return total, err
		}
		total += len(expired)
		if len(expired) < batch || ctx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return total, err
	}
	// A session lives at most its max age from its start, and its clients
	// are remembered after it started: older ones are of ended sessions.
	maxAge := s.cfg.SessionMaxAge
	if maxAge == 0 {
		maxAge = login.DefaultSessionMaxAge
	}
	_, err := s.cfg.Store.ForgetSessionClients(ctx, now.Add(-maxAge))
	return total, err
}
