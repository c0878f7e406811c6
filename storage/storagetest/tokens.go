package storagetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var tokenTests = []test{
	{"an unbound family is bound to the first key, once", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("g1")
		g.JKT = ""
		must(t, s.CreateFamily(ctx, storage.Family{ID: "f1", Grant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, nil))
		f, err := s.BindFamily(ctx, "f1", "key-a")
		must(t, err)
		if f.Grant.JKT != "key-a" {
			t.Fatalf("bound to %q, want key-a", f.Grant.JKT)
		}
		f, err = s.BindFamily(ctx, "f1", "key-b")
		must(t, err)
		if f.Grant.JKT != "key-a" {
			t.Fatalf("a bound family moved to %q", f.Grant.JKT)
		}
		_, err = s.BindFamily(ctx, "nope", "key-a")
		wantErr(t, err, storage.ErrNotFound)
	}},
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
	{"an access token naming a revoked family is refused; one naming a live or unknown family is stored", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateFamily(ctx, newFamily("f1", g), nil))
		must(t, s.CreateAccessToken(ctx, newAccessToken("at-live", g, "f1")))
		must(t, s.CreateAccessToken(ctx, newAccessToken("at-legacy", g, "rt-from-before-families")))
		must(t, s.RevokeFamily(ctx, "f1"))
		wantErr(t, s.CreateAccessToken(ctx, newAccessToken("at-late", g, "f1")), storage.ErrNotFound)
		_, err := s.AccessTokenByID(ctx, "at-late", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.AccessTokenByID(ctx, "at-live", t0)
		wantErr(t, err, storage.ErrNotFound) // revoked with its family
		_, err = s.AccessTokenByID(ctx, "at-legacy", t0)
		must(t, err)
	}},
	{"a family's audit mark moves forward only, and survives rotation", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateFamily(ctx, newFamily("f1", newGrant("ar1")), nil))
		f, err := s.RotateFamily(ctx, "f1", 0, nil, nil, t0.Add(time.Second))
		must(t, err)
		if f.AuditedGeneration != 0 || !f.AuditedAt.IsZero() {
			t.Fatalf("a new family is marked audited: %+v", f)
		}
		must(t, s.MarkFamilyAudited(ctx, "f1", 1, t0.Add(2*time.Second)))
		f, err = s.RotateFamily(ctx, "f1", 1, nil, nil, t0.Add(3*time.Second))
		must(t, err)
		if f.Generation != 2 || f.AuditedGeneration != 1 || !f.AuditedAt.Equal(t0.Add(2*time.Second)) {
			t.Fatalf("after marking 1 and rotating: %+v", f)
		}
		// A slower instance marking an older generation does not move it back.
		must(t, s.MarkFamilyAudited(ctx, "f1", 2, t0.Add(4*time.Second)))
		must(t, s.MarkFamilyAudited(ctx, "f1", 1, t0.Add(5*time.Second)))
		f, err = s.FamilyByID(ctx, "f1")
		must(t, err)
		if f.AuditedGeneration != 2 || !f.AuditedAt.Equal(t0.Add(4*time.Second)) {
			t.Fatalf("the mark moved back: %+v", f)
		}
		must(t, s.MarkFamilyAudited(ctx, "nope", 1, t0)) // unknown: not an error
	}},
	{"a family round-trips every field", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newFamily("f1", newGrant("ar1"))
		want.Generation, want.RotatedAt = 3, t0.Add(time.Minute) // as an upgrade stores it
		want.AuditedGeneration, want.AuditedAt = 2, t0.Add(30*time.Second)
		must(t, s.CreateFamily(ctx, want, nil))
		got, err := s.FamilyByID(ctx, "f1")
		must(t, err)
		check(t, want, got)
		_, err = s.FamilyByID(ctx, "nope")
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.CreateFamily(ctx, want, nil), storage.ErrAlreadyExists)
	}},
	{"a family and the access token issued with it are stored together", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		at1 := newAccessToken("at1", g, "ignored")
		must(t, s.CreateFamily(ctx, newFamily("f1", g), &at1))
		at2 := newAccessToken("at2", g, "ignored")
		_, err := s.RotateFamily(ctx, "f1", 0, g.Scopes, &at2, t0)
		must(t, err)
		for _, id := range []string{"at1", "at2"} {
			got, err := s.AccessTokenByID(ctx, id, t0)
			must(t, err)
			check(t, newAccessToken(id, g, "f1"), got) // the store links it to its family
		}

		// When the family cannot be stored, neither is the access token.
		dup := newAccessToken("at3", g, "")
		wantErr(t, s.CreateFamily(ctx, newFamily("f1", g), &dup), storage.ErrAlreadyExists)
		_, err = s.AccessTokenByID(ctx, "at3", t0)
		wantErr(t, err, storage.ErrNotFound)
		// Nor when the rotation fails.
		expired := newAccessToken("at4", g, "")
		_, err = s.RotateFamily(ctx, "f1", 1, g.Scopes, &expired, t0.Add(365*24*time.Hour))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.AccessTokenByID(ctx, "at4", t0)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"rotating a family moves its generation on in place, narrows its scopes and keeps the rest", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		f := newFamily("f1", newGrant("ar1"))
		must(t, s.CreateFamily(ctx, f, nil))
		at := t0.Add(time.Hour)
		got, err := s.RotateFamily(ctx, "f1", 0, []string{"openid"}, nil, at)
		must(t, err)
		f.Generation, f.RotatedAt, f.Grant.Scopes = 1, at, []string{"openid"}
		check(t, f, got)
		stored, err := s.FamilyByID(ctx, "f1")
		must(t, err)
		check(t, f, stored)
	}},
	{"a family is rotated until its expiry, then ErrExpired; unknown, revoked or a generation never issued is ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		f := newFamily("f1", newGrant("ar1"))
		must(t, s.CreateFamily(ctx, f, nil))
		_, err := s.RotateFamily(ctx, "f1", 0, nil, nil, f.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.RotateFamily(ctx, "f1", 1, nil, nil, t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RotateFamily(ctx, "nope", 0, nil, nil, t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RotateFamily(ctx, "f1", 0, nil, nil, f.ExpiresAt)
		must(t, err)
		must(t, s.RevokeFamily(ctx, "f1"))
		_, err = s.RotateFamily(ctx, "f1", 1, nil, nil, t0)
		wantErr(t, err, storage.ErrNotFound)
		must(t, s.RevokeFamily(ctx, "nope"))
	}},
	{"an access token that outlives its revoked family stays revoked once the family is swept", func(t *testing.T, s storage.Store) {
		// A refresh in the family's last minutes issues an access token
		// expiring after it; the sweep then deletes the family's row.
		ctx := t.Context()
		g := newGrant("ar1")
		f := newFamily("f1", g)
		f.ExpiresAt = t0.Add(time.Minute)
		at := newAccessToken("at-1", g, "")
		must(t, s.CreateFamily(ctx, f, &at))
		must(t, s.RevokeFamily(ctx, "f1"))
		now := t0.Add(2 * time.Minute)
		_, err := s.DeleteExpiredTokens(ctx, now)
		must(t, err)
		if _, err := s.FamilyByID(ctx, "f1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the expired family was not swept: %v", err)
		}
		_, err = s.AccessTokenByID(ctx, "at-1", now)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"any older generation presented again gives ErrReplayed with the family, also once it is revoked, and changes nothing", func(t *testing.T, s storage.Store) {
		// Full reuse detection in one row: the row knows its generation, so
		// every lower one is a rotated token (OAuth 2.0 Security BCP §4.14.2).
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateFamily(ctx, newFamily("f1", g), nil))
		var rotated storage.Family
		for gen := range int64(3) {
			var err error
			rotated, err = s.RotateFamily(ctx, "f1", gen, g.Scopes, nil, t0.Add(time.Duration(gen+1)*time.Minute))
			must(t, err)
		}
		for _, gen := range []int64{0, 1, 2} {
			at := newAccessToken(fmt.Sprintf("at-%d", gen), g, "")
			got, err := s.RotateFamily(ctx, "f1", gen, g.Scopes, &at, t0.Add(time.Hour))
			wantErr(t, err, storage.ErrReplayed)
			check(t, rotated, got)
			must(t, s.CreateAccessToken(ctx, at)) // the replay stored nothing
		}
		// The store never revokes for a replay: the caller decides.
		stored, err := s.FamilyByID(ctx, "f1")
		must(t, err)
		check(t, rotated, stored)
		must(t, s.RevokeFamily(ctx, "f1"))
		got, err := s.RotateFamily(ctx, "f1", 1, g.Scopes, nil, t0.Add(time.Hour))
		wantErr(t, err, storage.ErrReplayed)
		if !got.Revoked || got.Grant.Subject != g.Subject || got.Grant.ClientID != g.ClientID {
			t.Errorf("replayed generation of a revoked family = %+v", got)
		}
	}},
	{"20 concurrent rotations of one generation: exactly one wins, and the rest see what it rotated to", func(t *testing.T, s storage.Store) {
		// Parallel refreshes with one token are what an app does; the
		// losers learn the generation and time of the winner's rotation,
		// the same as a client retrying after a lost response would.
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateFamily(ctx, newFamily("f1", g), nil))
		fams := make([]storage.Family, 20)
		errs := race(20, func(i int) error {
			at := newAccessToken(fmt.Sprintf("at-%d", i), g, "")
			var err error
			fams[i], err = s.RotateFamily(ctx, "f1", 0, g.Scopes, &at, t0.Add(time.Duration(i)*time.Second))
			return err
		})
		w := oneWinner(t, errs, storage.ErrReplayed)
		if fams[w].Generation != 1 {
			t.Fatalf("winner rotated to %+v", fams[w])
		}
		for i := range errs {
			if i != w {
				check(t, fams[w], fams[i])
			}
			at := newAccessToken(fmt.Sprintf("at-%d", i), g, "")
			if i == w {
				_, err := s.AccessTokenByID(ctx, at.ID, t0)
				must(t, err)
				continue
			}
			must(t, s.CreateAccessToken(ctx, at)) // the losers stored nothing
		}
	}},
	{"a crash between a rotation and its response leaves the rotation committed and recognisable", func(t *testing.T, s storage.Store) {
		// The rotation commits before the response is sent. A client that
		// never saw the response presents the same generation again: the
		// store says it was rotated, to which generation and when, which is
		// all a caller needs to hand out the same successor.
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateFamily(ctx, newFamily("f1", g), nil))
		rotated, err := s.RotateFamily(ctx, "f1", 0, g.Scopes, nil, t0.Add(time.Minute))
		must(t, err)
		// (the response is lost here)
		got, err := s.RotateFamily(ctx, "f1", 0, g.Scopes, nil, t0.Add(time.Minute+time.Second))
		wantErr(t, err, storage.ErrReplayed)
		if got.Generation != 1 || !got.RotatedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("retry sees %+v, want generation 1 rotated at %v", got, rotated.RotatedAt)
		}
		// The successor goes on as usual.
		_, err = s.RotateFamily(ctx, "f1", 1, g.Scopes, nil, t0.Add(2*time.Minute))
		must(t, err)
	}},
	{"a rowless access token is live while its family is and until it is revoked itself", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		f := newFamily("f1", newGrant("ar1"))
		must(t, s.CreateFamily(ctx, f, nil))
		got, err := s.RowlessAccessTokenFamily(ctx, "jwt1", "f1", t0)
		must(t, err)
		check(t, f, got)
		_, err = s.RowlessAccessTokenFamily(ctx, "jwt1", "f1", f.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.RowlessAccessTokenFamily(ctx, "jwt1", "nope", t0)
		wantErr(t, err, storage.ErrNotFound)

		// Revoked alone (RFC 7009), twice; its sibling lives on.
		must(t, s.RevokeRowlessAccessToken(ctx, "jwt1", t0.Add(time.Minute)))
		must(t, s.RevokeRowlessAccessToken(ctx, "jwt1", t0.Add(time.Minute)))
		_, err = s.RowlessAccessTokenFamily(ctx, "jwt1", "f1", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RowlessAccessTokenFamily(ctx, "jwt2", "f1", t0)
		must(t, err)

		// Client credentials: no family, only its own revocation.
		got, err = s.RowlessAccessTokenFamily(ctx, "cc1", "", t0)
		must(t, err)
		check(t, storage.Family{}, got)
		must(t, s.RevokeRowlessAccessToken(ctx, "cc1", t0.Add(time.Minute)))
		_, err = s.RowlessAccessTokenFamily(ctx, "cc1", "", t0)
		wantErr(t, err, storage.ErrNotFound)

		// With the family, every token of it ends.
		must(t, s.RevokeFamily(ctx, "f1"))
		_, err = s.RowlessAccessTokenFamily(ctx, "jwt2", "f1", t0)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"revoking a family revokes its tokens and no others", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		issueTokens(t, s, "ar1", "1")
		issueTokens(t, s, "ar1", "2")
		must(t, s.RevokeFamily(ctx, "f1"))
		for _, id := range []string{"fa1"} {
			_, err := s.AccessTokenByID(ctx, id, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
		_, err := s.RowlessAccessTokenFamily(ctx, "jwt1", "f1", t0)
		wantErr(t, err, storage.ErrNotFound)
		wantLive(t, s, "2")
	}},

	// Refresh tokens issued before families.
	{"a refresh token from before families round-trips every field", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newRefreshToken("rt1", "fam1", newGrant("ar1"))
		must(t, s.CreateRefreshToken(ctx, want, nil))
		got, err := s.RefreshTokenByID(ctx, "rt1", t0)
		must(t, err)
		check(t, want, got)
	}},
	{"a refresh token from before families is valid until its expiry, then ErrExpired; unknown is ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rt := newRefreshToken("rt1", "fam1", newGrant("ar1"))
		must(t, s.CreateRefreshToken(ctx, rt, nil))
		_, err := s.RefreshTokenByID(ctx, "rt1", rt.ExpiresAt)
		must(t, err)
		_, err = s.RefreshTokenByID(ctx, "rt1", rt.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		_, err = s.RefreshTokenByID(ctx, "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
		err = s.UpgradeRefreshToken(ctx, "rt1", newFamily("", rt.Grant), nil, rt.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
		err = s.UpgradeRefreshToken(ctx, "nope", newFamily("", rt.Grant), nil, t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.FamilyByID(ctx, "fam1")
		wantErr(t, err, storage.ErrNotFound) // failed upgrades store nothing
	}},
	{"upgrading a refresh token from before families makes its family a row at generation 1, with its grant, once", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "fam1", g), nil))
		other := g
		other.GrantID = "ignored"
		next := newFamily("ignored", other)
		at := newAccessToken("at1", g, "")
		now := t0.Add(time.Hour)
		must(t, s.UpgradeRefreshToken(ctx, "rt1", next, &at, now))

		got, err := s.FamilyByID(ctx, "fam1")
		must(t, err)
		next.ID, next.Grant.GrantID, next.Generation, next.RotatedAt = "fam1", g.GrantID, 1, now
		check(t, next, got)
		gotAt, err := s.AccessTokenByID(ctx, "at1", t0)
		must(t, err)
		check(t, newAccessToken("at1", g, "fam1"), gotAt)

		// The old token reads as rotated, with whose family it was, also
		// once the family was revoked for a reuse.
		old, err := s.RefreshTokenByID(ctx, "rt1", now)
		wantErr(t, err, storage.ErrReplayed)
		if old.UsedAt.IsZero() || old.FamilyID != "fam1" || old.Grant.Subject != g.Subject {
			t.Errorf("upgraded token reads back as %+v", old)
		}
		wantErr(t, s.UpgradeRefreshToken(ctx, "rt1", newFamily("", g), nil, now), storage.ErrReplayed)
		must(t, s.RevokeRefreshFamily(ctx, "rt1"))
		_, err = s.RefreshTokenByID(ctx, "rt1", now)
		wantErr(t, err, storage.ErrReplayed)
	}},
	{"20 concurrent upgrades of one refresh token from before families: exactly one wins", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt0", "fam1", g), nil))
		errs := race(20, func(i int) error {
			at := newAccessToken(fmt.Sprintf("at-%d", i), g, "")
			return s.UpgradeRefreshToken(ctx, "rt0", newFamily("", g), &at, t0)
		})
		w := oneWinner(t, errs, storage.ErrReplayed)
		f, err := s.FamilyByID(ctx, "fam1")
		must(t, err)
		if f.Generation != 1 || f.Revoked {
			t.Errorf("family after the race = %+v", f)
		}
		for i := range errs {
			at := newAccessToken(fmt.Sprintf("at-%d", i), g, "")
			if i == w {
				wantErr(t, s.CreateAccessToken(ctx, at), storage.ErrAlreadyExists)
				continue
			}
			must(t, s.CreateAccessToken(ctx, at)) // the losers stored nothing
		}
	}},
	{"revoking a family from before families revokes its tokens, the family it became and their access tokens only", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "fam1", g), nil))
		must(t, s.CreateAccessToken(ctx, newAccessToken("at1", g, "rt1")))
		at2 := newAccessToken("at2", g, "")
		must(t, s.UpgradeRefreshToken(ctx, "rt1", newFamily("", g), &at2, t0))
		issueTokens(t, s, "ar1", "-other")

		must(t, s.RevokeRefreshFamily(ctx, "rt1"))
		f, err := s.FamilyByID(ctx, "fam1")
		must(t, err)
		if !f.Revoked {
			t.Error("the family the token was upgraded into is not revoked")
		}
		for _, id := range []string{"at1", "at2"} {
			_, err = s.AccessTokenByID(ctx, id, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
		_, err = s.RowlessAccessTokenFamily(ctx, "jwt", "fam1", t0)
		wantErr(t, err, storage.ErrNotFound)
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
			issueGrantTokens(t, s, g, n)
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
		// rotation wrote is revoked. Half the families start as refresh
		// tokens from before families, so their upgrade races too.
		ctx := t.Context()
		const families = 8
		var mu sync.Mutex
		var issued []string // every access token written
		var wg sync.WaitGroup
		started := make(chan struct{}, families)
		for f := range families {
			g := newGrant(fmt.Sprintf("ar%d", f))
			id := fmt.Sprintf("fam-%d", f)
			gen := int64(0)
			if f%2 == 0 {
				must(t, s.CreateFamily(ctx, newFamily(id, g), nil))
			} else {
				must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-"+id, id, g), nil))
				gen = -1 // the pre-family token comes first
			}
			wg.Go(func() {
				for i := 1; ; i++ {
					at := newAccessToken(fmt.Sprintf("at-%d-%d", f, i), g, "")
					var err error
					if gen < 0 {
						err = s.UpgradeRefreshToken(ctx, "rt-"+id, newFamily("", g), &at, t0)
						gen = 0
					} else {
						_, err = s.RotateFamily(ctx, id, gen, g.Scopes, &at, t0)
					}
					if err != nil {
						return // revoked: the family is done
					}
					gen++
					mu.Lock()
					issued = append(issued, at.ID)
					mu.Unlock()
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
		for f := range families {
			fam, err := s.FamilyByID(ctx, fmt.Sprintf("fam-%d", f))
			must(t, err)
			if !fam.Revoked {
				t.Errorf("family %d is alive after the revocation", f)
			}
			_, err = s.RowlessAccessTokenFamily(ctx, "jwt", fam.ID, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
		for _, id := range issued {
			_, err := s.AccessTokenByID(ctx, id, t0)
			wantErr(t, err, storage.ErrNotFound)
		}
	}},
	{"revoking a family or its grant while it rotates leaves no token alive", func(t *testing.T, s storage.Store) {
		// Like a user's revocation above: reuse detection and /revoke must
		// not miss the token a rotation in flight is writing.
		for _, how := range []string{"family", "grant", "pre-family token"} {
			t.Run(how, func(t *testing.T) {
				ctx := t.Context()
				g := newGrant("ar-" + how)
				id := "fam-" + how
				must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-"+id, id, g), nil))
				var issued []string
				started := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := 1; i <= 1_000; i++ {
						at := newAccessToken(fmt.Sprintf("at-%s-%d", how, i), g, "")
						var err error
						if i == 1 {
							err = s.UpgradeRefreshToken(ctx, "rt-"+id, newFamily("", g), &at, t0)
						} else {
							_, err = s.RotateFamily(ctx, id, int64(i-1), g.Scopes, &at, t0)
						}
						if err != nil {
							return // revoked: the family is done
						}
						issued = append(issued, at.ID)
						if i == 3 {
							close(started)
						}
					}
					t.Error("rotations went on after the revocation")
				}()
				<-started
				switch how {
				case "family":
					must(t, s.RevokeFamily(ctx, id))
				case "grant":
					must(t, s.RevokeGrant(ctx, g.GrantID))
				case "pre-family token":
					must(t, s.RevokeRefreshFamily(ctx, "rt-"+id))
				}
				<-done
				_, err := s.RowlessAccessTokenFamily(ctx, "jwt", id, t0)
				wantErr(t, err, storage.ErrNotFound)
				for _, at := range issued {
					_, err := s.AccessTokenByID(ctx, at, t0)
					wantErr(t, err, storage.ErrNotFound)
				}
			})
		}
	}},
	{"tokens, families and revocation records that expired before now are deleted", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("ar1")
		for i, exp := range []time.Duration{-time.Hour, 0, time.Hour} {
			at := newAccessToken(fmt.Sprintf("at%d", i), g, "")
			at.ExpiresAt = t0.Add(exp)
			must(t, s.CreateAccessToken(ctx, at))
			rt := newRefreshToken(fmt.Sprintf("rt%d", i), fmt.Sprintf("fam%d", i), g)
			rt.ExpiresAt = t0.Add(exp)
			must(t, s.CreateRefreshToken(ctx, rt, nil))
			f := newFamily(fmt.Sprintf("f%d", i), g)
			f.ExpiresAt = t0.Add(exp)
			must(t, s.CreateFamily(ctx, f, nil))
			must(t, s.RevokeRowlessAccessToken(ctx, fmt.Sprintf("jwt%d", i), t0.Add(exp)))
		}
		n, err := s.DeleteExpiredTokens(ctx, t0)
		must(t, err)
		if n != 4 {
			t.Errorf("deleted %d, want 4 (one access token, refresh token, family and revocation record)", n)
		}
		_, err = s.AccessTokenByID(ctx, "at0", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RefreshTokenByID(ctx, "rt0", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.FamilyByID(ctx, "f0")
		wantErr(t, err, storage.ErrNotFound)
		for _, i := range []string{"1", "2"} {
			_, err = s.AccessTokenByID(ctx, "at"+i, t0)
			must(t, err)
			_, err = s.RefreshTokenByID(ctx, "rt"+i, t0)
			must(t, err)
			_, err = s.FamilyByID(ctx, "f"+i)
			must(t, err)
			// The records of revoked tokens not yet expired stay.
			_, err = s.RowlessAccessTokenFamily(ctx, "jwt"+i, "", t0)
			wantErr(t, err, storage.ErrNotFound)
		}
	}},
}
