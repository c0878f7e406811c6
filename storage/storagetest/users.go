package storagetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var userTests = []test{
	{"a created user reads back by id and by username with every field", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newUser("u1", "alice")
		must(t, s.CreateUser(ctx, want))
		got, err := s.UserByID(ctx, "u1")
		must(t, err)
		check(t, want, got)
		got, err = s.UserByUsername(ctx, "alice")
		must(t, err)
		check(t, want, got)

		// Booleans false and an empty password round-trip too.
		plain := newUser("u2", "bob")
		plain.Admin, plain.Disabled, plain.PasswordHash = false, false, ""
		must(t, s.CreateUser(ctx, plain))
		got, err = s.UserByID(ctx, "u2")
		must(t, err)
		check(t, plain, got)
	}},
	{"times come back in UTC with nanoseconds whatever zone they went in with", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		u := newUser("u1", "alice")
		u.CreatedAt = t0.In(zone)
		u.UpdatedAt = time.Date(2100, 12, 31, 23, 59, 59, 999999999, zone)
		must(t, s.CreateUser(ctx, u))
		got, err := s.UserByID(ctx, "u1")
		must(t, err)
		check(t, u, got) // Equal across zones, and checks UTC
		if got.CreatedAt.Nanosecond() != 6 || got.UpdatedAt.Nanosecond() != 999999999 {
			t.Errorf("nanoseconds lost: %v, %v", got.CreatedAt, got.UpdatedAt)
		}
	}},
	{"zero times stay zero", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		u := newUser("u1", "alice")
		u.CreatedAt, u.UpdatedAt = time.Time{}, time.Time{}
		must(t, s.CreateUser(ctx, u))
		got, err := s.UserByID(ctx, "u1")
		must(t, err)
		if !got.CreatedAt.IsZero() || !got.UpdatedAt.IsZero() {
			t.Errorf("zero times came back as %v, %v", got.CreatedAt, got.UpdatedAt)
		}
	}},
	{"a taken id or username gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		wantErr(t, s.CreateUser(ctx, newUser("u1", "bob")), storage.ErrAlreadyExists)
		wantErr(t, s.CreateUser(ctx, newUser("u2", "alice")), storage.ErrAlreadyExists)
		n, err := s.CountUsers(ctx)
		must(t, err)
		if n != 1 {
			t.Errorf("CountUsers = %d after failed creates, want 1", n)
		}
	}},
	{"an unknown user gives ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		_, err := s.UserByID(ctx, "nobody")
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.UserByUsername(ctx, "nobody")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"usernames match case-sensitively", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		_, err := s.UserByUsername(ctx, "Alice")
		wantErr(t, err, storage.ErrNotFound)
		must(t, s.CreateUser(ctx, newUser("u2", "Alice")))
	}},
	{"users are listed by username and counted", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		n, err := s.CountUsers(ctx)
		must(t, err)
		if n != 0 {
			t.Errorf("CountUsers on an empty store = %d", n)
		}
		users, err := s.ListUsers(ctx)
		must(t, err)
		check(t, []storage.User(nil), users)

		carol, alice, bob := newUser("u1", "carol"), newUser("u2", "alice"), newUser("u3", "bob")
		for _, u := range []storage.User{carol, alice, bob} {
			must(t, s.CreateUser(ctx, u))
		}
		users, err = s.ListUsers(ctx)
		must(t, err)
		check(t, []storage.User{alice, bob, carol}, users)
		n, err = s.CountUsers(ctx)
		must(t, err)
		if n != 3 {
			t.Errorf("CountUsers = %d, want 3", n)
		}
	}},
	{"updating a user replaces every mutable field and keeps CreatedAt", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		upd := storage.User{
			ID:                  "u1",
			Username:            "alice2",
			Email:               "new@example.com",
			EmailVerified:       false, // newUser's is verified
			PasswordHash:        "$argon2id$new",
			Admin:               false,
			Disabled:            false,
			PasswordCompromised: true,
			RiskFloor:           "urn:example:acr:floor",
			RiskFloorUntil:      t0.Add(24 * time.Hour),
			RiskFloorReason:     "device not compliant",
			RiskFloorNewDevices: true,
			Locale:              "de",
			CreatedAt:           t0.Add(time.Hour), // not mutable
			UpdatedAt:           t0.Add(2 * time.Hour),
		}
		must(t, s.UpdateUser(ctx, upd))
		got, err := s.UserByID(ctx, "u1")
		must(t, err)
		want := upd
		want.CreatedAt = t0
		check(t, want, got)
		_, err = s.UserByUsername(ctx, "alice")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"setting the saved language changes only it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		u := newUser("u1", "alice")
		must(t, s.CreateUser(ctx, u))
		must(t, s.SetUserLocale(ctx, "u1", "es"))
		got, err := s.UserByID(ctx, "u1")
		must(t, err)
		u.Locale = "es"
		check(t, u, got)
		wantErr(t, s.SetUserLocale(ctx, "nobody", "de"), storage.ErrNotFound)
	}},
	{"an email is stored verified, and the time it was, until an update clears it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		u := newUser("u1", "alice")
		u.EmailVerified, u.EmailVerifiedAt = false, time.Time{}
		must(t, s.CreateUser(ctx, u))
		got, err := s.UserByID(ctx, "u1")
		must(t, err)
		check(t, u, got)
		u.EmailVerified, u.EmailVerifiedAt = true, t0.Add(30*time.Minute)
		must(t, s.UpdateUser(ctx, u))
		got, err = s.UserByUsername(ctx, "alice")
		must(t, err)
		check(t, u, got)
	}},
	{"renaming a user to a taken username gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		must(t, s.CreateUser(ctx, newUser("u2", "bob")))
		wantErr(t, s.UpdateUser(ctx, newUser("u2", "alice")), storage.ErrAlreadyExists)
	}},
	{"updating an unknown user gives ErrNotFound", func(t *testing.T, s storage.Store) {
		wantErr(t, s.UpdateUser(t.Context(), newUser("nobody", "nobody")), storage.ErrNotFound)
	}},
}

var clientTests = []test{
	{"a created client reads back with every field", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newClient("rp")
		must(t, s.CreateClient(ctx, want))
		got, err := s.ClientByID(ctx, "rp")
		must(t, err)
		check(t, want, got)

		// The zero values round-trip too.
		bare := storage.Client{ID: "bare"}
		must(t, s.CreateClient(ctx, bare))
		got, err = s.ClientByID(ctx, "bare")
		must(t, err)
		check(t, bare, got)
	}},
	{"a taken client id gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateClient(ctx, newClient("rp")))
		wantErr(t, s.CreateClient(ctx, newClient("rp")), storage.ErrAlreadyExists)
	}},
	{"an unknown client gives ErrNotFound", func(t *testing.T, s storage.Store) {
		_, err := s.ClientByID(t.Context(), "nobody")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"clients are listed by id", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		for _, id := range []string{"c", "a", "b"} {
			must(t, s.CreateClient(ctx, newClient(id)))
		}
		got, err := s.ListClients(ctx)
		must(t, err)
		check(t, []storage.Client{newClient("a"), newClient("b"), newClient("c")}, got)
	}},
	{"updating a client replaces its fields", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateClient(ctx, newClient("rp")))
		upd := storage.Client{
			ID:                "rp",
			Name:              "Renamed",
			RedirectURIs:      []string{"https://new.example/cb"},
			AuthMethod:        "private_key_jwt",
			GrantTypes:        []string{"authorization_code"},
			IDTokenAlg:        "EdDSA",
			AccessTokenFormat: "jwt",
			JWKS:              `{"keys":[{"kty":"OKP"}]}`,
			CreatedAt:         t0,
			UpdatedAt:         t0.Add(time.Hour),
		}
		must(t, s.UpdateClient(ctx, upd))
		got, err := s.ClientByID(ctx, "rp")
		must(t, err)
		check(t, upd, got)
		wantErr(t, s.UpdateClient(ctx, newClient("nobody")), storage.ErrNotFound)
	}},
	{"a client's admin API grant is stored, changed and revoked by an update", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		c := newClient("robot")
		c.AdminAPI = storage.AdminAPIRead
		must(t, s.CreateClient(ctx, c))
		for _, grant := range []string{storage.AdminAPIWrite, ""} {
			c.AdminAPI = grant
			must(t, s.UpdateClient(ctx, c))
			got, err := s.ClientByID(ctx, "robot")
			must(t, err)
			if got.AdminAPI != grant {
				t.Fatalf("admin_api %q, want %q", got.AdminAPI, grant)
			}
		}
	}},
	{"deleting a client removes it and an unknown id gives ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateClient(ctx, newClient("a")))
		must(t, s.CreateClient(ctx, newClient("b")))
		must(t, s.DeleteClient(ctx, "a"))
		_, err := s.ClientByID(ctx, "a")
		wantErr(t, err, storage.ErrNotFound)
		got, err := s.ListClients(ctx)
		must(t, err)
		check(t, []storage.Client{newClient("b")}, got)
		wantErr(t, s.DeleteClient(ctx, "a"), storage.ErrNotFound)
	}},
}
