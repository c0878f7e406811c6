package login

import (
	"errors"
	"net/http"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// adminRecoveryPage lists recovery requests (issue 22): the pending ones
// with approve and deny, and the recent others.
type adminRecoveryPage struct {
	adminPage
	Rows []recoveryRow
}

type recoveryRow struct {
	storage.RecoveryRequest
	Username string
	Email    string // the confirmed address the notice went to, "" for none
	Eligible bool
}

func (h *Handler) adminRecovery(w http.ResponseWriter, r *http.Request, a *adminState) error {
	ctx := r.Context()
	reqs, err := h.recoveryRequests(ctx)
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	rows := make([]recoveryRow, 0, len(reqs))
	for _, q := range reqs {
		row := recoveryRow{RecoveryRequest: q, Eligible: q.Eligible(now)}
		if u, err := h.cfg.Store.UserByID(ctx, q.UserID); err == nil {
			row.Username = u.Username
			if u.EmailVerified {
				row.Email = u.Email
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		rows = append(rows, row)
	}
	return h.render(w, r, http.StatusOK, "admin_recovery", adminRecoveryPage{adminPage: h.adminPage(r, a, "recovery", "Recovery requests"), Rows: rows})
}

// adminDecideRecovery approves or denies a pending request, with a reason.
func (h *Handler) adminDecideRecovery(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	d := r.PathValue("decision")
	if d != "approve" && d != "deny" {
		return userError(http.StatusNotFound, "No such action", "Approve or deny a request from the list.")
	}
	by := admin.Actor{ID: a.actor.ID, Reason: reasonOf(r)}
	_, err := h.admin.DecideRecovery(r.Context(), by, r.PathValue("id"), d == "approve", h.cfg.Now())
	switch {
	case errors.Is(err, admin.ErrNeedsReason):
		return userError(http.StatusBadRequest, "Say why", "Approving or denying a request needs a reason; it goes into the audit log.")
	case errors.Is(err, admin.ErrBadReason):
		return badReason(err)
	case errors.Is(err, storage.ErrNotFound):
		return userError(http.StatusNotFound, "No such request", "It may have been removed with its account.")
	case errors.Is(err, admin.ErrOwnRequest):
		return userError(http.StatusForbidden, "Another administrator must decide this",
			"This is your own request. Approving it would skip the waiting period and the second person it exists for. To withdraw it, use the cancel link in the email it sent you.")
	case errors.Is(err, admin.ErrNotPending):
		return userError(http.StatusConflict, "That request was already decided", "It was cancelled, decided or used meanwhile. The list shows where it stands.")
	case err != nil:
		return err
	}
	notice := "recovery-denied"
	if d == "approve" {
		notice = "recovery-approved"
	}
	http.Redirect(w, r, "/admin/recovery?notice="+notice, http.StatusSeeOther)
	return nil
}
