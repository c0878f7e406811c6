package login

import (
	"errors"
	"net/http"
	"strings"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// adminOutboxPage is the delivery status of the notifications Keystep owes
// apps (back-channel logouts): per client, what is pending and what was
// given up, with a retry for each message given up.
type adminOutboxPage struct {
	adminPage
	admin.OutboxStatus
}

func (h *Handler) adminOutbox(w http.ResponseWriter, r *http.Request, a *adminState) error {
	st, err := h.admin.OutboxStatus(r.Context())
	if err != nil {
		return err
	}
	return h.render(w, r, http.StatusOK, "admin_outbox", adminOutboxPage{adminPage: h.adminPage(r, a, "outbox", "Deliveries"), OutboxStatus: st})
}

// adminRetryOutbox queues a given-up message again. The console's CSRF
// protection and level gate (adminHandle) apply as to every change.
func (h *Handler) adminRetryOutbox(w http.ResponseWriter, r *http.Request, a *adminState) error {
	err := h.admin.RetryOutbox(r.Context(), a.actor, r.PathValue("id"), h.cfg.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return userError(http.StatusNotFound, "Nothing to retry", "That delivery is no longer given up: it was delivered or queued again already.")
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/outbox?notice=outbox-retried", http.StatusSeeOther)
	return nil
}

// adminAddReceiver registers a transmitter Keystep receives Shared Signals
// from (as `keystep ssf receivers add`).
func (h *Handler) adminAddReceiver(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	f := r.PostForm
	spec := admin.ReceiverSpec{Issuer: strings.TrimSpace(f.Get("issuer")), JWKSURI: strings.TrimSpace(f.Get("jwks_uri")),
		JWKS: strings.TrimSpace(f.Get("jwks")), Audience: strings.TrimSpace(f.Get("audience"))}
	_, err := h.admin.AddReceiver(r.Context(), a.actor, spec, h.cfg.Now())
	if errors.Is(err, storage.ErrAlreadyExists) {
		return userError(http.StatusConflict, "That transmitter is registered already", "Remove it first to change its keys or audience.")
	}
	var inv *admin.InvalidError
	if errors.As(err, &inv) {
		tr := h.tr(r)
		says := make([]string, len(inv.Problems))
		for i, p := range inv.Problems {
			says[i] = p.In(tr)
		}
		return userError(http.StatusBadRequest, "That transmitter couldn't be added", "Nothing was saved: %s.", strings.Join(says, "; "))
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/outbox?notice=receiver-added", http.StatusSeeOther)
	return nil
}

// adminDeleteReceiver removes a transmitter.
func (h *Handler) adminDeleteReceiver(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	err := h.admin.DeleteReceiver(r.Context(), a.actor, r.PostForm.Get("issuer"))
	if errors.Is(err, storage.ErrNotFound) {
		return userError(http.StatusNotFound, "No such transmitter", "It may have been removed already.")
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/outbox?notice=receiver-deleted", http.StatusSeeOther)
	return nil
}
