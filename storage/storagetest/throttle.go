package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var (
	acctKey   = storage.ThrottleKey{Scope: storage.ScopeAccount, Key: "u1"}
	acctIPKey = storage.AccountIPKey("u1", "192.0.2.1")
	ipKey     = storage.ThrottleKey{Scope: storage.ScopeIP, Key: "192.0.2.1"}
)

// rule is a throttle rule with a long window and a fixed block of one minute.
func rule(limit int) storage.ThrottleRule {
	return storage.ThrottleRule{Limit: limit, Window: 24 * time.Hour, Base: time.Minute, Max: time.Minute}
}

type states = map[storage.ThrottleKey]storage.ThrottleState

var throttleTests = []test{
	{"ReserveMember admits at most limit distinct members, also under concurrency", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		const scope, group = "ip_accounts", "192.0.2.1"
		for i := range 3 {
			must(t, s.ReserveMember(ctx, scope, group, fmt.Sprintf("a%d", i), 3, time.Hour, t0))
		}
		// A known member is still accepted; a new one is refused.
		must(t, s.ReserveMember(ctx, scope, group, "a1", 3, time.Hour, t0))
		wantErr(t, s.ReserveMember(ctx, scope, group, "new", 3, time.Hour, t0), storage.ErrThrottled)
		// Another group is independent; the window slides.
		must(t, s.ReserveMember(ctx, scope, "192.0.2.10", "new", 3, time.Hour, t0))
		must(t, s.ReserveMember(ctx, scope, group, "new", 3, time.Hour, t0.Add(2*time.Hour)))
		// Clearing a member frees its place.
		must(t, s.ClearThrottle(ctx, []storage.ThrottleKey{{Scope: scope, Key: "192.0.2.10|new"}}))
		for i := range 3 {
			must(t, s.ReserveMember(ctx, scope, "192.0.2.10", fmt.Sprintf("b%d", i), 3, time.Hour, t0))
		}

		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.ReserveMember(ctx, scope, "198.51.100.7", fmt.Sprintf("m%d", i), 5, time.Hour, t0)
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, storage.ErrThrottled):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 5 {
			t.Errorf("%d distinct members admitted concurrently, want 5", ok.Load())
		}
	}},

	{"the failure that reaches the limit blocks the key from then until Base later", func(t *testing.T, s storage.Store) {
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: {Limit: 3, Window: time.Hour, Base: time.Minute, Max: 8 * time.Minute},
		}
		blockedUntil := t0.Add(2*time.Second + time.Minute)
		for i, want := range []storage.ThrottleState{{Failures: 1}, {Failures: 2}, {Failures: 3, BlockedUntil: blockedUntil}} {
			got := fail(t, s, rules, t0.Add(time.Duration(i)*time.Second), acctKey)
			check(t, states{acctKey: want}, got)
		}
		checkThrottle(t, s, rules, blockedUntil.Add(-time.Nanosecond), states{acctKey: {Failures: 3, BlockedUntil: blockedUntil}})
		checkThrottle(t, s, rules, blockedUntil, states{acctKey: {Failures: 3}})
	}},
	{"each failure past the limit doubles the block, up to Max", func(t *testing.T, s storage.Store) {
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: {Limit: 2, Window: 24 * time.Hour, Base: time.Minute, Max: 4 * time.Minute},
		}
		fail(t, s, rules, t0, acctKey)
		until := fail(t, s, rules, t0, acctKey)[acctKey].BlockedUntil
		if want := t0.Add(time.Minute); !until.Equal(want) {
			t.Fatalf("at the limit: blocked until %v, want %v", until, want)
		}
		for i, block := range []time.Duration{2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
			at := until
			got := fail(t, s, rules, at, acctKey)
			until = at.Add(block)
			check(t, states{acctKey: {Failures: 3 + i, BlockedUntil: until}}, got)
		}
	}},
	{"failures leave the window once it has passed since them", func(t *testing.T, s storage.Store) {
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: {Limit: 3, Window: 10 * time.Minute, Base: time.Minute, Max: time.Minute},
		}
		fail(t, s, rules, t0, acctKey)
		fail(t, s, rules, t0.Add(5*time.Minute), acctKey)
		checkThrottle(t, s, rules, t0.Add(10*time.Minute-time.Nanosecond), states{acctKey: {Failures: 2}})
		checkThrottle(t, s, rules, t0.Add(10*time.Minute), states{acctKey: {Failures: 1}})
		// The third failure within one window is at t0+14m; the first has left.
		check(t, states{acctKey: {Failures: 2}}, fail(t, s, rules, t0.Add(10*time.Minute), acctKey))
		check(t, states{acctKey: {Failures: 3, BlockedUntil: t0.Add(15 * time.Minute)}},
			fail(t, s, rules, t0.Add(14*time.Minute), acctKey))
	}},
	{"a block runs its full length after its failures have left the window", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: {Limit: 2, Window: time.Minute, Base: 5 * time.Minute, Max: 5 * time.Minute},
		}
		fail(t, s, rules, t0, acctKey)
		fail(t, s, rules, t0.Add(30*time.Second), acctKey)
		until := t0.Add(5*time.Minute + 30*time.Second)
		checkThrottle(t, s, rules, t0.Add(4*time.Minute), states{acctKey: {BlockedUntil: until}})
		_, err := s.RecordFailure(ctx, []storage.ThrottleKey{acctKey}, rules, t0.Add(4*time.Minute))
		wantErr(t, err, storage.ErrThrottled)
		check(t, states{acctKey: {Failures: 1}}, fail(t, s, rules, until, acctKey))
	}},
	{"a blocked key refuses a failure without recording it against any key of the call", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{storage.ScopeAccount: rule(10), storage.ScopeAccountIP: rule(2)}
		keys := []storage.ThrottleKey{acctKey, acctIPKey}
		fail(t, s, rules, t0, keys...)
		fail(t, s, rules, t0, keys...)
		now := t0.Add(time.Second)
		want := states{acctKey: {Failures: 2}, acctIPKey: {Failures: 2, BlockedUntil: t0.Add(time.Minute)}}

		got, err := s.RecordFailure(ctx, keys, rules, now)
		wantErr(t, err, storage.ErrThrottled)
		check(t, want, got)
		if until := storage.ThrottledUntil(got); !until.Equal(t0.Add(time.Minute)) {
			t.Errorf("ThrottledUntil = %v, want %v", until, t0.Add(time.Minute))
		}
		checkThrottle(t, s, rules, now, want)
	}},
	{"clearing a key forgets its failures and no other key's", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: rule(2), storage.ScopeAccountIP: rule(2), storage.ScopeIP: rule(2),
		}
		fail(t, s, rules, t0, acctKey, acctIPKey, ipKey)
		fail(t, s, rules, t0, acctKey, acctIPKey, ipKey)
		must(t, s.ClearThrottle(ctx, []storage.ThrottleKey{acctIPKey, {Scope: storage.ScopeIP, Key: "unknown"}}))
		blocked := storage.ThrottleState{Failures: 2, BlockedUntil: t0.Add(time.Minute)}
		checkThrottle(t, s, rules, t0, states{acctKey: blocked, acctIPKey: {}, ipKey: blocked})
	}},
	{"releasing a failure takes back the one recorded at that time, and a block it caused ends", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: {Limit: 3, Window: time.Hour, Base: time.Minute, Max: time.Minute}, storage.ScopeIP: rule(10), storage.ScopeAccountIP: rule(10),
		}
		fail(t, s, rules, t0, acctKey, ipKey)
		fail(t, s, rules, t0, acctKey)
		fail(t, s, rules, t0.Add(time.Second), acctKey)
		checkThrottle(t, s, rules, t0.Add(2*time.Second), states{acctKey: {Failures: 3, BlockedUntil: t0.Add(time.Second + time.Minute)}})
		// The newest failure, the one that blocked, is taken back; a key
		// without a failure then is not an error.
		must(t, s.ReleaseFailure(ctx, []storage.ThrottleKey{acctKey, ipKey, acctIPKey}, t0.Add(time.Second)))
		checkThrottle(t, s, rules, t0.Add(2*time.Second), states{acctKey: {Failures: 2}, ipKey: {Failures: 1}, acctIPKey: {}})
		must(t, s.ReleaseFailure(ctx, []storage.ThrottleKey{acctKey}, t0.Add(time.Second)))
		checkThrottle(t, s, rules, t0.Add(2*time.Second), states{acctKey: {Failures: 2}})
		// Of two failures at one time, one release takes back one.
		must(t, s.ReleaseFailure(ctx, []storage.ThrottleKey{acctKey}, t0))
		checkThrottle(t, s, rules, t0.Add(2*time.Second), states{acctKey: {Failures: 1}, ipKey: {Failures: 1}})
	}},
	{"5 concurrent releases take back 5 failures", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{storage.ScopeAccount: rule(100)}
		for range 8 {
			fail(t, s, rules, t0, acctKey)
		}
		for i, err := range race(5, func(int) error { return s.ReleaseFailure(ctx, []storage.ThrottleKey{acctKey}, t0) }) {
			if err != nil {
				t.Errorf("release %d: %v", i, err)
			}
		}
		checkThrottle(t, s, rules, t0, states{acctKey: {Failures: 3}})
	}},
	{"a rule with a hundred-year window and block counts failures until they are cleared", func(t *testing.T, s storage.Store) {
		// A lock that only a success or an admin ends (NIST SP 800-63B
		// §5.2.2: 100 consecutive failures), across decades.
		ctx := t.Context()
		const century = 100 * 365 * 24 * time.Hour
		rules := map[string]storage.ThrottleRule{storage.ScopeFactorAccount: {Limit: 3, Window: century, Base: century, Max: century}}
		k := storage.ThrottleKey{Scope: storage.ScopeFactorAccount, Key: "u1|totp"}
		year := 365 * 24 * time.Hour
		fail(t, s, rules, t0, k)
		fail(t, s, rules, t0.Add(year), k)
		check(t, states{k: {Failures: 3, BlockedUntil: t0.Add(30*year + century)}}, fail(t, s, rules, t0.Add(30*year), k))
		checkThrottle(t, s, rules, t0.Add(60*year), states{k: {Failures: 3, BlockedUntil: t0.Add(30*year + century)}})
		_, err := s.RecordFailure(ctx, []storage.ThrottleKey{k}, rules, t0.Add(60*year))
		wantErr(t, err, storage.ErrThrottled)
		must(t, s.ClearThrottle(ctx, []storage.ThrottleKey{k}))
		check(t, states{k: {Failures: 1}}, fail(t, s, rules, t0.Add(60*year), k))
	}},
	{"each scope's rule applies to its own keys, and one key name in two scopes is two keys", func(t *testing.T, s storage.Store) {
		factorKey := storage.ThrottleKey{Scope: storage.ScopeFactorAccount, Key: acctKey.Key}
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount:       {Limit: 3, Window: time.Hour, Base: time.Hour, Max: time.Hour},
			storage.ScopeAccountIP:     {Limit: 2, Window: time.Hour, Base: time.Minute, Max: time.Minute},
			storage.ScopeFactorAccount: {Limit: 1, Window: time.Hour, Base: 10 * time.Minute, Max: 10 * time.Minute},
		}
		check(t, states{acctKey: {Failures: 1}, acctIPKey: {Failures: 1}},
			fail(t, s, rules, t0, acctKey, acctIPKey))
		check(t, states{acctKey: {Failures: 2}, acctIPKey: {Failures: 2, BlockedUntil: t0.Add(time.Minute)}},
			fail(t, s, rules, t0, acctKey, acctIPKey))
		other := storage.AccountIPKey("u1", "198.51.100.1")
		check(t, states{acctKey: {Failures: 3, BlockedUntil: t0.Add(time.Hour)}, other: {Failures: 1}},
			fail(t, s, rules, t0, acctKey, other))
		check(t, states{factorKey: {Failures: 1, BlockedUntil: t0.Add(10 * time.Minute)}},
			fail(t, s, rules, t0, factorKey))
	}},
	{"a key named twice in one call counts once", func(t *testing.T, s storage.Store) {
		rules := map[string]storage.ThrottleRule{storage.ScopeAccount: rule(5)}
		check(t, states{acctKey: {Failures: 1}}, fail(t, s, rules, t0, acctKey, acctKey))
	}},
	{"a key without a valid rule for its scope is an error and nothing is recorded", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{storage.ScopeAccount: rule(5), storage.ScopeIP: {Limit: 0, Window: time.Hour}}
		for _, k := range []storage.ThrottleKey{acctIPKey, ipKey} {
			keys := []storage.ThrottleKey{acctKey, k}
			_, err := s.RecordFailure(ctx, keys, rules, t0)
			if err == nil || errors.Is(err, storage.ErrThrottled) {
				t.Errorf("RecordFailure with %s: err = %v, want a rule error", k.Scope, err)
			}
			if _, err := s.CheckThrottle(ctx, keys, rules, t0); err == nil {
				t.Errorf("CheckThrottle with %s: no error", k.Scope)
			}
		}
		checkThrottle(t, s, rules, t0, states{acctKey: {}})
	}},
	{"50 concurrent failures on a key with limit 5: exactly 5 are recorded", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{storage.ScopeAccount: rule(5)}
		counts := make([]int, 50)
		errs := race(50, func(i int) error {
			got, err := s.RecordFailure(ctx, []storage.ThrottleKey{acctKey}, rules, t0)
			counts[i] = got[acctKey].Failures
			return err
		})
		var recorded []int
		for i, err := range errs {
			switch {
			case err == nil:
				recorded = append(recorded, counts[i])
			case !errors.Is(err, storage.ErrThrottled):
				t.Errorf("call %d: err = %v, want %v", i, err, storage.ErrThrottled)
			}
		}
		slices.Sort(recorded)
		check(t, []int{1, 2, 3, 4, 5}, recorded) // each saw the ones before it
		checkThrottle(t, s, rules, t0, states{acctKey: {Failures: 5, BlockedUntil: t0.Add(time.Minute)}})
	}},
	{"DistinctAccountsFromIP counts the accounts that failed from that IP since a time", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: rule(100), storage.ScopeAccountIP: rule(100), storage.ScopeIP: rule(100),
		}
		later := t0.Add(time.Hour)
		fail(t, s, rules, t0, storage.AccountIPKey("u3", "192.0.2.1"))
		fail(t, s, rules, later, storage.AccountIPKey("u1", "192.0.2.1"), ipKey, acctKey)
		fail(t, s, rules, later, storage.AccountIPKey("u1", "192.0.2.1"))
		fail(t, s, rules, later, storage.AccountIPKey("u2", "192.0.2.1"))
		fail(t, s, rules, later, storage.AccountIPKey("u4", "192.0.2.10")) // an IP the other is a prefix of
		fail(t, s, rules, later, storage.AccountIPKey("u5", "2001:db8::1"))
		for _, tc := range []struct {
			ip    string
			since time.Time
			want  int
		}{
			{"192.0.2.1", later, 2},
			{"192.0.2.1", t0, 3},
			{"192.0.2.1", later.Add(time.Nanosecond), 0},
			{"192.0.2.10", t0, 1},
			{"2001:db8::1", t0, 1},
			{"198.51.100.1", t0, 0},
		} {
			n, err := s.DistinctAccountsFromIP(ctx, tc.ip, tc.since)
			must(t, err)
			if n != tc.want {
				t.Errorf("DistinctAccountsFromIP(%s, %v) = %d, want %d", tc.ip, tc.since, n, tc.want)
			}
		}
	}},
	{"deleting old throttle rows removes the scope's failures before the cutoff only", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rules := map[string]storage.ThrottleRule{storage.ScopeAccount: rule(10000), storage.ScopeIP: rule(10000)}
		fail(t, s, rules, t0, acctKey, ipKey)
		fail(t, s, rules, t0.Add(time.Minute), acctKey)
		fail(t, s, rules, t0.Add(2*time.Minute), acctKey)
		n, err := s.DeleteOldThrottleRows(ctx, storage.ScopeAccount, t0.Add(time.Minute))
		must(t, err)
		if n != 1 {
			t.Errorf("deleted %d rows, want 1", n)
		}
		checkThrottle(t, s, rules, t0.Add(2*time.Minute), states{acctKey: {Failures: 2}, ipKey: {Failures: 1}})
		n, err = s.DeleteOldThrottleRows(ctx, storage.ScopeIP, t0.Add(time.Minute))
		must(t, err)
		if n != 1 {
			t.Errorf("deleted %d ip rows, want 1", n)
		}
		checkThrottle(t, s, rules, t0.Add(2*time.Minute), states{acctKey: {Failures: 2}, ipKey: {}})
		// More than a sweep's batch, all at one instant: the rows have no id,
		// the backend's row identity tells them apart.
		for i := range 3 {
			keys := make([]storage.ThrottleKey, 0, 500)
			for j := range 500 {
				keys = append(keys, storage.ThrottleKey{Scope: storage.ScopeIP, Key: fmt.Sprintf("198.51.%d.%d", i, j)})
			}
			_, err := s.RecordFailure(ctx, keys, rules, t0.Add(3*time.Minute))
			must(t, err)
		}
		n, err = s.DeleteOldThrottleRows(ctx, storage.ScopeIP, t0.Add(4*time.Minute))
		must(t, err)
		if n != 1500 {
			t.Errorf("deleted %d rows of one instant, want 1500", n)
		}
	}},
}

// fail records one failure of keys at now and returns the states.
func fail(t *testing.T, s storage.Store, rules map[string]storage.ThrottleRule, now time.Time, keys ...storage.ThrottleKey) states {
	t.Helper()
	got, err := s.RecordFailure(t.Context(), keys, rules, now)
	must(t, err)
	return got
}

// checkThrottle compares the states of want's keys at now with want.
func checkThrottle(t *testing.T, s storage.Store, rules map[string]storage.ThrottleRule, now time.Time, want states) {
	t.Helper()
	var keys []storage.ThrottleKey
	for k := range want {
		keys = append(keys, k)
	}
	got, err := s.CheckThrottle(t.Context(), keys, rules, now)
	must(t, err)
	check(t, want, got)
}
