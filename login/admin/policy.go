package admin

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

// Check is one validation of the running policy against the data it applies
// to, as the console's policy page and `keystep policy` show it.
type Check struct {
	OK      bool   `json:"ok"`
	Subject string `json:"subject"`
	Message string `json:"message"`
}

// CheckPolicy validates the levels, scope minimums and risk rules, every
// client's minimum against the levels, and that the risk rules' sensitive
// clients exist. The config file is validated at start, so a problem here
// is one the data brought in: a client whose minimum names a level that no
// longer exists fails every sign-in.
func CheckPolicy(p *stepup.Policy, scopeMins map[string]string, rules risk.Rules, sensitiveClients []string, clients []storage.Client, builtIn string) []Check {
	var out []Check
	ok := func(subject, msg string) { out = append(out, Check{true, subject, msg}) }
	bad := func(subject, msg string) { out = append(out, Check{false, subject, msg}) }
	ok("levels", fmt.Sprintf("%d levels, ordered from %s to %s", len(p.Levels()), p.Levels()[0].ACR, p.Levels()[len(p.Levels())-1].ACR))
	for _, scope := range slices.Sorted(maps.Keys(scopeMins)) {
		if _, _, known := p.Lookup(scopeMins[scope]); !known {
			bad("scope "+scope, fmt.Sprintf("minimum %q is not a configured level", scopeMins[scope]))
		}
	}
	if err := rules.Validate(); err != nil {
		bad("risk rules", strings.ReplaceAll(err.Error(), "\n", "; "))
	} else {
		ok("risk rules", fmt.Sprintf("valid: medium from score %d, high from %d", rules.Medium, rules.High))
	}
	for _, b := range []struct {
		band string
		act  risk.Action
	}{{"medium", rules.OnMedium}, {"high", rules.OnHigh}} {
		band, act := b.band, b.act
		if act.Floor != "" {
			if _, _, known := p.Lookup(act.Floor); !known {
				bad("risk "+band, fmt.Sprintf("floor %q is not a configured level", act.Floor))
			}
		}
	}
	ids := map[string]bool{}
	n := 0
	for _, c := range clients {
		ids[c.ID] = true
		if c.ID == builtIn {
			continue
		}
		ps := ValidateClient(SpecOf(c), p, builtIn)
		for _, pr := range ps {
			bad("client "+c.ID, pr.Message)
		}
		if len(ps) == 0 {
			n++
		}
	}
	ok("clients", fmt.Sprintf("%d clients valid against these levels", n))
	for _, id := range sensitiveClients {
		if !ids[id] {
			bad("risk sensitive_clients", fmt.Sprintf("no client %q is registered", id))
		}
	}
	slices.SortStableFunc(out, func(x, y Check) int {
		if x.OK == y.OK {
			return 0
		}
		if !x.OK {
			return -1
		}
		return 1
	})
	return out
}
