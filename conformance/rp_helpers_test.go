package conformance

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

type oauth2TokenSource struct{ access string }

func (s oauth2TokenSource) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: s.access, TokenType: "Bearer"}, nil
}

func jwtAlg(t *testing.T, jwt string) string {
	t.Helper()
	head, _, _ := strings.Cut(jwt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("not a JWT: %q", jwt)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	_ = json.Unmarshal(raw, &h)
	return h.Alg
}
