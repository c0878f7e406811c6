package storagetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

func newPolicyVersion(parent int64, doc string) storage.PolicyVersion {
	return storage.PolicyVersion{Document: doc, Parent: parent, Author: "user:admin", Reason: "why", Diff: "+ x", CreatedAt: t0}
}

var policyTests = []test{
	{"versions are numbered in order, the newest is active, and each reads back as saved", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		n, err := s.ActivePolicyNumber(ctx)
		must(t, err)
		check(t, int64(0), n)
		_, err = s.PolicyVersionByNumber(ctx, 1)
		wantErr(t, err, storage.ErrNotFound)

		v1, err := s.CreatePolicyVersion(ctx, newPolicyVersion(0, `{"a":1}`))
		must(t, err)
		check(t, int64(1), v1.Number)
		second := newPolicyVersion(1, `{"a":2}`)
		second.CreatedAt = t0.Add(time.Minute)
		v2, err := s.CreatePolicyVersion(ctx, second)
		must(t, err)
		check(t, int64(2), v2.Number)
		n, err = s.ActivePolicyNumber(ctx)
		must(t, err)
		check(t, int64(2), n)
		got, err := s.PolicyVersionByNumber(ctx, 1)
		must(t, err)
		check(t, v1, got)

		list, err := s.ListPolicyVersions(ctx, 10)
		must(t, err)
		noDoc := func(v storage.PolicyVersion) storage.PolicyVersion { v.Document = ""; return v }
		check(t, []storage.PolicyVersion{noDoc(v2), noDoc(v1)}, list)
		list, err = s.ListPolicyVersions(ctx, 1)
		must(t, err)
		check(t, 1, len(list))
	}},
	{"a version saved from a parent that is no longer active is refused and changes nothing", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		_, err := s.CreatePolicyVersion(ctx, newPolicyVersion(0, `{}`))
		must(t, err)
		_, err = s.CreatePolicyVersion(ctx, newPolicyVersion(0, `{"stale":true}`))
		wantErr(t, err, storage.ErrConflict)
		_, err = s.CreatePolicyVersion(ctx, newPolicyVersion(7, `{"future":true}`))
		wantErr(t, err, storage.ErrConflict)
		n, err := s.ActivePolicyNumber(ctx)
		must(t, err)
		check(t, int64(1), n)
		_, err = s.PolicyVersionByNumber(ctx, 2)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"of many saves from the same parent exactly one wins", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		for parent := int64(0); parent < 2; parent++ {
			errs := race(8, func(i int) error {
				_, err := s.CreatePolicyVersion(ctx, newPolicyVersion(parent, `{}`))
				return err
			})
			oneWinner(t, errs, storage.ErrConflict)
		}
		n, err := s.ActivePolicyNumber(ctx)
		must(t, err)
		check(t, int64(2), n)
		list, err := s.ListPolicyVersions(ctx, 100)
		must(t, err)
		check(t, 2, len(list))
	}},
}
