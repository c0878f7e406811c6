package policy_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// memPolicies is storage.Policies in memory; active may be set back to
// model a replica that lags, and every read is counted.
type memPolicies struct {
	mu       sync.Mutex
	versions []storage.PolicyVersion
	active   int64
	reads    int
}

func (m *memPolicies) add(t *testing.T, doc policy.Document) int64 {
	t.Helper()
	v, err := m.CreatePolicyVersion(context.Background(), storage.PolicyVersion{Document: policy.Canonical(doc), Parent: m.active})
	if err != nil {
		t.Fatal(err)
	}
	return v.Number
}

func (m *memPolicies) CreatePolicyVersion(_ context.Context, v storage.PolicyVersion) (storage.PolicyVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v.Parent != m.active {
		return storage.PolicyVersion{}, storage.ErrConflict
	}
	v.Number = int64(len(m.versions)) + 1
	m.versions = append(m.versions, v)
	m.active = v.Number
	return v, nil
}

func (m *memPolicies) ActivePolicyNumber(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return m.active, nil
}

func (m *memPolicies) PolicyVersionByNumber(_ context.Context, n int64) (storage.PolicyVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if n < 1 || n > int64(len(m.versions)) {
		return storage.PolicyVersion{}, storage.ErrNotFound
	}
	return m.versions[n-1], nil
}

func (m *memPolicies) ListPolicyVersions(context.Context, int) ([]storage.PolicyVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return slicesReverse(m.versions), nil
}

func slicesReverse(vs []storage.PolicyVersion) []storage.PolicyVersion {
	out := make([]storage.PolicyVersion, len(vs))
	for i, v := range vs {
		out[len(vs)-1-i] = v
	}
	return out
}

func base(t *testing.T) *policy.Snapshot {
	t.Helper()
	s, err := policy.Compile(policy.Document{}, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func payrollNeeds(acr string) policy.Document {
	return policy.Document{ClientPolicies: map[string]policy.ClientPolicy{"payroll": {ScopeMinACR: map[string]string{"payroll:write": acr}}}}
}

func TestLiveRefresh(t *testing.T) {
	ctx := context.Background()
	store := &memPolicies{}
	l := policy.NewLive(store, base(t), policy.Options{}, false, nil)
	if err := l.Refresh(ctx); err != nil || l.Current().Version != 0 {
		t.Fatalf("nothing stored: version %d, %v", l.Current().Version, err)
	}
	v1 := store.add(t, payrollNeeds("urn:keystep:acr:mfa"))
	v2 := store.add(t, payrollNeeds("phr"))
	if err := l.Refresh(ctx); err != nil || l.Current().Version != v2 {
		t.Fatalf("after two saves: version %d, %v; want %d", l.Current().Version, err, v2)
	}
	if got := l.Current().ScopeFloors("payroll", []string{"payroll:write"}); len(got) != 1 || got[0] != "phr" {
		t.Fatalf("version %d floors %v, want phr", v2, got)
	}

	// A store that answers an older active version (a lagging replica, a
	// pointer read before a save) never takes the instance backwards.
	store.mu.Lock()
	store.active = v1
	store.mu.Unlock()
	if err := l.Refresh(ctx); err != nil || l.Current().Version != v2 {
		t.Fatalf("an older active version: now %d, %v; want %d kept", l.Current().Version, err, v2)
	}

	// At: the version a sign-in began under, to its end.
	s1, err := l.At(ctx, v1)
	if err != nil || s1.Version != v1 || s1.ScopeFloors("payroll", []string{"payroll:write"})[0] != "urn:keystep:acr:mfa" {
		t.Fatalf("At(%d): %+v %v", v1, s1, err)
	}
	if s0, err := l.At(ctx, 0); err != nil || s0.Version != 0 {
		t.Fatalf("At(0): %v %v", s0, err)
	}
	if _, err := l.At(ctx, 99); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("At(99) of no such version: %v, want ErrNotFound", err)
	}
}

// A stored version that does not compile here leaves the current one.
func TestLiveRefreshBadVersion(t *testing.T) {
	ctx := context.Background()
	store := &memPolicies{}
	l := policy.NewLive(store, base(t), policy.Options{}, false, nil)
	v1 := store.add(t, payrollNeeds("phr"))
	if err := l.Refresh(ctx); err != nil || l.Current().Version != v1 {
		t.Fatal(err)
	}
	store.add(t, payrollNeeds("gold"))
	if err := l.Refresh(ctx); err == nil {
		t.Fatal("a version naming an unknown level was loaded")
	}
	if l.Current().Version != v1 {
		t.Fatalf("version %d after a failed refresh, want %d", l.Current().Version, v1)
	}
}

// Read-only: the server's own policy decides everything and the store is
// never read, for Refresh, At or Follow.
func TestLiveReadOnly(t *testing.T) {
	ctx := context.Background()
	store := &memPolicies{}
	store.add(t, payrollNeeds("phr"))
	store.reads = 0
	b := base(t)
	l := policy.NewLive(store, b, policy.Options{}, true, nil)
	if !l.ReadOnly() {
		t.Fatal("not read-only")
	}
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := l.At(ctx, 1); err != nil || s != b {
		t.Fatalf("At(1) read-only: %v %v, want the server's policy", s, err)
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	l.Follow(c, 0)
	if l.Current() != b || store.reads != 0 {
		t.Fatalf("read-only: version %d, %d store reads; want 0 and none", l.Current().Version, store.reads)
	}
	if s := policy.Static(b); !s.ReadOnly() || s.Current() != b {
		t.Fatal("Static is not read-only at its snapshot")
	}
}
