package admin

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/keystep/keystep/login/admin/impact"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// PreviewPolicy replays the sign-ins st recorded since `since` (zero: all)
// under cur and prop, and reports what would change (issue 21, item 3):
// the reading half of the impact preview, shared by `keystep policy
// preview`, `keystep simulate --compare` and the console's "Preview
// impact". It writes nothing.
//
// The clients' floors (minimum acr, strict) are the stored clients'; the
// proposed side takes `proposed` on top, the clients a proposed change
// would store (`keystep apply -f`). Each side's per-client scope minimums
// are its snapshot's client_policies.
func PreviewPolicy(ctx context.Context, st storage.Store, cur, prop *policy.Snapshot, since time.Time, proposed ...ClientSpec) (impact.Report, error) {
	clients, err := st.ListClients(ctx)
	if err != nil {
		return impact.Report{}, err
	}
	events, err := st.ListAudit(ctx, storage.AuditFilter{Types: impact.DecisionTypes(), Since: since})
	if err != nil {
		return impact.Report{}, err
	}
	floors := map[string]impact.ClientFloor{}
	for _, c := range clients {
		floors[c.ID] = impact.ClientFloor{MinACR: c.MinACR, Strict: c.Strict}
	}
	propFloors := maps.Clone(floors)
	for _, c := range proposed {
		propFloors[c.ID] = impact.ClientFloor{MinACR: c.MinACR, Strict: c.Strict}
	}
	sis, skipped := impact.SignIns(events)
	r := impact.Preview(sis, skipped, impactPolicy(cur, floors), impactPolicy(prop, propFloors))
	r.Caveats = append(r.Caveats, snapshotCaveats(cur, prop)...)
	return r, nil
}

// impactPolicy is what decides a sign-in under s, with the clients' floors.
func impactPolicy(s *policy.Snapshot, floors map[string]impact.ClientFloor) *impact.Policy {
	p := &impact.Policy{
		Levels: s.Levels, ScopeMinACR: s.ScopeMinACR, Clients: floors, Risk: s.Risk.Rules,
		SensitiveClients: s.Risk.SensitiveClients, SensitiveScopes: s.Risk.SensitiveScopes,
	}
	for id, c := range s.Clients {
		if len(c.ScopeMinACR) == 0 {
			continue
		}
		if p.ClientScopeMinACR == nil {
			p.ClientScopeMinACR = map[string]map[string]string{}
		}
		p.ClientScopeMinACR[id] = c.ScopeMinACR
	}
	return p
}

// snapshotCaveats are the changed settings the preview does not replay
// that only the documents show: the operator's IP lists and locations
// decide signals from addresses the audit log keeps only as signals; a
// transaction is replayed at the level it demanded; the admin console's
// level decides console access, which is not a sign-in; which factors a
// client offers changes the prompt, not whether one is needed.
func snapshotCaveats(cur, prop *policy.Snapshot) []string {
	var out []string
	rc := func(s *policy.Snapshot) policy.Risk {
		if s.Doc.Risk == nil {
			return policy.Risk{}
		}
		return *s.Doc.Risk
	}
	a, b := rc(cur), rc(prop)
	if !slices.Equal(a.DenyCIDRs, b.DenyCIDRs) {
		out = append(out, "risk.deny_cidrs changed: which addresses it would catch is not previewed")
	}
	if !slices.Equal(a.SuspiciousCIDRs, b.SuspiciousCIDRs) {
		out = append(out, "risk.suspicious_cidrs changed: which addresses it would catch is not previewed")
	}
	if a.LocationsCSV != b.LocationsCSV {
		out = append(out, "risk.locations_csv changed: impossible travel under it is not previewed")
	}
	if !reflect.DeepEqual(cur.Doc.AuthorizationDetails, prop.Doc.AuthorizationDetails) {
		out = append(out, "authorization_details_types changed: a transaction is replayed with the level it demanded when recorded")
	}
	if cur.AdminACR != prop.AdminACR || cur.AdminMaxAge != prop.AdminMaxAge {
		out = append(out, "admin changed: admin console access is not a sign-in and is not previewed")
	}
	ids := slices.Sorted(maps.Keys(cur.Clients))
	for id := range prop.Clients {
		if _, ok := cur.Clients[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		x, y := cur.Client(id), prop.Client(id)
		if !slices.Equal(x.Factors, y.Factors) || x.Preferred != y.Preferred || x.EnrollDuringStepUp != y.EnrollDuringStepUp {
			out = append(out, fmt.Sprintf("client_policies.%s: which factors it offers changed: the prompts are replayed with the factors people used", id))
		}
	}
	return out
}
