package signin

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/keystep/keystep/idp/stepup"
)

// ReplayKey is the audit detail key under which a sign-in decision's
// event (stepup.requested, login.completed, login.failed) records its
// [Replay]: what the policy impact preview (login/admin/impact) needs to
// decide the same sign-in again under another policy.
const ReplayKey = "replay"

// Replay is a decision's input as the audit log records it. The floors are
// recorded twice: as applied (ClientMin, ScopeMins) and by their sources
// (the client is the event's, Scopes), so a proposed policy's own floors
// can apply. Risk is recorded as its outcome here and as its signals in the
// event's risk_signals, which a proposed rule set scores again.
type Replay struct {
	Request           string         `json:"req"` // the authorization request: the events of one sign-in share it
	Requested         []string       `json:"acr,omitempty"`
	Essential         bool           `json:"ess,omitempty"`
	Strict            bool           `json:"strict,omitempty"`
	Scopes            []string       `json:"scopes,omitempty"`
	ClientMin         string         `json:"client_min,omitempty"`
	ScopeMins         []string       `json:"scope_mins,omitempty"`
	MaxAge            *int64         `json:"max_age,omitempty"` // seconds
	PromptLogin       bool           `json:"prompt_login,omitempty"`
	PromptNone        bool           `json:"prompt_none,omitempty"`
	TransactionMin    string         `json:"tx_min,omitempty"`
	TransactionMaxAge *int64         `json:"tx_max_age,omitempty"` // seconds
	RequestTime       int64          `json:"t_req"`                // Unix nanoseconds: exact, as a max_age bound is
	Now               int64          `json:"t"`                    // Unix nanoseconds
	Done              []ReplayFactor `json:"done,omitempty"`
	Enrolled          []ReplayFactor `json:"enrolled,omitempty"`
	RiskFloor         string         `json:"risk_floor,omitempty"`
	RiskHard          bool           `json:"risk_hard,omitempty"`
	RiskDeny          bool           `json:"risk_deny,omitempty"`
	Drifted           bool           `json:"drifted,omitempty"`
	// Disallowed are the user's enrolled factors the client's policy kept
	// from the decision (login/policy Client.Factors): not in Enrolled,
	// nor in [Replay.Input], so the recorded decision replays exactly; a
	// replay under a policy allowing other factors puts them back.
	Disallowed []ReplayFactor `json:"disallowed,omitempty"`
}

// ReplayFactor is a done or enrolled factor in a [Replay]; At is Unix
// nanoseconds (0 for an enrolled one).
type ReplayFactor struct {
	Method      stepup.Method `json:"m"`
	At          int64         `json:"at,omitempty"`
	UV          bool          `json:"uv,omitempty"`
	DB          bool          `json:"db,omitempty"`
	Provisional bool          `json:"prov,omitempty"`
	ForRequest  bool          `json:"req,omitempty"`
}

// ReplayOf records in, the input of a decision for the authorization
// request id with the requested scopes.
func ReplayOf(id string, scopes []string, in stepup.Input) Replay {
	r := Replay{
		Request: id, Requested: in.Requested, Essential: in.Essential, Strict: in.Strict,
		Scopes: scopes, ClientMin: in.ClientMin, ScopeMins: in.ScopeMins,
		PromptLogin: in.PromptLogin, PromptNone: in.PromptNone, TransactionMin: in.TransactionMin,
		RequestTime: in.RequestTime.UnixNano(), Now: in.Now.UnixNano(),
		RiskFloor: in.RiskFloor, RiskHard: in.RiskHard, RiskDeny: in.RiskDeny, Drifted: in.Drifted,
	}
	if in.MaxAge != nil {
		s := int64(*in.MaxAge / time.Second)
		r.MaxAge = &s
	}
	if in.TransactionMaxAge != nil {
		s := int64(*in.TransactionMaxAge / time.Second)
		r.TransactionMaxAge = &s
	}
	for _, f := range in.Done {
		r.Done = append(r.Done, ReplayFactor{Method: f.Method, At: f.At.UnixNano(), UV: f.UserVerified, DB: f.DeviceBound, Provisional: f.Provisional, ForRequest: f.ForRequest})
	}
	r.Enrolled = ReplayEnrolled(in.Enrolled)
	return r
}

// ReplayEnrolled records enrolled factors.
func ReplayEnrolled(en []stepup.Enrolled) []ReplayFactor {
	var out []ReplayFactor
	for _, e := range en {
		out = append(out, ReplayFactor{Method: e.Method, UV: e.UserVerifying, DB: e.DeviceBound, Provisional: e.Provisional})
	}
	return out
}

// Encode is r as the audit detail value.
func (r Replay) Encode() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic("signin: replay: " + err.Error()) // only strings, bools and numbers
	}
	return string(b)
}

// ParseReplay reads a recorded [Replay].
func ParseReplay(s string) (Replay, error) {
	var r Replay
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return Replay{}, fmt.Errorf("signin: replay: %w", err)
	}
	if r.Request == "" || r.Now == 0 {
		return Replay{}, fmt.Errorf("signin: replay: no request or time")
	}
	return r, nil
}

// Input is the recorded input without its floors and risk, which the
// caller applies under the policy it decides with: the request, the
// session's factors and the user's enrolled ones at the time.
func (r Replay) Input() stepup.Input {
	in := stepup.Input{
		Requested: slices.Clone(r.Requested), Essential: r.Essential,
		PromptLogin: r.PromptLogin, PromptNone: r.PromptNone, TransactionMin: r.TransactionMin,
		RequestTime: time.Unix(0, r.RequestTime).UTC(), Now: time.Unix(0, r.Now).UTC(),
	}
	if r.MaxAge != nil {
		d := time.Duration(*r.MaxAge) * time.Second
		in.MaxAge = &d
	}
	if r.TransactionMaxAge != nil {
		d := time.Duration(*r.TransactionMaxAge) * time.Second
		in.TransactionMaxAge = &d
	}
	for _, f := range r.Done {
		in.Done = append(in.Done, f.Factor())
	}
	for _, e := range r.Enrolled {
		in.Enrolled = append(in.Enrolled, stepup.Enrolled{Method: e.Method, UserVerifying: e.UV, DeviceBound: e.DB, Provisional: e.Provisional})
	}
	return in
}

// Factor is f as a done factor.
func (f ReplayFactor) Factor() stepup.Factor {
	return stepup.Factor{Method: f.Method, At: time.Unix(0, f.At).UTC(), UserVerified: f.UV, DeviceBound: f.DB, Provisional: f.Provisional, ForRequest: f.ForRequest}
}
