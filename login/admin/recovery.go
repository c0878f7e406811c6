package admin

import (
	"context"
	"errors"
	"time"

	"github.com/keystep/keystep/storage"
)

// ErrNotPending is DecideRecovery's answer for a request no longer
// pending: cancelled, decided or used meanwhile.
var ErrNotPending = errors.New("the request is no longer pending")

// DecideRecovery approves a pending recovery request early (the person may
// then replace their second factors after the password) or denies it
// (nothing changes), with a reason, audited as storage.EventRecoveryDecided
// with the outcome "approved" or "denied".
func (a *Service) DecideRecovery(ctx context.Context, by Actor, id string, approve bool, now time.Time) (storage.RecoveryRequest, error) {
	by, err := by.checked(true)
	if err != nil {
		return storage.RecoveryRequest{}, err
	}
	req, err := a.Store.RecoveryRequestByID(ctx, id)
	if err != nil {
		return req, err
	}
	if req.Status != storage.RecoveryPending {
		return req, ErrNotPending
	}
	to := storage.RecoveryDenied
	if approve {
		to = storage.RecoveryApproved
	}
	if err := a.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryDecided, UserID: req.UserID, ActorID: by.ID,
		Outcome: string(to), Reason: by.Reason, Details: map[string]string{"request": req.ID}}); err != nil {
		return req, err
	}
	switch err := a.Store.DecideRecoveryRequest(ctx, id, storage.RecoveryPending, to, by.ID, by.Reason, now); {
	case errors.Is(err, storage.ErrConflict):
		return req, a.failed(ctx, by, storage.EventRecoveryDecided, req.UserID, "", ErrNotPending)
	case err != nil:
		return req, a.failed(ctx, by, storage.EventRecoveryDecided, req.UserID, "", err)
	}
	req.Status, req.DecidedBy, req.Reason, req.DecidedAt = to, by.ID, by.Reason, now
	return req, nil
}
