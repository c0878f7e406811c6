package login

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/storage"
)

func TestHumanWait(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{time.Second, "a minute"},
		{time.Minute, "a minute"},
		{time.Minute + time.Second, "2 minutes"},
		{59 * time.Minute, "59 minutes"},
		{time.Hour, "an hour"},
		{24 * time.Hour, "24 hours"},
	} {
		if got := humanWait(tt.d); got != tt.want {
			t.Errorf("humanWait(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestThrottleRetentionKeepsWhatARuleStillReads(t *testing.T) {
	got := throttleRetention(throttle.DefaultLimits(), 2*time.Hour)
	want := map[string]time.Duration{
		storage.ScopeAccountIP:       2 * time.Hour, // risk reads it over its window, longer than the rule's 75 min
		storage.ScopeAccount:         20 * time.Minute,
		throttle.ScopeAccountLock:    48 * time.Hour,
		storage.ScopeIP:              20 * time.Minute,
		storage.ScopeFactorAccount:   75 * time.Minute,
		storage.ScopeFactorChallenge: 2 * time.Hour,
		scopeIPAccounts:              time.Hour,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("retention (-want +got):\n%s", diff)
	}
	if _, ok := got[throttle.ScopeFactorLock]; ok {
		t.Error("the factor lock's rows would be swept: a lock counting across any span of time would end early")
	}
}
