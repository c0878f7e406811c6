package adminapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keystep/keystep/storage"
)

func TestCan(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		grant  string
		need   string
		want   bool
	}{
		{"a read token of a read client reads", []string{ScopeRead}, storage.AdminAPIRead, ScopeRead, true},
		{"a read token does not write", []string{ScopeRead}, storage.AdminAPIWrite, ScopeWrite, false},
		{"a write token reads", []string{ScopeWrite}, storage.AdminAPIWrite, ScopeRead, true},
		{"a write token writes", []string{"other", ScopeWrite}, storage.AdminAPIWrite, ScopeWrite, true},
		{"a write token of a client narrowed to read only reads", []string{ScopeWrite}, storage.AdminAPIRead, ScopeRead, true},
		{"a write token of a client narrowed to read does not write", []string{ScopeWrite}, storage.AdminAPIRead, ScopeWrite, false},
		{"a token of a client no longer granted does nothing", []string{ScopeWrite}, "", ScopeRead, false},
		{"a token without the scopes does nothing", []string{"ssf.manage"}, storage.AdminAPIWrite, ScopeRead, false},
		{"a grant that is not read or write grants nothing", []string{ScopeWrite}, "admin", ScopeRead, false},
	}
	for _, tt := range tests {
		if got := can(tt.scopes, tt.grant, tt.need); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The embedded document is OpenAPI 3.1 and names exactly the routes
// served (the end-to-end walk is conformance's
// TestAdminAPIOpenAPIMatchesTheHandlers).
func TestOpenAPINamesTheRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: %v, version %q", err, doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	for _, r := range Routes() {
		k := r.Method + " " + r.Path
		if !documented[k] {
			t.Errorf("%s is served but not documented", k)
		}
		delete(documented, k)
	}
	for k := range documented {
		t.Errorf("%s is documented but not served", k)
	}
}
