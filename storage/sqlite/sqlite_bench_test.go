package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
	"github.com/keystep/keystep/storage/storagetest"
)

// The storage calls on the hot paths of the token endpoint and the login
// flow (issue 9). Each runs against a file database in WAL mode, as the
// server does:
//
//	go test ./storage/sqlite -run '^$' -bench . -benchmem

func openBench(b *testing.B) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchGrant is a stepped-up sign-in's grant, as every token carries it.
var benchGrant = storage.Grant{
	GrantID: "g1", ClientID: "payroll", Subject: "u1",
	Scopes: []string{"openid", "profile", "offline_access"}, Audience: []string{"payroll"},
	ACR: "urn:keystep:acr:mfa", AMR: []string{"pwd", "otp", "mfa"}, AuthTime: t0, SessionID: "s1",
}

func BenchmarkCreateAccessToken(b *testing.B) {
	s := openBench(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		t := storage.AccessToken{ID: fmt.Sprint("at-", i), Grant: benchGrant, RefreshID: "rt", CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}
		if err := s.CreateAccessToken(b.Context(), t); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAccessTokenByID(b *testing.B) {
	s := openBench(b)
	t := storage.AccessToken{ID: "at", Grant: benchGrant, CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}
	if err := s.CreateAccessToken(b.Context(), t); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AccessTokenByID(b.Context(), "at", t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRotateFamily is one step of a refresh chain: the one write of
// every refresh grant, an update of the family row in place (a JWT access
// token has no row).
func BenchmarkRotateFamily(b *testing.B) {
	s := openBench(b)
	f := storage.Family{ID: "f", Grant: benchGrant, CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)}
	if err := s.CreateFamily(b.Context(), f, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	gen := int64(0)
	for b.Loop() {
		if _, err := s.RotateFamily(b.Context(), "f", gen, benchGrant.Scopes, nil, t0); err != nil {
			b.Fatal(err)
		}
		gen++
	}
}

func BenchmarkFamilyByID(b *testing.B) {
	s := openBench(b)
	f := storage.Family{ID: "f", Grant: benchGrant, CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)}
	if err := s.CreateFamily(b.Context(), f, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.FamilyByID(b.Context(), "f"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRefreshTokenByID(b *testing.B) {
	s := openBench(b)
	t := storage.RefreshToken{ID: "rt", FamilyID: "rt", Grant: benchGrant, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateRefreshToken(b.Context(), t, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.RefreshTokenByID(b.Context(), "rt", t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientByID runs once or more per token request (client
// authentication, then the grant's own checks).
func BenchmarkClientByID(b *testing.B) {
	s := openBench(b)
	c := storage.Client{ID: "payroll", Name: "Acme Payroll", SecretHash: "h", RedirectURIs: []string{"https://payroll.example/cb"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256",
		CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateClient(b.Context(), c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ClientByID(b.Context(), "payroll"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthRequestByID is read on every step of the login flow.
func BenchmarkAuthRequestByID(b *testing.B) {
	s := openBench(b)
	maxAge := int64(300)
	r := storage.AuthRequest{
		ID: "ar", ClientID: "payroll", RedirectURI: "https://payroll.example/cb",
		Scopes: []string{"openid", "profile"}, ResponseType: "code", State: "state", Nonce: "nonce",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
		MaxAge: &maxAge, ACRValues: []string{"urn:keystep:acr:mfa"}, BrowserBinding: "b",
		CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Minute),
	}
	if err := s.CreateAuthRequest(b.Context(), r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AuthRequestByID(b.Context(), "ar", t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendAudit appends to the hash chain: read the last row, hash,
// insert, in one transaction.
func BenchmarkAppendAudit(b *testing.B) {
	s := openBench(b)
	e := storage.AuditEvent{Time: t0, Type: "signin.password", UserID: "u1", ClientID: "payroll",
		IP: "192.0.2.1", UserAgent: "Mozilla/5.0", Outcome: "success", Details: map[string]string{"acr": "urn:keystep:acr:sfa"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AppendAudit(b.Context(), storagetest.AuditKey, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUseTOTPStep records a TOTP step as used (the insert that makes
// a code single-use).
func BenchmarkUseTOTPStep(b *testing.B) {
	s := openBench(b)
	b.ReportAllocs()
	var step int64
	for b.Loop() {
		step++
		if err := s.UseTOTPStep(b.Context(), "u1", step, t0); err != nil {
			b.Fatal(err)
		}
	}
}
