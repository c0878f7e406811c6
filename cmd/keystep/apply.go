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
// clients match the file's clients: section and stores the file's policy
// part (levels, scope minimums, risk, admin, authorization details types,
// client_policies) as a new policy version, idempotently; `keystep export`
// writes the current configuration in the same format. The file is the one
// `keystep serve --config` reads; apply checks all of it before it changes
// anything.

// clientChange is what apply did, or would do, to one client.
type clientChange struct {
	ID      string   `json:"id"`
	Action  string   `json:"action"` // created, updated, deleted, unchanged, kept (in the database, not in the file)
	Changes []string `json:"changes,omitempty"`
	Secret  string   `json:"secret,omitempty"` // a new secret, shown once
}

// policyChange is what apply did, or would do, to the policy.
type policyChange struct {
	// Action: stored, unchanged, would store, or absent (the file has no
	// policy part; the stored policy stays).
	Action  string `json:"action"`
	Version int64  `json:"version"` // the active version after (would store: the one it would be)
	Parent  int64  `json:"parent"`  // the version it is made from
	Diff    string `json:"diff,omitempty"`
}

func apply(ctx context.Context, args []string, stdout io.Writer) error {
	var file, reason string
	var prune, dryRun, readOnly bool
	fs, c, err := sub("apply", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "f", "", "the configuration file (YAML or JSON)")
		fs.StringVar(&file, "file", "", "the configuration file (YAML or JSON)")
		fs.BoolVar(&prune, "prune", false, "delete clients that are not in the file")
		fs.BoolVar(&dryRun, "dry-run", false, "say what would change, and change nothing")
		fs.StringVar(&reason, "reason", "", `why (the policy version's reason and the audit log's; default "keystep apply -f FILE")`)
		registerReadOnly(fs, &readOnly)
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
	doc := set.file.Document
	withPolicy := hasPolicy(doc)
	if withPolicy && readOnly {
		return fmt.Errorf("apply: %s has a policy part, and %w; nothing was changed (change the servers' --config file, or apply a file with clients only)", file, admin.ErrPolicyReadOnly)
	}
	if reason = strings.TrimSpace(reason); reason == "" {
		reason = "keystep apply -f " + filepath.Base(file)
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
	// The clients are checked against the file's policy, the one being
	// applied; the policy part against the clients there will be.
	adm := newAdmin(st, key, set)
	adm.Policies = policy.Static(set.snap)
	padm := newAdmin(st, key, set)
	padm.Policies = policy.NewLive(st, noConfig().snap, set.policyOptions(), false, nil)
	if err := padm.Policies.Refresh(ctx); err != nil {
		return fmt.Errorf("the stored policy: %w", err)
	}
	pc := policyChange{Action: "absent", Version: padm.Policies.Current().Version}
	if withPolicy {
		if err := checkClientPolicies(file, doc, set, byID, prune); err != nil {
			return err
		}
		// The diff from the active version; from the built-in policy
		// while none is stored (the servers' --config is not known here).
		pc.Parent = pc.Version
		pc.Diff = policy.Diff(padm.Policies.Current().Doc, doc)
		pc.Action = "unchanged"
		if pc.Diff != "" {
			pc.Action, pc.Version = "would store", pc.Parent+1
		}
	}
	by := cliActor(reason)
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
					return applyFailed(out, "client "+want.ID, err)
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
						return applyFailed(out, "client "+want.ID, err)
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
					return applyFailed(out, "client "+id, err)
				}
			}
		}
		out = append(out, ch)
	}
	// The policy last: its client_policies may name clients just created.
	if pc.Action == "would store" && !dryRun {
		v, changed, err := padm.SavePolicy(ctx, by, "cli", doc, pc.Parent, now)
		if err != nil {
			return applyFailed(out, "policy", err)
		}
		pc = policyChange{Action: "unchanged", Version: v.Number, Parent: v.Parent}
		if changed {
			pc.Action, pc.Diff = "stored", v.Diff
		}
	}
	return reportApply(stdout, c.json, file, dryRun, out, pc)
}

// checkClientPolicies checks that client_policies names only clients there
// will be once the file is applied: the file's, and the stored ones unless
// --prune deletes them (the built-in one stays). Every problem at once.
func checkClientPolicies(file string, doc policy.Document, set settings, stored map[string]storage.Client, prune bool) error {
	known := map[string]bool{idp.AccountClientID: true}
	for _, cl := range set.clients {
		known[cl.ID] = true
	}
	if !prune {
		for id := range stored {
			known[id] = true
		}
	}
	opt := set.policyOptions()
	opt.KnownClient = func(id string) bool { return known[id] }
	_, err := policy.Compile(doc, opt)
	if err != nil {
		return fmt.Errorf("config %s:\n%w", file, err)
	}
	return nil
}

// applyFailed reports a storage failure part-way: what was already done
// stays done (and audited), so the report names it.
func applyFailed(done []clientChange, what string, err error) error {
	var names []string
	for _, ch := range done {
		if ch.Action != "unchanged" && ch.Action != "kept" {
			names = append(names, ch.Action+" "+ch.ID)
		}
	}
	msg := fmt.Sprintf("apply: %s: %v", what, err)
	if len(names) > 0 {
		msg += "\nalready applied (run apply again to finish): " + strings.Join(names, ", ")
	}
	return errors.New(msg)
}

func reportApply(stdout io.Writer, asJSON bool, file string, dryRun bool, out []clientChange, pc policyChange) error {
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
			Policy  policyChange   `json:"policy"`
		}{file, dryRun, changed || pc.Action == "stored" || pc.Action == "would store", out, pc})
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
	switch pc.Action {
	case "absent":
		if pc.Version == 0 {
			fmt.Fprintln(stdout, "policy: not in the file; none is stored (the servers decide with their --config file's)")
		} else {
			fmt.Fprintf(stdout, "policy: not in the file; version %d stays active\n", pc.Version)
		}
	case "unchanged":
		fmt.Fprintf(stdout, "policy: unchanged (version %d)\n", pc.Version)
	default: // stored, would store
		verb := "stored"
		if pc.Action != "stored" {
			verb = "would store"
		}
		from := fmt.Sprintf("from version %d", pc.Parent)
		if pc.Parent == 0 {
			from = "the first; changes from the built-in policy"
		}
		fmt.Fprintf(stdout, "policy: %s version %d (%s):\n%s\n", verb, pc.Version, from, indent(pc.Diff))
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// export writes the configuration: the clients in the database (never a
// secret) and the policy: the active stored version as it was stored,
// else the --config file's as written, else the built-in one spelled out;
// with the --config file's server settings (product name, proxies,
// sessions, passkeys), in the format apply reads. Applying it to a new
// data folder and exporting again gives the same file.
func export(ctx context.Context, args []string, stdout io.Writer) error {
	var configFile, output, format string
	var readOnly bool
	fs, c, err := sub("export", args, func(fs *flag.FlagSet) {
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file: its server settings, and its policy while none is stored (default: the built-in ones)")
		fs.StringVar(&output, "o", "", "write to this file instead of standard output")
		fs.StringVar(&format, "format", "", "yaml or json (default: from -o's extension, else yaml)")
		registerReadOnly(fs, &readOnly)
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
	doc, version := versionZero(set, configFile), int64(0)
	if !readOnly {
		// The document as stored, compiled or not: an export is a copy.
		if version, err = st.ActivePolicyNumber(ctx); err != nil {
			return err
		}
		if version > 0 {
			v, err := st.PolicyVersionByNumber(ctx, version)
			if err != nil {
				return err
			}
			if doc, err = policy.Parse(v.Document); err != nil {
				return fmt.Errorf("policy version %d: %w", version, err)
			}
		}
	}
	fc := exportConfig(set, doc, list)
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
	fmt.Fprintf(stdout, "wrote %s: %d clients, policy version %d\n", output, len(fc.Clients), version)
	return nil
}

// exportConfig is the file that applies back to the same state: doc as
// the policy, the clients, and the server settings of set's file.
func exportConfig(set settings, doc policy.Document, clients []storage.Client) fileConfig {
	fc := fileConfig{
		ProductName:    set.file.ProductName,
		Document:       doc,
		TrustedProxies: set.file.TrustedProxies,
		RequirePAR:     set.requirePAR,
		Session:        sessionOf(set),
	}
	coolingOff := set.coolingOff
	if coolingOff == 0 {
		coolingOff = login.DefaultPasskeyCoolingOff
	}
	fc.Passkeys = &passkeyConfig{CoolingOff: policy.ShortDuration(coolingOff)}
	slices.SortFunc(clients, func(a, b storage.Client) int { return strings.Compare(a.ID, b.ID) })
	for _, cl := range clients {
		if cl.ID != idp.AccountClientID {
			fc.Clients = append(fc.Clients, admin.SpecOf(cl))
		}
	}
	return fc
}

// sessionOf is set's session lifetimes, the defaults spelled out.
func sessionOf(set settings) *sessionConfig {
	sc := &sessionConfig{IdleTimeout: policy.ShortDuration(login.DefaultSessionIdleTimeout), MaxAge: policy.ShortDuration(login.DefaultSessionMaxAge)}
	if set.sessionIdleTimeout > 0 {
		sc.IdleTimeout = policy.ShortDuration(set.sessionIdleTimeout)
	}
	if set.sessionMaxAge > 0 {
		sc.MaxAge = policy.ShortDuration(set.sessionMaxAge)
	}
	return sc
}

// policyCheck is `keystep policy [check]`: the levels, scope minimums,
// risk rules and admin console settings in force (the active stored
// version, else the --config file's; with --policy-read-only the file's),
// checked against the clients in the database: the console's policy page.
func policyCheck(ctx context.Context, args []string, stdout io.Writer) error {
	var configFile string
	var readOnly bool
	fs, c, err := sub("policy", args, func(fs *flag.FlagSet) {
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file (levels, scope minimums, risk rules): the policy while none is stored")
		registerReadOnly(fs, &readOnly)
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
	set.policyReadOnly = readOnly
	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListClients(ctx)
	if err != nil {
		return err
	}
	pol := set.live(st).Current()
	checks := admin.CheckPolicy(pol.Levels, pol.ScopeMinACR, pol.Risk.Rules, pol.Risk.SensitiveClients, list, idp.AccountClientID)
	doc := policy.SpellOut(pol)
	session := sessionOf(set)
	if c.json {
		return printJSON(stdout, struct {
			Version     int64             `json:"version"`
			Levels      []policy.Level    `json:"levels"`
			ScopeMinACR map[string]string `json:"scope_min_acr"`
			Risk        *policy.Risk      `json:"risk"`
			Admin       *policy.Admin     `json:"admin"`
			Checks      []admin.Check     `json:"checks"`
		}{pol.Version, doc.Levels, doc.ScopeMinACR, doc.Risk, doc.Admin, checks})
	}
	var b bytes.Buffer
	if pol.Version > 0 {
		fmt.Fprintf(&b, "policy version %d (stored; keystep policy history lists the versions)\n", pol.Version)
	} else {
		what := "the built-in policy"
		if configFile != "" {
			what = configFile + "'s policy"
		}
		fmt.Fprintf(&b, "policy version 0: %s (none stored)\n", what)
	}
	fmt.Fprintln(&b, "levels (lowest first):")
	for i, l := range pol.Levels.Levels() {
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
	fmt.Fprintf(&b, "admin console: %s within %s\n", doc.Admin.ACR, doc.Admin.MaxAge)
	fmt.Fprintf(&b, "sessions: end after %s idle, %s after sign-in at most\n", session.IdleTimeout, session.MaxAge)
	if len(pol.ScopeMinACR) > 0 {
		fmt.Fprintln(&b, "scope minimums:")
		for _, sc := range slices.Sorted(maps.Keys(pol.ScopeMinACR)) {
			fmt.Fprintf(&b, "  %s: %s\n", sc, pol.ScopeMinACR[sc])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(pol.Clients)) {
		if cp := pol.Clients[id]; len(cp.ScopeMinACR) > 0 {
			fmt.Fprintf(&b, "scope minimums of client %s:\n", id)
			for _, sc := range slices.Sorted(maps.Keys(cp.ScopeMinACR)) {
				fmt.Fprintf(&b, "  %s: %s\n", sc, cp.ScopeMinACR[sc])
			}
		}
	}
	r := pol.Risk.Rules
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
