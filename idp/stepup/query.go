package stepup

import (
	"slices"
	"time"
)

// Besides [Decide], which answers an authorization request, the hosted UI
// asks a few smaller questions: of a session outside any request (the
// account portal, the admin console, the passkey pages), of a request about
// to run a WebAuthn ceremony, and of a request that has not happened yet
// (the admin "explain" tool). The queries below answer them with the same
// rules as Decide, so that no caller has to ask Decide a made-up question
// to learn one of its parts.

// Session is a browser session seen outside any authorization request: the
// factors done in it and the factors its user has enrolled, at Now. Its
// user is known: a session with nothing done and nothing enrolled reaches
// nothing (unlike Decide's first visit to the login page).
type Session struct {
	Done     []Factor
	Enrolled []Enrolled
	Now      time.Time
}

// Risk is what a risk assessment asks of the session (idp/risk): the
// fields of the same meaning in [Input] are RiskFloor, RiskHard, RiskDeny
// and Drifted.
type Risk struct {
	Floor   string
	Hard    bool
	Deny    bool
	Drifted bool
}

func (p *Policy) orDefault() *Policy {
	if p == nil || len(p.levels) == 0 {
		return defaultPolicy
	}
	return p
}

// current is the rank of the highest level done meets at now, with no
// max_age: each factor counts within the level's freshness window.
func (p *Policy) current(done []Factor, now time.Time) (rank int, ok bool) {
	s := latest(done, now)
	for r := len(p.levels) - 1; r >= 0; r-- {
		if meets(p.levels[r].Requires, count(&p.levels[r], s, now, nil).set) {
			return r, true
		}
	}
	return -1, false
}

// Current returns the canonical acr of the highest level the session's
// factors meet now (each within its level's freshness window, DESIGN §3.2),
// and false when they meet none. It is the acr Decide issues for a request
// that asks for nothing, and the level a drifted session must prove again.
func (p *Policy) Current(s Session) (acr string, ok bool) {
	p = p.orDefault()
	r, ok := p.current(s.Done, s.Now)
	if !ok {
		return "", false
	}
	return p.levels[r].ACR, true
}

// sessionEval is Decide's view of s as if it came with a request whose
// max_age is within (within ≤ 0: none).
func (p *Policy) sessionEval(s Session, within time.Duration) *eval {
	in := Input{RequestTime: s.Now, Now: s.Now, Done: s.Done, Enrolled: s.Enrolled}
	if within > 0 {
		in.MaxAge = &within
	}
	e := newEval(p, in)
	e.anonymous = false
	return e
}

// Fresh reports whether the session holds the level named acr with
// factors done within the last `within` (within ≤ 0: only the level's own
// freshness windows apply), and the auth_time Decide would issue for it:
// the earliest time of the newest factors that meet it.
//
// It is the gate of every account change, of the admin console and of
// adding a passkey: DESIGN §3.3 asks for a session at the level the change
// is worth, fresh within 10 minutes (NIST SP 800-63B §6.1.2.1, the
// reauthentication to bind or remove an authenticator). It is false for an
// unknown acr.
func (p *Policy) Fresh(s Session, acr string, within time.Duration) (authTime time.Time, ok bool) {
	p = p.orDefault()
	r, known := p.rank[acr]
	if !known {
		return time.Time{}, false
	}
	e := p.sessionEval(s, within)
	if !e.met(r) {
		return time.Time{}, false
	}
	return satisfying(p.levels[r].Requires, e.counted[r].set)[0].At, true
}

// Reachable reports whether the user can bring the session to the level
// named acr: with the factors done within `within` (within ≤ 0: within
// their levels' windows) plus any enrolled factor done afresh, as Decide
// judges a requested level reachable. A step-up for a level that is not
// reachable could only fail with unmet_authentication_requirements (OIDC
// Core §5.5.1.1), so the caller says what to add instead of sending the
// user through it. It is false for an unknown acr.
func (p *Policy) Reachable(s Session, acr string, within time.Duration) bool {
	p = p.orDefault()
	r, known := p.rank[acr]
	return known && p.sessionEval(s, within).reachable(r)
}

// ReachableUpTo returns acr if the session can reach it, else the canonical
// name of the highest level below it that it can reach, else the lowest
// level. An unknown acr is returned as it is. Removing or adding a
// WebAuthn credential needs the level it grants or, for a user who cannot
// reach that (their first passkey), the best they can do (DESIGN §3.3).
func (p *Policy) ReachableUpTo(s Session, acr string) string {
	p = p.orDefault()
	rank, known := p.rank[acr]
	if !known {
		return acr
	}
	e := p.sessionEval(s, 0)
	for r := rank; r >= 0; r-- {
		if e.reachable(r) {
			return p.levels[r].ACR
		}
	}
	return p.levels[0].ACR
}

// Admit is what the risk of a request that presents the session asks of
// it: Satisfied when the session's factors meet the risk floor, NeedFactor
// when one more is needed (the caller sends the user through the step-up),
// Fail when risk refuses the session (the caller ends it). It is the
// decision for a request that asks for nothing else (DESIGN §3.4: the
// portal and the console are ways in and meet the same floor as a sign-in).
func (p *Policy) Admit(s Session, r Risk) Outcome {
	return Decide(p, Input{
		RiskFloor: r.Floor, RiskHard: r.Hard, RiskDeny: r.Deny, Drifted: r.Drifted,
		RequestTime: s.Now, Now: s.Now, Done: s.Done, Enrolled: s.Enrolled,
	}).Outcome
}

// NeedsVerification reports whether the next WebAuthn assertion for the
// request in must carry user verification: true when in needs a factor and
// only a user-verified passkey can take it to its target, as for a user
// without a password asked to sign in again. It supposes an assertion
// without user verification from a device-bound credential (the best a
// credential without UV can be) and the user's credentials unable to verify
// the user; if the target is then out of reach, UV is needed. Otherwise UV
// is only preferred: the level counts the UV flag the authenticator signed,
// never what was asked (WebAuthn Level 3 §5.4.6; NIST SP 800-63B §4.2.1, a
// user-verified passkey is a multi-factor authenticator by itself).
func (p *Policy) NeedsVerification(in Input) bool {
	p = p.orDefault()
	d := Decide(p, in)
	t, known := p.rank[d.Target]
	if d.Outcome != NeedFactor || !known {
		return false
	}
	in = undrift(p, in)
	in.Done = append(slices.Clone(in.Done), Factor{Method: WebAuthn, At: in.Now, DeviceBound: true})
	in.Enrolled = slices.Clone(in.Enrolled)
	for i := range in.Enrolled {
		in.Enrolled[i].UserVerifying = false
	}
	return !newEval(p, in).reachable(t)
}

// Preview is the decision for in right after the user entered a correct
// password at in.Now, and nothing else: what the admin "explain" tool
// shows for a sign-in that has not happened (in.Done is replaced).
func (p *Policy) Preview(in Input) Decision {
	in.Done = []Factor{{Method: Password, At: in.Now}}
	in.NoSession, in.Drifted = false, false
	return Decide(p, in)
}

// Unlocks reports whether enrolling e would let the request in go on: the
// decision fails with ErrUnmet now (a level the user's factors cannot
// reach), and would not fail with e enrolled as well. It is the question
// behind "set one up now" (DESIGN §3.3): offering a factor that leaves the
// app out of reach would only loop. It decides nothing about the request
// itself, whose next decision is made with the factors actually enrolled.
func (p *Policy) Unlocks(in Input, e Enrolled) bool {
	p = p.orDefault()
	if Decide(p, in).Error != ErrUnmet {
		return false
	}
	in.Enrolled = append(slices.Clone(in.Enrolled), e)
	return Decide(p, in).Outcome != Fail
}
