package risk

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Default floors (DESIGN §3.2 names; idp/risk does not import idp/stepup).
const (
	FloorMultiFactor = "urn:keystep:acr:mfa"
	FloorPhishing    = "phr"
)

// MaxWeight bounds a signal's weight, so a score can never overflow.
const MaxWeight = 1000

// Action is what a band does to the request. The zero Action does nothing.
type Action struct {
	// Floor is an acr the session must reach ("" for none). It must name a
	// level of the stepup policy; the caller checks that when it loads the
	// config, since this package does not know the levels.
	Floor string
	// Hard makes an unreachable Floor access_denied instead of waived
	// (stepup.Input.RiskHard).
	Hard bool
	// Deny refuses the request outright.
	Deny bool
}

// Rules are the operator's risk rules. Build them from [DefaultRules] and
// change what the config sets; check them with [Rules.Validate]. Rules are
// read-only to Assess and safe for concurrent use once built.
type Rules struct {
	// Weights maps every signal name (see [Names]) to its contribution to
	// the score, 0 to MaxWeight. A raised signal of weight 0 is still
	// reported (and audited) but adds nothing. Weights do not change what
	// ip_denied (deny) and session_drift (reauth) do.
	Weights map[string]int

	// Medium and High are the score thresholds of the bands: a score of at
	// least Medium is medium, of at least High is high. 0 < Medium < High, so
	// a request that raises nothing is always low.
	Medium, High int
	// OnLow, OnMedium and OnHigh are the bands' actions. OnLow may not deny.
	OnLow, OnMedium, OnHigh Action

	// MinAccountFailures raises account_failures when Facts.AccountFailures
	// is at least this; MinIPFailures and MinIPUsernames do the same for
	// ip_failures and credential_stuffing. Each is at least 1.
	MinAccountFailures int
	MinIPFailures      int
	MinIPUsernames     int

	// MaxTravelKmh is the fastest plausible speed between two sign-ins;
	// above it (not at it) is impossible_travel. 900 km/h is an airliner.
	MaxTravelKmh float64
	// MinTravelKm is the distance at or below which a move is never
	// impossible travel: CIDR→location data is coarse, and two networks of
	// the same region may sit a few hundred kilometres apart in it.
	MinTravelKm float64
}

// DefaultRules returns the rules of DESIGN §3.4. Each call returns a fresh
// copy the caller may change.
//
//	signal               weight   alone gives
//	first_sign_in        10       low
//	new_device           25       low  (with new_network: 50, medium)
//	new_network          25       low
//	session_drift        30       low  (and reauth)
//	account_failures     20       low  (at 5 failures)
//	ip_failures          15       low  (at 20 failures)
//	credential_stuffing  40       medium (at 5 usernames)
//	ip_suspicious        40       medium
//	ip_denied            100      high (and deny)
//	impossible_travel    80       high (above 900 km/h, beyond 300 km)
//	sensitive_client     15       low  (with new_device: 40, medium)
//	sensitive_scope      15       low
//
//	medium at 40 → floor urn:keystep:acr:mfa, waived when out of reach
//	high at 80   → floor phr, access_denied when out of reach
func DefaultRules() Rules {
	return Rules{
		Weights: map[string]int{
			FirstSignIn:        10,
			NewDevice:          25,
			NewNetwork:         25,
			SessionDrift:       30,
			AccountFailures:    20,
			IPFailures:         15,
			CredentialStuffing: 40,
			IPSuspicious:       40,
			IPDenied:           100,
			ImpossibleTravel:   80,
			SensitiveClient:    15,
			SensitiveScope:     15,
		},
		Medium:             40,
		High:               80,
		OnMedium:           Action{Floor: FloorMultiFactor},
		OnHigh:             Action{Floor: FloorPhishing, Hard: true},
		MinAccountFailures: 5,
		MinIPFailures:      20,
		MinIPUsernames:     5,
		MaxTravelKmh:       900,
		MinTravelKm:        300,
	}
}

// Validate reports every problem at once (errors.Join), or nil:
//   - Weights has a weight for every signal of [Names] and for nothing
//     else, each 0 to MaxWeight;
//   - 0 < Medium < High;
//   - OnLow does not deny; no action both denies and sets a floor; Hard
//     comes with a Floor; a Floor has no whitespace (acr values cannot,
//     OIDC Core §3.1.2.1 acr_values is space-separated);
//   - MinAccountFailures, MinIPFailures and MinIPUsernames are at least 1;
//   - MaxTravelKmh is finite and positive, MinTravelKm finite and not
//     negative.
//
// Whether a Floor names a known level is for the caller to check against
// its stepup policy.
func (r Rules) Validate() error {
	var errs []error
	for _, name := range Names() {
		if _, ok := r.Weights[name]; !ok {
			errs = append(errs, fmt.Errorf("risk: no weight for signal %q", name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Weights)) {
		w := r.Weights[name]
		switch {
		case !known(name):
			errs = append(errs, fmt.Errorf("risk: weight for unknown signal %q", name))
		case w < 0 || w > MaxWeight:
			errs = append(errs, fmt.Errorf("risk: weight %d for %s is out of range 0..%d", w, name, MaxWeight))
		}
	}
	if r.Medium < 1 {
		errs = append(errs, fmt.Errorf("risk: medium threshold %d must be at least 1", r.Medium))
	}
	if r.High <= r.Medium {
		errs = append(errs, fmt.Errorf("risk: high threshold %d must be above medium threshold %d", r.High, r.Medium))
	}
	if r.OnLow.Deny {
		errs = append(errs, errors.New("risk: low band: deny would refuse every sign-in"))
	}
	for _, b := range []struct {
		band Band
		a    Action
	}{{Low, r.OnLow}, {Medium, r.OnMedium}, {High, r.OnHigh}} {
		switch {
		case b.a.Deny && b.a.Floor != "":
			errs = append(errs, fmt.Errorf("risk: %s band: an action denies or sets a floor, not both", b.band))
		case b.a.Hard && b.a.Floor == "":
			errs = append(errs, fmt.Errorf("risk: %s band: hard needs a floor", b.band))
		}
		if strings.ContainsAny(b.a.Floor, " \t\r\n\v\f") {
			errs = append(errs, fmt.Errorf("risk: %s band: floor %q contains whitespace", b.band, b.a.Floor))
		}
	}
	for _, m := range []struct {
		name string
		v    int
	}{{"min account failures", r.MinAccountFailures}, {"min IP failures", r.MinIPFailures}, {"min IP usernames", r.MinIPUsernames}} {
		if m.v < 1 {
			errs = append(errs, fmt.Errorf("risk: %s is %d, want at least 1", m.name, m.v))
		}
	}
	if !(r.MaxTravelKmh > 0) || math.IsInf(r.MaxTravelKmh, 0) {
		errs = append(errs, fmt.Errorf("risk: max travel speed %v km/h, want a positive number", r.MaxTravelKmh))
	}
	if !(r.MinTravelKm >= 0) || math.IsInf(r.MinTravelKm, 0) {
		errs = append(errs, fmt.Errorf("risk: min travel distance %v km, want a number ≥ 0", r.MinTravelKm))
	}
	return errors.Join(errs...)
}
