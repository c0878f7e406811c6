// Package sim replays a seeded, synthetic population of legitimate users and
// attackers against a real Keystep server over HTTP, and reports the two
// numbers risk-based authentication studies measure: the share of attacks
// challenged and the share of legitimate sign-ins re-challenged.
//
// Keystep runs in-process on loopback with its own clock, so a week of
// sign-ins takes seconds. Client networks are synthetic addresses sent in
// X-Forwarded-For from 127.0.0.1, which this mode alone trusts; nothing
// leaves the machine.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// Open opens a fresh store in dir. The caller picks the backend (the
// dependency rules keep backend choice in cmd and tests).
type Open func(ctx context.Context, dir string) (storage.Store, error)

// Config sets up a run.
type Config struct {
	Seed  uint64
	Users int // population size
	Days  int // simulated days of legitimate sign-ins
	// Policy and Risk are the rules under test (DefaultPolicy and
	// DefaultRiskConfig when zero). Risk.Locations is replaced by the
	// simulation's own map.
	Policy *stepup.Policy
	Risk   signin.RiskConfig
	Open   Open
	// StuffingPairs is the size of the attackers' leaked list (default 5000).
	StuffingPairs int
	// GuessDays is how many simulated days the slow code guesser keeps at
	// it (default 30).
	GuessDays int
	// Progress, when set, receives a line per phase.
	Progress io.Writer
	// Inspect, when set, sees the run's store once every scenario has run,
	// before it is thrown away: `keystep simulate --compare` replays the
	// recorded sign-ins under another policy (login/admin/impact).
	Inspect func(ctx context.Context, st storage.Store) error
}

// Report is the outcome of a run.
type Report struct {
	Seed      uint64     `json:"seed"`
	Users     int        `json:"users"`
	Days      int        `json:"days"`
	Legit     Legit      `json:"legitimate"`
	Scenarios []Scenario `json:"attacks"`
	// Decisions is how many flows reached a decision; Audited how many of
	// them are in the audit log with their risk signals.
	Decisions int      `json:"decisions"`
	Audited   int      `json:"audited"`
	Targets   []Target `json:"targets"`
	Elapsed   string   `json:"elapsed"`
}

// Legit summarises legitimate sign-ins.
type Legit struct {
	SignIns       int `json:"sign_ins"`
	Known         int `json:"known_device_or_network"`
	KnownPrompted int `json:"known_prompted"`
	New           int `json:"new_device_and_network"`
	NewPrompted   int `json:"new_prompted"`
	Failed        int `json:"failed"`
	// PromptMillis is the mean time an extra prompt added (the code
	// round trip, wall clock).
	PromptMillis float64 `json:"prompt_added_ms"`
}

// Scenario summarises one attack.
type Scenario struct {
	Name     string `json:"name"`
	Attempts int    `json:"attempts"`
	// Tried is how many attempts got a password (or code) checked at all.
	Tried      int `json:"tried"`
	Challenged int `json:"challenged"`
	Denied     int `json:"denied"`
	// Succeeded is the failure that matters: in with what the attacker had.
	Succeeded int `json:"succeeded"`
	// SecondFactorUsers counts attempts against users with a second factor;
	// SucceededAgainstSecondFactor must be zero.
	SecondFactorUsers            int `json:"against_second_factor"`
	SucceededAgainstSecondFactor int `json:"succeeded_against_second_factor"`
	// Requests is how many HTTP requests the attack (and, in the lockout
	// attacks, the owners) sent.
	Requests int `json:"http_requests"`
	// The numbers only one kind of attack has (issue 15).
	Guessing *Guessing `json:"guessing,omitempty"`
	Relay    *Relay    `json:"relay,omitempty"`
	Lockout  *Lockout  `json:"lockout,omitempty"`
}

// Target is one of the pass/fail criteria.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// The simulated world's places. Homes and offices are in Berlin, trips go to
// Paris, attackers sit in Sydney and São Paulo.
const locationsCSV = `# cidr,lat,lon,place
100.64.0.0/16,52.52,13.40,Berlin
100.65.0.0/16,52.52,13.40,Berlin
100.66.0.0/16,48.86,2.35,Paris
198.18.0.0/16,-33.87,151.21,Sydney
198.19.0.0/16,-23.55,-46.63,Sao Paulo
`

const (
	clientID     = "sim-app"
	clientSecret = "unused"
	redirectURI  = "http://127.0.0.1/sim/callback"
	sprayPass    = "Winter2026!"
)

type user struct {
	id, name, password string
	totp               string // empty: no second factor
	devices            []*browser
	home, work         string // addresses
	// What the user has signed in from before, to tell known contexts
	// from new ones the way the risk engine's history does.
	seenDevices  map[*browser]bool
	seenNetworks map[string]bool
}

// network is the /24 of an IPv4 address, as the risk engine groups them.
func network(ip string) string {
	if i := strings.LastIndexByte(ip, '.'); i > 0 {
		return ip[:i]
	}
	return ip
}

// world is a running simulation.
type world struct {
	cfg    Config
	rng    *rand.Rand
	clock  *clock
	base   string
	store  storage.Store
	key    []byte
	users  []*user
	client *http.Client
	report Report
	mu     sync.Mutex
	// requests counts every HTTP request the simulated browsers send.
	requests atomic.Int64
	// victim marks the users an issue 15 attack has picked.
	victim map[*user]bool
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// set moves the clock on to t; it never goes back.
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	if t.After(c.t) {
		c.t = t
	}
	c.mu.Unlock()
}

// Run starts Keystep, provisions the population, replays it and reports.
func Run(ctx context.Context, cfg Config) (Report, error) {
	start := time.Now()
	if cfg.Users <= 0 {
		cfg.Users = 60
	}
	if cfg.Days <= 0 {
		cfg.Days = 7
	}
	if cfg.StuffingPairs <= 0 {
		cfg.StuffingPairs = 5000
	}
	if cfg.GuessDays <= 0 {
		cfg.GuessDays = 30
	}
	if cfg.Policy == nil {
		cfg.Policy = stepup.DefaultPolicy()
	}
	if cfg.Risk.Rules.Weights == nil {
		cfg.Risk = signin.DefaultRiskConfig()
	}
	if cfg.Open == nil {
		return Report{}, errors.New("sim: no store opener")
	}
	locs, err := risk.ParseLocations(strings.NewReader(locationsCSV))
	if err != nil {
		return Report{}, err
	}
	cfg.Risk.Locations = locs
	dir, err := os.MkdirTemp("", "keystep-sim-")
	if err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(dir)
	st, err := cfg.Open(ctx, filepath.Join(dir))
	if err != nil {
		return Report{}, err
	}
	defer st.Close()

	w := &world{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), store: st,
		clock: &clock{t: time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)}, victim: map[*user]bool{}}
	w.report = Report{Seed: cfg.Seed, Users: cfg.Users, Days: cfg.Days}
	w.key, err = factor.NewMasterKey()
	if err != nil {
		return Report{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Report{}, err
	}
	// The issuer is a host name, as in production: WebAuthn (passkeys)
	// needs one. Every connection goes to the listener, so "localhost"
	// never reaches a resolver.
	addr := ln.Addr().String()
	w.base = "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	srv, err := idp.NewServer(ctx, idp.Config{
		Issuer: w.base, Store: st, MasterKey: w.key, Policy: cfg.Policy, Risk: cfg.Risk,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:            w.clock.now,
		// Decisions do not depend on the hash's cost; a cheap one keeps a
		// run of thousands of attempts within a minute.
		Hasher: factor.NewTestPasswordHasher(),
	})
	if err != nil {
		ln.Close()
		return Report{}, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	var dialer net.Dialer
	w.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) },
	}, Timeout: 30 * time.Second}

	if err := w.provision(ctx); err != nil {
		return Report{}, err
	}
	w.progress("legitimate sign-ins over %d days", cfg.Days)
	if err := w.legitimate(ctx); err != nil {
		return Report{}, err
	}
	for _, a := range []struct {
		name string
		run  func(context.Context) (Scenario, error)
	}{
		{"targeted: stolen password, new device and network", w.targeted},
		{"credential stuffing", w.stuffing},
		{"password spraying", w.spraying},
		{"stolen session cookie replayed elsewhere", w.cookieReplay},
		{"authenticator code guessing", w.codeGuessing},
		{"impossible travel", w.impossibleTravel},
		// Issue 15: what an outside review did by hand.
		{relayName, w.relay},
		{lockoutOneName, w.lockoutOne},
		{lockoutManyName, w.lockoutMany},
		{guessingName, w.slowGuessing}, // last: it moves the clock on by weeks
	} {
		w.progress("attack: %s", a.name)
		w.clock.advance(3 * time.Hour) // let blocks from the previous attack expire
		before := w.requests.Load()
		s, err := a.run(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("%s: %w", a.name, err)
		}
		s.Name = a.name
		s.Requests = int(w.requests.Load() - before)
		w.report.Scenarios = append(w.report.Scenarios, s)
	}
	if err := w.countAudited(ctx); err != nil {
		return Report{}, err
	}
	if cfg.Inspect != nil {
		if err := cfg.Inspect(ctx, st); err != nil {
			return Report{}, err
		}
	}
	w.report.Targets = targets(w.report)
	w.report.Elapsed = time.Since(start).Round(time.Millisecond).String()
	return w.report, nil
}

func (w *world) progress(format string, args ...any) {
	if w.cfg.Progress != nil {
		fmt.Fprintf(w.cfg.Progress, "sim: "+format+"\n", args...)
	}
}

// provision creates the client and the population: 80 % with an
// authenticator app, 5 % using the sprayed password, half with two devices.
func (w *world) provision(ctx context.Context) error {
	now := w.clock.now()
	if err := w.store.CreateClient(ctx, storage.Client{ID: clientID, Name: "Sim App", RedirectURIs: []string{redirectURI},
		AuthMethod: "client_secret_basic", SecretHash: factor.HashToken(clientSecret), GrantTypes: []string{"authorization_code"},
		FirstParty: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		return err
	}
	sealer, err := factor.NewSealer(w.key)
	if err != nil {
		return err
	}
	hasher := factor.NewTestPasswordHasher()
	for i := range w.cfg.Users {
		u := &user{id: fmt.Sprintf("sim-%04d", i), name: fmt.Sprintf("user%04d", i),
			password:    fmt.Sprintf("pw-%d-%x", i, w.rng.Uint64()),
			seenDevices: map[*browser]bool{}, seenNetworks: map[string]bool{},
			home: fmt.Sprintf("100.64.%d.%d", i/250, i%250+1),
			work: fmt.Sprintf("100.65.%d.%d", i/250, (i*7)%250+1)}
		if w.rng.Float64() < 0.05 {
			u.password = sprayPass
		}
		hash, err := hasher.Hash(u.password)
		if err != nil {
			return err
		}
		if err := w.store.CreateUser(ctx, storage.User{ID: u.id, Username: u.name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		if w.rng.Float64() < 0.8 {
			key, err := factor.NewTOTPKey("Keystep", u.name)
			if err != nil {
				return err
			}
			u.totp = key.Secret
			if err := w.store.CreateFactor(ctx, storage.Factor{ID: "f-" + u.id, UserID: u.id, Kind: storage.FactorTOTP, Name: "Phone",
				Secret: sealer.Seal([]byte(key.Secret), []byte("totp:"+u.id)), CreatedAt: now}); err != nil {
				return err
			}
		}
		u.devices = []*browser{w.newBrowser()}
		if w.rng.Float64() < 0.5 {
			u.devices = append(u.devices, w.newBrowser())
		}
		w.users = append(w.users, u)
	}
	return nil
}

// legitimate replays each user's days: a morning sign-in from home and one
// at work, on one of their devices; sometimes a trip (known device, new
// network) or a new phone (new device, known network).
func (w *world) legitimate(ctx context.Context) error {
	var promptTime time.Duration
	prompts := 0
	for day := range w.cfg.Days {
		for slot, hour := range []int{8, 13} {
			w.clock.advance(time.Duration(hour)*time.Hour - time.Duration(w.clock.now().Hour())*time.Hour)
			for _, u := range w.users {
				w.clock.advance(time.Duration(w.rng.IntN(40)) * time.Second)
				dev := u.devices[w.rng.IntN(len(u.devices))]
				ip := u.home
				if slot == 1 {
					ip = u.work
				}
				switch r := w.rng.Float64(); {
				case day == 0 && slot == 0:
					dev, ip = u.devices[0], u.home // first sign-in ever
				case r < 0.03 && day > 0:
					ip = fmt.Sprintf("100.66.%d.%d", w.rng.IntN(250), w.rng.IntN(250)+1) // a trip to Paris
				case r < 0.05 && day > 0:
					dev = w.newBrowser() // a new phone
					u.devices = append(u.devices, dev)
				case r < 0.06 && day > 0:
					// New phone on a trip: nothing known.
					dev = w.newBrowser()
					u.devices = append(u.devices, dev)
					ip = fmt.Sprintf("100.66.%d.%d", w.rng.IntN(250), w.rng.IntN(250)+1)
				}
				first := len(u.seenDevices) == 0
				known := first || u.seenDevices[dev] || u.seenNetworks[network(ip)]
				dev.ip = ip
				out, dur, err := w.signIn(ctx, dev, u, true)
				if err != nil {
					return err
				}
				w.report.Legit.SignIns++
				w.report.Decisions++
				if known {
					w.report.Legit.Known++
				} else {
					w.report.Legit.New++
				}
				if out.prompted {
					prompts++
					promptTime += dur
					if known {
						w.report.Legit.KnownPrompted++
					} else {
						w.report.Legit.NewPrompted++
					}
				}
				if !out.success {
					w.report.Legit.Failed++
				} else {
					u.seenDevices[dev] = true
					u.seenNetworks[network(ip)] = true
				}
			}
		}
		w.clock.advance(24*time.Hour - time.Duration(w.clock.now().Hour())*time.Hour)
	}
	if prompts > 0 {
		w.report.Legit.PromptMillis = float64(promptTime.Microseconds()) / 1000 / float64(prompts)
	}
	return nil
}

// outcome is how one sign-in attempt ended.
type outcome struct {
	checked    bool // a password or code was actually checked
	success    bool // the app got a code
	prompted   bool // a factor beyond the password was asked
	denied     bool // error to the app
	throttled  bool // 429
	wrong      bool // the password (or code) was checked and wrong
	needFactor bool // stopped at a factor page
}

// signIn runs one sign-in: password, then the authenticator code when asked
// and the user has one (legitimate users always do what they are asked).
func (w *world) signIn(ctx context.Context, b *browser, u *user, answer bool) (outcome, time.Duration, error) {
	p, err := b.authorize(ctx, "prompt=login")
	if err != nil {
		return outcome{}, 0, err
	}
	p, checked, err := b.password(ctx, p, u.name, u.password)
	if err != nil {
		return outcome{}, 0, err
	}
	out := classify(p)
	out.checked = checked
	if !out.needFactor || !answer {
		return out, 0, nil
	}
	out.prompted = true
	if u.totp == "" || !p.has("/login/otp") {
		return out, 0, nil // a factor the simulated user cannot give
	}
	code, err := factor.TOTPCode(u.totp, w.clock.now())
	if err != nil {
		return out, 0, err
	}
	start := time.Now()
	p, err = b.post(ctx, "/login/otp", map[string]string{"id": p.hidden("id"), "code": code})
	dur := time.Since(start)
	if err != nil {
		return out, 0, err
	}
	final := classify(p)
	final.prompted = true
	// The same step is accepted once per user; move on so two sign-ins in
	// one 30 s window do not collide.
	w.clock.advance(31 * time.Second)
	return final, dur, nil
}

func classify(p page) outcome {
	switch {
	case p.redirect != nil && p.redirect.Query().Get("code") != "":
		return outcome{success: true}
	case p.redirect != nil:
		return outcome{denied: true}
	case p.status == http.StatusTooManyRequests:
		return outcome{throttled: true}
	case p.has("/login/otp") || p.has("/login/recovery"):
		return outcome{needFactor: true}
	case p.has("/login/password"):
		// The sign-in page offers a passkey too; a password form means
		// the password was not accepted.
		return outcome{wrong: true}
	case strings.Contains(p.body, "data-passkey-step"):
		return outcome{needFactor: true}
	}
	return outcome{denied: true}
}

func (s *Scenario) add(u *user, o outcome) {
	s.Attempts++
	if o.checked {
		s.Tried++
	}
	switch {
	case o.success:
		s.Succeeded++
	case o.needFactor:
		s.Challenged++
	case o.denied, o.throttled:
		s.Denied++
	}
	if u != nil && u.totp != "" {
		s.SecondFactorUsers++
		if o.success {
			s.SucceededAgainstSecondFactor++
		}
	}
}

func (w *world) attacker(network string) *browser {
	b := w.newBrowser()
	b.ip = fmt.Sprintf("%s.%d.%d", network, w.rng.IntN(250), w.rng.IntN(250)+1)
	b.ua = "Mozilla/5.0 (X11; Linux x86_64) attacker"
	return b
}

// targeted: the attacker has the password and signs in from a new device
// on a new network.
func (w *world) targeted(ctx context.Context) (Scenario, error) {
	var s Scenario
	for _, u := range w.sample(20) {
		// An address with no known location: the attacker is careful
		// enough not to look like impossible travel.
		o, _, err := w.signIn(ctx, w.attacker("192.0"), u, false)
		if err != nil {
			return s, err
		}
		w.report.Decisions++
		s.add(u, o)
	}
	return s, nil
}

// stuffing: a breach list from elsewhere, one password per address, tried
// from three addresses; 2 % of the users here reused their real password.
func (w *world) stuffing(ctx context.Context) (Scenario, error) {
	bots := []*browser{w.attacker("198.18"), w.attacker("198.18"), w.attacker("198.19")}
	return w.listAttack(ctx, bots, "someone", func(u *user) string {
		pass := fmt.Sprintf("leaked-%x", w.rng.Uint32())
		if u != nil && w.rng.Float64() < 0.02 {
			pass = u.password
		}
		return pass
	})
}

// spraying: one common password against a long list of usernames, from two
// addresses.
func (w *world) spraying(ctx context.Context) (Scenario, error) {
	bots := []*browser{w.attacker("198.19"), w.attacker("198.19")}
	return w.listAttack(ctx, bots, "person", func(*user) string { return sprayPass })
}

// listAttack tries StuffingPairs usernames, one password each, round-robin
// from bots; every user here appears once at a random place in the list,
// the rest are names of people who have no account here.
func (w *world) listAttack(ctx context.Context, bots []*browser, stranger string, password func(*user) string) (Scenario, error) {
	var s Scenario
	n := w.cfg.StuffingPairs
	at := map[int]*user{}
	for i, pos := range w.rng.Perm(n)[:min(len(w.users), n)] {
		at[pos] = w.users[i]
	}
	for i := range n {
		u := at[i]
		name := fmt.Sprintf("%s%06d", stranger, i)
		if u != nil {
			name = u.name
		}
		pass := password(u)
		b := bots[i%len(bots)]
		p, err := b.authorize(ctx, "")
		if err != nil {
			return s, err
		}
		p, checked, err := b.password(ctx, p, name, pass)
		if err != nil {
			return s, err
		}
		o := classify(p)
		o.checked = checked
		w.report.Decisions++
		s.add(u, o)
		w.clock.advance(200 * time.Millisecond)
	}
	return s, nil
}

// cookieReplay: the session cookie of a fresh legitimate sign-in is
// replayed from the attacker's machine.
func (w *world) cookieReplay(ctx context.Context) (Scenario, error) {
	var s Scenario
	for _, u := range w.sample(15) {
		dev := u.devices[0]
		dev.ip = u.home
		if _, _, err := w.signIn(ctx, dev, u, true); err != nil {
			return s, err
		}
		thief := w.attacker("198.18")
		thief.stealSession(dev)
		p, err := thief.authorize(ctx, "")
		if err != nil {
			return s, err
		}
		w.report.Decisions++
		o := classify(p)
		if p.has("/login/password") {
			o = outcome{needFactor: true} // asked to prove it again
		}
		s.add(u, o)
		w.clock.advance(time.Minute)
	}
	return s, nil
}

// codeGuessing: the attacker has the password and guesses authenticator codes.
func (w *world) codeGuessing(ctx context.Context) (Scenario, error) {
	var s Scenario
	for _, u := range w.sample(10) {
		if u.totp == "" {
			continue
		}
		b := w.attacker("192.0")
		p, err := b.authorize(ctx, "")
		if err != nil {
			return s, err
		}
		p, checked, err := b.password(ctx, p, u.name, u.password)
		if err != nil {
			return s, err
		}
		o := classify(p)
		o.checked = checked
		for range 30 {
			if !o.needFactor || !p.has("/login/otp") {
				break
			}
			guess := fmt.Sprintf("%06d", w.rng.IntN(1000000))
			if p, err = b.post(ctx, "/login/otp", map[string]string{"id": p.hidden("id"), "code": guess}); err != nil {
				return s, err
			}
			o = classify(p)
			if o.wrong || (!o.success && !o.denied && !o.throttled && p.has("/login/otp")) {
				o = outcome{needFactor: true}
			}
			o.checked = true
		}
		w.report.Decisions++
		s.add(u, o)
	}
	return s, nil
}

// impossibleTravel: a sign-in from Sydney an hour after one from Berlin.
func (w *world) impossibleTravel(ctx context.Context) (Scenario, error) {
	var s Scenario
	for _, u := range w.sample(10) {
		dev := u.devices[0]
		dev.ip = u.home
		if _, _, err := w.signIn(ctx, dev, u, true); err != nil {
			return s, err
		}
		w.clock.advance(time.Hour)
		o, _, err := w.signIn(ctx, w.attacker("198.18"), u, false)
		if err != nil {
			return s, err
		}
		w.report.Decisions++
		s.add(u, o)
	}
	return s, nil
}

// sample picks n distinct users.
func (w *world) sample(n int) []*user {
	idx := w.rng.Perm(len(w.users))
	if n > len(idx) {
		n = len(idx)
	}
	out := make([]*user, n)
	for i := range n {
		out[i] = w.users[idx[i]]
	}
	return out
}

// countAudited checks that every decision is in the audit log with its
// risk signals (throttled attempts are audited as login.throttled).
func (w *world) countAudited(ctx context.Context) error {
	events, err := w.store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		return err
	}
	for _, e := range events {
		switch e.Type {
		case storage.EventLoginCompleted, storage.EventLoginFailed, storage.EventStepupRequested:
			if _, ok := e.Details["risk_band"]; ok {
				w.report.Audited++
			}
		case storage.EventLoginThrottled, storage.EventLoginPassword:
			if e.Outcome != "success" {
				w.report.Audited++
			}
		}
	}
	return nil
}

func pct(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}

// maxCodeGuesses is NIST SP 800-63B §5.2.2's cap: at most 100 consecutive
// failed attempts on one authenticator.
const maxCodeGuesses = 100

// targets are the issues' criteria for the default rules.
func targets(r Report) []Target {
	var out []Target
	ato, atoBad := 0, 0
	for _, s := range r.Scenarios {
		ato += s.SecondFactorUsers
		atoBad += s.SucceededAgainstSecondFactor
	}
	out = append(out, Target{Name: "account takeover against users with a second factor",
		Want: "0 succeed with the password alone", Got: fmt.Sprintf("%d of %d succeeded", atoBad, ato), Met: atoBad == 0})
	for _, s := range r.Scenarios {
		if s.Name == "credential stuffing" || s.Name == "password spraying" {
			share := pct(s.Tried, s.Attempts)
			out = append(out, Target{Name: s.Name + ": pairs tried before throttling",
				Want: "≤ 1 %", Got: fmt.Sprintf("%.2f %% (%d of %d)", share, s.Tried, s.Attempts), Met: share <= 1})
		}
	}
	for _, s := range r.Scenarios {
		switch {
		case s.Guessing != nil:
			g := s.Guessing
			out = append(out, Target{Name: fmt.Sprintf("slow guessing of authenticator and recovery codes for %d days with the password: victims who got a token", g.Days),
				Want: "0", Got: fmt.Sprintf("%d of %d", g.Tokens, g.Victims), Met: g.Tokens == 0})
			out = append(out, Target{Name: "slow guessing: most codes of one factor the server checked for one victim",
				Want: fmt.Sprintf("≤ %d (NIST SP 800-63B §5.2.2)", maxCodeGuesses),
				Got:  fmt.Sprintf("%d (TOTP %d, recovery %d in all; chance of a hit %.3g %%)", g.MostChecked, g.TOTPChecked, g.RecoveryChecked, 100*g.Chance),
				Met:  g.MostChecked <= maxCodeGuesses})
		case s.Relay != nil:
			rl := s.Relay
			out = append(out, Target{Name: "relayed password and code, then a passkey of the attacker's: victims whose attacker got a phr/phrh token or the admin console",
				Want: "0", Got: fmt.Sprintf("%d of %d (%d relayed, %d passkeys added)", s.Succeeded, rl.Victims, rl.Relayed, rl.PasskeysAdded), Met: s.Succeeded == 0})
		case s.Lockout != nil:
			lo := s.Lockout
			share := pct(lo.OwnerRefused, lo.OwnerSignIns)
			out = append(out, Target{Name: s.Name + ": owners' sign-ins from a known device and network refused",
				Want: "0 %", Got: fmt.Sprintf("%.2f %% (%d of %d)", share, lo.OwnerRefused, lo.OwnerSignIns), Met: lo.OwnerRefused == 0})
		}
	}
	known := pct(r.Legit.KnownPrompted, r.Legit.Known)
	out = append(out, Target{Name: "legitimate sign-ins on a known device or network with an extra prompt",
		Want: "≤ 3 %", Got: fmt.Sprintf("%.2f %% (%d of %d)", known, r.Legit.KnownPrompted, r.Legit.Known), Met: known <= 3})
	out = append(out, Target{Name: "decisions in the audit log with their signals",
		Want: "all", Got: fmt.Sprintf("%d audit rows for %d decisions", r.Audited, r.Decisions), Met: r.Audited >= r.Decisions})
	return out
}
