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

// ErrOwnRequest is DecideRecovery's answer to an admin deciding their own
// request, either way: an approval would skip the cooling-off and the
// second person it exists for (whoever holds an admin's password and
// console session could file and approve at once), and the owner's way to
// withdraw a request is the cancel link sent to the confirmed address.
var ErrOwnRequest = errors.New("an admin cannot decide their own recovery request")

// ErrNoRecoveryNotice is DecideRecovery's answer to an approval when the
// Service has no RecoveryApproved hook: an approval nobody is told of
// leaves the owner's cancel link useless exactly when it matters.
var ErrNoRecoveryNotice = errors.New("recovery approvals need a way to tell the owner (Service.RecoveryApproved)")

// DecideRecovery approves a pending recovery request early (the person may
// then replace their second factors after the password) or denies it
// (nothing changes), with a reason, audited as storage.EventRecoveryDecided
// with the outcome "approved" or "denied". An approval is then told to the
// owner through a.RecoveryApproved, since it makes the request usable at
// once (for storage.RecoveryApprovalTTL). Nobody decides their own request
// (ErrOwnRequest).
func (a *Service) DecideRecovery(ctx context.Context, by Actor, id string, approve bool, now time.Time) (storage.RecoveryRequest, error) {
	by, err := by.checked(true)
	if err != nil {
		return storage.RecoveryRequest{}, err
	}
	if approve && a.RecoveryApproved == nil {
		return storage.RecoveryRequest{}, ErrNoRecoveryNotice
	}
	req, err := a.Store.RecoveryRequestByID(ctx, id)
	if err != nil {
		return req, err
	}
	if req.UserID == by.ID {
		if err := a.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventRecoveryDecided, UserID: req.UserID, ActorID: by.ID,
			Outcome: "failure", Reason: ErrOwnRequest.Error(), Details: map[string]string{"request": req.ID}}); err != nil {
			return req, err
		}
		return req, ErrOwnRequest
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
	if approve {
		if err := a.RecoveryApproved(ctx, req); err != nil {
			return req, err
		}
	}
	return req, nil
}
