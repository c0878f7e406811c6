package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var tokenTests = []test{
	{"an access token round-trips every field", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newAccessToken("at1", newGrant("ar1"), "rt1")
		must(t, s.CreateAccessToken(ctx, want))
		got, err := s.AccessTokenByID(ctx, "at1", t0)
		must(t, err)
		check(t, want, got)

		// Client credentials: no subject, no refresh token, zero auth time.
		cc := storage.AccessToken{
			ID:        "at2",
			Grant:     storage.Grant{ClientID: "svc", Scopes: []string{"api"}},
			CreatedAt: t0,
			ExpiresAt: t0.Add(time.Minute),
		}
		must(t, s.CreateAccessToken(ctx, cc))
		got, err = s.AccessTokenByID(ctx, "at2", t0)
		must(t, err)
		check(t, cc, got)
	}},
	{"a taken token id gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateAccessToken(ctx, newAccessToken("at1", g, "")))
		wantErr(t, s.CreateAccessToken(ctx, newAccessToken("at1", g, "")), storage.ErrAlreadyExists)
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "f1", g), nil))
		wantErr(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "f2", g), nil), storage.ErrAlreadyExists)
	}},
	{"an access token is valid until its expiry, then ErrExpired; revoked or unknown is ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		at := newAccessToken("at1", newGrant("ar1"), "")
		must(t, s.CreateAccessToken(ctx, at))
		_, err := s.AccessTokenByID(ctx, "at1", at.ExpiresAt)
		must(t, err)
		_, err = s.AccessTokenByID(ctx, "at1", at.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.AccessTokenByID(ctx, "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
		must(t, s.RevokeAccessToken(ctx, "at1"))
		_, err = s.AccessTokenByID(ctx, "at1", t0)
		wantErr(t, err, storage.ErrNotFound)
		must(t, s.RevokeAccessToken(ctx, "nope")) // RFC 7009 §2.2
	}},
	{"a refresh token round-trips every field", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newRefreshToken("rt1", "fam1", newGrant("ar1"))
		must(t, s.CreateRefreshToken(ctx, want, nil))
		got, err := s.RefreshTokenByID(ctx, "rt1", t0)
		must(t, err)
		check(t, want, got)
	}},
	{"a refresh token and the access token issued with it are stored together", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		at1 := newAccessToken("at1", g, "ignored")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "fam1", g), &at1))
		at2 := newAccessToken("at2", g, "ignored")
		must(t, s.RotateRefreshToken(ctx, "rt1", newRefreshToken("rt2", "fam1", g), &at2, t0))
		for id, refresh := range map[string]string{"at1": "rt1", "at2": "rt2"} {
			got, err := s.AccessTokenByID(ctx, id, t0)
			must(t, err)
			want := newAccessToken(id, g, refresh) // the store links it to its refresh token
			check(t, want, got)
		}

		// When the refresh token cannot be stored, neither is the access token.
		dup := newAccessToken("at3", g, "")
		wantErr(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "fam9", g), &dup), storage.ErrAlreadyExists)
		_, err := s.AccessTokenByID(ctx, "at3", t0)
		wantErr(t, err, storage.ErrNotFound)
		// Nor when the rotation fails.
		_, err = s.RefreshTokenByID(ctx, "rt2", t0)
		must(t, err)
		expired := newAccessToken("at4", g, "")
		err = s.RotateRefreshToken(ctx, "rt2", newRefreshToken("rt3", "", g), &expired, t0.Add(365*24*time.Hour))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.AccessTokenByID(ctx, "at4", t0)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"a refresh token is valid until its expiry, then ErrExpired; unknown is ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rt := newRefreshToken("rt1", "fam1", newGrant("ar1"))
		must(t, s.CreateRefreshToken(ctx, rt, nil))
		_, err := s.RefreshTokenByID(ctx, "rt1", rt.ExpiresAt)
		must(t, err)
		_, err = s.RefreshTokenByID(ctx, "rt1", rt.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.RefreshTokenByID(ctx, "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
		err = s.RotateRefreshToken(ctx, "rt1", newRefreshToken("rt2", "", rt.Grant), nil, rt.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		err = s.RotateRefreshToken(ctx, "nope", newRefreshToken("rt2", "", rt.Grant), nil, t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RefreshTokenByID(ctx, "rt2", t0)
		wantErr(t, err, storage.ErrNotFound) // failed rotations store nothing
	}},
	{"rotating a refresh token keeps the grant and family and marks the old one used", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "fam1", g), nil))
		other := g
		other.GrantID = "ignored"
		next := newRefreshToken("rt2", "ignored", other)
		next.CreatedAt = t0.Add(time.Hour)
		must(t, s.RotateRefreshToken(ctx, "rt1", next, nil, t0.Add(time.Hour)))

		got, err := s.RefreshTokenByID(ctx, "rt2", t0.Add(time.Hour))
		must(t, err)
		// The store puts next in the old token's family and grant.
		next.FamilyID, next.Grant.GrantID = "fam1", g.GrantID
		check(t, next, got)

		// Reading a rotated token reports the replay without touching the family.
		_, err = s.RefreshTokenByID(ctx, "rt1", t0.Add(time.Hour))
		wantErr(t, err, storage.ErrReplayed)
		_, err = s.RefreshTokenByID(ctx, "rt2", t0.Add(time.Hour))
		must(t, err)
	}},
	{"reading a rotated refresh token gives ErrReplayed with the token, so the caller can name whose family it is", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		first := newRefreshToken("rt1", "fam1", g)
		must(t, s.CreateRefreshToken(ctx, first, nil))
		must(t, s.RotateRefreshToken(ctx, "rt1", newRefreshToken("rt2", "fam1", g), nil, t0))
		got, err := s.RefreshTokenByID(ctx, "rt1", t0)
		wantErr(t, err, storage.ErrReplayed)
		if got.UsedAt.IsZero() {
			t.Error("a rotated token reads back with a zero UsedAt")
		}
		first.UsedAt = got.UsedAt // set by the rotation
		check(t, first, got)
		// Still so once the family was revoked for the reuse.
		must(t, s.RevokeRefreshFamily(ctx, "rt1"))
		got, err = s.RefreshTokenByID(ctx, "rt1", t0)
		wantErr(t, err, storage.ErrReplayed)
		if got.ID != "rt1" || got.FamilyID != "fam1" || got.Grant.Subject != g.Subject || got.Grant.ClientID != g.ClientID {
			t.Errorf("replayed token after revocation = %+v", got)
		}
	}},
	{"reusing a rotated refresh token revokes its whole family and the family's access tokens", func(t *testing.T, s storage.Store) {
		// OAuth 2.0 Security BCP §4.14.2.
		ctx := t.Context()
		g := newGrant("ar1")
		at1, at2, at3 := newAccessToken("at1", g, ""), newAccessToken("at2", g, ""), newAccessToken("at3", g, "")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "fam1", g), &at1))
		must(t, s.RotateRefreshToken(ctx, "rt1", newRefreshToken("rt2", "fam1", g), &at2, t0))
		must(t, s.RotateRefreshToken(ctx, "rt2", newRefreshToken("rt3", "fam1", g), &at3, t0))
		issueTokens(t, s, "ar1", "-other-family") // same grant, another family

		err := s.RotateRefreshToken(ctx, "rt1", newRefreshToken("rt4", "fam1", g), nil, t0)
		wantErr(t, err, storage.ErrReplayed)
		_, err = s.RefreshTokenByID(ctx, "rt3", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RefreshTokenByID(ctx, "rt4", t0)
		wantErr(t, err, storage.ErrNotFound)
		for _, id := range []string{"at1", "at2", "at3"} {
			_, err = s.AccessTokenByID(ctx, id, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
		wantLive(t, s, "-other-family")

		// Every later reuse is reported too.
		err = s.RotateRefreshToken(ctx, "rt2", newRefreshToken("rt5", "fam1", g), nil, t0)
		wantErr(t, err, storage.ErrReplayed)
	}},
	{"20 concurrent rotations of one refresh token: exactly one wins", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt0", "fam1", g), nil))
		errs := race(20, func(i int) error {
			at := newAccessToken(fmt.Sprintf("at-%d", i), g, "")
			return s.RotateRefreshToken(ctx, "rt0", newRefreshToken(fmt.Sprintf("next-%d", i), "fam1", g), &at, t0)
		})
		w := oneWinner(t, errs, storage.ErrReplayed)
		winner := fmt.Sprintf("next-%d", w)
		// The losers presented a rotated token: each revoked the family,
		// winner included, and stored nothing of its own (so their IDs are
		// still free, and the winner's are taken).
		_, err := s.RefreshTokenByID(ctx, winner, t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.AccessTokenByID(ctx, fmt.Sprintf("at-%d", w), t0)
		wantErr(t, err, storage.ErrNotFound)
		for i := range errs {
			at := newAccessToken(fmt.Sprintf("at-%d", i), g, "")
			rt := newRefreshToken(fmt.Sprintf("next-%d", i), "other", g)
			if i == w {
				wantErr(t, s.CreateAccessToken(ctx, at), storage.ErrAlreadyExists)
				wantErr(t, s.CreateRefreshToken(ctx, rt, nil), storage.ErrAlreadyExists)
				continue
			}
			must(t, s.CreateAccessToken(ctx, at))
			must(t, s.CreateRefreshToken(ctx, rt, nil))
		}

		// Presenting the old token again is a replay too.
		late := newAccessToken("at-late", g, "")
		err = s.RotateRefreshToken(ctx, "rt0", newRefreshToken("late", "fam1", g), &late, t0)
		wantErr(t, err, storage.ErrReplayed)
		must(t, s.CreateAccessToken(ctx, late)) // the replay stored nothing
	}},
	{"revoking a refresh family revokes its tokens and their access tokens only", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "fam1", g), nil))
		must(t, s.CreateAccessToken(ctx, newAccessToken("at1", g, "rt1")))
		must(t, s.RotateRefreshToken(ctx, "rt1", newRefreshToken("rt2", "fam1", g), nil, t0))
		must(t, s.CreateAccessToken(ctx, newAccessToken("at2", g, "rt2")))
		issueTokens(t, s, "ar1", "-other")

		must(t, s.RevokeRefreshFamily(ctx, "rt2"))
		_, err := s.RefreshTokenByID(ctx, "rt2", t0)
		wantErr(t, err, storage.ErrNotFound)
		for _, id := range []string{"at1", "at2"} {
			_, err = s.AccessTokenByID(ctx, id, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
		wantLive(t, s, "-other")
		must(t, s.RevokeRefreshFamily(ctx, "nope"))
	}},
	{"revoking a grant revokes every token issued under it and no others", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		issueTokens(t, s, "ar1", "1")
		issueTokens(t, s, "ar1", "2")
		issueTokens(t, s, "ar2", "3")
		must(t, s.RevokeGrant(ctx, "ar1"))
		wantRevoked(t, s, "1")
		wantRevoked(t, s, "2")
		wantLive(t, s, "3")
		must(t, s.RevokeGrant(ctx, "nope"))
	}},
	{"revoking a user's tokens covers one client or, with no client, all of them", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		issue := func(n, subject, client string) {
			g := newGrant("ar" + n)
			g.Subject, g.ClientID = subject, client
			must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt"+n, "fam"+n, g), nil))
			must(t, s.CreateAccessToken(ctx, newAccessToken("at"+n, g, "rt"+n)))
		}
		issue("1", "alice", "rp1")
		issue("2", "alice", "rp2")
		issue("3", "bob", "rp1")

		must(t, s.RevokeUserClientTokens(ctx, "alice", "rp1"))
		wantRevoked(t, s, "1")
		wantLive(t, s, "2")
		wantLive(t, s, "3")

		must(t, s.RevokeUserClientTokens(ctx, "alice", ""))
		wantRevoked(t, s, "2")
		wantLive(t, s, "3")
	}},
	{"revoking a user's tokens while their families rotate leaves no token alive", func(t *testing.T, s storage.Store) {
		// Ending a user's access must not miss the token a refresh in flight
		// is writing: afterwards no rotation succeeds and every token any
		// rotation wrote is revoked, its access token too.
		ctx := t.Context()
		const families = 8
		var mu sync.Mutex
		var issued []string // suffixes of every refresh/access token pair written
		var wg sync.WaitGroup
		started := make(chan struct{}, families)
		for f := range families {
			g := newGrant(fmt.Sprintf("ar%d", f))
			cur := fmt.Sprintf("rt-%d-0", f)
			must(t, s.CreateRefreshToken(ctx, newRefreshToken(cur, cur, g), nil))
			wg.Go(func() {
				for i := 1; ; i++ {
					next := fmt.Sprintf("%d-%d", f, i)
					at := newAccessToken("at-"+next, g, "")
					if err := s.RotateRefreshToken(ctx, cur, newRefreshToken("rt-"+next, "", g), &at, t0); err != nil {
						return // revoked: the family is done
					}
					mu.Lock()
					issued = append(issued, next)
					mu.Unlock()
					cur = "rt-" + next
					if i == 3 {
						started <- struct{}{}
					}
					if i == 1_000 {
						t.Error("rotations went on after the revocation")
						return
					}
				}
			})
		}
		for range families {
			<-started // every family is rotating
		}
		must(t, s.RevokeUserClientTokens(ctx, "user-1", ""))
		wg.Wait()
		for _, n := range issued {
			// A rotated token says so (ErrReplayed); the current one of each
			// family must be revoked.
			if _, err := s.RefreshTokenByID(ctx, "rt-"+n, t0); err == nil {
				t.Errorf("refresh token rt-%s is alive after the revocation", n)
			}
			_, err := s.AccessTokenByID(ctx, "at-"+n, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
	}},
	{"revoking a family, its grant, or replaying its first token while it rotates leaves no token alive", func(t *testing.T, s storage.Store) {
		// Like a user's revocation above: reuse detection and /revoke must
		// not miss the token a rotation in flight is writing.
		for _, how := range []string{"family", "grant", "replay"} {
			t.Run(how, func(t *testing.T) {
				ctx := t.Context()
				g := newGrant("ar-" + how)
				first := "rt-" + how + "-0"
				must(t, s.CreateRefreshToken(ctx, newRefreshToken(first, first, g), nil))
				var issued []string
				started := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					cur := first
					for i := 1; i <= 1_000; i++ {
						next := fmt.Sprintf("%s-%d", how, i)
						at := newAccessToken("at-"+next, g, "")
						if err := s.RotateRefreshToken(ctx, cur, newRefreshToken("rt-"+next, "", g), &at, t0); err != nil {
							return // revoked: the family is done
						}
						issued = append(issued, next)
						cur = "rt-" + next
						if i == 3 {
							close(started)
						}
					}
					t.Error("rotations went on after the revocation")
				}()
				<-started
				switch how {
				case "family":
					must(t, s.RevokeRefreshFamily(ctx, first))
				case "grant":
					must(t, s.RevokeGrant(ctx, g.GrantID))
				case "replay":
					at := newAccessToken("at-replay", g, "")
					wantErr(t, s.RotateRefreshToken(ctx, first, newRefreshToken("rt-replay", "", g), &at, t0), storage.ErrReplayed)
				}
				<-done
				for _, n := range issued {
					if _, err := s.RefreshTokenByID(ctx, "rt-"+n, t0); err == nil {
						t.Errorf("refresh token rt-%s is alive after the revocation", n)
					}
					_, err := s.AccessTokenByID(ctx, "at-"+n, t0)
					wantErr(t, err, storage.ErrNotFound)
				}
			})
		}
	}},
	{"tokens that expired before now are deleted", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		for i, exp := range []time.Duration{-time.Hour, 0, time.Hour} {
			at := newAccessToken(fmt.Sprintf("at%d", i), g, "")
			at.ExpiresAt = t0.Add(exp)
			must(t, s.CreateAccessToken(ctx, at))
			rt := newRefreshToken(fmt.Sprintf("rt%d", i), fmt.Sprintf("fam%d", i), g)
			rt.ExpiresAt = t0.Add(exp)
			must(t, s.CreateRefreshToken(ctx, rt, nil))
		}
		n, err := s.DeleteExpiredTokens(ctx, t0)
		must(t, err)
		if n != 2 {
			t.Errorf("deleted %d, want 2 (one access, one refresh)", n)
		}
		_, err = s.AccessTokenByID(ctx, "at0", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RefreshTokenByID(ctx, "rt0", t0)
		wantErr(t, err, storage.ErrNotFound)
		for _, id := range []string{"at1", "at2"} {
			_, err = s.AccessTokenByID(ctx, id, t0)
			must(t, err)
		}
		for _, id := range []string{"rt1", "rt2"} {
			_, err = s.RefreshTokenByID(ctx, id, t0)
			must(t, err)
		}
	}},
}
