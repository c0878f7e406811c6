package idp

import (
	"encoding/base64"
	"testing"
)

func TestAccessTokenTyped(t *testing.T) {
	tok := func(header string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(header)) + ".e30.sig"
	}
	for name, tt := range map[string]struct {
		token string
		want  bool
	}{
		"typ at+jwt (RFC 9068 §2.1)":                   {tok(`{"alg":"ES256","typ":"at+jwt"}`), true},
		"typ application/at+jwt":                       {tok(`{"alg":"ES256","typ":"application/at+jwt"}`), true},
		"typ JWT, signed before Keystep typed its own": {tok(`{"alg":"ES256","typ":"JWT"}`), true},
		"typ logout+jwt":                               {tok(`{"alg":"ES256","typ":"logout+jwt"}`), false},
		"typ dpop+jwt (a proof is not a token)":        {tok(`{"alg":"ES256","typ":"dpop+jwt"}`), false},
		"no typ":                                       {tok(`{"alg":"ES256"}`), false},
		"a header that is not JSON":                    {tok(`{`), false},
		"a header that is not base64url":               {"!!.e30.sig", false},
		"no dot":                                       {"opaque", false},
	} {
		if got := accessTokenTyped(tt.token); got != tt.want {
			t.Errorf("%s: accessTokenTyped = %v, want %v", name, got, tt.want)
		}
	}
}
