// Package impact previews a policy change: it decides the sign-ins the
// audit log recorded again, under the current and a proposed policy, and
// counts what would change: extra prompts, denials, challenges that
// disappear, per client and per reason (issue 21, item 3).
//
// It is pure: the caller reads the audit events ([SignIns]) and the two
// policies. Each sign-in is decided with stepup.Decide, the one decision
// the dispatcher runs, from the input its audit events recorded
// (signin.Replay). What a replay cannot know is reported, never guessed:
// sign-ins recorded without their input are counted as not replayable, and
// changed risk settings whose raw facts the log does not keep are listed
// in [Report.Caveats].
package impact

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// ClientFloor is a client's own policy: its minimum level and strict mode.
type ClientFloor struct {
	MinACR string
	Strict bool
}

// Policy is what decides a sign-in: levels, scope minimums, client floors
// and risk rules.
type Policy struct {
	Levels      *stepup.Policy
	ScopeMinACR map[string]string
	// ClientScopeMinACR are the clients' own scope minimums
	// (client_policies.ID.scope_min_acr), by client ID: they add to
	// ScopeMinACR for that client's requests, as policy.Snapshot.ScopeFloors
	// does for a live sign-in.
	ClientScopeMinACR map[string]map[string]string
	// Clients are the clients' floors by ID. A client missing here keeps
	// the floor and strict mode its sign-in recorded.
	Clients          map[string]ClientFloor
	Risk             risk.Rules
	SensitiveClients []string
	SensitiveScopes  []string
}

// SignIn is one recorded sign-in (one authorization request) as its audit
// events tell it.
type SignIn struct {
	// Seq is the sequence number of its first decision's event.
	Seq      int64
	ClientID string
	UserID   string
	// Entry is the input of its first decision with a session.
	Entry signin.Replay
	// Signals are the risk signals recorded with Entry.
	Signals []string
	// Did are the factors done during the sign-in, after Entry: the
	// factor a replay assumes the person picks when it is offered.
	Did []stepup.Factor
	// Recorded is how it ended: "completed", "failed: CODE" or "abandoned".
	Recorded string
	// DecisionError is the error of a recorded failure the decision
	// itself made ("" for a cancel, a refused consent, …).
	DecisionError string

	base *stepup.Input // Entry.Input(), read once for every policy
}

// decisionTypes are the events the dispatcher records with a decision.
var decisionTypes = []storage.EventType{storage.EventStepupRequested, storage.EventLoginCompleted, storage.EventLoginFailed}

// DecisionTypes are the audit event types [SignIns] reads.
func DecisionTypes() []storage.EventType { return slices.Clone(decisionTypes) }

// Skipped counts events [SignIns] could not use, by why.
type Skipped map[string]int

// SignIns groups audit events, in Seq order, into recorded sign-ins.
// An event of a decision type that carries no decision input (recorded
// before the input was recorded, or a failure before any session such as
// prompt=none without one) is skipped and counted, by why.
func SignIns(events []storage.AuditEvent) ([]SignIn, Skipped) {
	skipped := Skipped{}
	var out []SignIn
	byReq := map[string]int{}
	last := map[string]signin.Replay{}
	parsed := parseAll(events)
	for k, e := range events {
		if !slices.Contains(decisionTypes, e.Type) {
			continue
		}
		rp, err := parsed[k].rp, parsed[k].err
		switch {
		case errors.Is(err, errNoInput):
			if e.Type == storage.EventLoginFailed && e.Details["why"] == "no session" {
				continue // decided before anyone signed in: no policy applies
			}
			skipped["recorded without its decision input ("+string(e.Type)+")"]++
			continue
		case err != nil:
			skipped["decision input unreadable ("+string(e.Type)+")"]++
			continue
		}
		i, seen := byReq[rp.Request]
		if !seen {
			i = len(out)
			byReq[rp.Request] = i
			out = append(out, SignIn{Seq: e.Seq, ClientID: e.ClientID, UserID: e.UserID, Entry: rp,
				Signals: strings.Fields(e.Details["risk_signals"]), Recorded: "abandoned"})
		}
		last[rp.Request] = rp
		switch e.Type {
		case storage.EventLoginCompleted:
			out[i].Recorded = "completed"
		case storage.EventLoginFailed:
			out[i].Recorded = "failed: " + e.Reason
			if e.Details["why"] == "step-up decision" {
				out[i].DecisionError = e.Reason
			}
		}
	}
	parallel(len(out), func(from, to int) {
		for i := from; i < to; i++ {
			in := out[i].Entry.Input()
			out[i].base = &in
		}
	})
	for req, i := range byReq {
		// What the last decision counted that the first did not: the
		// factors done during the sign-in.
		entry := out[i].Entry.Done
		for _, f := range last[req].Done {
			if !slices.ContainsFunc(entry, func(e signin.ReplayFactor) bool { return e.Method == f.Method && e.At == f.At }) {
				out[i].Did = append(out[i].Did, f.Factor())
			}
		}
	}
	return out, skipped
}

var errNoInput = errors.New("impact: no decision input")

type parsed struct {
	rp  signin.Replay
	err error
}

// parseAll reads the decision inputs of events, on every CPU: decoding
// them is most of the work of reading a long log.
func parseAll(events []storage.AuditEvent) []parsed {
	out := make([]parsed, len(events))
	parallel(len(events), func(from, to int) {
		for k := from; k < to; k++ {
			e := &events[k]
			if !slices.Contains(decisionTypes, e.Type) {
				continue
			}
			raw, ok := e.Details[signin.ReplayKey]
			if !ok {
				out[k].err = errNoInput
				continue
			}
			out[k].rp, out[k].err = signin.ParseReplay(raw)
		}
	})
	return out
}

// parallel runs f over [0, n) in one chunk per CPU.
func parallel(n int, f func(from, to int)) {
	workers := min(runtime.GOMAXPROCS(0), max(n/1000, 1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { f(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
}

// Outcome is a sign-in replayed under one policy.
type Outcome struct {
	Outcome stepup.Outcome
	// Prompts are the factors asked for, in order, until the sign-in was
	// satisfied or failed.
	Prompts []stepup.Method
	// Reasons are why the first prompt was asked.
	Reasons []stepup.Reason
	Target  string
	ACR     string // Satisfied
	Error   string // Fail
}

// maxPrompts bounds a replay: no level needs more than two factors after
// the first, so a replay that goes on is a bug, stopped rather than looped.
const maxPrompts = 4

// input is s's first decision's input under p: the recorded request,
// factors and enrolment, with p's floors and p's scoring of the risk
// signals.
func (p *Policy) input(s *SignIn) stepup.Input {
	var in stepup.Input
	if s.base != nil {
		in = *s.base // its slices are only read: Replay appends to copies
	} else {
		in = s.Entry.Input()
	}
	in.ClientMin, in.Strict = s.Entry.ClientMin, s.Entry.Strict
	if c, ok := p.Clients[s.ClientID]; ok {
		in.ClientMin, in.Strict = c.MinACR, c.Strict
	}
	own := p.ClientScopeMinACR[s.ClientID]
	for _, sc := range s.Entry.Scopes {
		for _, mins := range []map[string]string{p.ScopeMinACR, own} {
			if m, ok := mins[sc]; ok && !slices.Contains(in.ScopeMins, m) {
				in.ScopeMins = append(in.ScopeMins, m)
			}
		}
	}
	signin.ApplyRisk(&in, p.assess(s))
	return in
}

// assess scores s's recorded signals under p's rules. The sensitive
// client and scope signals follow p's lists; every other signal is as
// recorded (its facts are not in the log: see [Caveats]).
func (p *Policy) assess(s *SignIn) risk.Assessment {
	var a risk.Assessment
	raise := func(name string) {
		a.Score += p.Risk.Weights[name]
		a.Signals = append(a.Signals, risk.Signal{Name: name, Weight: p.Risk.Weights[name]})
	}
	for _, name := range s.Signals {
		switch name {
		case risk.SensitiveClient, risk.SensitiveScope:
			continue
		case risk.IPDenied:
			a.Deny = true
		case risk.SessionDrift:
			a.Reauth = true
		}
		raise(name)
	}
	if slices.Contains(p.SensitiveClients, s.ClientID) {
		raise(risk.SensitiveClient)
	}
	if slices.ContainsFunc(s.Entry.Scopes, func(sc string) bool { return slices.Contains(p.SensitiveScopes, sc) }) {
		raise(risk.SensitiveScope)
	}
	var act risk.Action
	switch {
	case a.Score >= p.Risk.High:
		a.Band, act = risk.High, p.Risk.OnHigh
	case a.Score >= p.Risk.Medium:
		a.Band, act = risk.Medium, p.Risk.OnMedium
	default:
		a.Band, act = risk.Low, p.Risk.OnLow
	}
	a.Floor, a.Hard = act.Floor, act.Hard
	a.Deny = a.Deny || act.Deny
	return a
}

// Replay decides s under p as the dispatcher would: from its first
// decision, each factor asked for is taken as done (the one the person
// did in the recorded sign-in when it is offered, else the first offered,
// with the flags of the user's enrolled credential), until the sign-in is
// satisfied or fails.
func (p *Policy) Replay(s *SignIn) Outcome {
	in := p.input(s)
	var o Outcome
	for range maxPrompts + 1 {
		// The policy preview is Decide's second caller, besides the
		// dispatcher (login/flow.go): it asks the same question, of a
		// recorded input (TestOneDecision).
		d := stepup.Decide(p.Levels, in)
		o.Outcome, o.Target = d.Outcome, d.Target
		switch d.Outcome {
		case stepup.Satisfied:
			o.ACR = d.ACR
			return o
		case stepup.Fail:
			o.Error = d.Error
			return o
		}
		if len(o.Prompts) == maxPrompts {
			break
		}
		if o.Prompts == nil {
			o.Reasons = d.Reasons
		}
		if in.Drifted {
			// The dispatcher's drift: the old factors count for nothing and
			// the level they met is a floor, which d.Target includes.
			in.Done, in.Drifted, in.RiskFloor = nil, false, d.Target
		}
		f := pick(d.Next, s.Did, in)
		o.Prompts = append(o.Prompts, f.Method)
		in.Done = append(slices.Clone(in.Done), f)
	}
	o.Outcome, o.Error = stepup.Fail, "replay did not settle"
	return o
}

// pick is the factor the person does when asked for one of next: the one
// they did in the recorded sign-in, else the first offered, with the best
// flags the user's enrolment gives it.
func pick(next []stepup.Method, did []stepup.Factor, in stepup.Input) stepup.Factor {
	for _, f := range did {
		if slices.Contains(next, f.Method) && !slices.ContainsFunc(in.Done, func(d stepup.Factor) bool { return d.Method == f.Method && !d.At.Before(f.At) }) {
			f.At, f.ForRequest = in.Now, true
			return f
		}
	}
	f := stepup.Factor{Method: next[0], At: in.Now, ForRequest: true}
	if f.Method == stepup.WebAuthn {
		// The credential the step-up would most likely use: one that can
		// reach the most.
		best := -1
		for _, e := range in.Enrolled {
			if e.Method != stepup.WebAuthn {
				continue
			}
			score := 0
			if !e.Provisional {
				score += 4
			}
			if e.UserVerifying {
				score += 2
			}
			if e.DeviceBound {
				score++
			}
			if score > best {
				best = score
				f.UserVerified, f.DeviceBound, f.Provisional = e.UserVerifying, e.DeviceBound, e.Provisional
			}
		}
	}
	return f
}

// Change is how a sign-in fares under the proposed policy compared with
// the current one.
type Change string

// The changes a sign-in can show.
const (
	Unchanged   Change = "unchanged"
	ExtraPrompt Change = "extra_prompt"  // asked for a factor more
	Denied      Change = "denied"        // fails where it did not
	Removed     Change = "fewer_prompts" // a challenge disappears
	Allowed     Change = "allowed"       // no longer fails
	Different   Change = "different"     // same prompts, another acr or error
)

// Compare classifies the change from cur to prop. factor is the extra (or
// removed) prompt's factor, or the denial's error.
func Compare(cur, prop Outcome) (c Change, what string) {
	switch {
	case prop.Outcome == stepup.Fail && cur.Outcome != stepup.Fail:
		return Denied, prop.Error
	case cur.Outcome == stepup.Fail && prop.Outcome != stepup.Fail:
		return Allowed, cur.Error
	case cur.Outcome == stepup.Fail:
		if cur.Error != prop.Error {
			return Different, prop.Error
		}
		return Unchanged, ""
	}
	if m, ok := missing(prop.Prompts, cur.Prompts); ok {
		return ExtraPrompt, string(m)
	}
	if m, ok := missing(cur.Prompts, prop.Prompts); ok {
		return Removed, string(m)
	}
	if cur.ACR != prop.ACR {
		return Different, prop.ACR
	}
	return Unchanged, ""
}

// missing returns the first prompt of a that b does not have (as a
// multiset).
func missing(a, b []stepup.Method) (stepup.Method, bool) {
	left := slices.Clone(b)
	for _, m := range a {
		if i := slices.Index(left, m); i >= 0 {
			left = slices.Delete(left, i, i+1)
			continue
		}
		return m, true
	}
	return "", false
}

// Example is one sign-in that changed, by the audit sequence number of its
// first decision.
type Example struct {
	Seq      int64  `json:"seq"`
	ClientID string `json:"client_id"`
	UserID   string `json:"user_id"`
	Change   Change `json:"change"`
	What     string `json:"what"`   // the factor or the error
	Reason   string `json:"reason"` // why, in stepup's reason names
}

// Counts are the changes over a set of sign-ins.
type Counts struct {
	SignIns     int `json:"sign_ins"`
	ExtraPrompt int `json:"extra_prompt"`
	Denied      int `json:"denied"`
	Removed     int `json:"fewer_prompts"`
	Allowed     int `json:"allowed"`
	Different   int `json:"different"`
	// ByWhat counts the changes by change and factor or error, as
	// "extra_prompt webauthn" or "denied unmet_authentication_requirements".
	ByWhat map[string]int `json:"by_what,omitempty"`
	// ByReason counts the changes by change and reason, as
	// "extra_prompt scope_minimum".
	ByReason map[string]int `json:"by_reason,omitempty"`
}

func (c *Counts) add(ch Change, what, reason string) {
	c.SignIns++
	switch ch {
	case Unchanged:
		return
	case ExtraPrompt:
		c.ExtraPrompt++
	case Denied:
		c.Denied++
	case Removed:
		c.Removed++
	case Allowed:
		c.Allowed++
	case Different:
		c.Different++
	}
	if c.ByWhat == nil {
		c.ByWhat, c.ByReason = map[string]int{}, map[string]int{}
	}
	c.ByWhat[string(ch)+" "+what]++
	c.ByReason[string(ch)+" "+reason]++
}

// Report is the preview's answer.
type Report struct {
	Total   Counts            `json:"total"`
	Clients map[string]Counts `json:"clients"`
	// Examples are up to ExamplesPer sign-ins of each change and client.
	Examples []Example `json:"examples,omitempty"`
	// NotReplayable counts audit events that could not be replayed, by why.
	NotReplayable map[string]int `json:"not_replayable,omitempty"`
	// RecordedDiffers counts sign-ins whose replay under the current
	// policy ended otherwise than recorded: completed with other prompts
	// than the person answered, or not at all, or failed otherwise. The
	// policy changed since they were recorded.
	RecordedDiffers int `json:"recorded_differs"`
	// Caveats name proposed changes the log cannot replay.
	Caveats []string `json:"caveats,omitempty"`
}

// ExamplesPer is how many examples a report keeps of each change and
// client.
const ExamplesPer = 3

// Preview replays every sign-in under cur and prop.
func Preview(signIns []SignIn, skipped Skipped, cur, prop *Policy) Report {
	r := Report{Clients: map[string]Counts{}, Caveats: Caveats(cur, prop)}
	if len(skipped) > 0 {
		r.NotReplayable = maps.Clone(skipped)
	}
	kept := map[string]int{}
	curs, props := make([]Outcome, len(signIns)), make([]Outcome, len(signIns))
	parallel(len(signIns), func(from, to int) {
		for i := from; i < to; i++ {
			curs[i], props[i] = cur.Replay(&signIns[i]), prop.Replay(&signIns[i])
		}
	})
	for i := range signIns {
		s := &signIns[i]
		co, po := curs[i], props[i]
		if differs(co, s) {
			r.RecordedDiffers++
		}
		ch, what := Compare(co, po)
		reason := reasonOf(ch, co, po)
		r.Total.add(ch, what, reason)
		c := r.Clients[s.ClientID]
		c.add(ch, what, reason)
		r.Clients[s.ClientID] = c
		if ch != Unchanged {
			k := s.ClientID + " " + string(ch)
			if kept[k] < ExamplesPer {
				kept[k]++
				r.Examples = append(r.Examples, Example{Seq: s.Seq, ClientID: s.ClientID, UserID: s.UserID, Change: ch, What: what, Reason: reason})
			}
		}
	}
	return r
}

// differs reports whether a replay's outcome contradicts the recorded
// one: a completed sign-in that fails or asks for other factors than the
// person did, or a decision's failure that ends otherwise.
func differs(o Outcome, s *SignIn) bool {
	switch {
	case s.Recorded == "completed":
		did := make([]stepup.Method, len(s.Did))
		for i, f := range s.Did {
			did[i] = f.Method
		}
		_, extra := missing(o.Prompts, did)
		_, fewer := missing(did, o.Prompts)
		return o.Outcome != stepup.Satisfied || extra || fewer
	case s.DecisionError != "":
		return o.Outcome != stepup.Fail || o.Error != s.DecisionError
	}
	return false
}

// reasonOf is why the change happened, in stepup's reason names: the
// proposed decision's reasons for a new prompt, the level it could not
// reach for a denial, the current decision's for a prompt that goes.
func reasonOf(ch Change, cur, prop Outcome) string {
	join := func(rs []stepup.Reason) string {
		s := make([]string, len(rs))
		for i, r := range rs {
			s[i] = string(r)
		}
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}
	switch ch {
	case ExtraPrompt:
		return join(prop.Reasons) + " → " + prop.Target
	case Removed:
		return join(cur.Reasons) + " → " + cur.Target
	case Denied:
		if prop.Target != "" {
			return "cannot reach " + prop.Target
		}
		return prop.Error
	case Allowed:
		return "now reaches " + prop.Target
	case Different:
		if cur.Outcome == stepup.Fail {
			return "error " + cur.Error + " → " + prop.Error
		}
		return "acr " + cur.ACR + " → " + prop.ACR
	}
	return ""
}

// Caveats names the settings that differ between cur and prop but that
// the audit log cannot replay: the thresholds on raw counts and travel
// whose facts a sign-in's event does not keep. A sign-in those settings
// would now flag, or no longer flag, is not seen by the preview.
func Caveats(cur, prop *Policy) []string {
	var out []string
	a, b := cur.Risk, prop.Risk
	check := func(name string, changed bool) {
		if changed {
			out = append(out, fmt.Sprintf("risk.%s changed: the raw facts behind it are not in the audit log, so its effect is not previewed", name))
		}
	}
	check("min_account_failures", a.MinAccountFailures != b.MinAccountFailures)
	check("min_ip_failures", a.MinIPFailures != b.MinIPFailures)
	check("min_ip_usernames", a.MinIPUsernames != b.MinIPUsernames)
	check("max_travel_kmh", a.MaxTravelKmh != b.MaxTravelKmh)
	check("min_travel_km", a.MinTravelKm != b.MinTravelKm)
	return out
}
