package risk

import (
	"fmt"
	"time"
)

// Assess scores f under r. It is pure and never panics; r should have passed
// [Rules.Validate] (with invalid rules the result is defined but
// meaningless). The rules, in the order the signals are reported:
//
//  1. FirstSignIn raises first_sign_in and nothing that compares with
//     history. Otherwise an unknown device raises new_device and an unknown
//     network new_network.
//  2. A session cookie back from another network and another user agent
//     raises session_drift and sets Reauth. Either change alone raises
//     nothing.
//  3. Counts at or above their Min* threshold raise account_failures,
//     ip_failures and credential_stuffing.
//  4. Operator lists raise ip_suspicious and ip_denied; ip_denied sets
//     Deny whatever the score.
//  5. Travel (not on a first sign-in) raises impossible_travel when the
//     distance is above MinTravelKm and the implied speed is above
//     MaxTravelKmh; a previous sign-in at or after Now counts as no time
//     elapsed.
//  6. SensitiveClient and SensitiveScope raise their signals.
//
// The score is the sum of the raised signals' weights; the band follows from
// Medium and High, and Floor, Hard and Deny from the band's action.
func Assess(f Facts, r Rules) Assessment {
	a := Assessment{Signals: make([]Signal, 0, 4)}
	raise := func(i int, detail string) {
		s := &signals[i]
		w := r.Weights[s.name]
		a.Score += w
		a.Signals = append(a.Signals, Signal{Name: s.name, Weight: w, Reason: s.reason, Detail: detail})
	}

	// 1. History. Anomalies are relative to the user's own history; a first
	// sign-in has none.
	if f.FirstSignIn {
		raise(iFirstSignIn, "")
	} else {
		if !f.DeviceKnown {
			raise(iNewDevice, "")
		}
		if !f.NetworkKnown {
			raise(iNewNetwork, "")
		}
	}

	// 2. Session drift. Both must change: networks change on their own
	// (mobile data, VPN) and user agents too (browser updates); a cookie
	// replayed from an attacker's machine changes both.
	if f.SessionNetworkChanged && f.SessionAgentChanged {
		raise(iSessionDrift, "")
		a.Reauth = true
	}

	// 3. Failures and credential stuffing.
	if r.MinAccountFailures > 0 && f.AccountFailures >= r.MinAccountFailures {
		raise(iAccountFailures, fmt.Sprintf("%d failed sign-ins for the account (threshold %d)", f.AccountFailures, r.MinAccountFailures))
	}
	if r.MinIPFailures > 0 && f.IPFailures >= r.MinIPFailures {
		raise(iIPFailures, fmt.Sprintf("%d failed sign-ins from the IP (threshold %d)", f.IPFailures, r.MinIPFailures))
	}
	if r.MinIPUsernames > 0 && f.IPUsernames >= r.MinIPUsernames {
		raise(iCredentialStuffing, fmt.Sprintf("%d distinct usernames tried from the IP (threshold %d)", f.IPUsernames, r.MinIPUsernames))
	}

	// 4. Operator lists.
	if f.IPSuspicious {
		raise(iIPSuspicious, "")
	}
	if f.IPDenied {
		raise(iIPDenied, "")
		a.Deny = true
	}

	// 5. Impossible travel.
	if t := f.Travel; t != nil && !f.FirstSignIn {
		if detail, ok := impossible(t, f.Now, r); ok {
			raise(iImpossibleTravel, detail)
			if t.From.Place != "" && t.To.Place != "" {
				a.Signals[len(a.Signals)-1].Reason = fmt.Sprintf(
					"Your last sign-in was from %s and this one is from %s: too far to have travelled in the time between.",
					t.From.Place, t.To.Place)
			}
		}
	}

	// 6. Sensitive client and scope.
	if f.SensitiveClient {
		raise(iSensitiveClient, "")
	}
	if f.SensitiveScope {
		raise(iSensitiveScope, "")
	}

	var act Action
	switch {
	case a.Score >= r.High:
		a.Band, act = High, r.OnHigh
	case a.Score >= r.Medium:
		a.Band, act = Medium, r.OnMedium
	default:
		a.Band, act = Low, r.OnLow
	}
	a.Floor, a.Hard = act.Floor, act.Hard
	a.Deny = a.Deny || act.Deny
	return a
}

// impossible reports whether the move t, seen at now, is faster than
// r.MaxTravelKmh over more than r.MinTravelKm, with a detail for audit. NaN
// coordinates never raise it.
func impossible(t *Travel, now time.Time, r Rules) (string, bool) {
	km := DistanceKm(t.From.Lat, t.From.Lon, t.To.Lat, t.To.Lon)
	if !(km > r.MinTravelKm) {
		return "", false
	}
	elapsed := now.Sub(t.FromAt)
	if elapsed <= 0 {
		// Same instant, or clock skew between instances: no time to travel.
		return fmt.Sprintf("%.0f km with no time elapsed (limit %.0f km/h)", km, r.MaxTravelKmh), true
	}
	// Compare distances rather than dividing, so a speed of exactly the
	// limit is not above it.
	if !(km > r.MaxTravelKmh*elapsed.Hours()) {
		return "", false
	}
	return fmt.Sprintf("%.0f km in %s: %.0f km/h (limit %.0f km/h)", km, elapsed, km/elapsed.Hours(), r.MaxTravelKmh), true
}
