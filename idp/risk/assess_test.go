package risk

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

var (
	london  = Location{Lat: 51.5074, Lon: -0.1278, Place: "London, GB"}
	paris   = Location{Lat: 48.8566, Lon: 2.3522, Place: "Paris, FR"}
	newYork = Location{Lat: 40.7128, Lon: -74.0060, Place: "New York, US"}
	reading = Location{Lat: 51.4543, Lon: -0.9781, Place: "Reading, GB"}
)

// home is a returning user on a known device and network: nothing unusual.
func home() Facts { return Facts{Now: t0, DeviceKnown: true, NetworkKnown: true} }

// outcome is the part of an Assessment the table compares; reasons and
// details have their own tests.
type outcome struct {
	Score   int
	Band    Band
	Signals []string
	Floor   string
	Hard    bool
	Deny    bool
	Reauth  bool
}

func summarize(a Assessment) outcome {
	o := outcome{Score: a.Score, Band: a.Band, Floor: a.Floor, Hard: a.Hard, Deny: a.Deny, Reauth: a.Reauth}
	for _, s := range a.Signals {
		o.Signals = append(o.Signals, s.Name)
	}
	return o
}

func TestAssess(t *testing.T) {
	with := func(change func(*Facts)) Facts {
		f := home()
		change(&f)
		return f
	}
	rules := func(change func(*Rules)) *Rules {
		r := DefaultRules()
		change(&r)
		if err := r.Validate(); err != nil {
			t.Fatalf("test rules are invalid: %v", err)
		}
		return &r
	}
	travel := func(from, to Location, ago time.Duration) *Travel {
		return &Travel{From: from, FromAt: t0.Add(-ago), To: to}
	}
	mediumOut := outcome{Band: Medium, Floor: FloorMultiFactor}
	highOut := outcome{Band: High, Floor: FloorPhishing, Hard: true}
	band := func(base outcome, score int, signals ...string) outcome {
		base.Score, base.Signals = score, signals
		return base
	}
	low := func(score int, signals ...string) outcome { return outcome{Score: score, Signals: signals} }

	tests := []struct {
		name  string
		facts Facts
		rules *Rules // nil: DefaultRules
		want  outcome
	}{
		// History.
		{
			name:  "a returning user on a known device and network raises nothing: low, no floor",
			facts: home(),
			want:  low(0),
		},
		{
			name:  "a new device alone is low (audited, no floor)",
			facts: with(func(f *Facts) { f.DeviceKnown = false }),
			want:  low(25, NewDevice),
		},
		{
			name:  "a new network alone is low",
			facts: with(func(f *Facts) { f.NetworkKnown = false }),
			want:  low(25, NewNetwork),
		},
		{
			name:  "a new device and a new network together are medium: floor mfa, waived when out of reach",
			facts: Facts{Now: t0},
			want:  band(mediumOut, 50, NewDevice, NewNetwork),
		},
		{
			name:  "a first sign-in is recorded as low and raises neither new_device nor new_network",
			facts: Facts{Now: t0, FirstSignIn: true},
			want:  low(10, FirstSignIn),
		},
		{
			name:  "a first sign-in ignores travel: there is no history to compare with",
			facts: Facts{Now: t0, FirstSignIn: true, Travel: travel(london, newYork, time.Minute)},
			want:  low(10, FirstSignIn),
		},

		// Session drift.
		{
			name:  "a session back from another network and user agent is drift: low, and its factors must be proven again",
			facts: with(func(f *Facts) { f.SessionNetworkChanged, f.SessionAgentChanged = true, true }),
			want:  outcome{Score: 30, Signals: []string{SessionDrift}, Reauth: true},
		},
		{
			name:  "a session back from another network with the same user agent is not drift",
			facts: with(func(f *Facts) { f.SessionNetworkChanged = true }),
			want:  low(0),
		},
		{
			name:  "a session back with another user agent on the same network is not drift",
			facts: with(func(f *Facts) { f.SessionAgentChanged = true }),
			want:  low(0),
		},
		{
			name:  "drift on a new device from a new network is high: floor phr, denied when out of reach",
			facts: Facts{Now: t0, SessionNetworkChanged: true, SessionAgentChanged: true},
			want: func() outcome {
				o := band(highOut, 80, NewDevice, NewNetwork, SessionDrift)
				o.Reauth = true
				return o
			}(),
		},

		// Failures and credential stuffing.
		{
			name:  "account failures one below the threshold raise nothing",
			facts: with(func(f *Facts) { f.AccountFailures = 4 }),
			want:  low(0),
		},
		{
			name:  "account failures at the threshold raise account_failures: low",
			facts: with(func(f *Facts) { f.AccountFailures = 5 }),
			want:  low(20, AccountFailures),
		},
		{
			name:  "IP failures at the threshold raise ip_failures: low",
			facts: with(func(f *Facts) { f.IPFailures = 20 }),
			want:  low(15, IPFailures),
		},
		{
			name:  "IP failures one below the threshold raise nothing",
			facts: with(func(f *Facts) { f.IPFailures = 19 }),
			want:  low(0),
		},
		{
			name:  "many usernames tried from one IP is credential stuffing: medium on its own",
			facts: with(func(f *Facts) { f.IPUsernames = 5 }),
			want:  band(mediumOut, 40, CredentialStuffing),
		},

		// Operator lists.
		{
			name:  "an IP on the suspicious list is medium on its own",
			facts: with(func(f *Facts) { f.IPSuspicious = true }),
			want:  band(mediumOut, 40, IPSuspicious),
		},
		{
			name:  "an IP on the deny list is denied, even for a known device and network",
			facts: with(func(f *Facts) { f.IPDenied = true }),
			want: func() outcome {
				o := band(highOut, 100, IPDenied)
				o.Deny = true
				return o
			}(),
		},
		{
			name:  "an IP on the deny list is denied whatever its weight",
			facts: with(func(f *Facts) { f.IPDenied = true }),
			rules: rules(func(r *Rules) { r.Weights[IPDenied] = 0 }),
			want:  outcome{Signals: []string{IPDenied}, Deny: true},
		},

		// Impossible travel.
		{
			name:  "London to New York in one hour is impossible travel: high",
			facts: with(func(f *Facts) { f.Travel = travel(london, newYork, time.Hour) }),
			want:  band(highOut, 80, ImpossibleTravel),
		},
		{
			name:  "London to New York in eight hours is a flight, not an anomaly",
			facts: with(func(f *Facts) { f.Travel = travel(london, newYork, 8*time.Hour) }),
			want:  low(0),
		},
		{
			name:  "London to Reading in a minute is under the minimum distance: location data is coarse",
			facts: with(func(f *Facts) { f.Travel = travel(london, reading, time.Minute) }),
			want:  low(0),
		},
		{
			name:  "a previous sign-in from far away at the same instant is impossible travel",
			facts: with(func(f *Facts) { f.Travel = travel(london, paris, 0) }),
			want:  band(highOut, 80, ImpossibleTravel),
		},
		{
			name:  "a previous sign-in dated after now (clock skew) counts as no time elapsed",
			facts: with(func(f *Facts) { f.Travel = travel(london, paris, -time.Minute) }),
			want:  band(highOut, 80, ImpossibleTravel),
		},
		{
			name:  "a location with NaN coordinates never raises impossible travel",
			facts: with(func(f *Facts) { f.Travel = travel(Location{Lat: math.NaN()}, paris, 0) }),
			want:  low(0),
		},

		// Sensitive client and scope.
		{
			name:  "a sensitive client alone is low",
			facts: with(func(f *Facts) { f.SensitiveClient = true }),
			want:  low(15, SensitiveClient),
		},
		{
			name:  "a new device on a sensitive client is medium",
			facts: with(func(f *Facts) { f.DeviceKnown, f.SensitiveClient = false, true }),
			want:  band(mediumOut, 40, NewDevice, SensitiveClient),
		},
		{
			name:  "a new network with a sensitive scope is medium",
			facts: with(func(f *Facts) { f.NetworkKnown, f.SensitiveScope = false, true }),
			want:  band(mediumOut, 40, NewNetwork, SensitiveScope),
		},

		// Band edges and custom rules.
		{
			name:  "a score one below medium is low",
			facts: with(func(f *Facts) { f.DeviceKnown = false }),
			rules: rules(func(r *Rules) { r.Weights[NewDevice] = 39 }),
			want:  low(39, NewDevice),
		},
		{
			name:  "a score one below high is medium",
			facts: with(func(f *Facts) { f.DeviceKnown = false }),
			rules: rules(func(r *Rules) { r.Weights[NewDevice] = 79 }),
			want:  band(mediumOut, 79, NewDevice),
		},
		{
			name:  "a score exactly at high is high",
			facts: with(func(f *Facts) { f.DeviceKnown = false }),
			rules: rules(func(r *Rules) { r.Weights[NewDevice] = 80 }),
			want:  band(highOut, 80, NewDevice),
		},
		{
			name:  "custom rules: the medium band may deny",
			facts: Facts{Now: t0},
			rules: rules(func(r *Rules) { r.OnMedium = Action{Deny: true} }),
			want:  outcome{Score: 50, Band: Medium, Signals: []string{NewDevice, NewNetwork}, Deny: true},
		},
		{
			name:  "custom rules: a low band floor applies even when nothing is raised",
			facts: home(),
			rules: rules(func(r *Rules) { r.OnLow = Action{Floor: "urn:keystep:acr:sfa"} }),
			want:  outcome{Floor: "urn:keystep:acr:sfa"},
		},
		{
			name:  "custom rules: a lower failure threshold raises account_failures sooner",
			facts: with(func(f *Facts) { f.AccountFailures = 1 }),
			rules: rules(func(r *Rules) { r.MinAccountFailures = 1 }),
			want:  low(20, AccountFailures),
		},
		{
			name:  "a signal of weight 0 is still reported but adds nothing",
			facts: Facts{Now: t0},
			rules: rules(func(r *Rules) { r.Weights[NewNetwork] = 0 }),
			want:  low(25, NewDevice, NewNetwork),
		},
		{
			name: "everything at once: every signal in order of Names, high, denied and reauth",
			facts: Facts{
				Now: t0, SessionNetworkChanged: true, SessionAgentChanged: true,
				AccountFailures: 9, IPFailures: 99, IPUsernames: 9, IPSuspicious: true, IPDenied: true,
				Travel: travel(london, newYork, time.Minute), SensitiveClient: true, SensitiveScope: true,
			},
			want: outcome{
				Score: 25 + 25 + 30 + 20 + 15 + 40 + 40 + 100 + 80 + 15 + 15, Band: High,
				Signals: Names()[1:], Floor: FloorPhishing, Hard: true, Deny: true, Reauth: true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultRules()
			if tt.rules != nil {
				r = *tt.rules
			}
			got := Assess(tt.facts, r)
			if diff := cmp.Diff(tt.want, summarize(got)); diff != "" {
				t.Errorf("Assess() mismatch (-want +got):\n%s", diff)
			}
			sum := 0
			for _, s := range got.Signals {
				sum += s.Weight
				if s.Weight != r.Weights[s.Name] {
					t.Errorf("signal %s weighs %d, want %d", s.Name, s.Weight, r.Weights[s.Name])
				}
				if s.Reason == "" {
					t.Errorf("signal %s has no reason for the user", s.Name)
				}
			}
			if sum != got.Score {
				t.Errorf("Score = %d, want the sum of the signals' weights %d", got.Score, sum)
			}
		})
	}
}

// TestImpossibleTravelLimit pins the edge: a speed exactly at MaxTravelKmh is
// possible, anything above it is not.
func TestImpossibleTravelLimit(t *testing.T) {
	km := DistanceKm(london.Lat, london.Lon, newYork.Lat, newYork.Lon)
	f := home()
	f.Travel = &Travel{From: london, FromAt: t0.Add(-time.Hour), To: newYork}

	r := DefaultRules()
	r.MaxTravelKmh = km // exactly the speed of the move
	if a := Assess(f, r); a.Has(ImpossibleTravel) {
		t.Errorf("at exactly the limit (%v km/h): impossible_travel raised, want not", km)
	}
	r.MaxTravelKmh = math.Nextafter(km, 0)
	a := Assess(f, r)
	if !a.Has(ImpossibleTravel) {
		t.Fatalf("just above the limit: impossible_travel not raised")
	}

	r = DefaultRules()
	r.MinTravelKm = km // exactly the distance: never impossible
	f.Travel.FromAt = t0
	if a := Assess(f, r); a.Has(ImpossibleTravel) {
		t.Errorf("at exactly the minimum distance: impossible_travel raised, want not")
	}
}

func TestAssessReasons(t *testing.T) {
	f := home()
	f.DeviceKnown = false
	f.AccountFailures = 7
	f.Travel = &Travel{From: london, FromAt: t0.Add(-30 * time.Minute), To: newYork}
	a := Assess(f, DefaultRules())

	want := []Signal{
		{Name: NewDevice, Weight: 25, Reason: "You're signing in from a new device."},
		{Name: AccountFailures, Weight: 20, Reason: "There were several failed attempts to sign in to your account recently.",
			Detail: "7 failed sign-ins for the account (threshold 5)"},
		{Name: ImpossibleTravel, Weight: 80,
			Reason: "Your last sign-in was from London, GB and this one is from New York, US: too far to have travelled in the time between.",
			Detail: "5570 km in 30m0s: 11140 km/h (limit 900 km/h)"},
	}
	if diff := cmp.Diff(want, a.Signals); diff != "" {
		t.Errorf("Signals mismatch (-want +got):\n%s", diff)
	}
	wantReasons := []string{want[2].Reason, want[0].Reason, want[1].Reason}
	if diff := cmp.Diff(wantReasons, a.Reasons()); diff != "" {
		t.Errorf("Reasons() mismatch, want heaviest first (-want +got):\n%s", diff)
	}

	// Without place names the reason stays generic.
	f.Travel.From.Place = ""
	a = Assess(f, DefaultRules())
	if got := a.Signals[2].Reason; got != signals[iImpossibleTravel].reason {
		t.Errorf("travel reason without places = %q", got)
	}
	if got := Assess(home(), DefaultRules()).Reasons(); got != nil {
		t.Errorf("Reasons() with nothing raised = %q, want nil", got)
	}
}

// TestSignals pins the stable names (config and audit rely on them) and that
// every one speaks to the user in plain words.
func TestSignals(t *testing.T) {
	want := []string{
		"first_sign_in", "new_device", "new_network", "session_drift", "account_failures", "ip_failures",
		"credential_stuffing", "ip_suspicious", "ip_denied", "impossible_travel", "sensitive_client", "sensitive_scope",
	}
	if diff := cmp.Diff(want, Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
	for _, s := range signals {
		if !strings.HasSuffix(s.reason, ".") || strings.Contains(s.reason, "_") {
			t.Errorf("%s: reason %q should be a plain sentence", s.name, s.reason)
		}
	}
}

func TestBandText(t *testing.T) {
	for _, b := range []Band{Low, Medium, High} {
		text, err := b.MarshalText()
		if err != nil {
			t.Fatalf("%v.MarshalText(): %v", b, err)
		}
		var back Band
		if err := back.UnmarshalText(text); err != nil || back != b {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, b)
		}
	}
	if _, err := Band(7).MarshalText(); err == nil {
		t.Error("Band(7).MarshalText(): no error")
	}
	var b Band
	if err := b.UnmarshalText([]byte("HIGH")); err == nil {
		t.Error(`UnmarshalText("HIGH"): no error; band names are lower case`)
	}
}
