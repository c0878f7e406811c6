package login

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
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
	stepup.AnyFactor:                 "Any one factor",
	stepup.MultiFactor:               "Password and a second factor, or a passkey that verifies the user",
	stepup.PhishingResistant:         "Two factors, one of them a passkey or security key",
	stepup.PhishingResistantHardware: "Two factors, one of them a passkey kept on one device",
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
	Next    []string
	Reasons []string
}

type adminPolicyPage struct {
	adminPage
	Levels      []levelRow
	ScopeMins   [][2]string
	Risk        signin.RiskConfig
	Weights     []weightRow
	Checks      []admin.Check
	Problems    int
	AdminACR    string
	AdminMaxAge time.Duration
	Usernames   []string
	Clients     []storage.Client
	Explain     explainForm
	Result      *explainResult
	ExplainErr  string
}

func (h *Handler) adminPolicy(w http.ResponseWriter, r *http.Request, a *adminState) error {
	ctx := r.Context()
	pol := h.pol()
	p := adminPolicyPage{adminPage: h.adminPage(r, a, "policy", "Policy"), Risk: pol.Risk, AdminACR: pol.AdminACR, AdminMaxAge: pol.AdminMaxAge}
	for i, l := range pol.Levels.Levels() {
		row := levelRow{Level: l, Rank: i + 1, Plain: requirementText[l.Requires], Admin: l.ACR == pol.AdminACR}
		fresh := []string{fmtDuration(defaultWindow(l))}
		for _, m := range slices.Sorted(maps.Keys(l.Freshness)) {
			fresh = append(fresh, fmt.Sprintf("%s %s", m, fmtDuration(l.Freshness[m])))
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
	clients, err := h.cfg.Store.ListClients(ctx)
	if err != nil {
		return err
	}
	p.Checks = admin.CheckPolicy(pol.Levels, pol.ScopeMinACR, pol.Risk.Rules, pol.Risk.SensitiveClients, clients, h.cfg.AccountClientID)
	for _, c := range p.Checks {
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
		return err
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
	status := http.StatusOK
	if q.Has("user") {
		res, msg, err := h.explain(r, p.Explain)
		if err != nil {
			return err
		}
		p.Result, p.ExplainErr = res, msg
		if msg != "" {
			status = http.StatusBadRequest
		}
	}
	return h.r.render(w, status, "admin_policy", p)
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
	var problems []string
	if f.User == "" {
		problems = append(problems, "Enter a username.")
	}
	if f.Client == "" {
		problems = append(problems, "Choose a client.")
	}
	if _, err := netip.ParseAddr(f.IP); err != nil {
		problems = append(problems, fmt.Sprintf("%q is not an IP address.", f.IP))
	}
	if f.ACR != "" {
		if _, _, ok := h.pol().Levels.Lookup(f.ACR); !ok {
			problems = append(problems, fmt.Sprintf("%q is not a configured level.", f.ACR))
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
		return nil, "No such user or client. Check the username and the client.", nil
	}
	if err != nil {
		return nil, "", err
	}
	res := &explainResult{Explanation: x, Summary: x.Summary()}
	for _, m := range x.Decision.Next {
		res.Next = append(res.Next, signin.Label(m))
	}
	for _, rs := range x.Decision.Reasons {
		res.Reasons = append(res.Reasons, string(rs))
	}
	return res, "", nil
}
