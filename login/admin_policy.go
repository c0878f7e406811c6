package login

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/admin/impact"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

type levelRow struct {
	stepup.Level
	Rank      int
	Plain     string
	Freshness string
	Admin     bool
}

// requirementText says a level's rule in words.
var requirementText = map[stepup.Requirement]string{
	stepup.AnyFactor:                 i18n.N("Any one factor"),
	stepup.MultiFactor:               i18n.N("Password and a second factor, or a passkey that verifies the user"),
	stepup.PhishingResistant:         i18n.N("Two factors, one of them a passkey or security key"),
	stepup.PhishingResistantHardware: i18n.N("Two factors, one of them a passkey kept on one device"),
}

type weightRow struct {
	Signal string
	Weight int
}

type explainForm struct {
	User, Client, ACR, Scope, IP, Device string
}

type explainResult struct {
	admin.Explanation
	Summary string
	Next    string // the factors offered, in words ("a or b")
	Reasons []string
}

// checkRow is one check of the active policy, in the page's language.
type checkRow struct {
	OK               bool
	Subject, Message string
}

type adminPolicyPage struct {
	adminPage
	Levels      []levelRow
	ScopeMins   [][2]string
	Risk        signin.RiskConfig
	Weights     []weightRow
	Checks      []checkRow
	Problems    int
	AdminACR    string
	AdminMaxAge time.Duration
	Usernames   []string
	Clients     []storage.Client
	Explain     explainForm
	Result      *explainResult
	ExplainErr  string
	Editor      policyEditor
}

func (h *Handler) adminPolicy(w http.ResponseWriter, r *http.Request, a *adminState) error {
	p, err := h.policyPage(r, a)
	if err != nil {
		return err
	}
	if n := policyNotices[r.URL.Query().Get("notice")]; n != "" {
		p.Notice = h.tr(r).T(n, p.Editor.Active.Number)
	}
	status := http.StatusOK
	if r.URL.Query().Has("user") {
		res, msg, err := h.explain(r, p.Explain)
		if err != nil {
			return err
		}
		p.Result, p.ExplainErr = res, msg
		if msg != "" {
			status = http.StatusBadRequest
		}
	}
	return h.render(w, r, status, "admin_policy", p)
}

// policyPage is the policy page as the active version has it, with the
// editor holding that version's document.
func (h *Handler) policyPage(r *http.Request, a *adminState) (adminPolicyPage, error) {
	ctx := r.Context()
	ed, err := h.policyEditor(ctx)
	if err != nil {
		return adminPolicyPage{}, err
	}
	pol := h.pol()
	tr := h.tr(r)
	p := adminPolicyPage{adminPage: h.adminPage(r, a, "policy", "Policy"), Risk: pol.Risk, AdminACR: pol.AdminACR, AdminMaxAge: pol.AdminMaxAge}
	for i, l := range pol.Levels.Levels() {
		row := levelRow{Level: l, Rank: i + 1, Plain: tr.T(requirementText[l.Requires]), Admin: l.ACR == pol.AdminACR}
		fresh := []string{fmtDuration(tr, defaultWindow(l))}
		for _, m := range slices.Sorted(maps.Keys(l.Freshness)) {
			fresh = append(fresh, fmt.Sprintf("%s %s", m, fmtDuration(tr, l.Freshness[m])))
		}
		row.Freshness = strings.Join(fresh, "; ")
		p.Levels = append(p.Levels, row)
	}
	for _, s := range slices.Sorted(maps.Keys(pol.ScopeMinACR)) {
		p.ScopeMins = append(p.ScopeMins, [2]string{s, pol.ScopeMinACR[s]})
	}
	for _, name := range risk.Names() {
		p.Weights = append(p.Weights, weightRow{name, pol.Risk.Rules.Weights[name]})
	}
	p.Editor = ed
	clients, err := h.cfg.Store.ListClients(ctx)
	if err != nil {
		return p, err
	}
	for _, c := range admin.CheckPolicy(pol.Levels, pol.ScopeMinACR, pol.Risk.Rules, pol.Risk.SensitiveClients, clients, h.cfg.AccountClientID) {
		p.Checks = append(p.Checks, checkRow{OK: c.OK, Subject: c.About.In(tr), Message: c.Say.In(tr)})
		if !c.OK {
			p.Problems++
		}
	}
	for _, c := range clients {
		if c.ID != h.cfg.AccountClientID {
			p.Clients = append(p.Clients, c)
		}
	}
	slices.SortFunc(p.Clients, func(x, y storage.Client) int { return strings.Compare(x.ID, y.ID) })
	users, err := h.cfg.Store.ListUsers(ctx)
	if err != nil {
		return p, err
	}
	for _, u := range users {
		p.Usernames = append(p.Usernames, u.Username)
	}
	slices.Sort(p.Usernames)

	q := r.URL.Query()
	p.Explain = explainForm{User: strings.TrimSpace(q.Get("user")), Client: q.Get("client"), ACR: q.Get("acr"),
		Scope: strings.TrimSpace(q.Get("scope")), IP: strings.TrimSpace(q.Get("ip")), Device: q.Get("device")}
	if p.Explain.Scope == "" {
		p.Explain.Scope = "openid"
	}
	if p.Explain.IP == "" {
		p.Explain.IP = web.Info(ctx).IP
	}
	return p, nil
}

func defaultWindow(l stepup.Level) time.Duration {
	if l.DefaultFreshness > 0 {
		return l.DefaultFreshness
	}
	return stepup.DefaultWindow
}

// explain runs the explain tool for the form; msg is a problem with the
// form, err a failure.
func (h *Handler) explain(r *http.Request, f explainForm) (*explainResult, string, error) {
	tr := h.tr(r)
	var problems []string
	if f.User == "" {
		problems = append(problems, tr.T("Enter a username."))
	}
	if f.Client == "" {
		problems = append(problems, tr.T("Choose a client."))
	}
	if _, err := netip.ParseAddr(f.IP); err != nil {
		problems = append(problems, tr.T("%q is not an IP address.", f.IP))
	}
	if f.ACR != "" {
		if _, _, ok := h.pol().Levels.Lookup(f.ACR); !ok {
			problems = append(problems, tr.T("%q is not a configured level.", f.ACR))
		}
	}
	if len(problems) > 0 {
		return nil, strings.Join(problems, " "), nil
	}
	var acr []string
	if f.ACR != "" {
		acr = []string{f.ACR}
	}
	pol := h.pol()
	x, err := admin.Explain(r.Context(), h.cfg.Store, pol, h.assessor(pol), admin.ExplainInput{
		Username: f.User, ClientID: f.Client, ACR: acr, Scopes: strings.Fields(f.Scope), IP: f.IP,
		NewDevice: f.Device == "new", UserAgent: "keystep-explain",
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, tr.T("No such user or client. Check the username and the client."), nil
	}
	if err != nil {
		return nil, "", err
	}
	res := &explainResult{Explanation: x, Summary: x.Summary()}
	for i, m := range x.Decision.Next {
		if i == 0 {
			res.Next = tr.T(signin.Label(m))
		} else {
			res.Next = tr.T("%s, or %s", res.Next, tr.T(signin.Label(m)))
		}
	}
	for _, rs := range x.Decision.Reasons {
		res.Reasons = append(res.Reasons, string(rs))
	}
	return res, "", nil
}

// ---- editing (issue 21) ----

// policyEditor is the policy page's editor: the active version, the
// history, and the document being edited with what is wrong with it.
type policyEditor struct {
	// Active is the version in force (Number 0: the server's own policy,
	// none stored yet).
	Active   storage.PolicyVersion
	History  []storage.PolicyVersion
	ReadOnly bool
	// Text is the document as YAML; Parent the version it was rendered
	// from, sent back so that a save from a stale page is refused.
	Text     string
	Parent   int64
	Reason   string
	Problems []string
	Checked  bool   // "Check" found nothing wrong
	Moved    string // someone saved another version since the page was rendered
	Preview  *policyPreview
}

// policyPreview is the impact table of the proposed document.
type policyPreview struct {
	impact.Report
	Days     int
	Clients  []previewClient
	ByWhat   []previewCount
	ByReason []previewCount
	Examples []previewExample
	Notes    int // audit events not replayable
}

type previewExample struct {
	impact.Example
	Word string
}

type previewClient struct {
	ID string
	impact.Counts
}

type previewCount struct {
	N          int
	Change     string
	What       string
	ChangeKind impact.Change
}

// previewDays is how far back the console's preview replays.
const previewDays = 30

// historyLimit is how many versions the policy page lists.
const historyLimit = 20

// policyNotices are the policy page's flash messages (keys; %d is the
// active version).
var policyNotices = map[string]string{
	"policy-saved":      i18n.N("Version %d is active. Every instance picks it up within seconds."),
	"policy-same":       i18n.N("Nothing changed: the document is the active version %d."),
	"policy-rolledback": i18n.N("Version %d is active: the old document, stored as a new version."),
}

// changeWords are the impact table's words for each change (keys).
var changeWords = map[impact.Change]string{
	impact.ExtraPrompt: i18n.N("extra prompt"), impact.Denied: i18n.N("denied"), impact.Removed: i18n.N("fewer prompts"),
	impact.Allowed: i18n.N("now allowed"), impact.Different: i18n.N("other change"),
}

func (h *Handler) policyEditor(ctx context.Context) (policyEditor, error) {
	v, doc, err := h.admin.ActivePolicy(ctx)
	if err != nil {
		return policyEditor{}, err
	}
	ed := policyEditor{Active: v, Parent: v.Number, ReadOnly: h.cfg.Policies.ReadOnly()}
	if ed.History, err = h.cfg.Store.ListPolicyVersions(ctx, historyLimit); err != nil {
		return ed, err
	}
	y, err := policy.YAML([]byte(policy.Canonical(doc)))
	if err != nil {
		return ed, err
	}
	ed.Text = string(y)
	return ed, nil
}

// readPolicyDocument decodes the editor's text and checks it, returning
// every problem at once: unknown fields and what compiling finds.
func (h *Handler) readPolicyDocument(ctx context.Context, tr *i18n.Printer, text string) (policy.Document, []string, error) {
	var doc policy.Document
	unknown, err := policy.Decode([]byte(text), &doc)
	if err != nil {
		return doc, []string{tr.T("The document couldn't be read: %s", err.Error())}, nil
	}
	var probs []string
	for _, u := range unknown {
		probs = append(probs, u.Error())
	}
	checked, err := h.admin.CheckPolicyDocument(ctx, doc)
	if err != nil {
		return doc, nil, err
	}
	for _, p := range checked {
		probs = append(probs, p.In(tr))
	}
	return doc, probs, nil
}

// adminPolicyEdit is the editor's buttons: Check, Preview impact and Save
// and activate. None changes anything but the last, and that only with a
// document without problems, a reason, and the version the page showed
// still active.
func (h *Handler) adminPolicyEdit(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	ctx := r.Context()
	p, err := h.policyPage(r, a)
	if err != nil {
		return err
	}
	ed := &p.Editor
	tr := h.tr(r)
	if ed.ReadOnly {
		p.Problem = tr.T("Nothing was saved: %s.", admin.ErrPolicyReadOnly.Error())
		return h.render(w, r, http.StatusForbidden, "admin_policy", p)
	}
	ed.Text, ed.Reason = r.PostForm.Get("document"), reasonOf(r)
	parent, perr := strconv.ParseInt(r.PostForm.Get("parent"), 10, 64)
	if perr != nil || parent < 0 {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Reload the policy page and try again.")
	}
	ed.Parent = parent
	doc, probs, err := h.readPolicyDocument(ctx, tr, ed.Text)
	if err != nil {
		return err
	}
	if len(probs) > 0 {
		ed.Problems = probs
		return h.render(w, r, http.StatusBadRequest, "admin_policy", p)
	}
	switch r.PostForm.Get("action") {
	case "check":
		ed.Checked = true
		return h.render(w, r, http.StatusOK, "admin_policy", p)
	case "preview":
		prop, err := policy.Compile(doc, h.cfg.Policies.Options())
		if err != nil {
			return err // checked above
		}
		rep, err := admin.PreviewPolicy(ctx, h.cfg.Store, h.pol(), prop, h.cfg.Now().Add(-previewDays*24*time.Hour))
		if err != nil {
			return err
		}
		ed.Preview = previewOf(rep)
		return h.render(w, r, http.StatusOK, "admin_policy", p)
	case "save":
	default:
		return userError(http.StatusBadRequest, "That form couldn't be read", "Reload the policy page and try again.")
	}
	_, changed, err := h.admin.SavePolicy(ctx, admin.Actor{ID: a.actor.ID, Reason: ed.Reason}, a.user.Username, doc, parent, h.cfg.Now())
	if status, ok := h.policySaveProblem(tr, err, ed); ok {
		return h.render(w, r, status, "admin_policy", p)
	}
	if err != nil {
		return err
	}
	notice := "policy-saved"
	if !changed {
		notice = "policy-same"
	}
	http.Redirect(w, r, "/admin/policy?notice="+notice, http.StatusSeeOther)
	return nil
}

// policySaveProblem shows what SavePolicy refused in ed, and the status to
// answer with; ok is false for any other error.
func (h *Handler) policySaveProblem(tr *i18n.Printer, err error, ed *policyEditor) (status int, ok bool) {
	var inv *admin.InvalidError
	switch {
	case errors.As(err, &inv):
		for _, p := range inv.Problems {
			ed.Problems = append(ed.Problems, p.In(tr))
		}
		return http.StatusBadRequest, true
	case errors.Is(err, admin.ErrNeedsReason):
		ed.Problems = []string{tr.T("Say why you are changing the policy, for example the ticket number. It is kept with the version and in the audit log.")}
		return http.StatusBadRequest, true
	case errors.Is(err, admin.ErrBadReason):
		ed.Problems = []string{tr.T("Nothing was saved: %s.", err.Error())}
		return http.StatusBadRequest, true
	case errors.Is(err, admin.ErrPolicyMoved):
		ed.Moved = tr.T("Nothing was saved: someone saved version %d since you opened this page. Reload the page to edit that version, then apply your change again.", h.pol().Version)
		return http.StatusConflict, true
	case errors.Is(err, admin.ErrPolicyReadOnly):
		ed.Problems = []string{tr.T("Nothing was saved: %s.", admin.ErrPolicyReadOnly.Error())}
		return http.StatusForbidden, true
	}
	return 0, false
}

// adminPolicyRollback makes an old version's document active again, as a
// new version.
func (h *Handler) adminPolicyRollback(w http.ResponseWriter, r *http.Request, a *adminState) error {
	if err := form(r); err != nil {
		return err
	}
	n, err := strconv.ParseInt(r.PostForm.Get("version"), 10, 64)
	if err != nil || n < 1 {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Reload the policy page and try again.")
	}
	parent, perr := strconv.ParseInt(r.PostForm.Get("parent"), 10, 64)
	if perr != nil || parent < 0 {
		return userError(http.StatusBadRequest, "That form couldn't be read", "Reload the policy page and try again.")
	}
	_, _, err = h.admin.RollbackPolicy(r.Context(), admin.Actor{ID: a.actor.ID, Reason: reasonOf(r)}, a.user.Username, n, parent, h.cfg.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return userError(http.StatusNotFound, "No such version", "There is no policy version %d.", n)
	}
	p, perr := h.policyPage(r, a)
	if perr != nil {
		return perr
	}
	tr := h.tr(r)
	if status, ok := h.policySaveProblem(tr, err, &p.Editor); ok {
		p.Problem = tr.T("Version %d was not restored.", n)
		return h.render(w, r, status, "admin_policy", p)
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/policy?notice=policy-rolledback", http.StatusSeeOther)
	return nil
}

// reasonOf is the posted reason, as the console keeps reasons: trimmed,
// at most admin.MaxReason bytes (admin.CheckReason has the other rules).
func reasonOf(r *http.Request) string {
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if len(reason) > admin.MaxReason {
		reason = strings.ToValidUTF8(reason[:admin.MaxReason], "")
	}
	return reason
}

// badReason is the page for a reason admin.CheckReason refuses.
func badReason(err error) error {
	return userError(http.StatusBadRequest, "Check the reason", "Nothing was changed: %s. Go back and write it on one line.", err.Error())
}

func previewOf(r impact.Report) *policyPreview {
	p := &policyPreview{Report: r, Days: previewDays}
	for _, id := range slices.Sorted(maps.Keys(r.Clients)) {
		p.Clients = append(p.Clients, previewClient{ID: id, Counts: r.Clients[id]})
	}
	counts := func(m map[string]int) []previewCount {
		var out []previewCount
		for k, n := range m {
			ch, what, _ := strings.Cut(k, " ")
			out = append(out, previewCount{N: n, Change: changeWords[impact.Change(ch)], What: what, ChangeKind: impact.Change(ch)})
		}
		slices.SortFunc(out, func(a, b previewCount) int {
			if a.N != b.N {
				return b.N - a.N
			}
			return strings.Compare(a.Change+a.What, b.Change+b.What)
		})
		return out
	}
	p.ByWhat, p.ByReason = counts(r.Total.ByWhat), counts(r.Total.ByReason)
	for _, e := range r.Examples {
		p.Examples = append(p.Examples, previewExample{Example: e, Word: changeWords[e.Change]})
	}
	for _, n := range r.NotReplayable {
		p.Notes += n
	}
	return p
}
