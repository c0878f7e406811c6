package signin

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/stepup"
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
			got, err := NewRequirement(tt.claims, tt.acrValues, tt.client, floorsOf(tt.scopes, scopeMins))
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
		if got, err := NewRequirement(claims, []string{"phr"}, storage.Client{MinACR: "phr"}, nil); err == nil {
			t.Errorf("NewRequirement(%q) = %+v, want an error", claims, got)
		}
	}
}

func TestRaiseFloors(t *testing.T) {
	p := stepup.DefaultPolicy()
	scopeMins := map[string]string{"payments": "phr"}
	for _, tt := range []struct {
		name   string
		stored stepup.Input
		client storage.Client
		scopes []string
		want   stepup.Input
	}{
		{"nothing changed leaves the stored floors", stepup.Input{ClientMin: "urn:keystep:acr:mfa", ScopeMins: []string{"phr"}},
			storage.Client{MinACR: "urn:keystep:acr:mfa"}, []string{"openid", "payments"},
			stepup.Input{ClientMin: "urn:keystep:acr:mfa", ScopeMins: []string{"phr"}}},
		{"a client floor raised since the request raises it", stepup.Input{},
			storage.Client{MinACR: "urn:keystep:acr:mfa"}, nil, stepup.Input{ClientMin: "urn:keystep:acr:mfa"}},
		{"a client floor raised by an alias raises it", stepup.Input{ClientMin: "urn:keystep:acr:sfa"},
			storage.Client{MinACR: "http://schemas.openid.net/pape/policies/2007/06/phishing-resistant"}, nil,
			stepup.Input{ClientMin: "http://schemas.openid.net/pape/policies/2007/06/phishing-resistant"}},
		{"a client floor lowered since keeps the stored one", stepup.Input{ClientMin: "phr"},
			storage.Client{MinACR: "urn:keystep:acr:mfa"}, nil, stepup.Input{ClientMin: "phr"}},
		{"a floor the policy does not know fails closed in Decide", stepup.Input{ClientMin: "urn:keystep:acr:mfa"},
			storage.Client{MinACR: "gone"}, nil, stepup.Input{ClientMin: "gone"}},
		{"a client made strict since is strict", stepup.Input{},
			storage.Client{Strict: true}, nil, stepup.Input{Strict: true}},
		{"a scope floor added since applies", stepup.Input{},
			storage.Client{}, []string{"openid", "payments"}, stepup.Input{ScopeMins: []string{"phr"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.stored
			RaiseFloors(&got, p, tt.client, floorsOf(tt.scopes, scopeMins))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("input (-want +got):\n%s", diff)
			}
		})
	}
}

// floorsOf is the floors of the scopes with a minimum, in scope order.
func floorsOf(scopes []string, mins map[string]string) []string {
	var out []string
	for _, sc := range scopes {
		if m, ok := mins[sc]; ok {
			out = append(out, m)
		}
	}
	return out
}
