package resource_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/resource"
)

func TestIntrospection(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithIntrospection(rsClientID, rsSecret))
	is.setOpaque("opaque-good", is.introspected(nil))
	is.setOpaque("opaque-inactive", is.introspected(map[string]any{"active": false}))
	is.setOpaque("opaque-expired", is.introspected(map[string]any{"exp": t0.Add(-time.Hour).Unix()}))
	is.setOpaque("opaque-foreign", is.introspected(map[string]any{"iss": "https://evil.example"}))
	is.setOpaque("opaque-refresh", is.introspected(map[string]any{"token_type": "refresh_token"}))
	is.setOpaque("opaque-minimal", map[string]any{"active": true, "scope": "openid", "client_id": "svc"})

	tests := []struct {
		name      string
		token     string
		want      resource.Claims
		ok        bool
		wantCalls int32
	}{
		{"an active opaque token passes with the introspected claims", "opaque-good", wantClaims, true, 1},
		{"a minimal active response passes with what it has", "opaque-minimal", resource.Claims{ClientID: "svc", Scope: []string{"openid"}}, true, 1},
		{"an inactive token is invalid", "opaque-inactive", resource.Claims{}, false, 1},
		{"a token the issuer does not know is invalid", "opaque-unknown", resource.Claims{}, false, 1},
		{"an active response past its exp is invalid", "opaque-expired", resource.Claims{}, false, 1},
		{"an active response from another issuer is invalid", "opaque-foreign", resource.Claims{}, false, 1},
		{"an active refresh token is invalid as a bearer token", "opaque-refresh", resource.Claims{}, false, 1},
		{"a JWT is still checked locally", is.sign(t, "es-1", "at+jwt", is.claims(nil)), wantClaims, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := is.introHits.Load()
			got, err := v.Verify(context.Background(), tt.token)
			if calls := is.introHits.Load() - before; calls != tt.wantCalls {
				t.Errorf("introspection called %d times, want %d", calls, tt.wantCalls)
			}
			if !tt.ok {
				if !errors.Is(err, resource.ErrInvalidToken) {
					t.Fatalf("Verify() error = %v, want ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Verify() claims mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("the request names the token and hints its type (RFC 7662 §2.1)", func(t *testing.T) {
		is.mu.Lock()
		defer is.mu.Unlock()
		last := is.introCalls[len(is.introCalls)-1]
		if last.Get("token") != "opaque-refresh" || last.Get("token_type_hint") != "access_token" {
			t.Errorf("introspection form = %v", last)
		}
	})
}

func TestIntrospectionStepUp(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithIntrospection(rsClientID, rsSecret))
	// RFC 9470 §6.2: acr and auth_time come from the introspection response.
	is.setOpaque("opaque-old", is.introspected(map[string]any{"auth_time": t0.Add(-time.Hour).Unix()}))
	w, seen := serve(t, v, resource.Requirement{ACR: []string{"urn:keystep:acr:mfa"}, MaxAge: 10 * time.Minute}, "Bearer opaque-old")
	want := `Bearer error="insufficient_user_authentication", error_description="The access token's authentication is too old", acr_values="urn:keystep:acr:mfa", max_age=600`
	if w.Code != http.StatusUnauthorized || seen != nil || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("got %d %q, want 401 %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
}

func TestIntrospectionOnly(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithIntrospection(rsClientID, rsSecret), resource.WithIntrospectionOnly())
	if n := is.jwksHits.Load(); n != 0 {
		t.Errorf("JWKS fetched %d times; introspection-only needs none", n)
	}
	jwt := is.sign(t, "es-1", "at+jwt", is.claims(nil))
	// A well-signed JWT the issuer no longer knows (revoked) is refused.
	if _, err := v.Verify(context.Background(), jwt); !errors.Is(err, resource.ErrInvalidToken) {
		t.Errorf("revoked JWT: error = %v, want ErrInvalidToken", err)
	}
	is.setOpaque(jwt, is.introspected(nil))
	got, err := v.Verify(context.Background(), jwt)
	if err != nil {
		t.Fatalf("active JWT: %v", err)
	}
	if diff := cmp.Diff(wantClaims, got); diff != "" {
		t.Errorf("claims mismatch (-want +got):\n%s", diff)
	}
	if n := is.introHits.Load(); n != 2 {
		t.Errorf("introspection called %d times, want 2", n)
	}
}

func TestIntrospectionWithWrongSecret(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithIntrospection(rsClientID, "wrong"))
	is.setOpaque("opaque-good", is.introspected(nil))
	_, err := v.Verify(context.Background(), "opaque-good")
	if err == nil || errors.Is(err, resource.ErrInvalidToken) {
		t.Errorf("Verify() error = %v; a rejected introspection call is not the token's fault", err)
	}
	w, _ := serve(t, v, resource.Requirement{}, "Bearer opaque-good")
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", w.Code)
	}
}
