package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// Policy as data (issue 21): the policy is stored as numbered versions, the
// active one a pointer every instance follows. `serve --config` seeds it,
// `apply -f` stores a file's policy part, `export` writes the active one,
// and `keystep policy history|show|rollback` read and restore versions.

// policyCmd is `keystep policy`: with no action (or check) the policy in
// force and its checks against the clients; history, show, rollback and
// preview.
func policyCmd(ctx context.Context, args []string, stdout io.Writer) error {
	action := "check"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	switch action {
	case "check":
		return policyCheck(ctx, args, stdout)
	case "history":
		return policyHistory(ctx, args, stdout)
	case "show":
		return policyShowVersion(ctx, args, stdout)
	case "rollback":
		return policyRollback(ctx, args, stdout)
	case "preview":
		return policyPreview(ctx, args, stdout)
	case "help":
		return flag.ErrHelp
	}
	return usageError{fmt.Sprintf("policy: unknown action %q (want check, history, show, rollback or preview)", action)}
}

// registerReadOnly adds --policy-read-only (KEYSTEP_POLICY_READ_ONLY): the
// --config file's policy decides, stored versions are neither used nor
// made.
func registerReadOnly(fs *flag.FlagSet, p *bool) {
	fs.BoolVar(p, "policy-read-only", envOn("POLICY_READ_ONLY"), "the --config file's policy decides: stored policy versions are not used, and none is stored (the console and the API refuse edits)")
}

// envOn reads a KEYSTEP_* switch: set and not false, 0, no or off.
func envOn(name string) bool {
	switch v := strings.ToLower(strings.TrimSpace(env(name, ""))); v {
	case "", "false", "0", "no", "off":
		return false
	}
	return true
}

// hasPolicy reports whether a file has a policy part at all. A file
// without one (clients only, or only server settings) leaves the stored
// policy alone.
func hasPolicy(doc policy.Document) bool { return policy.Canonical(doc) != "{}" }

// configAuthor is the author of versions stored from a --config file; the
// prefix tells them from the console's, the API's and apply's.
const configAuthor = "config "

// seedPolicy stores the --config file's policy as a version (serve). With
// none stored it becomes version 1. Later it is stored again only when it
// changed: when no version since the last one a config file stored (all
// of them, when none did) has its document. So restarting with an
// unchanged file leaves the console's, the API's and apply's edits alone,
// and a file already applied with `keystep apply -f` is not stored twice.
// Several instances starting at once store it once: the others find it
// stored.
func seedPolicy(ctx context.Context, adm *admin.Service, file string, doc policy.Document, now time.Time, log *slog.Logger) error {
	for attempt := 1; ; attempt++ {
		if err := adm.Policies.Refresh(ctx); err != nil {
			return err
		}
		active := adm.Policies.Current().Version
		stored, err := storedSinceConfig(ctx, adm.Store, doc)
		if err != nil || stored {
			return err
		}
		reason := "seeded from --config"
		if active != 0 {
			reason = "the --config file changed"
		}
		v, changed, err := adm.SavePolicy(ctx, admin.Actor{ID: "config", Reason: reason}, configAuthor+file, doc, active, now)
		if errors.Is(err, admin.ErrPolicyMoved) && attempt < 3 {
			continue // another instance stored a version in between
		}
		var inv *admin.InvalidError
		if errors.As(err, &inv) {
			return fmt.Errorf("config %s: its policy cannot be stored:\n%w\n(register the clients client_policies names first: keystep apply -f %s)", file, inv, file)
		}
		if err != nil {
			return fmt.Errorf("config %s: storing its policy: %w", file, err)
		}
		if changed {
			log.InfoContext(ctx, "policy version stored from --config", "version", v.Number, "parent", v.Parent, "config", file, "reason", reason)
		}
		return nil
	}
}

// storedSinceConfig reports whether doc is the document of a version
// stored since the newest one a --config file stored, that one included.
func storedSinceConfig(ctx context.Context, st storage.Store, doc policy.Document) (bool, error) {
	vs, err := st.ListPolicyVersions(ctx, math.MaxInt32)
	if err != nil {
		return false, err
	}
	want := policy.Canonical(doc)
	for _, v := range vs { // newest first
		full, err := st.PolicyVersionByNumber(ctx, v.Number)
		if err != nil {
			return false, err
		}
		d, err := policy.Parse(full.Document)
		if err != nil {
			return false, fmt.Errorf("policy version %d: %w", v.Number, err)
		}
		if policy.Canonical(d) == want {
			return true, nil
		}
		if strings.HasPrefix(v.Author, configAuthor) {
			return false, nil
		}
	}
	return false, nil
}

// versionJSON is one policy version as history and show print it.
type versionJSON struct {
	Version  int64            `json:"version"`
	Time     time.Time        `json:"time,omitzero"`
	Author   string           `json:"author,omitempty"`
	Reason   string           `json:"reason,omitempty"`
	Parent   int64            `json:"parent"`
	Diff     string           `json:"diff,omitempty"`
	Active   bool             `json:"active"`
	Document *policy.Document `json:"document,omitempty"`
}

func toVersionJSON(v storage.PolicyVersion, active int64) versionJSON {
	return versionJSON{Version: v.Number, Time: v.CreatedAt, Author: v.Author, Reason: v.Reason, Parent: v.Parent, Diff: v.Diff, Active: v.Number == active}
}

// policyHistory is `keystep policy history`: the stored versions, newest
// first, each with the first line of what it changed.
func policyHistory(ctx context.Context, args []string, stdout io.Writer) error {
	var limit int
	fs, c, err := sub("policy history", args, func(fs *flag.FlagSet) {
		fs.IntVar(&limit, "limit", 50, "how many versions to list, newest first")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "policy history"); err != nil {
		return err
	}
	if limit < 1 {
		return usageError{fmt.Sprintf("policy history: --limit %d: want 1 or more", limit)}
	}
	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	active, err := st.ActivePolicyNumber(ctx)
	if err != nil {
		return err
	}
	vs, err := st.ListPolicyVersions(ctx, limit)
	if err != nil {
		return err
	}
	out := make([]versionJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, toVersionJSON(v, active))
	}
	if c.json {
		return printJSON(stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(stdout, "no policy version is stored: the servers decide with their --config file's policy (version 0)")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tTIME\tAUTHOR\tREASON\tCHANGE")
	for _, v := range out {
		num := strconv.FormatInt(v.Version, 10)
		if v.Active {
			num += " (active)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", num, v.Time.UTC().Format(time.RFC3339), v.Author, oneLine(v.Reason), firstLine(v.Diff))
	}
	return tw.Flush()
}

// firstLine is a diff's first line, and how many more there are.
func firstLine(diff string) string {
	lines := strings.Split(diff, "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	return fmt.Sprintf("%s (+%d more)", lines[0], len(lines)-1)
}

// oneLine is stored free text (a reason) on one line, as printable shows it.
func oneLine(s string) string { return printable(strings.Join(strings.Fields(s), " ")) }

// policyShowVersion is `keystep policy show [N]`: version N's document (by
// default the active one) in the file format, so it can be edited and
// applied back with `keystep apply -f`.
func policyShowVersion(ctx context.Context, args []string, stdout io.Writer) error {
	var configFile string
	var readOnly bool
	fs, c, err := sub("policy show", args, func(fs *flag.FlagSet) {
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file: its policy is version 0, while none is stored")
		registerReadOnly(fs, &readOnly)
	})
	if err != nil {
		return err
	}
	n := int64(-1) // the active version
	switch fs.NArg() {
	case 0:
	case 1:
		if n, err = strconv.ParseInt(fs.Arg(0), 10, 64); err != nil || n < 0 {
			return usageError{fmt.Sprintf("policy show: %q is not a version number", fs.Arg(0))}
		}
	default:
		return usageError{fmt.Sprintf("policy show: unexpected argument %q", fs.Arg(1))}
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
	active, err := st.ActivePolicyNumber(ctx)
	if err != nil {
		return err
	}
	if readOnly {
		active = 0
	}
	if n < 0 {
		n = active
	}
	var out versionJSON
	var doc policy.Document
	var header string
	if n == 0 {
		// Nothing stored (or read-only): the server's own policy.
		doc = versionZero(set, configFile)
		out = versionJSON{Active: active == 0}
		header = "# Policy version 0: nothing stored; the servers decide with their --config file's policy"
		if configFile == "" {
			header += " (this is the built-in one)"
		} else {
			header += " (this is " + configFile + "'s)"
		}
	} else {
		v, err := st.PolicyVersionByNumber(ctx, n)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no policy version %d (keystep policy history lists them)", n)
		}
		if err != nil {
			return err
		}
		if doc, err = policy.Parse(v.Document); err != nil {
			return err
		}
		out = toVersionJSON(v, active)
		state := ""
		if out.Active {
			state = ", active"
		}
		header = fmt.Sprintf("# Policy version %d%s: %s by %s, from version %d\n# Reason: %s",
			n, state, v.CreatedAt.UTC().Format(time.RFC3339), v.Author, v.Parent, oneLine(v.Reason))
	}
	if c.json {
		out.Document = &doc
		return printJSON(stdout, out)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	y, err := policy.YAML(raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n# Apply an edited copy with: keystep apply -f FILE\n", header)
	_, err = stdout.Write(y)
	return err
}

// versionZero is the server's own policy: the --config file's document as
// written, or without one the built-in policy spelled out.
func versionZero(set settings, configFile string) policy.Document {
	if configFile != "" {
		return set.file.Document
	}
	return policy.SpellOut(set.snap)
}

// policyRollback is `keystep policy rollback N --reason R`: version N's
// document becomes active again, as a new version.
func policyRollback(ctx context.Context, args []string, stdout io.Writer) error {
	var reason string
	var readOnly bool
	fs, c, err := sub("policy rollback", args, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why (required: it goes in the version's history and the audit log)")
		registerReadOnly(fs, &readOnly)
	})
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"policy rollback: name one version: keystep policy rollback N --reason TEXT"}
	}
	n, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || n < 1 {
		return usageError{fmt.Sprintf("policy rollback: %q is not a version number", fs.Arg(0))}
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return usageError{"policy rollback: --reason is required (it goes in the version's history and the audit log)"}
	}
	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	set := noConfig()
	set.policyReadOnly = readOnly
	adm := newAdmin(st, key, set)
	v, changed, err := adm.RollbackPolicy(ctx, cliActor(reason), "cli", n, -1, clock())
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no policy version %d (keystep policy history lists them)", n)
	}
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, struct {
			versionJSON
			Changed bool `json:"changed"`
		}{toVersionJSON(v, v.Number), changed})
	}
	if !changed {
		fmt.Fprintf(stdout, "policy: version %d (active) already has version %d's policy; nothing stored\n", v.Number, n)
		return nil
	}
	fmt.Fprintf(stdout, "policy: version %d is active, with version %d's policy:\n%s\n", v.Number, n, indent(v.Diff))
	return nil
}

// indent indents each line of a diff for printing under its heading.
func indent(diff string) string {
	return "  " + strings.ReplaceAll(diff, "\n", "\n  ")
}
