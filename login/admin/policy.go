package admin

import (
	"maps"
	"slices"
	"strings"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// Check is one validation of the running policy against the data it applies
// to, as the console's policy page and `keystep policy` show it.
type Check struct {
	OK      bool   `json:"ok"`
	Subject string `json:"subject"`
	Message string `json:"message"`
	// About and Say are Subject and Message for a translation (the
	// console). A Say whose key no catalog has (the risk rules'
	// diagnostics) is shown as it is.
	About i18n.Text `json:"-"`
	Say   i18n.Text `json:"-"`
}

// CheckPolicy validates the levels, scope minimums and risk rules, every
// client's minimum against the levels, and that the risk rules' sensitive
// clients exist. The config file is validated at start, so a problem here
// is one the data brought in: a client whose minimum names a level that no
// longer exists fails every sign-in.
func CheckPolicy(p *stepup.Policy, scopeMins map[string]string, rules risk.Rules, sensitiveClients []string, clients []storage.Client, builtIn string) []Check {
	var out []Check
	add := func(good bool, about, say i18n.Text) {
		out = append(out, Check{OK: good, Subject: about.String(), Message: say.String(), About: about, Say: say})
	}
	ok := func(about, say i18n.Text) { add(true, about, say) }
	bad := func(about, say i18n.Text) { add(false, about, say) }
	ok(i18n.Msg(i18n.N("levels")), i18n.Msg(i18n.N("%d levels, ordered from %s to %s"), len(p.Levels()), p.Levels()[0].ACR, p.Levels()[len(p.Levels())-1].ACR))
	for _, scope := range slices.Sorted(maps.Keys(scopeMins)) {
		if _, _, known := p.Lookup(scopeMins[scope]); !known {
			bad(i18n.Msg(i18n.N("scope %s"), scope), i18n.Msg(i18n.N("minimum %q is not a configured level"), scopeMins[scope]))
		}
	}
	if err := rules.Validate(); err != nil {
		bad(i18n.Msg(i18n.N("risk rules")), i18n.Msg(strings.ReplaceAll(err.Error(), "\n", "; ")))
	} else {
		ok(i18n.Msg(i18n.N("risk rules")), i18n.Msg(i18n.N("valid: medium from score %d, high from %d"), rules.Medium, rules.High))
	}
	for _, b := range []struct {
		band string
		act  risk.Action
	}{{"medium", rules.OnMedium}, {"high", rules.OnHigh}} {
		band, act := b.band, b.act
		if act.Floor != "" {
			if _, _, known := p.Lookup(act.Floor); !known {
				bad(i18n.Msg(i18n.N("risk %s"), band), i18n.Msg(i18n.N("floor %q is not a configured level"), act.Floor))
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
			bad(i18n.Msg(i18n.N("client %s"), c.ID), i18n.Msg(pr.Key, pr.Args...))
		}
		if len(ps) == 0 {
			n++
		}
	}
	ok(i18n.Msg(i18n.N("clients")), i18n.Msg(i18n.N("%d clients valid against these levels"), n))
	for _, id := range sensitiveClients {
		if !ids[id] {
			bad(i18n.Text{Key: "risk sensitive_clients"} /* a field path, not a message */, i18n.Msg(i18n.N("no client %q is registered"), id))
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
