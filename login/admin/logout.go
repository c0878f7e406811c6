package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// EndSessions ends browser sessions everywhere, the one way every sign-out
// does it: the RP-initiated logout, the portal's sign out (one session, or
// all the others), the console's and the CLI's sign out and disable, a
// refresh token reused, and the sweeper ending an expired or idle session.
//
// In one storage transaction (storage.Sessions.EndSessions) each session
// is deleted, the token families of every client under its sid are
// revoked, and a back-channel logout (OIDC Back-Channel Logout 1.0 §2.5) is
// queued in the outbox for each of those clients that registered a
// backchannel_logout_uri, and a CAEP session-revoked for each Shared
// Signals stream that requested it; the outbox worker signs and delivers
// them. A
// session whose row is already gone (SessionEnd.ID "") still has its
// tokens revoked and its clients notified.
//
// The caller writes the audit row that says why the sessions ended.
func EndSessions(ctx context.Context, st storage.Store, now time.Time, ends ...storage.SessionEnd) error {
	if len(ends) == 0 {
		return nil
	}
	var msgs []storage.OutboxMessage
	for _, e := range ends {
		ms, err := logoutMessages(ctx, st, e, now)
		if err != nil {
			return err
		}
		msgs = append(msgs, ms...)
		if e.SID == "" {
			continue
		}
		// CAEP session-revoked to the streams that asked for it, in the
		// same transaction.
		ss, err := SignalMessages(ctx, st, now, storage.SecurityEvent{Type: storage.SETSessionRevoked, UserID: e.UserID, SID: e.SID})
		if err != nil {
			return err
		}
		msgs = append(msgs, ss...)
	}
	if err := st.EndSessions(ctx, ends, msgs); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

// logoutMessages are the back-channel logouts that ending e owes.
func logoutMessages(ctx context.Context, st storage.Store, e storage.SessionEnd, now time.Time) ([]storage.OutboxMessage, error) {
	if e.SID == "" {
		return nil, nil
	}
	ids, err := st.SessionClients(ctx, e.SID)
	if err != nil {
		return nil, err
	}
	var msgs []storage.OutboxMessage
	for _, id := range ids {
		c, err := st.ClientByID(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since: nobody to notify
		}
		if err != nil {
			return nil, err
		}
		if c.BackchannelLogoutURI == "" {
			continue
		}
		jti, err := factor.NewToken()
		if err != nil {
			return nil, err
		}
		jti = jti[:22]
		payload, err := json.Marshal(storage.LogoutNotice{Subject: e.UserID, SID: e.SID, JTI: jti})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, storage.OutboxMessage{
			ID: jti, Kind: storage.OutboxBackchannelLogout, ClientID: c.ID, Target: c.BackchannelLogoutURI,
			Payload: string(payload), Status: storage.OutboxPending, QueuedAt: now, NextAttemptAt: now,
		})
	}
	return msgs, nil
}

// OutboxStatus is the console's delivery status: each client's summary and
// the messages given up, newest first, which RetryOutbox can send again.
type OutboxStatus struct {
	Clients []storage.OutboxSummary
	Failed  []storage.OutboxMessage
	// Streams are the clients' Shared Signals streams, and Receivers the
	// transmitters Keystep receives from, each with its status.
	Streams   []StreamStatus
	Receivers []ReceiverStatus
}

// maxFailedShown bounds the given-up messages the console lists.
const maxFailedShown = 100

// OutboxStatus reads the delivery status.
func (a *Service) OutboxStatus(ctx context.Context) (OutboxStatus, error) {
	var st OutboxStatus
	var err error
	if st.Clients, err = a.Store.OutboxSummaries(ctx); err != nil {
		return st, err
	}
	if st.Failed, err = a.Store.OutboxMessages(ctx, "", storage.OutboxFailed, maxFailedShown); err != nil {
		return st, err
	}
	if st.Streams, err = a.streamStatuses(ctx); err != nil {
		return st, err
	}
	st.Receivers, err = a.receiverStatuses(ctx)
	return st, err
}

// RetryOutbox queues the given-up message id again, due at now and with a
// fresh delivery bound; ErrNotFound unless it was given up. Audited first,
// like every admin change.
func (a *Service) RetryOutbox(ctx context.Context, by Actor, id string, now time.Time) error {
	m, err := a.Store.OutboxMessage(ctx, id)
	if err != nil {
		return err
	}
	if m.Status != storage.OutboxFailed {
		return fmt.Errorf("message %s is %s: %w", id, m.Status, storage.ErrNotFound)
	}
	if err := a.record(ctx, by, storage.EventOutboxRequeued, "", m.ClientID, map[string]string{
		"id": m.ID, "kind": string(m.Kind), "target": m.Target, "last_error": m.LastError}); err != nil {
		return err
	}
	if err := a.Store.RequeueOutbox(ctx, id, now); err != nil {
		return a.failed(ctx, by, storage.EventOutboxRequeued, "", m.ClientID, err)
	}
	return nil
}
