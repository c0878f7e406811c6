package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// withStore opens the data folder's database for a look behind the CLI's
// back, and closes it before returning.
func withStore(t *testing.T, data string, f func(st storage.Store)) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f(st)
}

// rawDB opens the database file directly, as an attacker with file access would.
func rawDB(t *testing.T, data string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func createUser(t *testing.T, data, name string, extra ...string) userJSON {
	t.Helper()
	r := mustKeystep(t, testPassword, append([]string{"users", "create", "--username", name, "--password-stdin", "--json", "--data", data}, extra...)...)
	var u userJSON
	if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
		t.Fatalf("users create --json: %v\n%s", err, r.stdout)
	}
	return u
}

func listUsers(t *testing.T, data string) []userJSON {
	t.Helper()
	r := mustKeystep(t, "", "users", "list", "--json", "--data", data)
	var list []userJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("users list --json: %v\n%s", err, r.stdout)
	}
	return list
}

// auditLog is `audit export` from the beginning, parsed.
func auditLog(t *testing.T, data string) []auditJSON {
	t.Helper()
	r := mustKeystep(t, "", "audit", "export", "--since", "2000-01-01T00:00:00Z", "--data", data)
	var out []auditJSON
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var e auditJSON
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit export line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func hasEvent(events []auditJSON, typ storage.EventType, userID, clientID string) bool {
	return slices.ContainsFunc(events, func(e auditJSON) bool {
		return e.Type == typ && e.UserID == userID && e.ClientID == clientID && e.ActorID == "cli" && e.Outcome == "success"
	})
}

func TestUsersCreate(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string // in stderr
		admin bool
	}{
		{name: "a user is created with the password from stdin", stdin: testPassword, args: []string{"--username", "alice", "--password-stdin"}},
		{name: "an administrator is created with --admin", stdin: testPassword, args: []string{"--username", "alice", "--password-stdin", "--admin"}, admin: true},
		{name: "the name may come as an argument", stdin: testPassword, args: []string{"alice", "--password-stdin"}},
		{name: "a password without a final newline is read whole", stdin: "correct horse", args: []string{"--username", "alice", "--password-stdin"}},
		{name: "a CRLF line ending is not part of the password", stdin: "correct horse\r\n", args: []string{"--username", "alice", "--password-stdin", "--email", "alice@example.com"}},
		{name: "a username with a space is refused", stdin: testPassword, args: []string{"--username", "al ice", "--password-stdin"}, code: 2, want: []string{"spaces"}},
		{name: "a username with a colon is refused", stdin: testPassword, args: []string{"--username", "al:ice", "--password-stdin"}, code: 2, want: []string{"':'"}},
		{name: "a missing username is refused", stdin: testPassword, args: []string{"--password-stdin"}, code: 2, want: []string{"Enter a username"}},
		{name: "a username of 65 characters is refused", stdin: testPassword, args: []string{"--username", strings.Repeat("a", 65), "--password-stdin"}, code: 2, want: []string{"at most 64"}},
		{name: "a short password is refused", stdin: "short\n", args: []string{"--username", "alice", "--password-stdin"}, code: 1, want: []string{"password"}},
		{name: "an empty stdin is refused", stdin: "", args: []string{"--username", "alice", "--password-stdin"}, code: 1, want: []string{"password"}},
		{name: "without --password-stdin it is a usage error", stdin: testPassword, args: []string{"--username", "alice"}, code: 2, want: []string{"--password-stdin is required", "Usage:"}},
		{name: "a malformed email is refused", stdin: testPassword, args: []string{"--username", "alice", "--password-stdin", "--email", "alice"}, code: 2, want: []string{`--email "alice"`}},
		{name: "two names are refused rather than one ignored", stdin: testPassword, args: []string{"alice", "bob", "--password-stdin"}, code: 2, want: []string{`unexpected argument "bob"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			r := keystep(t, tt.stdin, append([]string{"users", "create", "--data", d}, tt.args...)...)
			wantExit(t, r, tt.code, tt.want...)
			if tt.code != 0 {
				// Bad input changes nothing, not even the data folder.
				noFile(t, filepath.Join(d, "keystep.db"))
				return
			}
			if !strings.Contains(r.stdout, "created user alice") {
				t.Errorf("stdout: %s", r.stdout)
			}
			list := listUsers(t, d)
			if len(list) != 1 || list[0].Username != "alice" || list[0].Admin != tt.admin || list[0].Disabled {
				t.Fatalf("users list = %+v, want alice (admin %v)", list, tt.admin)
			}
			withStore(t, d, func(st storage.Store) {
				u, err := st.UserByUsername(t.Context(), "alice")
				if err != nil {
					t.Fatal(err)
				}
				want := strings.TrimRight(tt.stdin, "\r\n")
				if ok, err := factor.NewPasswordHasher().Verify(u.PasswordHash, want); err != nil || !ok {
					t.Errorf("stored hash does not verify the password %q: %v %v", want, ok, err)
				}
			})
			if !hasEvent(auditLog(t, d), "admin.user_created", list[0].ID, "") {
				t.Error("creation not audited")
			}
		})
	}
}

func TestUsersCreateJSON(t *testing.T) {
	d := t.TempDir()
	got := createUser(t, d, "alice", "--admin", "--email", "alice@example.com")
	want := userJSON{Username: "alice", Email: "alice@example.com", Admin: true}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(userJSON{}, "ID", "CreatedAt")); diff != "" {
		t.Errorf("users create --json (-want +got):\n%s", diff)
	}
	if got.ID == "" || got.CreatedAt.IsZero() {
		t.Errorf("no id or created_at: %+v", got)
	}
}

func TestUsersCreateTwiceSaysTheUserExists(t *testing.T) {
	d := t.TempDir()
	createUser(t, d, "alice")
	r := keystep(t, testPassword, "users", "create", "--username", "alice", "--password-stdin", "--data", d)
	wantExit(t, r, 1, `user "alice" already exists`)
	if strings.Contains(r.stderr, "Usage:") {
		t.Error("a duplicate is not a usage error, but the usage was printed")
	}
	if n := len(listUsers(t, d)); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

func TestUsersList(t *testing.T) {
	d := t.TempDir()
	if got := listUsers(t, d); got == nil || len(got) != 0 {
		t.Errorf("empty users list --json = %#v, want []", got)
	}
	createUser(t, d, "alice", "--admin")
	createUser(t, d, "bob")
	got := listUsers(t, d)
	want := []userJSON{{Username: "alice", Admin: true}, {Username: "bob"}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(userJSON{}, "ID", "CreatedAt"),
		cmpopts.SortSlices(func(a, b userJSON) bool { return a.Username < b.Username })); diff != "" {
		t.Errorf("users list --json (-want +got):\n%s", diff)
	}
	r := mustKeystep(t, "", "users", "list", "--data", d)
	if !strings.Contains(r.stdout, "USERNAME") || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "bob") {
		t.Errorf("users list table:\n%s", r.stdout)
	}
}

func TestUserActions(t *testing.T) {
	t0 := fixClock(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) // the command judges sessions and tokens live by its clock
	tests := []struct {
		action        string
		disabled      bool
		sessionsGone  bool
		factorsGone   bool
		tokensRevoked bool
	}{
		{action: "disable", disabled: true, sessionsGone: true, tokensRevoked: true},
		{action: "enable"},
		{action: "unlock"},
		// Whoever made the user lose their factors may hold their tokens.
		{action: "reset-factors", sessionsGone: true, factorsGone: true, tokensRevoked: true},
	}
	for _, tt := range tests {
		t.Run(tt.action+" works and is audited", func(t *testing.T) {
			d := t.TempDir()
			alice := createUser(t, d, "alice")
			if tt.action == "enable" {
				mustKeystep(t, "", "users", "disable", "alice", "--data", d)
			}
			withStore(t, d, func(st storage.Store) {
				ctx := t.Context()
				if err := st.CreateSession(ctx, storage.Session{ID: "s1", UserID: alice.ID, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				if err := st.CreateFactor(ctx, storage.Factor{ID: "f1", UserID: alice.ID, Kind: "totp", Name: "phone", Secret: []byte("x"), CreatedAt: t0}); err != nil {
					t.Fatal(err)
				}
				grant := storage.Grant{GrantID: "g1", ClientID: "rp", Subject: alice.ID, Scopes: []string{"openid"}}
				if err := st.CreateAccessToken(ctx, storage.AccessToken{ID: "at1", Grant: grant, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			})

			r := mustKeystep(t, "", "users", tt.action, "alice", "--json", "--reason", "ticket 42", "--data", d)
			var out map[string]string
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["result"] != "done" || out["user"] != "alice" {
				t.Errorf("--json output %q: %v", r.stdout, err)
			}

			if got := listUsers(t, d)[0].Disabled; got != tt.disabled {
				t.Errorf("disabled = %v, want %v", got, tt.disabled)
			}
			withStore(t, d, func(st storage.Store) {
				ctx := t.Context()
				_, err := st.SessionByID(ctx, "s1", t0)
				if gone := errors.Is(err, storage.ErrNotFound); gone != tt.sessionsGone {
					t.Errorf("session gone = %v (%v), want %v", gone, err, tt.sessionsGone)
				}
				fs, err := st.ListFactors(ctx, alice.ID)
				if err != nil {
					t.Fatal(err)
				}
				if gone := len(fs) == 0; gone != tt.factorsGone {
					t.Errorf("factors gone = %v, want %v", gone, tt.factorsGone)
				}
				_, err = st.AccessTokenByID(ctx, "at1", t0)
				if revoked := err != nil; revoked != tt.tokensRevoked {
					t.Errorf("access token revoked = %v (%v), want %v", revoked, err, tt.tokensRevoked)
				}
			})

			typ := storage.EventType("admin.user_" + strings.ReplaceAll(tt.action, "-", "_"))
			events := auditLog(t, d)
			if !hasEvent(events, typ, alice.ID, "") {
				t.Errorf("no %s event for alice in %+v", typ, events)
			}
			if !slices.ContainsFunc(events, func(e auditJSON) bool { return e.Type == typ && e.Reason == "ticket 42" }) {
				t.Errorf("the --reason is not in the %s event", typ)
			}
		})
	}
}

func TestUserActionsRefuse(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"an unknown user is named", []string{"disable", "nobody"}, 1, `no user "nobody"`},
		{"a missing name is a usage error", []string{"disable"}, 2, "name the user"},
		{"two names are a usage error", []string{"disable", "alice", "bob"}, 2, `unexpected argument "bob"`},
		{"a name both as flag and argument is a usage error", []string{"enable", "--username", "alice", "bob"}, 2, `unexpected argument "bob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			createUser(t, d, "alice")
			wantExit(t, keystep(t, "", append(append([]string{"users"}, tt.args...), "--data", d)...), tt.code, tt.want)
			if listUsers(t, d)[0].Disabled {
				t.Error("alice was disabled")
			}
		})
	}
}

func createClient(t *testing.T, data string, args ...string) clientJSON {
	t.Helper()
	r := mustKeystep(t, "", append([]string{"clients", "create", "--json", "--data", data}, args...)...)
	var c clientJSON
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatalf("clients create --json: %v\n%s", err, r.stdout)
	}
	return c
}

func listClients(t *testing.T, data string) []clientJSON {
	t.Helper()
	r := mustKeystep(t, "", "clients", "list", "--json", "--data", data)
	var list []clientJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("clients list --json: %v\n%s", err, r.stdout)
	}
	return list
}

func TestClientsCreatePrintsTheSecretOnceAndStoresItHashed(t *testing.T) {
	d := t.TempDir()
	c := createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	if len(c.Secret) < 20 {
		t.Fatalf("secret %q, want a generated secret", c.Secret)
	}
	want := clientJSON{ID: "rp", RedirectURIs: []string{"https://rp.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "RS256"}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreFields(clientJSON{}, "Secret")); diff != "" {
		t.Errorf("clients create --json (-want +got):\n%s", diff)
	}
	withStore(t, d, func(st storage.Store) {
		stored, err := st.ClientByID(t.Context(), "rp")
		if err != nil {
			t.Fatal(err)
		}
		if stored.SecretHash == c.Secret || strings.Contains(stored.SecretHash, c.Secret) {
			t.Error("the secret is stored in the clear")
		}
		if stored.SecretHash != factor.HashToken(c.Secret) {
			t.Error("the stored hash is not the hash of the printed secret")
		}
		if stored.AuthMethod != "client_secret_basic" || stored.Public || stored.RequirePKCE {
			t.Errorf("stored client %+v, want a confidential client_secret_basic client", stored)
		}
	})
	r := mustKeystep(t, "", "clients", "list", "--json", "--data", d)
	if strings.Contains(r.stdout, c.Secret) || strings.Contains(r.stdout, `"secret"`) {
		t.Errorf("clients list shows the secret:\n%s", r.stdout)
	}
	if !hasEvent(auditLog(t, d), "admin.client_created", "", "rp") {
		t.Error("creation not audited")
	}
}

func TestClientsCreateWithoutJSONPrintsTheSecret(t *testing.T) {
	d := t.TempDir()
	r := mustKeystep(t, "", "clients", "create", "--id", "rp", "--redirect-uri", "https://rp.example/cb", "--data", d)
	if !strings.Contains(r.stdout, "created client rp") || !strings.Contains(r.stdout, "shown once") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func TestClientsCreatePublicClientGetsNoSecret(t *testing.T) {
	d := t.TempDir()
	c := createClient(t, d, "--id", "spa", "--redirect-uri", "https://spa.example/cb", "--public")
	if c.Secret != "" || !c.Public {
		t.Errorf("public client %+v: want no secret", c)
	}
	r := mustKeystep(t, "", "clients", "create", "--id", "spa2", "--redirect-uri", "https://spa.example/cb", "--public", "--data", d)
	if strings.Contains(r.stdout, "secret") {
		t.Errorf("public client create mentions a secret:\n%s", r.stdout)
	}
	withStore(t, d, func(st storage.Store) {
		stored, err := st.ClientByID(t.Context(), "spa")
		if err != nil {
			t.Fatal(err)
		}
		if stored.SecretHash != "" || stored.AuthMethod != "none" || !stored.RequirePKCE {
			t.Errorf("stored public client %+v: want no secret, auth none, PKCE required", stored)
		}
	})
}

func TestClientsCreateAcceptsRedirectURIs(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"https with a path and query", []string{"--redirect-uri", "https://rp.example/cb?x=1"}},
		{"http on localhost", []string{"--redirect-uri", "http://localhost:3000/cb"}},
		{"http on 127.0.0.1", []string{"--redirect-uri", "http://127.0.0.1/cb"}},
		{"http on [::1]", []string{"--redirect-uri", "http://[::1]:8080/cb"}},
		{"several URIs", []string{"--redirect-uri", "https://a.example/cb", "--redirect-uri", "https://b.example/cb"}},
		{"a private-use scheme for a native app", []string{"--redirect-uri", "com.example.app:/cb", "--native", "--public"}},
		{"client credentials needs none", []string{"--grant", "client_credentials"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			createClient(t, d, append([]string{"--id", "rp"}, tt.args...)...)
		})
	}
}

func TestClientsCreateListsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"plain http for a public host", []string{"--id", "rp", "--redirect-uri", "http://rp.example/cb"},
			[]string{`"http://rp.example/cb" must use https`}},
		{"a fragment", []string{"--id", "rp", "--redirect-uri", "https://rp.example/cb#x"},
			[]string{`"https://rp.example/cb#x" must not have a fragment`}},
		{"an empty fragment", []string{"--id", "rp", "--redirect-uri", "https://rp.example/cb#"},
			[]string{"must not have a fragment"}},
		{"a relative URI", []string{"--id", "rp", "--redirect-uri", "/cb"},
			[]string{`"/cb" must be absolute`}},
		{"two bad URIs are both named", []string{"--id", "rp", "--redirect-uri", "http://rp.example/cb", "--redirect-uri", "/cb"},
			[]string{"http://rp.example/cb", `"/cb"`}},
		{"a bad post-logout URI", []string{"--id", "rp", "--redirect-uri", "https://rp.example/cb", "--post-logout-redirect-uri", "http://rp.example/bye"},
			[]string{"http://rp.example/bye"}},
		{"no redirect URI for the code flow", []string{"--id", "rp"},
			[]string{"at least one redirect URI is required"}},
		{"every kind of problem at once", []string{"--id", "r p", "--redirect-uri", "/cb", "--grant", "implicit", "--id-token-alg", "HS256"},
			[]string{`client ID "r p"`, `"/cb"`, `unknown grant type "implicit"`, `ID token algorithm "HS256"`}},
		{"a public client with client credentials", []string{"--id", "rp", "--public", "--grant", "client_credentials"},
			[]string{"public clients cannot use client_credentials"}},
		{"an unknown minimum acr", []string{"--id", "rp", "--redirect-uri", "https://rp.example/cb", "--min-acr", "gold"},
			[]string{`minimum acr "gold"`, "phr"}},
		{"the account portal's ID", []string{"--id", idp.AccountClientID, "--redirect-uri", "https://rp.example/cb"},
			[]string{"built-in"}},
		{"two IDs", []string{"rp", "other", "--redirect-uri", "https://rp.example/cb"},
			[]string{`unexpected argument "other"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			r := keystep(t, "", append([]string{"clients", "create", "--data", d}, tt.args...)...)
			wantExit(t, r, 2, tt.want...)
			noFile(t, filepath.Join(d, "keystep.db"))
		})
	}
}

func TestClientsCreateMinACRUsesTheConfiguredLevels(t *testing.T) {
	d := t.TempDir()
	createClient(t, d, "--id", "hr", "--redirect-uri", "https://hr.example/cb", "--min-acr", "phr")
	cfg := writeConfig(t, `{"levels": [{"acr": "basic", "requires": "any"}, {"acr": "gold", "requires": "mfa"}]}`)
	c := createClient(t, d, "--id", "payroll", "--redirect-uri", "https://payroll.example/cb", "--min-acr", "gold", "--config", cfg)
	if c.MinACR != "gold" {
		t.Errorf("min_acr %q, want gold", c.MinACR)
	}
	wantExit(t, keystep(t, "", "clients", "create", "--id", "x", "--redirect-uri", "https://x.example/cb", "--min-acr", "phr", "--config", cfg, "--data", d),
		2, `minimum acr "phr"`, "basic, gold")
}

func TestClientsCreateTwiceSaysTheClientExists(t *testing.T) {
	d := t.TempDir()
	createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	wantExit(t, keystep(t, "", "clients", "create", "--id", "rp", "--redirect-uri", "https://rp.example/cb", "--data", d), 1, `client "rp" already exists`)
}

func TestClientsList(t *testing.T) {
	d := t.TempDir()
	if got := listClients(t, d); got == nil || len(got) != 0 {
		t.Errorf("empty clients list --json = %#v, want []", got)
	}
	createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb", "--name", "Relying Party", "--id-token-alg", "ES256", "--strict", "--first-party")
	createClient(t, d, "--id", "spa", "--redirect-uri", "https://spa.example/cb", "--public", "--min-acr", "phr")
	want := []clientJSON{
		{ID: "rp", Name: "Relying Party", RedirectURIs: []string{"https://rp.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
			IDTokenAlg: "ES256", Strict: true, FirstParty: true},
		{ID: "spa", RedirectURIs: []string{"https://spa.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
			IDTokenAlg: "RS256", Public: true, MinACR: "phr"},
	}
	if diff := cmp.Diff(want, listClients(t, d), cmpopts.SortSlices(func(a, b clientJSON) bool { return a.ID < b.ID })); diff != "" {
		t.Errorf("clients list --json (-want +got):\n%s", diff)
	}
	r := mustKeystep(t, "", "clients", "list", "--data", d)
	if !strings.Contains(r.stdout, "REDIRECT URIS") || !strings.Contains(r.stdout, "https://spa.example/cb") {
		t.Errorf("clients list table:\n%s", r.stdout)
	}
}

func TestClientsDeleteForgetsTheClient(t *testing.T) {
	d := t.TempDir()
	alice := createUser(t, d, "alice")
	createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb", "--grant", "authorization_code,refresh_token,client_credentials")
	createClient(t, d, "--id", "other", "--redirect-uri", "https://other.example/cb")
	t0 := fixClock(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) // the command judges tokens live by its clock
	withStore(t, d, func(st storage.Store) {
		ctx := t.Context()
		for _, tok := range []struct{ id, subject, client string }{
			{"user-at", alice.ID, "rp"}, {"cc-at", "", "rp"}, {"other-at", alice.ID, "other"},
		} {
			g := storage.Grant{GrantID: tok.id, ClientID: tok.client, Subject: tok.subject, Scopes: []string{"openid"}}
			if err := st.CreateAccessToken(ctx, storage.AccessToken{ID: tok.id, Grant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		g := storage.Grant{GrantID: "g", ClientID: "rp", Subject: alice.ID, Scopes: []string{"openid", "offline_access"}}
		if err := st.CreateRefreshToken(ctx, storage.RefreshToken{ID: "user-rt", FamilyID: "user-rt", Grant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveConsent(ctx, alice.ID, "rp", []string{"openid", "email"}, t0); err != nil {
			t.Fatal(err)
		}
	})

	r := mustKeystep(t, "", "clients", "delete", "rp", "--json", "--data", d)
	var out map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["result"] != "deleted" {
		t.Errorf("--json output %q: %v", r.stdout, err)
	}

	if got := listClients(t, d); len(got) != 1 || got[0].ID != "other" {
		t.Errorf("clients after delete: %+v, want only other", got)
	}
	withStore(t, d, func(st storage.Store) {
		ctx := t.Context()
		for _, id := range []string{"user-at", "cc-at"} {
			if _, err := st.AccessTokenByID(ctx, id, t0); err == nil {
				t.Errorf("access token %s of the deleted client still works", id)
			}
		}
		if _, err := st.RefreshTokenByID(ctx, "user-rt", t0); err == nil {
			t.Error("refresh token of the deleted client still works")
		}
		if _, err := st.AccessTokenByID(ctx, "other-at", t0); err != nil {
			t.Errorf("another client's token was revoked: %v", err)
		}
		// A new client under the same ID must not inherit the old consent.
		if scopes, err := st.ConsentedScopes(ctx, alice.ID, "rp"); err != nil || scopes != nil {
			t.Errorf("consent for the deleted client: %v, %v", scopes, err)
		}
	})
	if !hasEvent(auditLog(t, d), "admin.client_deleted", "", "rp") {
		t.Error("deletion not audited")
	}
}

func TestClientsDeleteRefuses(t *testing.T) {
	d := t.TempDir()
	startServerCode(t, d) // creates the account portal's client
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"the account portal's client", []string{idp.AccountClientID}, 1, "built in"},
		{"an unknown client", []string{"nope"}, 1, `no client "nope"`},
		{"no client named", nil, 2, "name the client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantExit(t, keystep(t, "", append([]string{"clients", "delete", "--data", d}, tt.args...)...), tt.code, tt.want)
		})
	}
	if got := listClients(t, d); len(got) != 1 || got[0].ID != idp.AccountClientID {
		t.Errorf("clients = %+v, want the account client still there", got)
	}
}

func TestKeysRotate(t *testing.T) {
	d := t.TempDir()
	startServerCode(t, d) // idp.EnsureKeys: one key per algorithm
	var before []storage.SigningKey
	withStore(t, d, func(st storage.Store) {
		var err error
		if before, err = st.ListSigningKeys(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if len(before) != 3 {
		t.Fatalf("%d keys after start, want 3", len(before))
	}

	r := mustKeystep(t, "", "keys", "rotate", "--json", "--data", d)
	var added []struct {
		Kid       string    `json:"kid"`
		Alg       string    `json:"alg"`
		ActiveAt  time.Time `json:"active_at"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &added); err != nil {
		t.Fatalf("keys rotate --json: %v\n%s", err, r.stdout)
	}
	var algs []string
	for _, k := range added {
		algs = append(algs, k.Alg)
		if k.Kid == "" || k.ActiveAt.IsZero() || !k.ExpiresAt.IsZero() {
			t.Errorf("new key %+v: want a kid, an activation time and no expiry", k)
		}
	}
	slices.Sort(algs)
	if want := []string{"ES256", "EdDSA", "RS256"}; !slices.Equal(algs, want) {
		t.Errorf("rotated algorithms %v, want %v", algs, want)
	}

	withStore(t, d, func(st storage.Store) {
		after, err := st.ListSigningKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != 6 {
			t.Fatalf("%d keys after rotation, want 6", len(after))
		}
		for _, k := range after {
			old := slices.ContainsFunc(before, func(b storage.SigningKey) bool { return b.ID == k.ID })
			if retired := !k.ExpiresAt.IsZero() && !k.RetiredAt.IsZero(); retired != old {
				t.Errorf("key %s (%s, old %v): retired_at %v, expires_at %v", k.ID, k.Algorithm, old, k.RetiredAt, k.ExpiresAt)
			}
		}
	})
	// The new keys are sealed with the data folder's master key: the
	// server can load them.
	startServerCode(t, d)

	if !slices.ContainsFunc(auditLog(t, d), func(e auditJSON) bool { return e.Type == "admin.keys_rotated" }) {
		t.Error("rotation not audited")
	}
	r = mustKeystep(t, "", "keys", "list", "--data", d)
	if n := strings.Count(r.stdout, "\n"); n != 7 {
		t.Errorf("keys list has %d lines, want a header and 6 keys:\n%s", n, r.stdout)
	}
}

func TestKeysRotateRefusesANegativeDelay(t *testing.T) {
	d := t.TempDir()
	wantExit(t, keystep(t, "", "keys", "rotate", "--activate-in", "-1h", "--data", d), 2, "negative")
	noFile(t, filepath.Join(d, "keystep.db"))
}

func TestAuditVerify(t *testing.T) {
	tests := []struct {
		name   string
		tamper string // SQL run against the database file
		want   []string
	}{
		{"an edited reason", `UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 2`, []string{"row 2", "edited"}},
		{"an edited type", `UPDATE audit_events SET type = 'admin.user_enable' WHERE seq = 3`, []string{"row 3"}},
		{"a deleted row", `DELETE FROM audit_events WHERE seq = 2`, []string{"row 2", "missing"}},
		{"a deleted last row followed by a forged one", `DELETE FROM audit_events WHERE seq = 3; INSERT INTO audit_events SELECT 3, time, type, user_id, actor_id, client_id, ip, user_agent, outcome, 'forged', details, prev_hash, hash FROM audit_events WHERE seq = 2`, []string{"row 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is found and named", func(t *testing.T) {
			d := t.TempDir()
			createUser(t, d, "alice")
			createUser(t, d, "bob")
			mustKeystep(t, "", "users", "unlock", "bob", "--data", d)
			r := mustKeystep(t, "", "audit", "verify", "--data", d)
			if !strings.Contains(r.stdout, "audit chain intact: 3 rows") {
				t.Errorf("verify before tampering:\n%s", r.stdout)
			}

			if _, err := rawDB(t, d).ExecContext(t.Context(), tt.tamper); err != nil {
				t.Fatal(err)
			}

			wantExit(t, keystep(t, "", "audit", "verify", "--data", d), 1, tt.want...)
			r = keystep(t, "", "audit", "verify", "--json", "--data", d)
			wantExit(t, r, 1)
			var out struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("verify --json: %v\n%s", err, r.stdout)
			}
			if out.OK || !strings.Contains(out.Error, tt.want[0]) {
				t.Errorf("verify --json = %+v, want not ok, naming %s", out, tt.want[0])
			}
		})
	}
}

func TestAuditVerifyOnAFreshLog(t *testing.T) {
	d := t.TempDir()
	r := mustKeystep(t, "", "audit", "verify", "--data", d)
	if !strings.Contains(r.stdout, "audit chain intact: 0 rows") {
		t.Errorf("stdout: %s", r.stdout)
	}
	r = mustKeystep(t, "", "audit", "verify", "--json", "--data", d)
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["ok"] != true {
		t.Errorf("verify --json = %s (%v)", r.stdout, err)
	}
}

func TestAuditExport(t *testing.T) {
	d := t.TempDir()
	alice := createUser(t, d, "alice")
	mustKeystep(t, "", "users", "disable", "alice", "--data", d)
	createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")

	events := auditLog(t, d)
	var types []storage.EventType
	for _, e := range events {
		types = append(types, e.Type)
	}
	if want := []storage.EventType{"admin.user_created", "admin.user_disable", "session.revoked_all", "admin.client_created"}; !slices.Equal(types, want) {
		t.Errorf("exported types %v, want %v", types, want)
	}
	// The export carries everything needed to check the chain elsewhere.
	var chain []storage.AuditEvent
	for _, e := range events {
		chain = append(chain, storage.AuditEvent{Seq: e.Seq, Time: e.Time, Type: e.Type, UserID: e.UserID, ActorID: e.ActorID,
			ClientID: e.ClientID, IP: e.IP, UserAgent: e.UserAgent, Outcome: e.Outcome, Reason: e.Reason, Details: e.Details,
			PrevHash: e.PrevHash, Hash: e.Hash})
	}
	key, err := storage.NewAuditKey(readMasterKey(t, d))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.VerifyAuditChain(key, chain); err != nil {
		t.Errorf("exported rows do not verify: %v", err)
	}

	r := mustKeystep(t, "", "audit", "export", "--data", d)
	first := strings.SplitN(r.stdout, "\n", 2)[0]
	var raw map[string]any
	if err := json.Unmarshal([]byte(first), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seq", "time", "type", "user_id", "actor_id", "outcome", "hash"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("exported line lacks %q: %s", k, first)
		}
	}
	if raw["user_id"] != alice.ID {
		t.Errorf("user_id = %v, want %s", raw["user_id"], alice.ID)
	}

	// A second after the last event (--since is whole seconds): nothing.
	after := events[len(events)-1].Time.Add(time.Second).UTC().Format(time.RFC3339)
	if r := mustKeystep(t, "", "audit", "export", "--since", after, "--data", d); r.stdout != "" {
		t.Errorf("export since after the last event:\n%s", r.stdout)
	}
}

func TestAuditExportRefusesABadSince(t *testing.T) {
	for _, since := range []string{"yesterday", "2000-01-01", "2000-01-01T00:00:00"} {
		t.Run(since, func(t *testing.T) {
			d := t.TempDir()
			wantExit(t, keystep(t, "", "audit", "export", "--since", since, "--data", d), 2, "--since")
			noFile(t, filepath.Join(d, "keystep.db"))
		})
	}
}

// writeConfig writes a --config file and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keystep.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientsCreateWithPrivateKeyJWT(t *testing.T) {
	data := t.TempDir()
	dir := t.TempDir()
	good := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(good, []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := createClient(t, data, "--id", "svc", "--grant", "client_credentials", "--jwks-file", good)
	if c.Secret != "" {
		t.Fatal("a private_key_jwt client got a secret")
	}
	withStore(t, data, func(st storage.Store) {
		cl, err := st.ClientByID(t.Context(), "svc")
		if err != nil || cl.AuthMethod != "private_key_jwt" || cl.JWKS == "" || cl.SecretHash != "" {
			t.Fatalf("%+v %v", cl, err)
		}
	})
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := keystep(t, "", "clients", "create", "--data", t.TempDir(), "--id", "svc2", "--grant", "client_credentials", "--jwks-file", bad)
	if r.code != 2 || !strings.Contains(r.stderr, "JSON Web Key Set") {
		t.Fatalf("%d %s", r.code, r.stderr)
	}
}
