package login

import (
	"slices"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// hasSecondFactor reports whether the user has enrolled any second factor.
func hasSecondFactor(factors []storage.Factor) bool { return len(factors) > 0 }

// enrolledOf is the package function, less WebAuthn when passkeys are off
// here (an IP-address issuer): a factor that cannot be completed must not
// be offered or counted as reachable. Only trusted WebAuthn credentials
// count toward phr.
func (h *Handler) enrolledOf(u storage.User, factors []storage.Factor, recoveryLeft int) []stepup.Enrolled {
	return h.enrolledAt(u, factors, recoveryLeft, false)
}

// enrolledAt is enrolledOf for a request from a known device and network
// (known) or not: there a ripe credential counts toward phr too, since
// using it trusts it.
func (h *Handler) enrolledAt(u storage.User, factors []storage.Factor, recoveryLeft int, known bool) []stepup.Enrolled {
	out := signin.Enrolled(u, factors, recoveryLeft, h.phrCounts(known))
	if h.cfg.WebAuthn != nil {
		return out
	}
	return slices.DeleteFunc(out, func(e stepup.Enrolled) bool { return e.Method == stepup.WebAuthn })
}
