// Package storagetest is the behavioural contract of storage.Store. Every
// backend's tests call Run with a factory for an empty store; a backend is
// done when Run passes. There is one suite and no tiers: the concurrency rows
// are part of it and every backend runs all of it.
//
// The suite checks the guarantees written in package storage, plus the
// conventions callers rely on where the doc comments are silent:
//
//   - A record is expired when now is after its ExpiresAt; at ExpiresAt it
//     is still valid. DeleteExpired* remove records that expired before now.
//   - Methods addressing one record by ID (Update*, Delete*, TouchSession,
//     CompleteAuthRequest, SaveAuthCode, RecordAuthRequestFailure,
//     DeleteConsent) give ErrNotFound when there is no such record. The
//     Revoke* methods and bulk deletes do not.
//   - A rotated refresh token presented again gives ErrReplayed, also after
//     its family was revoked, so every reuse can be audited as one.
//   - Lists come back in a fixed order: users by username, clients by ID,
//     sessions, factors and signing keys by CreatedAt, audit events by Seq.
//   - Audit filters: Since is inclusive, Until exclusive.
//   - nil and empty slices may come back as one another; audit Details
//     round-trip exactly (nil stays nil), since the chain hash covers them.
package storagetest

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keystep/keystep/storage"
)

// t0 is the suite's fixed clock; no fixture reads the wall clock.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

type test struct {
	name string
	run  func(t *testing.T, s storage.Store)
}

// Run runs the whole suite. open must return a new, empty store for each
// subtest and arrange (with t.Cleanup) for it to be closed.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Store", storeTests},
		{"Users", userTests},
		{"Clients", clientTests},
		{"AuthRequests", authRequestTests},
		{"Sessions", sessionTests},
		{"Tokens", tokenTests},
		{"Keys", keyTests},
		{"Factors", factorTests},
		{"Consents", consentTests},
		{"OneTimeTokens", oneTimeTokenTests},
		{"Audit", auditTests},
		{"Throttle", throttleTests},
		{"History", historyTests},
		{"Outbox", outboxTests},
		{"SessionClients", sessionClientTests},
		{"OutboxSweep", outboxSweepTests},
		{"SharedSignals", sharedSignalsTests},
		{"Policies", policyTests},
		{"Recovery", recoveryTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tt := range g.tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.run(t, open(t))
				})
			}
		})
	}
}

var storeTests = []test{
	{"an open store answers ping", func(t *testing.T, s storage.Store) {
		must(t, s.Ping(t.Context()))
	}},
}

// must stops the test on an unexpected error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks that err wraps target.
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

// check compares got with want (nil and empty slices alike) and checks that
// every time in got is in UTC: cmp compares times with Equal, which ignores
// the location.
func check(t *testing.T, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("mismatch (-want +got):\n%s", d)
	}
	checkUTC(t, reflect.ValueOf(got), "got")
}

var timeType = reflect.TypeFor[time.Time]()

func checkUTC(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			if tm := v.Interface().(time.Time); tm.Location() != time.UTC {
				t.Errorf("%s = %v, not in UTC", path, tm)
			}
			return
		}
		for i := range v.NumField() {
			checkUTC(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			checkUTC(t, v.Index(i), path+"[]")
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			checkUTC(t, it.Value(), path+"[]")
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			checkUTC(t, v.Elem(), path)
		}
	}
}

// race runs fn n times at once and returns each call's error.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one call succeeded and every other failed
// with loser, and returns the winner's index.
func oneWinner(t *testing.T, errs []error, loser error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("calls %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, loser):
			t.Errorf("call %d: err = %v, want %v", i, err, loser)
		}
	}
	if winner < 0 {
		t.Fatalf("no call succeeded")
	}
	return winner
}
