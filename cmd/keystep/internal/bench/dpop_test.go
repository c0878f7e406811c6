package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// refresh_dpop's client side: the code exchange and every refresh carry a
// proof of the worker's key, the server's nonce is picked up from the
// first refusal and kept, and the tokens come back bound to that key. The
// same refresh without the key is refused, so the scenario measures
// proofs the server really checks.
func TestRefreshDPoPBindsTokensToTheWorkersKey(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { slog.SetDefault(prev) })
	ts := httptest.NewUnstartedServer(nil)
	t.Cleanup(ts.Close)
	key := make([]byte, factor.MasterKeySize)
	_, _ = rand.Read(key)
	srv, err := idp.NewServer(ctx, idp.Config{
		Issuer: "http://" + ts.Listener.Addr().String(), Store: st, MasterKey: key, Policy: stepup.DefaultPolicy(),
		Logger: slog.New(slog.DiscardHandler), Hasher: factor.NewTestPasswordHasher(),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		RateLimits:     map[string]idp.RateLimit{},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()

	now := time.Now().UTC()
	c := client{id: "bench-dpop", secret: "s3cret"}
	if err := st.CreateClient(ctx, storage.Client{
		ID: c.id, Name: "bench", SecretHash: factor.HashToken(c.secret), AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{redirectURI},
		IDTokenAlg: "ES256", AccessTokenFormat: "jwt", FirstParty: true, DPoPBoundAccessTokens: true,
		CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	hash, err := factor.NewTestPasswordHasher().Hash("pw-123456789")
	if err != nil {
		t.Fatal(err)
	}
	u := &user{id: "bench-u", name: "bench-u", ip: "198.18.0.1"}
	if err := st.CreateUser(ctx, storage.User{ID: u.id, Username: u.name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}

	tgt, err := newTarget(ctx, ts.URL, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tgt.close)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if c.key, err = dpop.NewProver(k, jose.ES256); err != nil {
		t.Fatal(err)
	}
	code, a, err := tgt.browser(u.ip).signIn(ctx, c, "openid offline_access", u, "pw-123456789")
	if err != nil {
		t.Fatal(err)
	}
	if tgt.lastNonce() != "" {
		t.Fatal("a nonce before the first token request")
	}
	tr, err := tgt.exchange(ctx, c, code, a)
	if err != nil {
		t.Fatalf("code exchange with DPoP: %v", err)
	}
	if tgt.lastNonce() == "" {
		t.Error("the server's DPoP-Nonce was not kept")
	}
	for i := range 3 {
		if tr, err = tgt.refresh(ctx, c, tr.RefreshToken); err != nil {
			t.Fatalf("refresh %d with DPoP: %v", i, err)
		}
		if tr.TokenType != dpop.Scheme || accessJKT(t, tr.AccessToken) != c.key.JKT {
			t.Fatalf("refresh %d: token_type %q, cnf.jkt %q; want DPoP bound to %q", i, tr.TokenType, accessJKT(t, tr.AccessToken), c.key.JKT)
		}
	}
	bare := client{id: c.id, secret: c.secret}
	if _, err := tgt.refresh(ctx, bare, tr.RefreshToken); err == nil || !strings.Contains(err.Error(), dpop.CodeInvalidProof) {
		t.Errorf("a refresh without a proof: %v, want invalid_dpop_proof", err)
	}
}

// accessJKT is the cnf.jkt of a JWT access token, unverified.
func accessJKT(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWS: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Cnf.JKT
}
