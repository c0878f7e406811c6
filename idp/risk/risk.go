// Package risk scores the context of a sign-in and says what it means for
// the authentication level: raise the floor, or deny.
//
// Everything here is pure: no I/O, no clock, no logging, standard library
// only. The caller gathers [Facts] from storage for one request and calls
// [Assess] with the operator's [Rules]; every rule below is pinned by a row in
// assess_test.go.
//
// # Model
//
// Each fact that looks unusual raises a named [Signal]. The names are stable
// identifiers used in config and audit (see [Names]). The score is the sum of
// the raised signals' weights, and the band comes from two thresholds:
//
//	score < Medium          low
//	Medium ≤ score < High   medium
//	High ≤ score            high
//
// Each band has an [Action]: a floor (an acr the session must reach) or deny.
// With [DefaultRules] (DESIGN §3.4):
//
//	new device alone, new network alone, first sign-in   low    (audited only)
//	new device and new network together                 medium → floor urn:keystep:acr:mfa
//	credential stuffing, a suspicious IP                 medium or more
//	impossible travel                                    high   → floor phr, denied when out of reach
//	an IP on the deny list                               denied whatever the score
//
// Anomalies are relative to the user's own history. A user's first sign-in
// has no history to compare with: it raises first_sign_in (a low, recorded
// signal) instead of new_device, new_network or impossible_travel.
//
// # What risk may do
//
// Risk raises the floor or denies; it never lowers a floor and never stands
// in for a factor (DESIGN §3.3). The caller passes Floor, Hard and Deny to
// stepup.Decide as RiskFloor, RiskHard and RiskDeny. A medium floor the user
// has no factor to reach is waived there (audited, and the portal nudges the
// user to add a factor); a high one is access_denied.
//
// Session drift (the session cookie comes back from another network and
// another user agent than it was issued to) sets [Assessment.Reauth]: the
// session's factors no longer count as fresh and the user proves them again,
// at least at the level the session had.
package risk

import (
	"fmt"
	"slices"
	"time"
)

// Signal names: stable identifiers for config (Rules.Weights) and audit.
const (
	// FirstSignIn: the user has never signed in before. Recorded, not an
	// anomaly: there is no history to compare with.
	FirstSignIn = "first_sign_in"
	// NewDevice: no device cookie registered to this user came with the
	// request.
	NewDevice = "new_device"
	// NewNetwork: the user has never signed in from this IP's [Network].
	NewNetwork = "new_network"
	// SessionDrift: the session cookie came back from another network and
	// another user agent than it was issued to. Sets Assessment.Reauth.
	SessionDrift = "session_drift"
	// AccountFailures: recent failed sign-ins for this account reached
	// Rules.MinAccountFailures.
	AccountFailures = "account_failures"
	// IPFailures: recent failed sign-ins from this IP reached
	// Rules.MinIPFailures.
	IPFailures = "ip_failures"
	// CredentialStuffing: the number of distinct usernames recently tried
	// from this IP reached Rules.MinIPUsernames.
	CredentialStuffing = "credential_stuffing"
	// IPSuspicious: the IP is on the operator's suspicious list.
	IPSuspicious = "ip_suspicious"
	// IPDenied: the IP is on the operator's deny list. Sets Assessment.Deny
	// whatever the score.
	IPDenied = "ip_denied"
	// ImpossibleTravel: reaching this sign-in's location from the previous
	// one, in the time between, needs a speed above Rules.MaxTravelKmh.
	ImpossibleTravel = "impossible_travel"
	// SensitiveClient: the operator marked the client as sensitive.
	SensitiveClient = "sensitive_client"
	// SensitiveScope: a requested scope is marked sensitive.
	SensitiveScope = "sensitive_scope"
)

// Indexes into signals.
const (
	iFirstSignIn = iota
	iNewDevice
	iNewNetwork
	iSessionDrift
	iAccountFailures
	iIPFailures
	iCredentialStuffing
	iIPSuspicious
	iIPDenied
	iImpossibleTravel
	iSensitiveClient
	iSensitiveScope
	nSignals
)

// signals lists every signal in the order Assess reports them, with the
// plain words shown to the user.
var signals = [nSignals]struct{ name, reason string }{
	iFirstSignIn:        {FirstSignIn, "This is your first sign-in."},
	iNewDevice:          {NewDevice, "You're signing in from a new device."},
	iNewNetwork:         {NewNetwork, "You're signing in from a network you haven't used before."},
	iSessionDrift:       {SessionDrift, "Your session is being used from a different network and browser than the one it started on."},
	iAccountFailures:    {AccountFailures, "There were several failed attempts to sign in to your account recently."},
	iIPFailures:         {IPFailures, "There were many failed sign-in attempts from your network recently."},
	iCredentialStuffing: {CredentialStuffing, "Many different accounts were tried from your network recently."},
	iIPSuspicious:       {IPSuspicious, "Your network has been flagged by the administrator."},
	iIPDenied:           {IPDenied, "Sign-ins from your network are blocked."},
	iImpossibleTravel:   {ImpossibleTravel, "Your last sign-in was too far away, too recently, for you to have travelled here since."},
	iSensitiveClient:    {SensitiveClient, "This app handles sensitive information."},
	iSensitiveScope:     {SensitiveScope, "The app is asking for access to sensitive information."},
}

// Names returns every signal name, in the order Assess reports them.
func Names() []string {
	out := make([]string, len(signals))
	for i, s := range signals {
		out[i] = s.name
	}
	return out
}

// Reason returns the plain words shown to the user for signal name, in
// English ("" for an unknown name); the login UI translates them.
func Reason(name string) string {
	for _, s := range signals {
		if s.name == name {
			return s.reason
		}
	}
	return ""
}

func known(name string) bool {
	return slices.ContainsFunc(signals[:], func(s struct{ name, reason string }) bool { return s.name == name })
}

// Facts is what the caller knows about one sign-in request, gathered from
// storage. The zero value describes a returning user on an unknown device and
// network (medium with DefaultRules), so facts a caller forgets to gather err
// towards caution.
type Facts struct {
	// Now is the time of the request.
	Now time.Time

	// FirstSignIn reports that the user has no sign-in history at all. It
	// replaces the signals that compare with history (new_device,
	// new_network, impossible_travel).
	FirstSignIn bool
	// DeviceKnown reports that the request carries a valid device cookie
	// registered to this user.
	DeviceKnown bool
	// NetworkKnown reports that this user has signed in before from the
	// request IP's [Network] (/24 for IPv4, /48 for IPv6).
	NetworkKnown bool

	// SessionNetworkChanged and SessionAgentChanged compare a presented
	// session cookie with the context it was issued to: the [Network] of the
	// IP, and the User-Agent string. Both false when there is no session.
	// Only both together are drift: either alone happens every day (a phone
	// moving from Wi-Fi to mobile data, a browser update).
	SessionNetworkChanged bool
	SessionAgentChanged   bool

	// AccountFailures is the number of failed sign-ins for this account in the
	// caller's window, before this request.
	AccountFailures int
	// IPFailures is the number of failed sign-ins from this IP in the window.
	IPFailures int
	// IPUsernames is the number of distinct usernames tried from this IP in
	// the window.
	IPUsernames int

	// IPDenied and IPSuspicious report that the IP is on the operator's deny
	// or suspicious list (see [Prefixes]).
	IPDenied     bool
	IPSuspicious bool

	// Travel is the previous sign-in's place and time and this request's
	// place; nil when there is no previous sign-in or no location data for
	// either IP (see [Locations]).
	Travel *Travel

	// SensitiveClient reports that the operator marked the client sensitive.
	SensitiveClient bool
	// SensitiveScope reports that a requested scope is marked sensitive.
	SensitiveScope bool
}

// Travel is the movement between the previous sign-in and this one.
type Travel struct {
	From   Location  // where the previous sign-in came from
	FromAt time.Time // when it happened
	To     Location  // where this request comes from
}

// Location is a point on Earth and, optionally, a place name for people.
type Location struct {
	Lat, Lon float64 // degrees, WGS 84
	Place    string  // e.g. "Paris, FR"; may be empty
}

// Signal is one raised signal and what it contributed.
type Signal struct {
	Name   string // stable identifier, one of [Names]
	Weight int    // contribution to the score (Rules.Weights[Name])
	Reason string // plain words for the user: "You're signing in from a new device."
	Detail string // for audit and logs, not for the user; may be empty
}

// Band is the coarse risk level of an assessment.
type Band int

// Bands, low to high. The zero value is Low.
const (
	Low Band = iota
	Medium
	High
)

func (b Band) String() string {
	switch b {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	}
	return fmt.Sprintf("Band(%d)", int(b))
}

// MarshalText renders the band as "low", "medium" or "high", for JSON audit
// records and config.
func (b Band) MarshalText() ([]byte, error) {
	if b < Low || b > High {
		return nil, fmt.Errorf("risk: invalid band %d", int(b))
	}
	return []byte(b.String()), nil
}

// UnmarshalText parses "low", "medium" or "high".
func (b *Band) UnmarshalText(text []byte) error {
	for c := Low; c <= High; c++ {
		if string(text) == c.String() {
			*b = c
			return nil
		}
	}
	return fmt.Errorf("risk: unknown band %q (want low, medium or high)", text)
}

// Assessment is the result of [Assess].
type Assessment struct {
	Score   int
	Band    Band
	Signals []Signal // raised signals, in the order of [Names]; weight 0 ones included

	// Floor is the acr the session must reach ("" for none): pass it to
	// stepup as RiskFloor. It only ever raises the target.
	Floor string
	// Hard reports that an unreachable Floor is access_denied rather than
	// waived: pass it to stepup as RiskHard.
	Hard bool
	// Deny reports that the request is refused (access_denied): the IP is on
	// the deny list, or the band's action denies.
	Deny bool
	// Reauth reports session drift: the session's factors no longer count as
	// fresh, and the user proves them again, at least at the session's level.
	Reauth bool
}

// Has reports whether the signal name was raised.
func (a Assessment) Has(name string) bool {
	return slices.ContainsFunc(a.Signals, func(s Signal) bool { return s.Name == name })
}

// Reasons returns the user-facing reasons of the signals that contributed to
// the score (weight > 0), heaviest first; ties keep the order of [Names].
func (a Assessment) Reasons() []string {
	s := slices.Clone(a.Signals)
	s = slices.DeleteFunc(s, func(s Signal) bool { return s.Weight <= 0 })
	if len(s) == 0 {
		return nil
	}
	slices.SortStableFunc(s, func(a, b Signal) int { return b.Weight - a.Weight })
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].Reason
	}
	return out
}
