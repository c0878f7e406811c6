package signin

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/storage"
)

// RiskConfig is the operator's risk settings (DESIGN §3.4).
type RiskConfig struct {
	Rules            risk.Rules
	Locations        *risk.Locations // CIDR → location, for impossible travel; nil: off
	Deny, Suspicious *risk.Prefixes  // operator IP lists; nil: none
	SensitiveClients []string
	SensitiveScopes  []string
	// Window is how far back failures and usernames per IP are counted.
	Window time.Duration
}

// DefaultRiskConfig is the default rules with no lists or locations.
func DefaultRiskConfig() RiskConfig {
	return RiskConfig{Rules: risk.DefaultRules(), Window: time.Hour}
}

// Assessor gathers a sign-in's facts from storage and assesses them. It
// only reads, so the explain tool can run the same code with no effect.
type Assessor struct {
	Store  storage.Store
	Risk   RiskConfig
	Limits throttle.Limits
	Now    func() time.Time
}

// RiskInput is one sign-in attempt as the assessor sees it.
type RiskInput struct {
	User      storage.User
	ClientID  string
	Scopes    []string
	IP        string
	UserAgent string
	DeviceID  string           // hash of the browser's device cookie
	Session   *storage.Session // the session presented, if any
}

// Assess returns the assessment and the history it was based on.
func (a *Assessor) Assess(ctx context.Context, in RiskInput) (risk.Assessment, storage.SignIn, error) {
	now := a.Now()
	f := risk.Facts{Now: now}
	addr, _ := netip.ParseAddr(in.IP)
	network := ""
	if addr.IsValid() {
		network = risk.Network(addr).String()
	}
	hist, err := a.Store.SignInHistory(ctx, in.User.ID, in.DeviceID, network)
	if err != nil {
		return risk.Assessment{}, storage.SignIn{}, err
	}
	f.FirstSignIn = !hist.Any
	f.DeviceKnown, f.NetworkKnown = hist.DeviceKnown, hist.NetworkKnown
	if s := in.Session; s != nil {
		f.SessionNetworkChanged, f.SessionAgentChanged = SessionMoved(*s, in.IP, in.UserAgent)
	}
	// The account's recent failures from every place (throttle.go).
	counted := throttle.Addr(in.IP)
	acct := throttle.AccountKeys(storage.ScopeAccount, in.User.Username)
	states, err := a.Store.CheckThrottle(ctx, append(acct, storage.ThrottleKey{Scope: storage.ScopeIP, Key: counted}), a.Limits, now)
	if err != nil {
		return risk.Assessment{}, storage.SignIn{}, err
	}
	for _, k := range acct {
		f.AccountFailures += states[k].Failures
	}
	f.IPFailures = states[storage.ThrottleKey{Scope: storage.ScopeIP, Key: counted}].Failures
	if f.IPUsernames, err = a.Store.DistinctAccountsFromIP(ctx, counted, now.Add(-a.Risk.Window)); err != nil {
		return risk.Assessment{}, storage.SignIn{}, err
	}
	if addr.IsValid() {
		f.IPDenied = a.Risk.Deny != nil && a.Risk.Deny.Contains(addr)
		f.IPSuspicious = a.Risk.Suspicious != nil && a.Risk.Suspicious.Contains(addr)
	}
	cur := storage.SignIn{UserID: in.User.ID, At: now, IP: in.IP, Network: network, DeviceID: in.DeviceID}
	if a.Risk.Locations != nil && addr.IsValid() {
		if loc, ok := a.Risk.Locations.Lookup(addr); ok {
			cur.HasLocation, cur.Lat, cur.Lon, cur.Place = true, loc.Lat, loc.Lon, loc.Place
			if hist.Last.HasLocation {
				f.Travel = &risk.Travel{
					From:   risk.Location{Lat: hist.Last.Lat, Lon: hist.Last.Lon, Place: hist.Last.Place},
					FromAt: hist.Last.At,
					To:     loc,
				}
			}
		}
	}
	f.SensitiveClient = slices.Contains(a.Risk.SensitiveClients, in.ClientID)
	for _, s := range in.Scopes {
		if slices.Contains(a.Risk.SensitiveScopes, s) {
			f.SensitiveScope = true
		}
	}
	return ReceivedSignals(risk.Assess(f, a.Risk.Rules), in.User, now), cur, nil
}

// The signals a received Shared Signals event leaves on a user, as the
// assessment names them.
const (
	// SignalPasswordCompromised: a transmitter reported the password
	// compromised; a second factor is required (Hard: no waiver) before
	// the person changes it.
	SignalPasswordCompromised = "password_compromised"
	// SignalReceivedRisk: a transmitter raised the user's risk (a device
	// no longer compliant) until a time: the stored risk floor applies.
	SignalReceivedRisk = "received_signal"
)

// ReceivedSignals raises a with what received signals left on u: the
// stored risk floor while it lasts (one set for new devices only, after a
// password reset, when a finds the device new), and a second factor,
// required, while the password is marked compromised. It only ever raises
// the floor.
func ReceivedSignals(a risk.Assessment, u storage.User, now time.Time) risk.Assessment {
	if u.RiskFloor != "" && now.Before(u.RiskFloorUntil) && (!u.RiskFloorNewDevices || a.Has(risk.NewDevice)) {
		a.Floor = higherACR(a.Floor, u.RiskFloor)
		// Reasons are message keys, translated where they are shown.
		why := i18n.N("A security service reported a risk on your account.")
		if u.RiskFloorNewDevices {
			why = i18n.N("Your password was reset recently, and this device is new to your account.")
		}
		a.Signals = append(a.Signals, risk.Signal{Name: SignalReceivedRisk, Reason: why,
			Detail: u.RiskFloorReason + " (until " + u.RiskFloorUntil.UTC().Format(time.RFC3339) + ", floor " + u.RiskFloor + ")"})
	}
	if u.PasswordCompromised {
		a.Floor, a.Hard = higherACR(a.Floor, stepup.ACRMultiFactor), true
		a.Signals = append(a.Signals, risk.Signal{Name: SignalPasswordCompromised, Reason: i18n.N("Your password was reported as exposed."),
			Detail: "a transmitter reported the password compromised; it must be changed after a second factor"})
	}
	return a
}

// builtInACRs are the built-in levels, lowest first.
var builtInACRs = []string{stepup.ACRSingleFactor, stepup.ACRMultiFactor, stepup.ACRPhishing, stepup.ACRHardware}

// higherACR is the higher of two levels; a level that is not built in is
// kept (an operator's own level is not ranked here).
func higherACR(a, b string) string {
	ia, ib := slices.Index(builtInACRs, a), slices.Index(builtInACRs, b)
	switch {
	case a == "":
		return b
	case ia < 0 || ib < 0:
		return a
	case ib > ia:
		return b
	}
	return a
}

// SessionMoved reports whether a session is presented from another
// network, and from another user agent, than it was issued to: the facts
// behind session drift (risk.Assess, rule 2: both together are drift).
func SessionMoved(s storage.Session, ip, userAgent string) (network, agent bool) {
	prev, err1 := netip.ParseAddr(s.IP)
	cur, err2 := netip.ParseAddr(ip)
	network = err1 == nil && err2 == nil && risk.Network(prev) != risk.Network(cur)
	return network, s.UserAgent != userAgent
}

// RiskOf is what an assessment asks of step-up. stepup applies it: risk
// raises the floor or denies, never lowers it and never stands in for a
// factor (DESIGN §3.3); session drift (Reauth) makes the session's factors
// count for nothing, so the user proves its current level again.
func RiskOf(a risk.Assessment) stepup.Risk {
	return stepup.Risk{Floor: a.Floor, Hard: a.Hard, Deny: a.Deny, Drifted: a.Reauth}
}

// ApplyRisk puts the assessment into a decision's input.
func ApplyRisk(in *stepup.Input, a risk.Assessment) {
	rk := RiskOf(a)
	in.RiskFloor, in.RiskHard, in.RiskDeny, in.Drifted = rk.Floor, rk.Hard, rk.Deny, rk.Drifted
}

// SignalNames lists an assessment's signals for audit.
func SignalNames(a risk.Assessment) string {
	out := ""
	for i, s := range a.Signals {
		if i > 0 {
			out += " "
		}
		out += s.Name
	}
	return out
}
