package sim

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// The attackers of issue 15: what an outside review did by hand against a
// server with a simulated clock — patient code guessing, a relayed sign-in
// that mints a passkey, and keeping an owner out — done here over HTTP
// through the same pages, forms and WebAuthn ceremonies a browser uses.

const (
	guessingName    = "slow code guessing with the password, every Retry-After respected"
	relayName       = "relayed password and code, then the attacker's own passkey"
	lockoutOneName  = "lockout: failing passwords from one address"
	lockoutManyName = "lockout: failing passwords from many addresses"
)

// Guessing is the slow code guesser's record.
type Guessing struct {
	Victims int `json:"victims"`
	Days    int `json:"simulated_days"`
	// Stopped is how many victims' attackers spent their request budget
	// (guessBudget) before Days were over — the server kept checking
	// codes — and DaysRun the shortest run among the victims.
	Stopped int     `json:"stopped_by_request_budget"`
	DaysRun float64 `json:"simulated_days_run"`
	// TOTPChecked and RecoveryChecked are the guesses the server checked:
	// its audit log's stepup.factor rows for the victims from the
	// attacker's addresses.
	TOTPChecked     int `json:"totp_codes_checked"`
	RecoveryChecked int `json:"recovery_codes_checked"`
	// MostChecked is the most codes of one factor checked for one victim.
	MostChecked int `json:"most_checked_per_victim_and_factor"`
	Waits       int `json:"retry_after_waits"`
	// Chance is the probability that this many checked guesses get at
	// least one victim in: each TOTP guess matches one of the 3 codes of
	// the ±1-step window out of 10^6, each recovery guess one of 10 codes
	// out of 31^12.
	Chance float64 `json:"success_chance"`
	// ProjectedChance is Chance had every attacker gone on for all Days at
	// the rate the server checked its codes (Chance when none stopped).
	ProjectedChance float64 `json:"projected_success_chance"`
	Tokens          int     `json:"tokens"`
}

// guessBudget bounds one victim's slow code guesser in HTTP requests. A
// server that stops the guessing, as NIST SP 800-63B §5.2.2 asks, needs
// a few hundred of them for the whole run; one that keeps checking
// codes (about 950 a day, two requests each) spends it in less than a day.
const guessBudget = 1000

// Relay is the adversary in the middle's record.
type Relay struct {
	Victims int `json:"victims"`
	Admins  int `json:"admins_among_victims"`
	// Relayed is how many relayed sign-ins opened the account portal
	// (password and code are the victim's: this part cannot be stopped).
	Relayed       int `json:"relayed_to_portal"`
	PasskeysAdded int `json:"passkeys_added"`
	// PHR counts tokens at phr or phrh right after the relay; PHRLater
	// those from the same device and network 25 h later, after the
	// cooling-off; AdminConsole admins whose console opened (either time).
	PHR          int `json:"phr_tokens"`
	PHRLater     int `json:"phr_tokens_after_cooling_off"`
	AdminConsole int `json:"admin_console_reached"`
}

// Lockout is the lockout attacker's record: the owner's side.
type Lockout struct {
	Owners    int `json:"owners"`
	Addresses int `json:"attacker_addresses_per_owner"`
	Days      int `json:"simulated_days"`
	// OwnerSignIns are the owners' sign-ins from a device and network they
	// used before; OwnerRefused those that did not end in a code for the
	// app; OwnerPrompted those asked for more than the password.
	OwnerSignIns  int `json:"owner_sign_ins_known_device"`
	OwnerRefused  int `json:"owner_refused"`
	OwnerPrompted int `json:"owner_prompted"`
	// Stopped is how many attacking addresses spent their request budget
	// (botBudget): the server kept checking their passwords.
	Stopped int `json:"attackers_stopped_by_request_budget"`
}

// botBudget bounds one lockout address in HTTP requests; the hard lock of
// 100 failures a day keeps it to a few hundred over lockoutDays.
const botBudget = 2000

// agent is one actor of an attack that runs in simulated time alongside
// others: step acts once and says how long until it acts again (negative:
// it is done).
type agent struct {
	at   time.Time
	step func(context.Context) (time.Duration, error)
	done bool
}

// interleave runs agents in simulated time until end, always the one due
// first (ties: the first listed), then moves the clock to end. Nobody
// sleeps: the clock jumps to the next action.
func (w *world) interleave(ctx context.Context, agents []*agent, end time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var next *agent
		for _, a := range agents {
			if !a.done && a.at.Before(end) && (next == nil || a.at.Before(next.at)) {
				next = a
			}
		}
		if next == nil {
			break
		}
		w.clock.set(next.at)
		d, err := next.step(ctx)
		if err != nil {
			return err
		}
		if d < 0 {
			next.done = true
			continue
		}
		next.at = w.clock.now().Add(max(d, time.Second))
	}
	w.clock.set(end)
	return nil
}

// victims picks up to n distinct users that match and were no victim of
// an earlier issue 15 attack, so each attack meets accounts in the state
// the legitimate days left them (not locked or guessed at by another).
func (w *world) victims(n int, match func(*user) bool) []*user {
	var out []*user
	for _, i := range w.rng.Perm(len(w.users)) {
		if len(out) == n {
			break
		}
		if u := w.users[i]; match(u) && !w.victim[u] {
			w.victim[u] = true
			out = append(out, u)
		}
	}
	return out
}

func hasTOTP(u *user) bool { return u.totp != "" }

// perThirty is how many victims the slow guesser and the lockout attacks
// each pick: one per 30 users, at least one. Their work grows with each
// victim, the relay's hardly at all.
func (w *world) perThirty() int { return max(1, len(w.users)/30) }

var passkeyStepRE = regexp.MustCompile(`data-passkey-step="([^"]+)"`)

// passkeyStep is the auth request a page offers the passkey for.
func (p page) passkeyStep() string {
	if m := passkeyStepRE.FindStringSubmatch(p.body); m != nil {
		return m[1]
	}
	return ""
}

// answer walks b through the sign-in pages from p as u would, up to the
// app or a page that is not a password or code form: the password, and
// the authenticator code when asked (at most codes of them). It is also
// the relay: the victim types into the attacker's page what the attacker
// types into Keystep's at once.
func (w *world) answer(ctx context.Context, b *browser, u *user, p page, codes int) (page, error) {
	var err error
	for range 6 {
		switch {
		case p.has("/login/password"):
			if p, err = b.post(ctx, "/login/password", map[string]string{"id": p.hidden("id"), "username": u.name, "password": u.password}); err != nil {
				return p, err
			}
		case p.has("/login/otp") && codes > 0:
			codes--
			code, err := factor.TOTPCode(u.totp, w.clock.now())
			if err != nil {
				return p, err
			}
			if p, err = b.post(ctx, "/login/otp", map[string]string{"id": p.hidden("id"), "code": code}); err != nil {
				return p, err
			}
			// Each step is accepted once; the next code comes with the next step.
			w.clock.advance(31 * time.Second)
		default:
			return p, nil
		}
	}
	return p, nil
}

// ---- (a) slow code guessing ----

// slowGuessing: the attacker has the password of users with an
// authenticator app and recovery codes, and guesses codes — authenticator
// app and recovery codes by turns, one auth request each — for GuessDays,
// waiting out every Retry-After, like a patient script would. Success is a
// token issued to the attacker.
func (w *world) slowGuessing(ctx context.Context) (Scenario, error) {
	s := Scenario{Guessing: &Guessing{Days: w.cfg.GuessDays}}
	victims := w.victims(w.perThirty(), hasTOTP)
	for _, u := range victims {
		// Recovery codes, as the portal offers once the app is set up.
		if err := w.recoveryCodes(ctx, u); err != nil {
			return s, fmt.Errorf("recovery codes for %s: %w", u.name, err)
		}
	}
	start := w.clock.now()
	end := start.Add(time.Duration(w.cfg.GuessDays) * 24 * time.Hour)
	var agents []*agent
	var guessers []*guesser
	for i, u := range victims {
		g := &guesser{w: w, u: u, b: w.attacker("192.0"), s: &s}
		guessers = append(guessers, g)
		agents = append(agents, &agent{at: start.Add(time.Duration(i) * time.Minute), step: g.step})
	}
	if err := w.interleave(ctx, agents, end); err != nil {
		return s, err
	}
	gs := s.Guessing
	gs.Victims = len(victims)
	gs.DaysRun = float64(w.cfg.GuessDays)
	miss, projected := 1.0, 1.0
	for _, g := range guessers {
		totp, rec, err := w.codesChecked(ctx, g.u.id, g.b.ip, start)
		if err != nil {
			return s, err
		}
		gs.TOTPChecked += totp
		gs.RecoveryChecked += rec
		gs.MostChecked = max(gs.MostChecked, totp, rec)
		hit := math.Pow(1-3e-6, float64(totp)) * math.Pow(1-10/math.Pow(31, 12), float64(rec))
		miss *= hit
		ran := end.Sub(start)
		if !g.stopped.IsZero() {
			gs.Stopped++
			ran = g.stopped.Sub(start)
			gs.DaysRun = min(gs.DaysRun, ran.Hours()/24)
		}
		projected *= math.Pow(hit, float64(end.Sub(start))/float64(max(ran, time.Hour)))
		s.Tried += totp + rec
		s.SecondFactorUsers++
		w.report.Decisions += g.n // each auth request is decided (and audited) at least once
		if g.token {
			gs.Tokens++
			s.Succeeded++
			s.SucceededAgainstSecondFactor++
		}
	}
	gs.Chance, gs.ProjectedChance = 1-miss, 1-projected
	return s, nil
}

// codesChecked counts the codes the server checked for userID from ip
// since start, by factor, from the audit log: stepup.factor rows that say
// the code was wrong or right, not those refused before any check.
func (w *world) codesChecked(ctx context.Context, userID, ip string, since time.Time) (totp, recovery int, err error) {
	events, err := w.store.ListAudit(ctx, storage.AuditFilter{UserID: userID, Type: storage.EventStepupFactor, Since: since})
	if err != nil {
		return 0, 0, err
	}
	for _, e := range events {
		if e.IP != ip || e.Outcome != "failure" && e.Outcome != "success" {
			continue
		}
		switch e.Details["factor"] {
		case string(stepup.TOTP):
			totp++
		case string(stepup.Recovery):
			recovery++
		}
	}
	return totp, recovery, nil
}

// guesser is one victim's attacker.
type guesser struct {
	w        *world
	u        *user
	b        *browser
	s        *Scenario
	p        page   // where the attacker is; zero: start a new auth request
	n        int    // auth requests started
	switched bool   // asked for the other kind of code in this auth request
	resume   string // the page to reload after a wait: the auth request in use, at the factor guessed
	requests int64  // HTTP requests sent
	idle     time.Duration
	token    bool
	stopped  time.Time // when the request budget ran out
}

// pace is how fast a script types: a request every two seconds.
const pace = 2 * time.Second

func (g *guesser) step(ctx context.Context) (time.Duration, error) {
	if g.requests >= guessBudget {
		g.stopped = g.w.clock.now()
		return -1, nil
	}
	before := g.w.requests.Load()
	d, err := g.act(ctx)
	g.requests += g.w.requests.Load() - before
	return d, err
}

// act takes the attacker one request further.
func (g *guesser) act(ctx context.Context) (time.Duration, error) {
	w, b, p := g.w, g.b, g.p
	var err error
	switch {
	case p.status == 0 && p.redirect == nil && g.resume != "":
		// Back after a wait: reload the page of the auth request in use.
		g.p, err = b.get(ctx, g.resume)
		g.resume = ""
		return pace, err
	case p.status == 0 && p.redirect == nil, p.status == http.StatusBadRequest: // nothing yet, or the request expired
		g.n++
		g.switched = false
		g.p, err = b.authorize(ctx, "")
		return pace, err
	case p.status == http.StatusTooManyRequests && p.retryAfter > 0:
		// Wait exactly as long as asked, then go on.
		g.s.Guessing.Waits++
		g.p = page{}
		return p.retryAfter, nil
	case p.redirect != nil && p.redirect.Query().Get("code") != "":
		c, err := b.redeem(ctx, p)
		if err != nil {
			return 0, err
		}
		g.token = c.Sub == g.u.id
		return -1, nil
	case p.redirect != nil: // the request was ended (too many wrong codes)
		g.p = page{}
		return pace, nil
	case p.has("/login/password"):
		g.p, _, err = b.password(ctx, p, g.u.name, g.u.password)
		return pace, err
	}
	// Authenticator-app codes on even requests, recovery codes on odd
	// ones; the other kind when only that one is offered.
	want, other := "/login/otp", "/login/recovery"
	if g.n%2 == 1 {
		want, other = other, want
	}
	action := ""
	switch {
	case p.has(want):
		action = want
	case !g.switched && strings.Contains(p.body, "method="+strings.TrimPrefix(want, "/login/")):
		g.switched = true
		g.p, err = b.get(ctx, "/login?id="+url.QueryEscape(p.hidden("id"))+"&method="+strings.TrimPrefix(want, "/login/"))
		return pace, err
	case p.has(other):
		action = other
	default:
		// Nothing to guess at (a refusal page, a locked factor): come back
		// later, an hour first, then up to a day.
		g.p = page{}
		g.idle = min(max(2*g.idle, time.Hour), 24*time.Hour)
		return g.idle, nil
	}
	g.idle = 0
	guess := fmt.Sprintf("%06d", w.rng.IntN(1000000))
	if action == "/login/recovery" {
		guess = recoveryGuess(w)
	}
	g.s.Attempts++
	id := p.hidden("id")
	g.resume = "/login?id=" + url.QueryEscape(id) + "&method=" + strings.TrimPrefix(action, "/login/")
	g.p, err = b.post(ctx, action, map[string]string{"id": id, "code": guess})
	if g.p.status == http.StatusTooManyRequests {
		g.s.Denied++
	}
	return pace, err
}

// recoveryGuess is a well-formed recovery code: 12 symbols of the 31 the
// codes use, in groups of 4.
func recoveryGuess(w *world) string {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	var sb strings.Builder
	for i := range 12 {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(alphabet[w.rng.IntN(len(alphabet))])
	}
	return sb.String()
}

// recoveryCodes has u make recovery codes in the portal, from their own
// device at home, confirming with their authenticator app when asked.
func (w *world) recoveryCodes(ctx context.Context, u *user) error {
	b := u.devices[0]
	b.ip = u.home
	p, err := b.get(ctx, "/account")
	if err != nil {
		return err
	}
	for range 2 { // the second time after the step-up the change asks for
		if p, err = w.answer(ctx, b, u, p, 1); err != nil {
			return err
		}
		if p, err = b.post(ctx, "/account/recovery", nil); err != nil {
			return err
		}
		if strings.Count(p.body, "<li><code>") == 10 {
			return nil
		}
		if p, err = w.answer(ctx, b, u, p, 1); err != nil {
			return err
		}
	}
	i := strings.Index(p.body, "<main")
	return fmt.Errorf("no codes: %d %.1500s", p.status, p.body[max(i, 0):])
}

// ---- (b) relayed sign-in, then a passkey ----

// relay: an adversary in the middle (a phishing proxy) relays the victim's
// password and authenticator code into the account portal, in real time,
// from the attacker's own device and network; then registers a passkey of
// their own there and uses it for an app asking for phr, and for the admin
// console when the victim is an admin — right away, and again 25 hours
// later from the same device and network, after any cooling-off. Success
// is a token at phr or phrh, or the console.
func (w *world) relay(ctx context.Context) (Scenario, error) {
	rel := &Relay{}
	s := Scenario{Relay: rel}
	victims := w.victims(3, hasTOTP)
	admin, err := w.newAdmin(ctx)
	if err != nil {
		return s, err
	}
	victims = append(victims, admin)
	type hold struct {
		u              *user
		b              *browser
		key            *passkey
		relayed, added bool
		// in: a phr token or the console, at either time.
		in, console bool
	}
	var holds []*hold
	for _, u := range victims {
		h := &hold{u: u, b: w.attacker("192.0")}
		if h.key, err = newPasskey(); err != nil {
			return s, err
		}
		holds = append(holds, h)
		rel.Victims++
		s.Attempts++
		if u == admin {
			rel.Admins++
		}
		p, err := h.b.get(ctx, "/account")
		if err != nil {
			return s, err
		}
		if p, err = w.answer(ctx, h.b, u, p, 1); err != nil {
			return s, err
		}
		w.report.Decisions++
		if !strings.Contains(p.body, "Hello, "+u.name) {
			s.Denied++
			continue
		}
		rel.Relayed++
		h.relayed = true
		s.Tried++
		// The portal's passkey page first, as the browser opens it: it
		// may ask to confirm again, and the proxy relays one more code.
		if p, err = h.b.get(ctx, "/account/passkey"); err != nil {
			return s, err
		}
		if _, err = w.answer(ctx, h.b, u, p, 1); err != nil {
			return s, err
		}
		ok, err := h.b.register(ctx, h.key)
		if err != nil {
			return s, err
		}
		if !ok {
			continue
		}
		h.added = true
		rel.PasskeysAdded++
		token, console, err := w.usePHR(ctx, h.b, u, h.key, u == admin)
		if err != nil {
			return s, err
		}
		if token {
			rel.PHR++
		}
		if console {
			rel.AdminConsole++
			h.console = true
		}
		h.in = token || console
	}
	// A day and an hour later, from the same device and network: no code
	// from the victim any more, only the password and the passkey.
	w.clock.advance(25 * time.Hour)
	for _, h := range holds {
		if !h.added {
			continue
		}
		token, console, err := w.usePHR(ctx, h.b, h.u, h.key, h.u == admin)
		if err != nil {
			return s, err
		}
		if token {
			rel.PHRLater++
		}
		if console && !h.console {
			rel.AdminConsole++
			h.console = true
		}
		h.in = h.in || token || console
	}
	// Denied: the relay did not open the portal; challenged: it did, but
	// the passkey was refused or did not reach phr.
	for _, h := range holds {
		switch {
		case h.in:
			s.Succeeded++
		case h.relayed:
			s.Challenged++
		}
	}
	return s, nil
}

// usePHR tries the passkey for an app asking for phr, and, for an admin,
// the console (which needs phr by default). It reports whether the app got
// a token at phr or phrh, and whether the console opened.
func (w *world) usePHR(ctx context.Context, b *browser, u *user, k *passkey, admin bool) (token, console bool, err error) {
	p, err := b.authorize(ctx, "acr_values=phr")
	if err != nil {
		return false, false, err
	}
	w.report.Decisions++
	if p, err = w.withPasskey(ctx, b, u, k, p); err != nil {
		return false, false, err
	}
	if p.redirect != nil && p.redirect.Query().Get("code") != "" {
		c, err := b.redeem(ctx, p)
		if err != nil {
			return false, false, err
		}
		token = c.Sub == u.id && (c.ACR == stepup.ACRPhishing || c.ACR == stepup.ACRHardware)
	}
	if !admin {
		return token, false, nil
	}
	if p, err = b.get(ctx, "/admin"); err != nil {
		return false, false, err
	}
	if p, err = w.withPasskey(ctx, b, u, k, p); err != nil {
		return false, false, err
	}
	console = p.status == http.StatusOK && strings.Contains(p.body, "<h1>Admin console</h1>")
	return token, console, nil
}

// withPasskey goes on from p with the attacker's passkey where one is
// offered and the victim's password where it is asked; it stops at a
// code prompt (no victim to relay one any more) or anywhere else.
func (w *world) withPasskey(ctx context.Context, b *browser, u *user, k *passkey, p page) (page, error) {
	var err error
	used := false
	for range 4 {
		switch id := p.passkeyStep(); {
		case p.redirect != nil:
			return p, nil
		case id != "" && !used:
			used = true
			if p, err = b.usePasskey(ctx, id, k); err != nil {
				return p, err
			}
		case p.has("/login/password"):
			if p, _, err = b.password(ctx, p, u.name, u.password); err != nil {
				return p, err
			}
		default:
			return p, nil
		}
	}
	return p, nil
}

// newAdmin adds an administrator with an authenticator app, who has
// signed in once from their office.
func (w *world) newAdmin(ctx context.Context) (*user, error) {
	now := w.clock.now()
	u := &user{id: "sim-admin", name: "admin", password: fmt.Sprintf("admin-pw-%x", w.rng.Uint64()),
		seenDevices: map[*browser]bool{}, seenNetworks: map[string]bool{},
		home: "100.64.250.1", work: "100.65.250.1"}
	hash, err := factor.NewTestPasswordHasher().Hash(u.password)
	if err != nil {
		return nil, err
	}
	if err := w.store.CreateUser(ctx, storage.User{ID: u.id, Username: u.name, PasswordHash: hash, Admin: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		return nil, err
	}
	key, err := factor.NewTOTPKey("Keystep", u.name)
	if err != nil {
		return nil, err
	}
	u.totp = key.Secret
	sealer, err := factor.NewSealer(w.key)
	if err != nil {
		return nil, err
	}
	if err := w.store.CreateFactor(ctx, storage.Factor{ID: "f-" + u.id, UserID: u.id, Kind: storage.FactorTOTP, Name: "Phone",
		Secret: sealer.Seal([]byte(key.Secret), []byte("totp:"+u.id)), CreatedAt: now}); err != nil {
		return nil, err
	}
	dev := w.newBrowser()
	dev.ip = u.work
	u.devices = []*browser{dev}
	if o, _, err := w.signIn(ctx, dev, u, true); err != nil || !o.success {
		return nil, fmt.Errorf("the admin's own sign-in: %+v %v", o, err)
	}
	return u, nil
}

// ---- (c) lockout ----

// lockoutDays is how long the lockout attacks last: long enough for a
// 24-hour lock to run out and be set again.
const lockoutDays = 2

func (w *world) lockoutOne(ctx context.Context) (Scenario, error)  { return w.lockout(ctx, 1) }
func (w *world) lockoutMany(ctx context.Context) (Scenario, error) { return w.lockout(ctx, 4) }

// ownerHours are when an owner signs in each day: morning, after lunch,
// evening.
var ownerHours = []int{8, 13, 19}

// untilOwnerHour is the time from now to the next of ownerHours.
func untilOwnerHour(now time.Time) time.Duration {
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	for _, h := range append(ownerHours, 24+ownerHours[0]) {
		if at := day.Add(time.Duration(h) * time.Hour); at.After(now) {
			return at.Sub(now)
		}
	}
	return 24 * time.Hour // not reached
}

// lockout: an attacker who knows usernames, not passwords, tries to keep
// their owners out: wrong passwords from one address or from many, as
// fast as the server takes them, waiting out each Retry-After — while
// each owner signs in three times a day from a device and network they
// have used before, answering a code when asked. What counts is the share
// of the owners' sign-ins that are refused.
func (w *world) lockout(ctx context.Context, addresses int) (Scenario, error) {
	lo := &Lockout{Addresses: addresses, Days: lockoutDays}
	s := Scenario{Lockout: lo}
	start := w.clock.now()
	var agents []*agent
	for _, u := range w.victims(w.perThirty(), func(u *user) bool { return u.seenDevices[u.devices[0]] && u.seenNetworks[network(u.home)] }) {
		lo.Owners++
		dev := u.devices[0]
		agents = append(agents, &agent{at: start.Add(untilOwnerHour(start)), step: func(ctx context.Context) (time.Duration, error) {
			dev.ip = u.home
			o, _, err := w.signIn(ctx, dev, u, true)
			if err != nil {
				return 0, err
			}
			w.report.Decisions++
			lo.OwnerSignIns++
			if o.prompted {
				lo.OwnerPrompted++
			}
			if !o.success {
				lo.OwnerRefused++
			}
			return untilOwnerHour(w.clock.now()), nil
		}})
		for i := range addresses {
			bot := &lockoutBot{w: w, u: u, b: w.attacker(fmt.Sprintf("198.%d", 18+i%2)), s: &s, lo: lo}
			agents = append(agents, &agent{at: start.Add(time.Duration(i) * 7 * time.Second), step: bot.step})
		}
	}
	return s, w.interleave(ctx, agents, start.Add(lockoutDays*24*time.Hour))
}

// lockoutBot is one attacking address.
type lockoutBot struct {
	w        *world
	u        *user
	b        *browser
	s        *Scenario
	lo       *Lockout
	id       string // the auth request whose sign-in form it posts; "": start one
	requests int64
}

func (l *lockoutBot) step(ctx context.Context) (time.Duration, error) {
	if l.requests >= botBudget {
		l.lo.Stopped++
		return -1, nil
	}
	before := l.w.requests.Load()
	d, err := l.act(ctx)
	l.requests += l.w.requests.Load() - before
	return d, err
}

// act sends one wrong password (and starts an auth request first when
// there is none).
func (l *lockoutBot) act(ctx context.Context) (time.Duration, error) {
	if l.id == "" {
		p, err := l.b.authorize(ctx, "")
		if err != nil {
			return 0, err
		}
		if !p.has("/login/password") {
			return time.Hour, nil
		}
		l.id = p.hidden("id")
	}
	// The same form again and again, as a script resubmits it.
	p, err := l.b.post(ctx, "/login/password", map[string]string{"id": l.id, "username": l.u.name, "password": fmt.Sprintf("not-%x", l.w.rng.Uint32())})
	if err != nil {
		return 0, err
	}
	o := classify(p)
	o.checked = p.status != http.StatusTooManyRequests && p.has("/login/password")
	switch {
	case p.status == http.StatusTooManyRequests:
		l.s.add(nil, o)
		if p.retryAfter > 0 {
			return p.retryAfter, nil
		}
		return time.Hour, nil
	case !p.has("/login/password"): // the auth request expired, or something else: start again
		l.id = ""
		return 3 * time.Second, nil
	}
	l.w.report.Decisions++
	l.s.add(nil, o)
	return 3 * time.Second, nil
}
