package policy

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/details"
)

// SpellOut is the document of what s decides, every default written out:
// the levels, scope minimums, risk rules and the admin console's level as
// compiled; the address lists and location file as its document wrote
// them; the authorization details types and client policies as its
// document wrote them, else as compiled. It is version 0's document when
// a server was configured with compiled values rather than a document, so
// the first version edited from it keeps what the server decided.
func SpellOut(s *Snapshot) Document {
	doc := Document{ScopeMinACR: maps.Clone(s.ScopeMinACR), AuthorizationDetails: s.Doc.AuthorizationDetails, ClientPolicies: s.Doc.ClientPolicies}
	for _, l := range s.Levels.Levels() {
		lc := Level{ACR: l.ACR, Aliases: l.Aliases, Requires: string(l.Requires)}
		if l.DefaultFreshness > 0 {
			lc.Freshness = ShortDuration(l.DefaultFreshness)
		}
		for m, d := range l.Freshness {
			if lc.PerFactor == nil {
				lc.PerFactor = map[string]string{}
			}
			lc.PerFactor[string(m)] = ShortDuration(d)
		}
		doc.Levels = append(doc.Levels, lc)
	}
	r := s.Risk.Rules
	rc := &Risk{Weights: maps.Clone(r.Weights), Medium: &r.Medium, High: &r.High, MaxTravelKmh: &r.MaxTravelKmh,
		OnMedium:         &RiskAction{Floor: r.OnMedium.Floor, Hard: r.OnMedium.Hard, Deny: r.OnMedium.Deny},
		OnHigh:           &RiskAction{Floor: r.OnHigh.Floor, Hard: r.OnHigh.Hard, Deny: r.OnHigh.Deny},
		SensitiveClients: s.Risk.SensitiveClients, SensitiveScopes: s.Risk.SensitiveScopes,
	}
	if f := s.Doc.Risk; f != nil {
		rc.DenyCIDRs, rc.SuspiciousCIDRs, rc.LocationsCSV = f.DenyCIDRs, f.SuspiciousCIDRs, f.LocationsCSV
	}
	doc.Risk = rc
	doc.Admin = &Admin{ACR: s.AdminACR, MaxAge: ShortDuration(s.AdminMaxAge)}
	if doc.AuthorizationDetails == nil && s.Details != nil && len(s.Details.Types()) > 0 {
		var c details.Config
		for _, name := range s.Details.Types() {
			t, _ := s.Details.Type(name)
			c.Types = append(c.Types, t)
		}
		doc.AuthorizationDetails = &c
	}
	if doc.ClientPolicies == nil && len(s.Clients) > 0 {
		doc.ClientPolicies = map[string]ClientPolicy{}
		for _, id := range slices.Sorted(maps.Keys(s.Clients)) {
			c := s.Clients[id]
			cp := ClientPolicy{ScopeMinACR: c.ScopeMinACR, PreferredFactor: string(c.Preferred), EnrollDuringStepUp: c.EnrollDuringStepUp}
			if c.AccessTTL > 0 {
				cp.AccessTokenLifetime = ShortDuration(c.AccessTTL)
			}
			if c.RefreshTTL > 0 {
				cp.RefreshTokenLifetime = ShortDuration(c.RefreshTTL)
			}
			for _, m := range c.Factors {
				cp.Factors = append(cp.Factors, string(m))
			}
			doc.ClientPolicies[id] = cp
		}
	}
	return doc
}

// ShortDuration is d as people write it: 12h, 15m, 1h30m.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
