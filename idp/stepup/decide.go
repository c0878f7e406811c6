package stepup

import (
	"slices"
	"time"
)

var defaultPolicy = DefaultPolicy()

// Decide applies p to in. It is pure, never panics and never returns the zero
// Decision. A nil (or zero) p means [DefaultPolicy]. The rules, in the order they apply:
//
//  0. No session (in.NoSession): prompt=none → Fail login_required (OIDC
//     Core §3.1.2.1); otherwise NeedFactor password, for ReasonNoSession,
//     with no Target: nothing is known yet about whom the request is for.
//
//  1. Risk deny → Fail access_denied. Session drift (in.Drifted): the
//     session's factors count for nothing, and the highest level they met
//     (see [Policy.Current]) raises RiskFloor, so the user proves it again.
//
//  2. Requested level: the first value of in.Requested that p knows and that
//     is reachable with the user's factors (every enrolled factor assumed
//     done afresh, counted factors kept). Unknown values are ignored. If
//     values are known but none is reachable: Essential or Strict → Fail
//     unmet_authentication_requirements (OIDC Core §5.5.1.1, RFC 9470 §5);
//     otherwise the request is dropped and the session's real acr is issued
//     (OIDC Core §5.5.1.1). If every value is unknown and Essential or Strict
//     is set → Fail unmet_authentication_requirements.
//
//  3. Floors raise the target and never lower it: ClientMin and ScopeMins,
//     unreachable (or unknown) → Fail unmet_authentication_requirements;
//     RiskFloor, unreachable (or unknown) → Fail access_denied when RiskHard,
//     else waived (RiskWaived). TransactionMin, the floor of the request's
//     authorization details, is one more: unreachable (or unknown) → Fail
//     unmet_authentication_requirements. With no request and no floor the
//     target is the lowest level.
//
//  4. Target met by the counted factors → Satisfied. With an active request,
//     the acr is the first requested value (as the RP spelled it) whose level
//     is met and at or above the target, or else the target's canonical name:
//     never below what the floors enforced (DESIGN §3.3). With no (kept)
//     request it is the canonical name of the highest level met. amr and
//     auth_time come from the satisfying set of that level: the newest
//     counted factors that meet it, so auth_time (their earliest time) is as
//     late as it can truthfully be (OIDC Core §2).
//
//     A transaction (TransactionMin set) is met only when it is approved:
//     some route of the target level holds whose strongest factor
//     (WebAuthn, then TOTP, then recovery code, then password) was done for
//     this request (Factor.ForRequest: on its page, which showed the
//     details; a factor done meanwhile in another tab, for another
//     request, does not count), and every counted factor is within
//     TransactionMaxAge (and max_age) of RequestTime. So a session already
//     at the level still proves one factor again, and only that one: for
//     phr a passkey, not the password still within the max age. Why:
//     - the person approves what the page shows for this request; a factor
//     done before the request was shown nothing of it, so it cannot be
//     the approval (PSD2 RTS Art. 5, dynamic linking: the authentication
//     is specific to the amount and the payee);
//     - the strongest factor is the one that can commit to the details: a
//     passkey signs a challenge derived from them (idp/details
//     Challenge), a password or a code cannot. A fresh password next to a
//     passkey assertion made for another request would approve with
//     nothing signed, so for phr the passkey itself must be fresh;
//     - asking only for that factor keeps the step-up to one prompt, as
//     everywhere else (a factor within the max age is not asked again).
//     The approval is judged at the target, which is at least
//     TransactionMin: the request's strongest demand says what approves it,
//     so the approval is never weaker than the acr the token will carry.
//     Without a (kept) request that acr is the target's, not the highest
//     level the session holds: the token says how the approval was made.
//
//  5. Target out of reach (a user with no password or passkey) → Fail
//     unmet_authentication_requirements.
//
//  6. prompt=none → Fail login_required; never any UI (OIDC Core §3.1.2.1).
//
//  7. Otherwise NeedFactor: Next lists the enrolled factors, not yet
//     counted, that lie on some route to the target; those that finish it in
//     one step come first, among them (and among the rest) Input.Preferred,
//     then WebAuthn, TOTP, recovery code, password. With
//     nothing counted the first factor is a password or WebAuthn, never TOTP
//     or a recovery code. Reasons say why.
func Decide(p *Policy, in Input) Decision {
	p = p.orDefault()
	if in.NoSession {
		if in.PromptNone {
			return Decision{Outcome: Fail, Error: ErrLoginRequired}
		}
		return Decision{Outcome: NeedFactor, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession}}
	}
	if in.RiskDeny {
		return Decision{Outcome: Fail, Error: ErrAccessDenied}
	}
	in = undrift(p, in)
	e := newEval(p, in)
	essential := in.Essential || in.Strict

	// 2. The requested level.
	reqRank, active, firstKnown := -1, false, -1
	for _, v := range in.Requested {
		r, ok := p.rank[v]
		if !ok {
			continue
		}
		if firstKnown < 0 {
			firstKnown = r
		}
		if e.reachable(r) {
			reqRank, active = r, true
			break
		}
	}
	switch {
	case active:
	case firstKnown >= 0 && essential:
		return Decision{Outcome: Fail, Target: p.levels[firstKnown].ACR, Error: ErrUnmet}
	case firstKnown < 0 && len(in.Requested) > 0 && essential:
		return Decision{Outcome: Fail, Error: ErrUnmet}
	}

	// 3. Floors.
	target := max(reqRank, 0)
	type floor struct {
		rank   int
		reason Reason
	}
	var floors []floor
	unmet := func(acr string) Decision {
		d := Decision{Outcome: Fail, Error: ErrUnmet}
		if r, ok := p.rank[acr]; ok {
			d.Target = p.levels[r].ACR
		}
		return d
	}
	if in.ClientMin != "" {
		r, ok := p.rank[in.ClientMin]
		if !ok || !e.reachable(r) {
			return unmet(in.ClientMin)
		}
		floors = append(floors, floor{r, ReasonClientMin})
	}
	for _, s := range in.ScopeMins {
		r, ok := p.rank[s]
		if !ok || !e.reachable(r) {
			return unmet(s)
		}
		floors = append(floors, floor{r, ReasonScope})
	}
	if in.TransactionMin != "" {
		r, ok := p.rank[in.TransactionMin]
		if !ok || !e.reachable(r) {
			return unmet(in.TransactionMin)
		}
		floors = append(floors, floor{r, ReasonTransaction})
	}
	waived := false
	if in.RiskFloor != "" {
		r, ok := p.rank[in.RiskFloor]
		switch {
		case ok && e.reachable(r):
			floors = append(floors, floor{r, ReasonRisk})
		case in.RiskHard:
			d := unmet(in.RiskFloor)
			d.Error = ErrAccessDenied
			return d
		default:
			// DESIGN §3.4: medium risk the user cannot answer proceeds at the
			// real level; the caller audits RiskWaived.
			waived = true
		}
	}
	for _, f := range floors {
		target = max(target, f.rank)
	}
	if in.TransactionMin != "" {
		// From here on the target is met only once approved (rule 4).
		e.approve = target
	}

	// 4. Satisfied.
	if e.met(target) {
		acrRank, acr := -1, ""
		if active {
			// DESIGN §3.3: the first requested value that is met and not
			// below what was enforced (floors included), as the RP spelled
			// it; else the target itself. A token never says less than
			// Keystep made the user do.
			acrRank, acr = target, p.levels[target].ACR
			for _, v := range in.Requested {
				if r, ok := p.rank[v]; ok && r >= target && e.met(r) {
					acrRank, acr = r, v
					break
				}
			}
		} else if e.approve >= 0 {
			// A transaction: the level that approved it. A higher level
			// the session holds from before the request approved nothing,
			// and an API reads the acr as how this approval was made.
			acrRank, acr = target, p.levels[target].ACR
		} else {
			// No (kept) request: the session's real acr (OIDC Core §5.5.1.1),
			// which is at or above the target since the target is met.
			for r := len(p.levels) - 1; r >= 0; r-- {
				if e.met(r) {
					acrRank, acr = r, p.levels[r].ACR
					break
				}
			}
		}
		fs := satisfying(p.levels[acrRank].Requires, e.counted[acrRank].set)
		return Decision{
			Outcome:    Satisfied,
			Target:     p.levels[target].ACR,
			ACR:        acr,
			AMR:        AMR(fs),
			AuthTime:   fs[0].At,
			RiskWaived: waived,
		}
	}

	// 5. Nothing left to try: only a user with no password or passkey gets
	// here (no request, no floor, and the lowest level out of reach).
	if !e.reachable(target) {
		return Decision{Outcome: Fail, Target: p.levels[target].ACR, Error: ErrUnmet, RiskWaived: waived}
	}

	// 6. prompt=none shows no UI.
	if in.PromptNone {
		return Decision{Outcome: Fail, Target: p.levels[target].ACR, Error: ErrLoginRequired, RiskWaived: waived}
	}

	// 7. Ask for a factor.
	c := &e.counted[target]
	var why [len(reasonOrder)]bool
	if c.set.empty() {
		why[reasonIndex(ReasonNoSession)] = true
	}
	for _, r := range c.excluded {
		if r != "" {
			why[reasonIndex(r)] = true
		}
	}
	if active && reqRank > 0 && !e.met(reqRank) {
		why[reasonIndex(ReasonRequested)] = true
	}
	if e.approve >= 0 {
		why[reasonIndex(ReasonTransaction)] = true
	}
	for _, f := range floors {
		// A floor explains the prompt when it is what raised the target
		// above the request (and above the lowest level).
		if f.rank > 0 && f.rank == target && f.rank > reqRank {
			why[reasonIndex(f.reason)] = true
		}
	}
	var reasons []Reason
	for i, ok := range why {
		if ok {
			reasons = append(reasons, reasonOrder[i])
		}
	}
	return Decision{
		Outcome:    NeedFactor,
		Target:     p.levels[target].ACR,
		Next:       e.next(target),
		Reasons:    reasons,
		RiskWaived: waived,
	}
}

// undrift applies session drift (Input.Drifted) to in: the session's
// factors are dropped and the level they met now becomes a risk floor. Risk
// raises the floor and never lowers it (DESIGN §3.3): an unknown RiskFloor
// gives way to the current level, a higher one stays.
func undrift(p *Policy, in Input) Input {
	if !in.Drifted || len(in.Done) == 0 {
		return in
	}
	cur, met := p.current(in.Done, in.Now)
	in.Done = nil
	if r, known := p.rank[in.RiskFloor]; met && (!known || cur > r) {
		in.RiskFloor = p.levels[cur].ACR
	}
	return in
}

var reasonOrder = [...]Reason{
	ReasonNoSession, ReasonRequested, ReasonClientMin, ReasonScope,
	ReasonRisk, ReasonMaxAge, ReasonPromptLogin, ReasonStale, ReasonTransaction,
}

func reasonIndex(r Reason) int { return slices.Index(reasonOrder[:], r) }

// methods is the index order of a set.
var methods = [...]Method{Password, TOTP, Recovery, WebAuthn}

func methodIndex(m Method) int { return slices.Index(methods[:], m) }

// preference orders Next after "finishes in one step": phishing-resistant
// first (NIST SP 800-63B §5.2.5), then the rest by strength.
func preference(m Method) int {
	switch m {
	case WebAuthn:
		return 0
	case TOTP:
		return 1
	case Recovery:
		return 2
	}
	return 3
}

// strongest is the slot of rt that approves a transaction: the first by
// preference, so WebAuthn, which can sign the details, whenever the route
// has it.
func strongest(rt []slot) slot {
	best := rt[0]
	for _, sl := range rt[1:] {
		if preference(sl.m) < preference(best.m) {
			best = sl
		}
	}
	return best
}

// set holds at most one factor per method.
type set struct {
	has [len(methods)]bool
	f   [len(methods)]Factor
}

func (s *set) put(f Factor) {
	i := methodIndex(f.Method)
	s.has[i], s.f[i] = true, f
}

func (s *set) get(m Method) (Factor, bool) {
	i := methodIndex(m)
	return s.f[i], s.has[i]
}

func (s *set) empty() bool { return s.has == [len(methods)]bool{} }

func (s *set) factors() []Factor {
	var out []Factor
	for i, ok := range s.has {
		if ok {
			out = append(out, s.f[i])
		}
	}
	return out
}

// latest keeps the newest factor of each known method, ignoring any dated
// after now. For WebAuthn the newest ceremony's flags are the ones that count.
func latest(done []Factor, now time.Time) set {
	var s set
	for _, f := range done {
		i := methodIndex(f.Method)
		if i < 0 || f.At.After(now) {
			continue
		}
		if !s.has[i] || !f.At.Before(s.f[i].At) {
			s.put(f)
		}
	}
	return s
}

// since is the max_age bound: factors before from do not count (OIDC Core
// §3.1.2.1), and reason names the request parameter behind it.
type since struct {
	from   time.Time
	reason Reason
}

// counted is the part of a session that counts for one level, and why each
// other completed factor does not.
type counted struct {
	set      set
	excluded [len(methods)]Reason
}

func count(l *Level, done set, now time.Time, b *since) counted {
	var c counted
	for i, ok := range done.has {
		if !ok {
			continue
		}
		f := done.f[i]
		switch {
		case b != nil && f.At.Before(b.from):
			c.excluded[i] = b.reason
		case f.At.Before(now.Add(-l.window(f.Method))):
			c.excluded[i] = ReasonStale
		default:
			c.set.put(f)
		}
	}
	return c
}

// slot is one element of a route: a method and, for WebAuthn, the flags the
// credential must have. pr asks for a trusted (not provisional) credential.
type slot struct {
	m          Method
	uv, db, pr bool
}

func (s slot) accepts(f Factor) bool {
	return f.Method == s.m && (!s.uv || f.UserVerified) && (!s.db || f.DeviceBound) && (!s.pr || !f.Provisional)
}

func (s slot) enrollable(e Enrolled) bool {
	return e.Method == s.m && (!s.uv || e.UserVerifying) && (!s.db || e.DeviceBound) && (!s.pr || !e.Provisional)
}

var (
	pwd      = slot{m: Password}
	totp     = slot{m: TOTP}
	rec      = slot{m: Recovery}
	wa       = slot{m: WebAuthn}
	waUV     = slot{m: WebAuthn, uv: true}
	waPR     = slot{m: WebAuthn, pr: true}
	waUVPR   = slot{m: WebAuthn, uv: true, pr: true}
	waDBPR   = slot{m: WebAuthn, db: true, pr: true}
	waUVDBPR = slot{m: WebAuthn, uv: true, db: true, pr: true}
	byRank   = [...]Requirement{AnyFactor, MultiFactor, PhishingResistant, PhishingResistantHardware}
	routeOf  = [len(byRank)][][]slot{
		// any: one factor.
		{{pwd}, {totp}, {rec}, {wa}},
		// mfa, NIST SP 800-63B §4.2.1: a memorized secret plus a possession
		// factor, or one multi-factor authenticator (a UV passkey). A
		// provisional credential is a possession factor like any other.
		{{pwd, totp}, {pwd, rec}, {pwd, wa}, {waUV}},
		// phr: the mfa routes that include WebAuthn; recovery codes and
		// TOTP are not verifier-impersonation resistant (§5.2.5), and a
		// provisional credential may have been registered by whoever
		// relayed them (DESIGN §3.3), so it must be trusted.
		{{pwd, waPR}, {waUVPR}},
		// phrh: phr with a device-bound (not synced) credential.
		{{pwd, waDBPR}, {waUVDBPR}},
	}
)

// reqRank orders requirements; -1 for an unknown one.
func reqRank(r Requirement) int { return slices.Index(byRank[:], r) }

// routes lists the minimal sets of factors that meet r.
func routes(r Requirement) [][]slot {
	if i := reqRank(r); i >= 0 {
		return routeOf[i]
	}
	return nil
}

// meets reports whether s holds some route of r.
func meets(r Requirement, s set) bool {
	for _, route := range routes(r) {
		if holds(route, s) {
			return true
		}
	}
	return false
}

func holds(route []slot, s set) bool {
	for _, sl := range route {
		if f, ok := s.get(sl.m); !ok || !sl.accepts(f) {
			return false
		}
	}
	return true
}

// satisfying returns the shortest newest-first prefix of c that meets r, so
// its earliest time is the latest any satisfying set can have: every
// satisfying set whose earliest time is t lies within the factors done at or
// after t, which therefore meet r too. It returns the factors oldest first.
func satisfying(r Requirement, c set) []Factor {
	fs := c.factors()
	slices.SortStableFunc(fs, func(a, b Factor) int { return b.At.Compare(a.At) })
	var s set
	for i, f := range fs {
		s.put(f)
		if meets(r, s) {
			out := fs[:i+1]
			slices.Reverse(out)
			return out
		}
	}
	return nil
}

// eval holds what Decide knows about the session, level by level.
type eval struct {
	p         *Policy
	enrolled  []Enrolled
	anonymous bool      // user not identified yet: every factor is possible
	preferred Method    // Input.Preferred
	counted   []counted // by rank
	// approve is the rank at which a transaction must be approved (-1:
	// none): a route of it holds only when its strongest factor was done
	// for the request (Decide, rule 4).
	approve int
}

func newEval(p *Policy, in Input) *eval {
	var b *since
	switch {
	case in.PromptLogin:
		// OIDC Core §3.1.2.1: prompt=login is max_age=0.
		b = &since{from: in.RequestTime, reason: ReasonPromptLogin}
	case in.MaxAge != nil:
		b = &since{from: in.RequestTime.Add(-max(*in.MaxAge, 0)), reason: ReasonMaxAge}
	}
	if in.TransactionMin != "" && in.TransactionMaxAge != nil {
		// The transaction's max age bounds counting as max_age does; the
		// tighter bound wins.
		if from := in.RequestTime.Add(-max(*in.TransactionMaxAge, 0)); b == nil || from.After(b.from) {
			b = &since{from: from, reason: ReasonTransaction}
		}
	}
	done := latest(in.Done, in.Now)
	e := &eval{
		p:         p,
		enrolled:  in.Enrolled,
		anonymous: len(in.Enrolled) == 0 && len(in.Done) == 0,
		preferred: in.Preferred,
		counted:   make([]counted, len(p.levels)),
		approve:   -1,
	}
	for r := range p.levels {
		e.counted[r] = count(&p.levels[r], done, in.Now, b)
	}
	return e
}

func (e *eval) met(rank int) bool {
	c := e.counted[rank].set
	for _, rt := range routes(e.p.levels[rank].Requires) {
		if holds(rt, c) && e.approved(rank, rt, c) {
			return true
		}
	}
	return false
}

// approved reports whether route rt of the level, held by c, approves the
// transaction: its strongest factor was done for this request. Below the
// transaction's rank every route approves; at it and above, a level counts
// only as approved, so a higher level the session held before the request
// is never reported as the approval's acr.
func (e *eval) approved(rank int, rt []slot, c set) bool {
	if e.approve < 0 || rank < e.approve {
		return true
	}
	f, ok := c.get(strongest(rt).m)
	return ok && f.ForRequest
}

func (e *eval) canEnroll(s slot) bool {
	return e.anonymous || slices.ContainsFunc(e.enrolled, s.enrollable)
}

// route is a way to the level: the methods still to do, or nil if none.
// ok is false when the route is closed: a slot is neither counted nor
// enrolled, or nothing counts yet and the route has no factor that can come
// first (password or WebAuthn; TOTP and recovery codes only add to a
// session).
func (e *eval) route(rank int, rt []slot) (todo []Method, ok bool) {
	c := &e.counted[rank].set
	first := !c.empty()
	approver := strongest(rt)
	for _, sl := range rt {
		if sl.m == Password || sl.m == WebAuthn {
			first = true
		}
		if f, ok := c.get(sl.m); ok && sl.accepts(f) && (e.approve < 0 || rank < e.approve || sl != approver || f.ForRequest) {
			continue
		}
		if !e.canEnroll(sl) {
			return nil, false
		}
		todo = append(todo, sl.m)
	}
	return todo, first
}

// reachable reports whether the level can be met: already met, or met after
// doing enrolled factors afresh.
func (e *eval) reachable(rank int) bool {
	for _, rt := range routes(e.p.levels[rank].Requires) {
		if _, ok := e.route(rank, rt); ok {
			return true
		}
	}
	return false
}

// next lists the factors to offer for the level, best first.
func (e *eval) next(rank int) []Method {
	var offered, oneStep [len(methods)]bool
	nothing := e.counted[rank].set.empty()
	for _, rt := range routes(e.p.levels[rank].Requires) {
		todo, ok := e.route(rank, rt)
		if !ok {
			continue
		}
		for _, m := range todo {
			if nothing && (m == TOTP || m == Recovery) {
				continue // never a first factor
			}
			i := methodIndex(m)
			offered[i] = true
			oneStep[i] = oneStep[i] || len(todo) == 1
		}
	}
	var out []Method
	for i, ok := range offered {
		if ok {
			out = append(out, methods[i])
		}
	}
	slices.SortFunc(out, func(a, b Method) int {
		ia, ib := methodIndex(a), methodIndex(b)
		if oneStep[ia] != oneStep[ib] {
			if oneStep[ia] {
				return -1
			}
			return 1
		}
		if pa, pb := a == e.preferred, b == e.preferred; pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		return preference(a) - preference(b)
	})
	return out
}
