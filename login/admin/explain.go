package admin

import (
	"context"
	"fmt"
	"strings"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// ExplainInput is a hypothetical sign-in: who, to which app, asking for
// what, from where.
type ExplainInput struct {
	Username  string
	ClientID  string
	ACR       []string // requested acr_values (voluntary)
	Scopes    []string
	IP        string
	NewDevice bool // false: the user's most recent device
	UserAgent string
}

// Explanation is what Keystep would do and why.
type Explanation struct {
	User     storage.User
	Client   storage.Client
	Risk     risk.Assessment
	Decision stepup.Decision
}

// Explain runs the same assessment and decision code as a real sign-in,
// right after a correct password, without writing anything.
//
// a assesses risk under p's rules (p.Risk).
func Explain(ctx context.Context, st storage.Store, p *policy.Snapshot, a *signin.Assessor, in ExplainInput) (Explanation, error) {
	u, err := st.UserByUsername(ctx, in.Username)
	if err != nil {
		return Explanation{}, fmt.Errorf("user %q: %w", in.Username, err)
	}
	c, err := st.ClientByID(ctx, in.ClientID)
	if err != nil {
		return Explanation{}, fmt.Errorf("client %q: %w", in.ClientID, err)
	}
	factors, err := st.ListFactors(ctx, u.ID)
	if err != nil {
		return Explanation{}, err
	}
	left, err := st.CountRecoveryCodes(ctx, u.ID)
	if err != nil {
		return Explanation{}, err
	}
	device := ""
	if !in.NewDevice {
		h, err := st.SignInHistory(ctx, u.ID, "", "")
		if err != nil {
			return Explanation{}, err
		}
		device = h.Last.DeviceID
	}
	if device == "" {
		t, err := factor.NewToken()
		if err != nil {
			return Explanation{}, err
		}
		device = factor.HashToken(t)
	}
	now := a.Now()
	ra, _, err := a.Assess(ctx, signin.RiskInput{User: u, ClientID: c.ID, Scopes: in.Scopes, IP: in.IP, UserAgent: in.UserAgent, DeviceID: device})
	if err != nil {
		return Explanation{}, err
	}
	// The request as /authorize would store it, read as the dispatcher reads
	// it: one merge rule, one mapping to the decision's input.
	req, err := signin.NewRequirement("", in.ACR, c, p.ScopeFloors(c.ID, in.Scopes))
	if err != nil {
		return Explanation{}, err
	}
	input := signin.InputOf(storage.AuthRequest{Requirement: req, CreatedAt: now}, now)
	input.Enrolled = signin.Enrolled(u, factors, left, nil)
	signin.ApplyRisk(&input, ra)
	return Explanation{User: u, Client: c, Risk: ra, Decision: p.Levels.Preview(input)}, nil
}

// Summary is the explanation in plain lines, for the CLI and the console.
func (x Explanation) Summary() string {
	var b strings.Builder
	client := x.Client.Name
	if client == "" {
		client = x.Client.ID
	}
	fmt.Fprintf(&b, "user %s signing in to %s\n", x.User.Username, client)
	fmt.Fprintf(&b, "risk: %s (score %d)\n", x.Risk.Band, x.Risk.Score)
	for _, s := range x.Risk.Signals {
		fmt.Fprintf(&b, "  %-20s +%-3d %s\n", s.Name, s.Weight, s.Reason)
		if s.Name == signin.SignalReceivedRisk || s.Name == signin.SignalPasswordCompromised {
			// A received Shared Signal raised the bar: say who and until when.
			fmt.Fprintf(&b, "  %-20s      received signal: %s\n", "", s.Detail)
		}
	}
	if x.Risk.Floor != "" || x.Risk.Deny {
		fmt.Fprintf(&b, "risk action: floor %q hard=%v deny=%v\n", x.Risk.Floor, x.Risk.Hard, x.Risk.Deny)
	}
	d := x.Decision
	switch d.Outcome {
	case stepup.Satisfied:
		fmt.Fprintf(&b, "outcome: signed in with the password alone; acr %s, amr %s\n", d.ACR, strings.Join(d.AMR, " "))
		if d.RiskWaived {
			b.WriteString("note: the risk floor was waived (the user has no factor that reaches it); audited\n")
		}
	case stepup.NeedFactor:
		var next []string
		for _, m := range d.Next {
			next = append(next, signin.Label(m))
		}
		fmt.Fprintf(&b, "outcome: after the password, asks for one more factor to reach %s: %s\n", d.Target, strings.Join(next, ", or "))
		var why []string
		for _, r := range d.Reasons {
			why = append(why, string(r))
		}
		fmt.Fprintf(&b, "because: %s\n", strings.Join(why, ", "))
	case stepup.Fail:
		fmt.Fprintf(&b, "outcome: refused with error=%s\n", d.Error)
	}
	return b.String()
}
