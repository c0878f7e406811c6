package login

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// auditShown is how many rows the console lists; export has no limit.
const auditShown = 100

type auditQuery struct {
	User, Client, Event, Outcome, From, To string
}

type adminAuditPage struct {
	adminPage
	Q          auditQuery
	Rows       []auditRow
	More       bool
	Filtered   bool
	ExportURL  string
	Clients    []string
	EventTypes []storage.EventType
	Verified   string // "ok" or "broken"; "" when not asked
	VerifyMsg  string
}

// filterOf reads the filter form. An unknown user matches nothing (rather
// than everything), and bad dates are a problem for the form.
func (h *Handler) filterOf(r *http.Request) (auditQuery, storage.AuditFilter, string, error) {
	v := r.URL.Query()
	q := auditQuery{User: strings.TrimSpace(v.Get("user")), Client: v.Get("client"), Event: strings.TrimSpace(v.Get("event")),
		Outcome: v.Get("outcome"), From: v.Get("from"), To: v.Get("to")}
	f := storage.AuditFilter{ClientID: q.Client, Type: storage.EventType(q.Event), Outcome: q.Outcome}
	if q.User != "" {
		u, err := h.cfg.Store.UserByUsername(r.Context(), q.User)
		switch {
		case err == nil:
			f.UserID = u.ID
		case errors.Is(err, storage.ErrNotFound):
			f.UserID = q.User // an ID, or a user since deleted
		default:
			return q, f, "", err
		}
	}
	var problems []string
	tr := h.tr(r)
	day := func(s, label string) time.Time {
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			problems = append(problems, tr.T("%q is not a date (%s).", s, tr.T(label)))
		}
		return t
	}
	f.Since = day(q.From, i18n.N("From"))
	if to := day(q.To, i18n.N("To")); !to.IsZero() {
		f.Until = to.Add(24 * time.Hour) // exclusive: the whole day counts
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		problems = append(problems, tr.T("The end date is before the start date."))
	}
	return q, f, strings.Join(problems, " "), nil
}

func (q auditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"user": q.User, "client": q.Client, "event": q.Event, "outcome": q.Outcome, "from": q.From, "to": q.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func (h *Handler) adminAudit(w http.ResponseWriter, r *http.Request, a *adminState) error {
	ctx := r.Context()
	q, f, problem, err := h.filterOf(r)
	if err != nil {
		return err
	}
	p := adminAuditPage{adminPage: h.adminPage(r, a, "audit", "Audit log"), Q: q, Filtered: len(q.values()) > 0}
	p.ExportURL = "/admin/audit/export"
	if v := q.values(); len(v) > 0 {
		p.ExportURL += "?" + v.Encode()
	}
	clients, err := h.cfg.Store.ListClients(ctx)
	if err != nil {
		return err
	}
	for _, c := range clients {
		p.Clients = append(p.Clients, c.ID)
	}
	slices.Sort(p.Clients)
	p.EventTypes = storage.EventTypes()
	if r.URL.Query().Get("verify") != "" {
		all, err := h.cfg.Store.ListAudit(ctx, storage.AuditFilter{})
		if err != nil {
			return err
		}
		if _, verr := storage.VerifyAuditChain(h.cfg.Audit.Key, all); verr != nil {
			p.Verified, p.VerifyMsg = "broken", h.tr(r).T("%s. Export the log and compare it with a backup.", verr.Error())
		} else {
			p.Verified, p.VerifyMsg = "ok", h.tr(r).T("The audit chain is intact: all %d rows link up and match their hashes.", len(all))
		}
	}
	status := http.StatusOK
	if problem != "" {
		p.Problem, status = problem, http.StatusBadRequest
		return h.render(w, r, status, "admin_audit", p)
	}
	f.Newest, f.Limit = true, auditShown+1
	events, err := h.cfg.Store.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	if len(events) > auditShown {
		events, p.More = events[:auditShown], true
	}
	names, err := h.userNames(r)
	if err != nil {
		return err
	}
	for _, e := range events {
		p.Rows = append(p.Rows, rowOf(h.tr(r), e, names))
	}
	return h.render(w, r, status, "admin_audit", p)
}

// adminAuditExport writes the matching events as JSON lines, oldest first,
// the format of `keystep audit export`.
func (h *Handler) adminAuditExport(w http.ResponseWriter, r *http.Request, a *adminState) error {
	ctx := r.Context()
	q, f, problem, err := h.filterOf(r)
	if err != nil {
		return err
	}
	if problem != "" {
		return userError(http.StatusBadRequest, "Check the dates", problem)
	}
	events, err := h.cfg.Store.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	// Reading the whole log is worth a row of its own.
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventAdminAuditExported, ActorID: a.actor.ID, Outcome: "success",
		Details: map[string]string{"filter": q.values().Encode(), "rows": itoa(len(events))}}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="keystep-audit-`+h.cfg.Now().UTC().Format("20060102-150405")+`.jsonl"`)
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	for _, e := range events {
		if err := enc.Encode(admin.AuditJSONOf(e)); err != nil {
			return nil // the client went away; the status is already sent
		}
	}
	return nil
}
