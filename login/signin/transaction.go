package signin

import (
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
)

// TransactionDemand is what authorization details d (already checked by
// reg.Check) demand of the authentication that approves them, in the terms
// of storage.Requirement: the lowest acr (TransactionMin; "" only for no
// details, else at least the policy's lowest level, since any details are a
// transaction to approve) and the max age in seconds (TransactionMaxAge, 0
// for none). The demands of
// reg's rules are folded by details.Strictest in the order of p's levels
// (nil p: stepup.DefaultPolicy). It is computed once at /authorize.
//
// A demand that names an acr p does not know cannot be ordered, let alone
// enforced, so it is an error and the request must be refused rather than
// run at a lower level. A max age is rounded up to whole seconds: rounding
// down would turn a sub-second limit into none.
func TransactionDemand(reg *details.Registry, d details.Details, p *stepup.Policy) (acr string, maxAge int64, err error) {
	if p == nil {
		p = stepup.DefaultPolicy()
	}
	rank := func(acr string) int {
		r, _, ok := p.Lookup(acr)
		if !ok {
			return -1
		}
		return r
	}
	if len(d) == 0 {
		return "", 0, nil
	}
	demands := reg.Demands(d)
	acr, age, ok := details.Strictest(demands, rank)
	if !ok {
		for _, dm := range demands {
			if dm.MinACR != "" && rank(dm.MinACR) < 0 {
				return "", 0, fmt.Errorf("authorization details type %q demands acr %q, which the acr policy does not know", dm.Type, dm.MinACR)
			}
		}
		return "", 0, errors.New("authorization details demand an acr the acr policy does not know")
	}
	if acr != "" {
		// The policy's canonical name: one spelling for one level.
		_, lvl, _ := p.Lookup(acr)
		acr = lvl.ACR
	}
	if age > 0 {
		maxAge = int64((age + time.Second - 1) / time.Second)
	}
	if acr == "" {
		// Details whose rules demand no level are still a transaction to
		// approve (a factor of this request, stepup.Decide rule 4): at
		// the lowest level.
		acr = p.Levels()[0].ACR
	}
	return acr, maxAge, nil
}
