package admin

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// PollExpiry is how long a SET queued for a poll stream waits to be
// acknowledged (RFC 8936) before it is given up: it then shows in the
// console's delivery status, where Retry gives it as long again.
const PollExpiry = 7 * 24 * time.Hour

// Signal queues the security events evs (OpenID Shared Signals: CAEP and
// RISC) for every stream that requested their type and is not disabled (a
// paused stream's events are held), and whose app may know of the user
// (mayKnow). A change that is a storage
// transaction of its own queues its events in it (EndSessions, via
// SignalMessages); the others call Signal right after the change, next to
// its audit row.
func Signal(ctx context.Context, st storage.Store, now time.Time, evs ...storage.SecurityEvent) error {
	msgs, err := SignalMessages(ctx, st, now, evs...)
	if err != nil {
		return err
	}
	return st.QueueOutbox(ctx, msgs)
}

// SignalMessages are the outbox messages that Signal queues.
func SignalMessages(ctx context.Context, st storage.Store, now time.Time, evs ...storage.SecurityEvent) ([]storage.OutboxMessage, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	streams, err := st.ListStreams(ctx)
	if err != nil {
		return nil, err
	}
	var msgs []storage.OutboxMessage
	for _, s := range streams {
		if s.Status == storage.StreamDisabled {
			continue
		}
		for _, ev := range evs {
			if !slices.Contains(s.EventsRequested, ev.Type) || !slices.Contains(storage.SETsSent, ev.Type) {
				continue
			}
			if ok, err := mayKnow(ctx, st, s.ClientID, ev); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
			m, err := StreamMessage(s, ev, now)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// mayKnow reports whether client may be told ev: a first-party app of
// every event, any other only of the users who consented to it, and of a
// session (ev.SID) only when it signed in under that session, as
// back-channel logout is sent. A stream never learns of people who never
// used its app, nor of their sessions at other apps.
func mayKnow(ctx context.Context, st storage.Store, clientID string, ev storage.SecurityEvent) (bool, error) {
	c, err := st.ClientByID(ctx, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if c.FirstParty {
		return true, nil
	}
	if ev.SID != "" {
		ids, err := st.SessionClients(ctx, ev.SID)
		if err != nil || !slices.Contains(ids, clientID) {
			return false, err
		}
	}
	scopes, err := st.ConsentedScopes(ctx, ev.UserID, clientID)
	return len(scopes) > 0, err
}

// StreamMessage is the outbox message carrying ev to stream s, with a jti
// of its own (one SET per stream).
func StreamMessage(s storage.Stream, ev storage.SecurityEvent, now time.Time) (storage.OutboxMessage, error) {
	jti, err := factor.NewToken()
	if err != nil {
		return storage.OutboxMessage{}, err
	}
	ev.JTI, ev.StreamID = jti[:22], s.ID
	if ev.At == 0 {
		ev.At = now.Unix()
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return storage.OutboxMessage{}, err
	}
	m := storage.OutboxMessage{
		ID: ev.JTI, Kind: storage.OutboxSSFPush, ClientID: s.ClientID, Target: s.EndpointURL, Payload: string(payload),
		Status: storage.OutboxPending, QueuedAt: now, NextAttemptAt: now,
	}
	if s.DeliveryMethod == storage.SSFPoll {
		// Held for the receiver to poll; the worker only sees it when it
		// expires unacknowledged.
		m.Kind, m.NextAttemptAt = storage.OutboxSSFPoll, now.Add(PollExpiry)
	}
	return m, nil
}

// The credential_type values of CAEP credential-change (CAEP 1.0 §3.3.1).
const (
	credentialPassword = "password"
	credentialTOTP     = "app"
	credentialPasskey  = "fido2-roaming"
)

// The change_type values of CAEP credential-change.
const (
	ChangeCreate = "create"
	ChangeUpdate = "update"
	ChangeDelete = "delete"
)

// CredentialType is the CAEP credential_type of a factor kind ("" for the
// password).
func CredentialType(kind storage.FactorKind) string {
	switch kind {
	case storage.FactorTOTP:
		return credentialTOTP
	case storage.FactorWebAuthn:
		return credentialPasskey
	}
	return credentialPassword
}

// CredentialChange is a CAEP credential-change event about user.
func CredentialChange(userID, credentialType, change, name string) storage.SecurityEvent {
	claims := map[string]any{"credential_type": credentialType, "change_type": change}
	if name != "" {
		claims["friendly_name"] = name
	}
	return storage.SecurityEvent{Type: storage.SETCredentialChange, UserID: userID, Claims: claims}
}

// AccountStatus is a RISC account-disabled or account-enabled event.
func AccountStatus(userID string, disabled bool) storage.SecurityEvent {
	if disabled {
		return storage.SecurityEvent{Type: storage.SETAccountDisabled, UserID: userID}
	}
	return storage.SecurityEvent{Type: storage.SETAccountEnabled, UserID: userID}
}

// AssuranceChange is a CAEP assurance-level-change event: a session's acr
// went from previous to current (namespace "custom": Keystep's acr values).
func AssuranceChange(userID, sid, previous, current string, raised bool) storage.SecurityEvent {
	dir := "decrease"
	if raised {
		dir = "increase"
	}
	claims := map[string]any{"namespace": "custom", "current_level": current, "change_direction": dir}
	if previous != "" {
		claims["previous_level"] = previous
	}
	return storage.SecurityEvent{Type: storage.SETAssuranceLevelChange, UserID: userID, SID: sid, Claims: claims}
}
