package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

var (
	t0  = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cli = admin.Actor{ID: "cli"}
)

// failingAudit is a store whose audit writes fail once broken is set.
type failingAudit struct {
	storage.Store
	broken bool
}

func (f *failingAudit) AppendAudit(ctx context.Context, key storage.AuditKey, e storage.AuditEvent) (storage.AuditEvent, error) {
	if f.broken {
		return storage.AuditEvent{}, errors.New("disk full")
	}
	return f.Store.AppendAudit(ctx, key, e)
}

// newService is a Service on a fresh SQLite store holding alice (u-alice)
// with one passkey (f-key, not yet trusted) and a TOTP factor (f-totp).
func newService(t *testing.T) (*admin.Service, *failingAudit) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := storage.NewAuditKey([]byte("admin test master key, 32 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	fa := &failingAudit{Store: st}
	s := &admin.Service{
		Store: fa, Policies: defaultPolicies(t), BuiltIn: "account", Hasher: factor.NewTestPasswordHasher(),
		Audit: &web.Auditor{Store: fa, Key: key, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }},
	}
	if err := st.CreateUser(ctx, storage.User{ID: "u-alice", Username: "alice", PasswordHash: "x", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []storage.Factor{
		{ID: "f-key", UserID: "u-alice", Kind: "webauthn", Name: "Laptop", Secret: []byte(`{}`), CreatedAt: t0},
		{ID: "f-totp", UserID: "u-alice", Kind: "totp", Name: "Phone", Secret: []byte("sealed"), CreatedAt: t0},
	} {
		if err := st.CreateFactor(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	return s, fa
}

func auditTypes(t *testing.T, st storage.Store) []string {
	t.Helper()
	rows, err := st.ListAudit(t.Context(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range rows {
		out = append(out, string(e.Type)+" "+e.Outcome)
	}
	return out
}

var webApp = admin.ClientSpec{ID: "web", Name: "Web", RedirectURIs: []string{"https://rp.example/cb"}}

// DESIGN §6: the audit row comes first, so a change whose row cannot be
// written does not happen.
func TestAChangeWhoseAuditFailsIsNotMade(t *testing.T) {
	tests := []struct {
		name   string
		change func(context.Context, *admin.Service) error
		check  func(context.Context, storage.Store) error
	}{
		{"creating a client",
			func(ctx context.Context, s *admin.Service) error {
				_, err := s.CreateClient(ctx, cli, webApp, t0)
				return err
			},
			func(ctx context.Context, st storage.Store) error {
				if _, err := st.ClientByID(ctx, "web"); !errors.Is(err, storage.ErrNotFound) {
					return errors.New("the client was created")
				}
				return nil
			}},
		{"creating a user",
			func(ctx context.Context, s *admin.Service) error {
				_, err := s.CreateUser(ctx, cli, admin.NewUser{Username: "bob", Password: "correct horse battery"}, t0)
				return err
			},
			func(ctx context.Context, st storage.Store) error {
				if _, err := st.UserByUsername(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
					return errors.New("the user was created")
				}
				return nil
			}},
		{"disabling a user",
			func(ctx context.Context, s *admin.Service) error {
				_, err := s.SetDisabled(ctx, cli, "u-alice", true, t0)
				return err
			},
			func(ctx context.Context, st storage.Store) error {
				if u, _ := st.UserByID(ctx, "u-alice"); u.Disabled {
					return errors.New("the user was disabled")
				}
				return nil
			}},
		{"resetting a user's factors",
			func(ctx context.Context, s *admin.Service) error {
				return s.ResetFactors(ctx, admin.Actor{ID: "cli", Reason: "lost phone"}, "u-alice", t0)
			},
			func(ctx context.Context, st storage.Store) error {
				if fs, _ := st.ListFactors(ctx, "u-alice"); len(fs) != 2 {
					return errors.New("the factors were removed")
				}
				return nil
			}},
		{"confirming a passkey",
			func(ctx context.Context, s *admin.Service) error {
				_, err := s.ConfirmPasskey(ctx, cli, "u-alice", "f-key", t0)
				return err
			},
			func(ctx context.Context, st storage.Store) error {
				if f, _ := st.FactorByID(ctx, "f-key"); factor.Trusted(f) {
					return errors.New("the passkey was trusted")
				}
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fa := newService(t)
			fa.broken = true
			if err := tt.change(t.Context(), s); err == nil {
				t.Fatal("the change succeeded without its audit row")
			}
			if err := tt.check(t.Context(), fa.Store); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCreateClientReturnsTheSecretOnceAndStoresItsHash(t *testing.T) {
	s, fa := newService(t)
	ctx := t.Context()
	secret, err := s.CreateClient(ctx, cli, webApp, t0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fa.ClientByID(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if secret == "" || c.SecretHash != factor.HashToken(secret) {
		t.Errorf("secret %q stored as %q; want it stored hashed", secret, c.SecretHash)
	}
	rows, err := fa.ListAudit(ctx, storage.AuditFilter{Type: "admin.client_created"})
	if err != nil || len(rows) != 1 {
		t.Fatalf("audit rows %v, %v", rows, err)
	}
	var after map[string]any
	if err := json.Unmarshal([]byte(rows[0].Details["after"]), &after); err != nil {
		t.Fatal(err)
	}
	if after["has_secret"] != true || after["id"] != "web" {
		t.Errorf("audited after = %v", after)
	}
	for _, v := range rows[0].Details {
		if strings.Contains(v, secret) {
			t.Errorf("the secret is in the audit row: %q", v)
		}
	}
	if _, err := s.CreateClient(ctx, cli, webApp, t0); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("creating it again: %v, want ErrAlreadyExists", err)
	}
}

func TestInvalidClientIsNeitherWrittenNorAudited(t *testing.T) {
	s, fa := newService(t)
	bad := admin.ClientSpec{ID: "web", RedirectURIs: []string{"http://rp.example/cb"}, MinACR: "urn:nope"}
	_, err := s.CreateClient(t.Context(), cli, bad, t0)
	var inv *admin.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want an InvalidError", err)
	}
	var fields []string
	for _, p := range inv.Problems {
		fields = append(fields, p.Field)
	}
	if diff := cmp.Diff([]string{"redirect_uris", "min_acr"}, fields); diff != "" {
		t.Errorf("problem fields (-want +got):\n%s", diff)
	}
	if got := auditTypes(t, fa); len(got) != 0 {
		t.Errorf("audited %v", got)
	}
}

func TestUpdateClientWithoutChangesWritesNothing(t *testing.T) {
	s, fa := newService(t)
	ctx := t.Context()
	if _, err := s.CreateClient(ctx, cli, webApp, t0); err != nil {
		t.Fatal(err)
	}
	changes, secret, err := s.UpdateClient(ctx, cli, webApp, t0.Add(time.Hour))
	if err != nil || changes != nil || secret != "" {
		t.Fatalf("UpdateClient = %v, %q, %v; want no changes", changes, secret, err)
	}
	changes, _, err = s.UpdateClient(ctx, cli, admin.ClientSpec{ID: "web", Name: "Web", RedirectURIs: webApp.RedirectURIs, MinACR: "phr"}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"min_acr: (none) → phr"}, changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	want := []string{"admin.client_created success", "admin.client_updated success"}
	if diff := cmp.Diff(want, auditTypes(t, fa)); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestTheBuiltInClientCannotBeChanged(t *testing.T) {
	s, _ := newService(t)
	ctx := t.Context()
	builtIn := admin.ClientSpec{ID: "account", RedirectURIs: []string{"https://idp.example/account/callback"}}
	if _, _, err := s.UpdateClient(ctx, cli, builtIn, t0); !errors.Is(err, admin.ErrBuiltInClient) {
		t.Errorf("update: %v", err)
	}
	if _, err := s.RotateClientSecret(ctx, cli, "account", t0); !errors.Is(err, admin.ErrBuiltInClient) {
		t.Errorf("rotate: %v", err)
	}
	if err := s.DeleteClient(ctx, cli, "account"); !errors.Is(err, admin.ErrBuiltInClient) {
		t.Errorf("delete: %v", err)
	}
	var inv *admin.InvalidError
	if _, err := s.CreateClient(ctx, cli, builtIn, t0); !errors.As(err, &inv) {
		t.Errorf("create: %v, want an InvalidError", err)
	}
}

func TestResetFactorsNeedsAReason(t *testing.T) {
	s, fa := newService(t)
	if err := s.ResetFactors(t.Context(), cli, "u-alice", t0); !errors.Is(err, admin.ErrNeedsReason) {
		t.Fatalf("err = %v, want ErrNeedsReason", err)
	}
	if fs, _ := fa.ListFactors(t.Context(), "u-alice"); len(fs) != 2 {
		t.Errorf("%d factors left, want 2", len(fs))
	}
}

func TestLockStateAndUnlock(t *testing.T) {
	s, fa := newService(t)
	ctx := t.Context()
	l := throttle.DefaultLimits()
	keys := []storage.ThrottleKey{throttle.AccountKeys(storage.ScopeAccount, "alice")[0], throttle.FactorLockKey("u-alice", stepup.TOTP)}
	for range 3 {
		if _, err := fa.RecordFailure(ctx, keys, l, t0); err != nil {
			t.Fatal(err)
		}
	}
	u, err := fa.UserByID(ctx, "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := s.LockState(ctx, u, t0)
	if err != nil {
		t.Fatal(err)
	}
	if lock.Failures != 3 || len(lock.LockedFactors) != 0 {
		t.Errorf("lock %+v, want 3 failures and no locked factor", lock)
	}
	if err := s.Unlock(ctx, cli, "u-alice", t0); err != nil {
		t.Fatal(err)
	}
	if lock, err = s.LockState(ctx, u, t0); err != nil || lock.Failures != 0 {
		t.Errorf("after the unlock: %+v, %v", lock, err)
	}
	rows, err := fa.ListAudit(ctx, storage.AuditFilter{Type: "admin.user_unlock"})
	if err != nil || len(rows) != 1 || rows[0].Details["before"] == "" {
		t.Errorf("unlock audited as %+v, %v; want one row with the state before", rows, err)
	}
}

func TestConfirmPasskey(t *testing.T) {
	tests := []struct {
		name           string
		user, factorID string
		want           error
	}{
		{"a passkey of the user is trusted", "u-alice", "f-key", nil},
		{"another user's passkey is not found", "u-bob", "f-key", admin.ErrNoSuchPasskey},
		{"a factor that is no passkey is not found", "u-alice", "f-totp", admin.ErrNoSuchPasskey},
		{"an unknown factor is not found", "u-alice", "f-none", admin.ErrNoSuchPasskey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fa := newService(t)
			f, err := s.ConfirmPasskey(t.Context(), cli, tt.user, tt.factorID, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				return
			}
			stored, _ := fa.FactorByID(t.Context(), "f-key")
			if !f.TrustedAt.Equal(t0) || !stored.TrustedAt.Equal(t0) {
				t.Errorf("trusted at %v (stored %v), want %v", f.TrustedAt, stored.TrustedAt, t0)
			}
			if _, err := s.ConfirmPasskey(t.Context(), cli, tt.user, tt.factorID, t0); !errors.Is(err, admin.ErrAlreadyTrusted) {
				t.Errorf("confirming again: %v, want ErrAlreadyTrusted", err)
			}
		})
	}
}

func TestCheckPolicy(t *testing.T) {
	p := stepup.DefaultPolicy()
	rules := risk.DefaultRules()
	clients := []storage.Client{
		{ID: "account"},
		admin.ClientSpec{ID: "good", RedirectURIs: []string{"https://rp.example/cb"}, MinACR: "phr"}.Client(),
		admin.ClientSpec{ID: "stale", RedirectURIs: []string{"https://rp.example/cb"}, MinACR: "urn:gone"}.Client(),
	}
	checks := admin.CheckPolicy(p, map[string]string{"payments": "urn:gone"}, rules, []string{"good", "missing"}, clients, "account")
	var bad []string
	for _, c := range checks {
		if !c.OK {
			bad = append(bad, c.Subject)
		}
	}
	want := []string{"scope payments", "client stale", "risk sensitive_clients"}
	if diff := cmp.Diff(want, bad); diff != "" {
		t.Errorf("failed checks (-want +got):\n%s", diff)
	}
	if checks[0].OK {
		t.Error("a failed check is not listed first")
	}
}

func defaultPolicies(t *testing.T) *policy.Live {
	t.Helper()
	s, err := policy.Complete(policy.Snapshot{Levels: stepup.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	return policy.Static(s)
}

func TestCheckReason(t *testing.T) {
	for _, c := range []struct {
		in       string
		required bool
		want     string
		err      error
	}{
		{"  ticket-7\t", true, "ticket-7", nil},
		{"", false, "", nil},
		{" \t ", true, "", admin.ErrNeedsReason},
		{" \t ", false, "", nil},
		{strings.Repeat("é", admin.MaxReason), true, strings.Repeat("é", admin.MaxReason), nil},
		{strings.Repeat("y", admin.MaxReason+1), false, "", admin.ErrBadReason},
		{"ticket-1\x1b[2J", false, "", admin.ErrBadReason},
		{"one\nforged line", false, "", admin.ErrBadReason},
		{"tick\u0085et", false, "", admin.ErrBadReason},
		{"ticket\xff", false, "", admin.ErrBadReason},
	} {
		got, err := admin.CheckReason(c.in, c.required)
		if !errors.Is(err, c.err) || (err == nil && got != c.want) {
			t.Errorf("CheckReason(%q, %v) = %q, %v; want %q, %v", c.in, c.required, got, err, c.want, c.err)
		}
	}
}
