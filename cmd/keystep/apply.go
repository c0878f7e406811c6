package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// Configuration as code. `keystep apply -f FILE` makes the database's
// clients match the file's clients: section, idempotently; `keystep export`
// writes the current configuration in the same format. The file is the one
// `keystep serve --config` reads: levels, scope minimums and risk rules stay
// there (the server reads them at start), and apply checks them with
// everything else before it changes anything.

// clientChange is what apply did, or would do, to one client.
type clientChange struct {
	ID      string   `json:"id"`
	Action  string   `json:"action"` // created, updated, deleted, unchanged, kept (in the database, not in the file)
	Changes []string `json:"changes,omitempty"`
	Secret  string   `json:"secret,omitempty"` // a new secret, shown once
}

func apply(ctx context.Context, args []string, stdout io.Writer) error {
	var file string
	var prune, dryRun bool
	fs, c, err := sub("apply", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "f", "", "the configuration file (YAML or JSON)")
		fs.StringVar(&file, "file", "", "the configuration file (YAML or JSON)")
		fs.BoolVar(&prune, "prune", false, "delete clients that are not in the file")
		fs.BoolVar(&dryRun, "dry-run", false, "say what would change, and change nothing")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "apply"); err != nil {
		return err
	}
	if file == "" {
		return usageError{"apply: -f FILE is required"}
	}
	// The whole file is checked before the data folder is touched: a file
	// with any problem changes nothing, and every problem is listed.
	set, err := loadConfig(file)
	if err != nil {
		return err
	}

	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	current, err := st.ListClients(ctx)
	if err != nil {
		return err
	}
	byID := map[string]storage.Client{}
	for _, cl := range current {
		byID[cl.ID] = cl
	}
	adm := newAdmin(st, key, set)
	by := cliActor("keystep apply -f " + filepath.Base(file))
	now := clock()

	var out []clientChange
	for _, want := range set.clients {
		old, exists := byID[want.ID]
		ch := clientChange{ID: want.ID}
		switch {
		case !exists:
			ch.Action = "created"
			if !dryRun {
				if ch.Secret, err = adm.CreateClient(ctx, by, want, now); err != nil {
					return applyFailed(out, want.ID, err)
				}
			}
		default:
			before := admin.SpecOf(old)
			ch.Changes = admin.DiffClients(before, want)
			if want.UsesSecret() && old.SecretHash == "" {
				ch.Changes = append(ch.Changes, "secret: new secret issued")
			}
			if !want.UsesSecret() && old.SecretHash != "" {
				ch.Changes = append(ch.Changes, "secret: removed")
			}
			ch.Action = "unchanged"
			if len(ch.Changes) > 0 {
				ch.Action = "updated"
				if !dryRun {
					if ch.Changes, ch.Secret, err = adm.UpdateClient(ctx, by, want, now); err != nil {
						return applyFailed(out, want.ID, err)
					}
				}
			}
		}
		out = append(out, ch)
	}
	inFile := map[string]bool{}
	for _, cl := range set.clients {
		inFile[cl.ID] = true
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if inFile[id] || id == idp.AccountClientID {
			continue
		}
		ch := clientChange{ID: id, Action: "kept"}
		if prune {
			ch.Action = "deleted"
			if !dryRun {
				if err := adm.DeleteClient(ctx, by, id); err != nil {
					return applyFailed(out, id, err)
				}
			}
		}
		out = append(out, ch)
	}
	return reportApply(stdout, c.json, file, dryRun, out)
}

// applyFailed reports a storage failure part-way: what was already done
// stays done (and audited), so the report names it.
func applyFailed(done []clientChange, id string, err error) error {
	var names []string
	for _, ch := range done {
		if ch.Action != "unchanged" && ch.Action != "kept" {
			names = append(names, ch.Action+" "+ch.ID)
		}
	}
	msg := fmt.Sprintf("apply: client %s: %v", id, err)
	if len(names) > 0 {
		msg += "\nalready applied (run apply again to finish): " + strings.Join(names, ", ")
	}
	return errors.New(msg)
}

func reportApply(stdout io.Writer, asJSON bool, file string, dryRun bool, out []clientChange) error {
	changed := slices.ContainsFunc(out, func(ch clientChange) bool { return ch.Action != "unchanged" && ch.Action != "kept" })
	if asJSON {
		if out == nil {
			out = []clientChange{}
		}
		return printJSON(stdout, struct {
			File    string         `json:"file"`
			DryRun  bool           `json:"dry_run"`
			Changed bool           `json:"changed"`
			Clients []clientChange `json:"clients"`
		}{file, dryRun, changed, out})
	}
	verb := func(past string) string {
		if !dryRun {
			return past
		}
		return map[string]string{"created": "would create", "updated": "would update", "deleted": "would delete"}[past]
	}
	var unchanged, kept []string
	for _, ch := range out {
		switch ch.Action {
		case "unchanged":
			unchanged = append(unchanged, ch.ID)
		case "kept":
			kept = append(kept, ch.ID)
		case "updated":
			fmt.Fprintf(stdout, "%s %s: %s\n", verb("updated"), ch.ID, strings.Join(ch.Changes, "; "))
		default:
			fmt.Fprintf(stdout, "%s %s\n", verb(ch.Action), ch.ID)
		}
		if ch.Secret != "" {
			fmt.Fprintf(stdout, "  client secret for %s (shown once, stored hashed): %s\n", ch.ID, ch.Secret)
		}
	}
	if len(kept) > 0 {
		fmt.Fprintf(stdout, "not in the file, kept (--prune deletes them): %s\n", strings.Join(kept, ", "))
	}
	switch {
	case !changed:
		fmt.Fprintf(stdout, "no changes: %d client%s already match%s %s\n", len(unchanged), plural(len(unchanged)), map[bool]string{true: "", false: "es"}[len(unchanged) != 1], filepath.Base(file))
	case len(unchanged) > 0:
		fmt.Fprintf(stdout, "unchanged: %s\n", strings.Join(unchanged, ", "))
	}
	fmt.Fprintln(stdout, "levels, scope minimums and risk rules: valid; keystep serve --config reads them from this file at start")
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// export writes the configuration: the clients in the database (never a
// secret) and the effective levels, scope minimums, risk rules and admin
// console settings of --config, in the format apply reads.
func export(ctx context.Context, args []string, stdout io.Writer) error {
	var configFile, output, format string
	fs, c, err := sub("export", args, func(fs *flag.FlagSet) {
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file whose levels and risk rules to export (default: the built-in ones)")
		fs.StringVar(&output, "o", "", "write to this file instead of standard output")
		fs.StringVar(&format, "format", "", "yaml or json (default: from -o's extension, else yaml)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "export"); err != nil {
		return err
	}
	if c.json {
		format = "json"
	}
	if format == "" {
		format = "yaml"
		if strings.HasSuffix(output, ".json") {
			format = "json"
		}
	}
	if format != "yaml" && format != "json" {
		return usageError{fmt.Sprintf("export: --format %q: want yaml or json", format)}
	}
	set, err := loadConfig(configFile)
	if err != nil {
		return err
	}
	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListClients(ctx)
	if err != nil {
		return err
	}
	fc := exportConfig(set, list)
	raw, err := json.MarshalIndent(fc, "", "  ")
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	if format == "yaml" {
		y, err := policy.YAML(raw)
		if err != nil {
			return err
		}
		raw = append([]byte("# Keystep configuration, exported "+clock().Format(time.RFC3339)+".\n# Apply with: keystep apply -f FILE    Serve with: keystep serve --config FILE\n"), y...)
	}
	if output == "" {
		_, err = stdout.Write(raw)
		return err
	}
	// Written whole or not at all: a half-written file would apply as a
	// smaller configuration.
	tmp := output + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, output); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d clients, %d levels\n", output, len(fc.Clients), len(fc.Levels))
	return nil
}

// exportConfig is the file that applies back to the same state.
func exportConfig(set settings, clients []storage.Client) fileConfig {
	fc := fileConfig{
		ProductName:    set.file.ProductName,
		TrustedProxies: set.file.TrustedProxies,
		RequirePAR:     set.requirePAR,
	}
	fc.ScopeMinACR = set.scopeMinACR
	if d := set.file.AuthorizationDetails; d != nil && len(d.Types) > 0 {
		fc.AuthorizationDetails = d // as the file wrote it, validated
	}
	for _, l := range set.policy.Levels() {
		lc := levelConfig{ACR: l.ACR, Aliases: l.Aliases, Requires: string(l.Requires)}
		if l.DefaultFreshness > 0 {
			lc.Freshness = shortDuration(l.DefaultFreshness)
		}
		for m, d := range l.Freshness {
			if lc.PerFactor == nil {
				lc.PerFactor = map[string]string{}
			}
			lc.PerFactor[string(m)] = shortDuration(d)
		}
		fc.Levels = append(fc.Levels, lc)
	}
	r := set.risk.Rules
	rc := &riskConfig{Weights: r.Weights, Medium: &r.Medium, High: &r.High, MaxTravelKmh: &r.MaxTravelKmh,
		OnMedium:         &riskAction{Floor: r.OnMedium.Floor, Hard: r.OnMedium.Hard, Deny: r.OnMedium.Deny},
		OnHigh:           &riskAction{Floor: r.OnHigh.Floor, Hard: r.OnHigh.Hard, Deny: r.OnHigh.Deny},
		SensitiveClients: set.risk.SensitiveClients, SensitiveScopes: set.risk.SensitiveScopes,
	}
	if f := set.file.Risk; f != nil {
		// Address lists and location data are kept as the file wrote them.
		rc.DenyCIDRs, rc.SuspiciousCIDRs, rc.LocationsCSV = f.DenyCIDRs, f.SuspiciousCIDRs, f.LocationsCSV
	}
	fc.Risk = rc
	ac := &adminConfig{ACR: set.adminACR, MaxAge: shortDuration(set.adminMaxAge)}
	if ac.ACR == "" {
		ac.ACR = policy.DefaultAdminACR(set.policy)
	}
	if set.adminMaxAge == 0 {
		ac.MaxAge = shortDuration(policy.DefaultAdminMaxAge)
	}
	fc.Admin = ac
	sc := &sessionConfig{IdleTimeout: shortDuration(login.DefaultSessionIdleTimeout), MaxAge: shortDuration(login.DefaultSessionMaxAge)}
	if set.sessionIdleTimeout > 0 {
		sc.IdleTimeout = shortDuration(set.sessionIdleTimeout)
	}
	if set.sessionMaxAge > 0 {
		sc.MaxAge = shortDuration(set.sessionMaxAge)
	}
	fc.Session = sc
	coolingOff := set.coolingOff
	if coolingOff == 0 {
		coolingOff = login.DefaultPasskeyCoolingOff
	}
	fc.Passkeys = &passkeyConfig{CoolingOff: shortDuration(coolingOff)}
	slices.SortFunc(clients, func(a, b storage.Client) int { return strings.Compare(a.ID, b.ID) })
	for _, cl := range clients {
		if cl.ID != idp.AccountClientID {
			fc.Clients = append(fc.Clients, admin.SpecOf(cl))
		}
	}
	return fc
}

// shortDuration is d as people write it: 12h, 15m, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// policyShow prints the levels, scope minimums, risk rules and admin console
// settings in force, and checks the clients in the database against them:
// the console's policy page.
func policyShow(ctx context.Context, args []string, stdout io.Writer) error {
	var configFile string
	fs, c, err := sub("policy", args, func(fs *flag.FlagSet) {
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file (levels, scope minimums, risk rules)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "policy"); err != nil {
		return err
	}
	set, err := loadConfig(configFile)
	if err != nil {
		return err
	}
	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListClients(ctx)
	if err != nil {
		return err
	}
	checks := admin.CheckPolicy(set.policy, set.scopeMinACR, set.risk.Rules, set.risk.SensitiveClients, list, idp.AccountClientID)
	fc := exportConfig(set, nil)
	if c.json {
		return printJSON(stdout, struct {
			Levels      []levelConfig     `json:"levels"`
			ScopeMinACR map[string]string `json:"scope_min_acr"`
			Risk        *riskConfig       `json:"risk"`
			Admin       *adminConfig      `json:"admin"`
			Checks      []admin.Check     `json:"checks"`
		}{fc.Levels, fc.ScopeMinACR, fc.Risk, fc.Admin, checks})
	}
	var b bytes.Buffer
	fmt.Fprintln(&b, "levels (lowest first):")
	for i, l := range set.policy.Levels() {
		fresh := l.DefaultFreshness
		if fresh == 0 {
			fresh = stepup.DefaultWindow
		}
		fmt.Fprintf(&b, "  %d. %-22s requires %-5s fresh within %s", i+1, l.ACR, l.Requires, fresh)
		if len(l.Aliases) > 0 {
			fmt.Fprintf(&b, "  (also %s)", strings.Join(l.Aliases, ", "))
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "admin console: %s within %s\n", fc.Admin.ACR, fc.Admin.MaxAge)
	fmt.Fprintf(&b, "sessions: end after %s idle, %s after sign-in at most\n", fc.Session.IdleTimeout, fc.Session.MaxAge)
	if len(set.scopeMinACR) > 0 {
		fmt.Fprintln(&b, "scope minimums:")
		for _, sc := range slices.Sorted(maps.Keys(set.scopeMinACR)) {
			fmt.Fprintf(&b, "  %s: %s\n", sc, set.scopeMinACR[sc])
		}
	}
	r := set.risk.Rules
	fmt.Fprintf(&b, "risk: medium from %d (floor %q), high from %d (floor %q, hard %v, deny %v)\n", r.Medium, r.OnMedium.Floor, r.High, r.OnHigh.Floor, r.OnHigh.Hard, r.OnHigh.Deny)
	fmt.Fprintln(&b, "checks:")
	bad := 0
	for _, ch := range checks {
		mark := "ok "
		if !ch.OK {
			mark, bad = "!! ", bad+1
		}
		fmt.Fprintf(&b, "  %s%s: %s\n", mark, ch.Subject, ch.Message)
	}
	if _, err := stdout.Write(b.Bytes()); err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%d policy problem%s", bad, plural(bad))
	}
	return nil
}
