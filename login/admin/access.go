package admin

import (
	"context"
	"strconv"
	"time"

	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// EndAccess ends everything a user holds: every browser session but keep
// ("" for none), ended through EndSessions so the apps under them are told, every completed authorization request (so a code already
// minted, or about to be, cannot be redeemed), and every refresh token
// family and access token issued to the user, at every client. Revoked
// tokens fail at refresh, userinfo and introspection alike, and a user
// enabled again does not get them back.
//
// A password change, a factor reset, a disable and "sign out everywhere"
// (the console's and the portal's) all end access here, so none of them can
// forget one kind of credential. The audit row follows the change: ending
// access only takes power away, so it must not be left undone because the
// audit write failed; the error is still returned. cause says why, for the
// audit row; actorID is who asked. It returns how many sessions ended.
func EndAccess(ctx context.Context, st storage.Store, audit *web.Auditor, actorID, userID, keep, cause string) (int, error) {
	// Requests first, tokens second: a code redeemed in between gets tokens
	// the revocation below still sees.
	if _, err := st.DeleteUserAuthRequests(ctx, userID); err != nil {
		return 0, err
	}
	// The sessions end the way every sign-out does (EndSessions): the
	// apps under each are told (back-channel logout). The zero time lists
	// expired sessions too: the sweeper has not ended them yet.
	sessions, err := st.ListUserSessions(ctx, userID, time.Time{})
	if err != nil {
		return 0, err
	}
	var ends []storage.SessionEnd
	for _, s := range sessions {
		if s.ID != keep {
			ends = append(ends, s.End())
		}
	}
	if err := EndSessions(ctx, st, audit.Now(), ends...); err != nil {
		return 0, err
	}
	if err := st.RevokeUserClientTokens(ctx, userID, ""); err != nil {
		return 0, err
	}
	// Sessions created since the list above (none normally) go too.
	n, err := st.DeleteUserSessions(ctx, userID, keep)
	if err != nil {
		return 0, err
	}
	n += len(ends)
	typ := storage.EventSessionRevokedAll
	if keep != "" {
		typ = storage.EventSessionRevokedOthers
	}
	return n, audit.Record(ctx, storage.AuditEvent{Type: typ, UserID: userID, ActorID: actorID, Outcome: "success",
		Reason: cause, Details: map[string]string{"sessions": strconv.Itoa(n), "tokens": "all revoked"}})
}
