package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var authRequestTests = []test{
	{"a pushed request is spent once, by its own client, before it expires", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		p := storage.PushedRequest{ID: "pr1", ClientID: "rp", Params: "client_id=rp&scope=openid", ExpiresAt: t0.Add(time.Minute)}
		must(t, s.CreatePushedRequest(ctx, p))
		wantErr(t, s.CreatePushedRequest(ctx, p), storage.ErrAlreadyExists)
		_, err := s.ConsumePushedRequest(ctx, "pr1", "other", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.ConsumePushedRequest(ctx, "nope", "rp", t0)
		wantErr(t, err, storage.ErrNotFound)
		got, err := s.ConsumePushedRequest(ctx, "pr1", "rp", t0)
		must(t, err)
		check(t, p, got)
		_, err = s.ConsumePushedRequest(ctx, "pr1", "rp", t0)
		wantErr(t, err, storage.ErrReplayed)

		must(t, s.CreatePushedRequest(ctx, storage.PushedRequest{ID: "pr2", ClientID: "rp", Params: "x=1", ExpiresAt: t0}))
		_, err = s.ConsumePushedRequest(ctx, "pr2", "rp", t0.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
	}},
	{"20 concurrent spends of one pushed request: exactly one succeeds", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreatePushedRequest(ctx, storage.PushedRequest{ID: "pr1", ClientID: "rp", Params: "x=1", ExpiresAt: t0.Add(time.Minute)}))
		errs := race(20, func(int) error { _, err := s.ConsumePushedRequest(ctx, "pr1", "rp", t0); return err })
		oneWinner(t, errs, storage.ErrReplayed)
	}},
	{"expired pushed requests are swept with the auth requests", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreatePushedRequest(ctx, storage.PushedRequest{ID: "old", ClientID: "rp", Params: "x=1", ExpiresAt: t0}))
		must(t, s.CreatePushedRequest(ctx, storage.PushedRequest{ID: "live", ClientID: "rp", Params: "x=1", ExpiresAt: t0.Add(time.Hour)}))
		_, err := s.DeleteExpiredAuthRequests(ctx, t0.Add(time.Second))
		must(t, err)
		_, err = s.ConsumePushedRequest(ctx, "old", "rp", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.ConsumePushedRequest(ctx, "live", "rp", t0)
		must(t, err)
	}},
	{"an auth request round-trips every field", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newAuthRequest("ar1")
		want.Done = true
		want.Subject, want.ACR, want.AMR = "user-1", "phr", []string{"pwd", "hwk"}
		want.AuthTime, want.SessionID = t0.Add(time.Minute), "sid-1"
		want.CodeHash, want.CodeExpiresAt = "code-hash-1", t0.Add(2*time.Minute)
		want.FailedAttempts = 2
		must(t, s.CreateAuthRequest(ctx, want))
		got, err := s.AuthRequestByID(ctx, "ar1", t0)
		must(t, err)
		check(t, want, got)
	}},
	{"an absent max_age and max_age=0 stay distinct", func(t *testing.T, s storage.Store) {
		// OIDC Core §3.1.2.1: max_age=0 means re-authenticate, absent means no limit.
		ctx := t.Context()
		absent := newAuthRequest("absent")
		absent.MaxAge = nil
		zero := newAuthRequest("zero")
		zero.MaxAge = new(int64)
		for _, r := range []storage.AuthRequest{absent, zero} {
			must(t, s.CreateAuthRequest(ctx, r))
			got, err := s.AuthRequestByID(ctx, r.ID, t0)
			must(t, err)
			check(t, r, got)
		}
	}},
	{"a fresh auth request has no result, code or failures", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := storage.AuthRequest{ID: "ar1", ClientID: "rp", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
		must(t, s.CreateAuthRequest(ctx, want))
		got, err := s.AuthRequestByID(ctx, "ar1", t0)
		must(t, err)
		check(t, want, got)
		if got.MaxAge != nil || !got.AuthTime.IsZero() || !got.CodeExpiresAt.IsZero() {
			t.Errorf("unset fields came back set: %+v", got)
		}
	}},
	{"a taken auth request id gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateAuthRequest(ctx, newAuthRequest("ar1")))
		wantErr(t, s.CreateAuthRequest(ctx, newAuthRequest("ar1")), storage.ErrAlreadyExists)
	}},
	{"an auth request is valid until its expiry and ErrExpired after it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		r := newAuthRequest("ar1")
		must(t, s.CreateAuthRequest(ctx, r))
		_, err := s.AuthRequestByID(ctx, "ar1", r.ExpiresAt)
		must(t, err)
		_, err = s.AuthRequestByID(ctx, "ar1", r.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
	}},
	{"an unknown auth request gives ErrNotFound everywhere", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		_, err := s.AuthRequestByID(ctx, "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.CompleteAuthRequest(ctx, "nope", authResult), storage.ErrNotFound)
		wantErr(t, s.SaveAuthCode(ctx, "nope", "h", t0.Add(time.Minute)), storage.ErrNotFound)
		_, err = s.RecordAuthRequestFailure(ctx, "nope")
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.DeleteAuthRequest(ctx, "nope"), storage.ErrNotFound)
		_, err = s.ConsumeAuthCode(ctx, "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"completing an auth request and saving its code records both", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		r := newAuthRequest("ar1")
		must(t, s.CreateAuthRequest(ctx, r))
		must(t, s.CompleteAuthRequest(ctx, "ar1", authResult))
		want := completedWithCode(r, "code-hash-1")
		must(t, s.SaveAuthCode(ctx, "ar1", want.CodeHash, want.CodeExpiresAt))
		got, err := s.AuthRequestByID(ctx, "ar1", t0)
		must(t, err)
		check(t, want, got)
	}},
	{"a code is redeemed once for its completed request", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := saveCode(t, s, "ar1", "code-hash-1")
		got, err := s.ConsumeAuthCode(ctx, "code-hash-1", t0.Add(time.Minute))
		must(t, err)
		check(t, want, got)
		_, err = s.ConsumeAuthCode(ctx, "code-hash-1", t0.Add(time.Minute))
		wantErr(t, err, storage.ErrReplayed)
	}},
	{"a code past its expiry gives ErrExpired", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		r := saveCode(t, s, "ar1", "code-hash-1")
		_, err := s.ConsumeAuthCode(ctx, "code-hash-1", r.CodeExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.ConsumeAuthCode(ctx, "code-hash-1", r.CodeExpiresAt)
		must(t, err)
	}},
	{"a replayed code revokes the tokens of its grant and no others", func(t *testing.T, s storage.Store) {
		// RFC 6749 §4.1.2.
		ctx := t.Context()
		saveCode(t, s, "ar1", "code-hash-1")
		_, err := s.ConsumeAuthCode(ctx, "code-hash-1", t0)
		must(t, err)
		issueTokens(t, s, "ar1", "1")
		issueTokens(t, s, "ar-other", "2")

		_, err = s.ConsumeAuthCode(ctx, "code-hash-1", t0)
		wantErr(t, err, storage.ErrReplayed)
		wantRevoked(t, s, "1")
		wantLive(t, s, "2")
	}},
	{"50 concurrent redemptions of one code: one wins, the rest are replays that revoke the grant", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := saveCode(t, s, "ar1", "code-hash-1")
		// Tokens issued under the grant, as if by whichever call wins.
		issueTokens(t, s, "ar1", "1")
		issueTokens(t, s, "ar-other", "2")

		got := make([]storage.AuthRequest, 50)
		errs := race(50, func(i int) error {
			var err error
			got[i], err = s.ConsumeAuthCode(ctx, "code-hash-1", t0)
			return err
		})
		w := oneWinner(t, errs, storage.ErrReplayed)
		check(t, want, got[w])
		wantRevoked(t, s, "1")
		wantLive(t, s, "2")
	}},
	{"failures are counted one at a time, also under concurrency", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateAuthRequest(ctx, newAuthRequest("ar1")))
		counts := make([]int, 20)
		errs := race(20, func(i int) error {
			var err error
			counts[i], err = s.RecordAuthRequestFailure(ctx, "ar1")
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		slices.Sort(counts)
		for i, n := range counts {
			if n != i+1 {
				t.Fatalf("counts returned = %v, want 1..20 each once", counts)
			}
		}
		got, err := s.AuthRequestByID(ctx, "ar1", t0)
		must(t, err)
		if got.FailedAttempts != 20 {
			t.Errorf("FailedAttempts = %d, want 20", got.FailedAttempts)
		}
	}},
	{"a deleted auth request is gone with its code", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		saveCode(t, s, "ar1", "code-hash-1")
		must(t, s.DeleteAuthRequest(ctx, "ar1"))
		_, err := s.AuthRequestByID(ctx, "ar1", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.ConsumeAuthCode(ctx, "code-hash-1", t0)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"deleting a user's requests removes the completed ones, codes and all, and keeps the rest", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		saveCode(t, s, "coded", "code-hash-1")
		spent := saveCode(t, s, "spent", "code-hash-2")
		_, err := s.ConsumeAuthCode(ctx, "code-hash-2", spent.CodeExpiresAt.Add(-time.Second))
		must(t, err)
		must(t, s.CreateAuthRequest(ctx, newAuthRequest("done")))
		must(t, s.CompleteAuthRequest(ctx, "done", authResult))
		must(t, s.CreateAuthRequest(ctx, newAuthRequest("pending")))
		other := authResult
		other.Subject = "user-2"
		must(t, s.CreateAuthRequest(ctx, newAuthRequest("other")))
		must(t, s.CompleteAuthRequest(ctx, "other", other))

		n, err := s.DeleteUserAuthRequests(ctx, authResult.Subject)
		must(t, err)
		if n != 3 {
			t.Errorf("deleted %d, want 3", n)
		}
		for _, id := range []string{"coded", "spent", "done"} {
			_, err := s.AuthRequestByID(ctx, id, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
		_, err = s.ConsumeAuthCode(ctx, "code-hash-1", t0)
		wantErr(t, err, storage.ErrNotFound)
		for _, id := range []string{"pending", "other"} {
			_, err := s.AuthRequestByID(ctx, id, t0)
			must(t, err)
		}
		// The empty subject is not a user: pending requests stay.
		n, err = s.DeleteUserAuthRequests(ctx, "")
		must(t, err)
		if n != 0 {
			t.Errorf("deleted %d for the empty subject, want 0", n)
		}
		_, err = s.AuthRequestByID(ctx, "pending", t0)
		must(t, err)
	}},
	{"requests that expired before now are deleted", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		for i, exp := range []time.Duration{-time.Minute, -time.Nanosecond, 0, time.Minute} {
			r := newAuthRequest(string(rune('a' + i)))
			r.ExpiresAt = t0.Add(exp)
			must(t, s.CreateAuthRequest(ctx, r))
		}
		n, err := s.DeleteExpiredAuthRequests(ctx, t0)
		must(t, err)
		if n != 2 {
			t.Errorf("deleted %d, want 2", n)
		}
		for id, want := range map[string]error{"a": storage.ErrNotFound, "b": storage.ErrNotFound, "c": nil, "d": nil} {
			_, err := s.AuthRequestByID(ctx, id, t0)
			if want == nil {
				must(t, err)
			} else {
				wantErr(t, err, want)
			}
		}
	}},
	{"a backlog of expired requests larger than a sweep's batch is deleted in full", func(t *testing.T, s storage.Store) {
		// The SQL backends delete 1,000 rows a statement (sqlstore.SweepBatch).
		ctx := t.Context()
		const expired = 2345
		var wg sync.WaitGroup
		errs := make([]error, expired+1)
		for i := range expired + 1 {
			wg.Go(func() {
				r := newAuthRequest(fmt.Sprintf("r%04d", i))
				if i == expired {
					r.ExpiresAt = t0.Add(time.Minute)
				} else {
					r.ExpiresAt = t0.Add(-time.Minute)
				}
				errs[i] = s.CreateAuthRequest(ctx, r)
			})
		}
		wg.Wait()
		must(t, errors.Join(errs...))
		n, err := s.DeleteExpiredAuthRequests(ctx, t0)
		must(t, err)
		if n != expired {
			t.Errorf("deleted %d, want %d", n, expired)
		}
		n, err = s.DeleteExpiredAuthRequests(ctx, t0)
		must(t, err)
		if n != 0 {
			t.Errorf("a second sweep deleted %d, want 0", n)
		}
		_, err = s.AuthRequestByID(ctx, fmt.Sprintf("r%04d", expired), t0)
		must(t, err)
	}},
}

// saveCode creates, completes and attaches codeHash to auth request id.
func saveCode(t *testing.T, s storage.Store, id, codeHash string) storage.AuthRequest {
	t.Helper()
	ctx := t.Context()
	r := newAuthRequest(id)
	must(t, s.CreateAuthRequest(ctx, r))
	must(t, s.CompleteAuthRequest(ctx, id, authResult))
	r = completedWithCode(r, codeHash)
	must(t, s.SaveAuthCode(ctx, id, codeHash, r.CodeExpiresAt))
	return r
}

// issueTokens stores, under grantID, what every kind of grant leaves: a
// refresh token from before families "rt"+n (its own family "fam"+n) with
// access token "at"+n, and family "f"+n with opaque access token "fa"+n
// and rowless access token "jwt"+n.
func issueTokens(t *testing.T, s storage.Store, grantID, n string) {
	t.Helper()
	issueGrantTokens(t, s, newGrant(grantID), n)
}

func issueGrantTokens(t *testing.T, s storage.Store, g storage.Grant, n string) {
	t.Helper()
	ctx := t.Context()
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt"+n, "fam"+n, g), nil))
	must(t, s.CreateAccessToken(ctx, newAccessToken("at"+n, g, "rt"+n)))
	fa := newAccessToken("fa"+n, g, "")
	must(t, s.CreateFamily(ctx, newFamily("f"+n, g), &fa))
}

func wantRevoked(t *testing.T, s storage.Store, n string) {
	t.Helper()
	ctx := t.Context()
	for _, id := range []string{"at" + n, "fa" + n} {
		_, err := s.AccessTokenByID(ctx, id, t0)
		wantErr(t, err, storage.ErrNotFound)
	}
	_, err := s.RefreshTokenByID(ctx, "rt"+n, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.RowlessAccessTokenFamily(ctx, "jwt"+n, "f"+n, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.RotateFamily(ctx, "f"+n, 0, nil, nil, t0)
	wantErr(t, err, storage.ErrNotFound)
}

func wantLive(t *testing.T, s storage.Store, n string) {
	t.Helper()
	ctx := t.Context()
	for _, id := range []string{"at" + n, "fa" + n} {
		_, err := s.AccessTokenByID(ctx, id, t0)
		must(t, err)
	}
	_, err := s.RefreshTokenByID(ctx, "rt"+n, t0)
	must(t, err)
	f, err := s.RowlessAccessTokenFamily(ctx, "jwt"+n, "f"+n, t0)
	must(t, err)
	if f.ID != "f"+n || f.Revoked {
		t.Errorf("family of jwt%s = %+v", n, f)
	}
}
