package signin

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/storage"
)

func TestNewRequirement(t *testing.T) {
	scopeMins := map[string]string{"payments": "phr", "profile": "urn:keystep:acr:mfa"}
	client := storage.Client{ID: "rp", MinACR: "urn:keystep:acr:mfa", Strict: true}
	for _, tt := range []struct {
		name      string
		claims    string
		acrValues []string
		client    storage.Client
		scopes    []string
		want      storage.Requirement
	}{
		{"a plain request asks for nothing", "", nil, storage.Client{ID: "rp"}, []string{"openid"}, storage.Requirement{}},
		{"acr_values keep their order", "", []string{"phr", "urn:keystep:acr:mfa"}, storage.Client{}, nil,
			storage.Requirement{ACR: []string{"phr", "urn:keystep:acr:mfa"}}},
		{"the claims parameter comes before acr_values, without repeats",
			`{"id_token":{"acr":{"values":["phrh","phr"]}}}`, []string{"phr", "urn:keystep:acr:sfa"}, storage.Client{}, nil,
			storage.Requirement{ACR: []string{"phrh", "phr", "urn:keystep:acr:sfa"}}},
		{"an essential acr claim makes the request essential",
			`{"userinfo":{"acr":{"essential":true,"value":"phr"}}}`, nil, storage.Client{}, nil,
			storage.Requirement{ACR: []string{"phr"}, Essential: true}},
		{"the client's floor and strictness are kept", "", nil, client, nil,
			storage.Requirement{ClientMin: "urn:keystep:acr:mfa", Strict: true}},
		{"each requested scope with a minimum adds its floor", "", nil, storage.Client{}, []string{"openid", "payments", "profile"},
			storage.Requirement{ScopeMins: []string{"phr", "urn:keystep:acr:mfa"}}},
		{"null members are absent", `{"id_token":null,"userinfo":{"acr":null}}`, nil, storage.Client{}, nil, storage.Requirement{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewRequirement(tt.claims, tt.acrValues, tt.client, tt.scopes, scopeMins)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("requirement (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRequirementRefusesMalformedClaims(t *testing.T) {
	for _, claims := range []string{
		`[]`, `null`, `"acr"`, `{"id_token":{}} {}`, `{"id_token":[]}`, `{"id_token":{"acr":"phr"}}`,
		`{"id_token":{"acr":{"values":"phr"}}}`, `{`,
	} {
		if got, err := NewRequirement(claims, []string{"phr"}, storage.Client{MinACR: "phr"}, nil, nil); err == nil {
			t.Errorf("NewRequirement(%q) = %+v, want an error", claims, got)
		}
	}
}
