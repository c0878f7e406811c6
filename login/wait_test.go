package login

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/storage"
)

func TestHumanWait(t *testing.T) {
	cats, err := i18n.Load(i18n.Options{})
	if err != nil {
		t.Fatal(err)
	}
	en, de := cats.Printer(i18n.English), cats.Printer(i18n.German)
	for _, tt := range []struct {
		d        time.Duration
		want, de string
	}{
		{time.Second, "a minute", "eine Minute"},
		{time.Minute, "a minute", "eine Minute"},
		{time.Minute + time.Second, "2 minutes", "2 Minuten"},
		{59 * time.Minute, "59 minutes", "59 Minuten"},
		{time.Hour, "an hour", "eine Stunde"},
		{24 * time.Hour, "24 hours", "24 Stunden"},
		{48 * time.Hour, "48 hours", "48 Stunden"},
		{72 * time.Hour, "3 days", "3 Tage"},
		{7*24*time.Hour - time.Minute, "7 days", "7 Tage"},
	} {
		if got := humanWait(en, tt.d); got != tt.want {
			t.Errorf("humanWait(%v) = %q, want %q", tt.d, got, tt.want)
		}
		if got := humanWait(de, tt.d); got != tt.de {
			t.Errorf("humanWait(%v) in German = %q, want %q", tt.d, got, tt.de)
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
