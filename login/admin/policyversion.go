package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// ErrPolicyReadOnly: this server runs with its --config file's policy
// (--policy-read-only), so a stored version would change nothing.
var ErrPolicyReadOnly = errors.New("the policy is read-only here: the server runs with its --config file's policy (--policy-read-only)")

// ErrPolicyMoved: the version an edit started from is no longer active;
// someone saved another in between. Reload, and edit that one.
var ErrPolicyMoved = errors.New("the policy changed since you started editing: reload it and apply your change again")

// CheckPolicyDocument reports every problem with doc, each with its field path,
// against the registered clients: what saving it would refuse.
func (a *Service) CheckPolicyDocument(ctx context.Context, doc policy.Document) ([]Problem, error) {
	_, probs, err := a.compile(ctx, doc)
	return probs, err
}

func (a *Service) compile(ctx context.Context, doc policy.Document) (*policy.Snapshot, []Problem, error) {
	clients, err := a.Store.ListClients(ctx)
	if err != nil {
		return nil, nil, err
	}
	known := map[string]bool{}
	for _, c := range clients {
		known[c.ID] = true
	}
	opt := a.Policies.Options()
	opt.KnownClient = func(id string) bool { return known[id] }
	s, err := policy.Compile(doc, opt)
	if err != nil {
		return nil, Problems(err), nil
	}
	return s, nil, nil
}

// Problems turns a Compile error ("path: message" each) into problems.
func Problems(err error) []Problem {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]Problem, 0, len(errs))
	for _, e := range errs {
		field, _, ok := strings.Cut(e.Error(), ": ")
		if !ok || strings.ContainsAny(field, " ") {
			field = ""
		}
		// The only Problem made without NewProblem: a diagnostic naming
		// field paths, shown in English everywhere (no key).
		out = append(out, Problem{Field: field, Message: e.Error()})
	}
	return out
}

// ActivePolicy is the version in force and its document: what an editor
// starts from. Version 0 is the server's own policy, none stored yet.
func (a *Service) ActivePolicy(ctx context.Context) (storage.PolicyVersion, policy.Document, error) {
	if err := a.Policies.Refresh(ctx); err != nil {
		return storage.PolicyVersion{}, policy.Document{}, err
	}
	cur := a.Policies.Current()
	if cur.Version == 0 {
		return storage.PolicyVersion{Document: policy.Canonical(cur.Doc)}, cur.Doc, nil
	}
	v, err := a.Store.PolicyVersionByNumber(ctx, cur.Version)
	return v, cur.Doc, err
}

// SavePolicy checks doc and stores it as the next version, made from
// parent (the version the edit started from), and makes it active on every
// instance. A document equal to parent's stores nothing (changed false):
// saving the same file twice is one version. Problems come back as an
// *InvalidError, all at once; a parent no longer active as ErrPolicyMoved.
// by.Reason is required.
func (a *Service) SavePolicy(ctx context.Context, by Actor, author string, doc policy.Document, parent int64, now time.Time) (v storage.PolicyVersion, changed bool, err error) {
	if a.Policies.ReadOnly() {
		return v, false, ErrPolicyReadOnly
	}
	if by, err = by.checked(true); err != nil {
		return v, false, err
	}
	snap, probs, err := a.compile(ctx, doc)
	if err != nil {
		return v, false, err
	}
	if len(probs) == 0 {
		if probs, err = a.keepsConsoleOpen(ctx, by, snap, now); err != nil {
			return v, false, err
		}
	}
	if len(probs) > 0 {
		return v, false, &InvalidError{Problems: probs}
	}
	if err := a.Policies.Refresh(ctx); err != nil {
		return v, false, err
	}
	from, err := a.Policies.At(ctx, parent)
	if err != nil {
		return v, false, err
	}
	if cur := a.Policies.Current(); cur.Version != parent {
		return v, false, fmt.Errorf("%w (you edited version %d; version %d is active)", ErrPolicyMoved, parent, cur.Version)
	}
	diff := policy.Diff(from.Doc, doc)
	if diff == "" && parent != 0 {
		v, err = a.Store.PolicyVersionByNumber(ctx, parent)
		return v, false, err
	}
	if diff == "" {
		diff = "(the server's policy, stored as it is)"
	}
	details := map[string]string{"parent": strconv.FormatInt(parent, 10), "version": strconv.FormatInt(parent+1, 10), "diff": diff}
	if err := a.record(ctx, by, storage.EventAdminPolicyChanged, "", "", details); err != nil {
		return v, false, err
	}
	v, err = a.Store.CreatePolicyVersion(ctx, storage.PolicyVersion{Document: policy.Canonical(doc), Parent: parent,
		Author: author, Reason: by.Reason, Diff: diff, CreatedAt: now})
	if errors.Is(err, storage.ErrConflict) {
		err = fmt.Errorf("%w (you edited version %d)", ErrPolicyMoved, parent)
	}
	if err != nil {
		return v, false, a.failed(ctx, by, storage.EventAdminPolicyChanged, "", "", err)
	}
	if err := a.Policies.Refresh(ctx); err != nil {
		return v, true, fmt.Errorf("version %d saved, but this instance could not load it: %w", v.Number, err)
	}
	return v, true, nil
}

// keepsConsoleOpen refuses a version that would shut the console to the
// admin saving it: one whose console level (admin.acr, or the levels
// beneath it) their enrolled factors cannot reach. Saved from the console,
// such a version would lock every admin like them out, and --config no
// longer decides once a version is stored. The CLI and API clients are
// not people with factors; the CLI can always roll back.
func (a *Service) keepsConsoleOpen(ctx context.Context, by Actor, snap *policy.Snapshot, now time.Time) ([]Problem, error) {
	u, err := a.Store.UserByID(ctx, by.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	factors, err := a.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	left, err := a.Store.CountRecoveryCodes(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	s := stepup.Session{Enrolled: signin.Enrolled(u, factors, left, nil), Now: now}
	if snap.Levels.Reachable(s, snap.AdminACR, 0) {
		return nil, nil
	}
	return []Problem{NewProblem("admin.acr", "admin.acr: the console would need %s, which the ways you sign in cannot reach, so saving this would lock you (and admins like you) out; add a factor that reaches it first, or save it with `keystep apply`", snap.AdminACR)}, nil
}

// RollbackPolicy makes version n's document active again, as a new
// version (history only grows), made from parent: the active version the
// rollback was decided from (ErrPolicyMoved when another was saved since,
// as for an edit), or -1 for whatever is active (the CLI, whose command
// names the version itself).
func (a *Service) RollbackPolicy(ctx context.Context, by Actor, author string, n, parent int64, now time.Time) (storage.PolicyVersion, bool, error) {
	old, err := a.Store.PolicyVersionByNumber(ctx, n)
	if err != nil {
		return storage.PolicyVersion{}, false, fmt.Errorf("policy version %d: %w", n, err)
	}
	doc, err := policy.Parse(old.Document)
	if err != nil {
		return storage.PolicyVersion{}, false, err
	}
	if by, err = by.checked(true); err != nil {
		return storage.PolicyVersion{}, false, err
	}
	if err := a.Policies.Refresh(ctx); err != nil {
		return storage.PolicyVersion{}, false, err
	}
	by.Reason = fmt.Sprintf("rollback to version %d: %s", n, by.Reason)
	if parent < 0 {
		parent = a.Policies.Current().Version
	}
	return a.SavePolicy(ctx, by, author, doc, parent, now)
}
