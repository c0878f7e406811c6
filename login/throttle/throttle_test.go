package throttle_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestAddr(t *testing.T) {
	tests := []struct {
		name, ip, want string
	}{
		{"an IPv4 address counts as itself", "203.0.113.7", "203.0.113.7"},
		{"an IPv6 address counts as its /64", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"two addresses in one /64 count as one", "2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"an IPv4-mapped address is not widened", "::ffff:203.0.113.7", "::ffff:203.0.113.7"},
		{"something that is no address counts as itself", "not-an-ip", "not-an-ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := throttle.Addr(tt.ip); got != tt.want {
				t.Errorf("Addr(%q) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
}

func TestAccountKeysIgnoreCaseAndCoverEveryPlace(t *testing.T) {
	got := throttle.AccountKeys(storage.ScopeAccount, "Alice")
	want := []storage.ThrottleKey{
		{Scope: storage.ScopeAccount, Key: "u:alice|device"},
		{Scope: storage.ScopeAccount, Key: "u:alice|network"},
		{Scope: storage.ScopeAccount, Key: "u:alice|other"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AccountKeys (-want +got):\n%s", diff)
	}
	if k := throttle.AccountLockKey("ALICE", throttle.PlaceOther); k != (storage.ThrottleKey{Scope: throttle.ScopeAccountLock, Key: "u:alice|other"}) {
		t.Errorf("AccountLockKey = %+v", k)
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := throttle.DefaultLimits().Validate(); err != nil {
		t.Fatalf("the defaults are invalid: %v", err)
	}
	l := throttle.DefaultLimits()
	delete(l, throttle.ScopeFactorLock)
	delete(l, storage.ScopeIP)
	l[storage.ScopeAccount] = storage.ThrottleRule{}
	err := l.Validate()
	if err == nil {
		t.Fatal("Validate accepted missing and empty rules")
	}
	for _, want := range []string{`missing rule "factor_lock"`, `missing rule "ip"`, "account: limit must be at least 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %q, want it to report %q", err, want)
		}
	}
}

// What a sign-in counts on an account, an unlock clears: the password
// budgets in every place, the second-factor counter and the factor locks.
func TestUnlockClearsWhatSignInsCounted(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := throttle.DefaultLimits()
	lock := l[throttle.ScopeFactorLock]
	lock.Limit = 2 // lock after two wrong codes instead of a hundred
	l[throttle.ScopeFactorLock] = lock

	counted := append(throttle.AccountKeys(storage.ScopeAccount, "alice"),
		throttle.AccountLockKey("alice", throttle.PlaceOther),
		storage.ThrottleKey{Scope: storage.ScopeFactorAccount, Key: "u-alice"})
	if _, err := st.RecordFailure(ctx, counted, l, t0); err != nil {
		t.Fatal(err)
	}
	totp := throttle.FactorLockKey("u-alice", stepup.TOTP)
	for i := range 3 {
		if _, err := st.RecordFailure(ctx, []storage.ThrottleKey{totp}, l, t0); err != nil && !(i == 2 && errors.Is(err, storage.ErrThrottled)) {
			t.Fatal(err)
		}
	}
	locked, err := throttle.LockedFactors(ctx, st, l, "u-alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[stepup.Method]bool{stepup.TOTP: true}, locked); diff != "" {
		t.Fatalf("locked before the unlock (-want +got):\n%s", diff)
	}

	if err := throttle.Unlock(ctx, st, "Alice", "u-alice"); err != nil {
		t.Fatal(err)
	}
	if locked, err = throttle.LockedFactors(ctx, st, l, "u-alice", t0); err != nil || len(locked) != 0 {
		t.Errorf("locked after the unlock: %v, %v", locked, err)
	}
	states, err := st.CheckThrottle(ctx, throttle.LockKeys("alice", "u-alice"), l, t0)
	if err != nil {
		t.Fatal(err)
	}
	for k, s := range states {
		if s.Failures != 0 || !s.BlockedUntil.IsZero() {
			t.Errorf("%v still counts %+v after the unlock", k, s)
		}
	}
	for _, k := range counted {
		if _, ok := states[k]; !ok {
			t.Errorf("LockKeys leaves out %v, which a sign-in counts", k)
		}
	}
}
