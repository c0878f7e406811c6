package resource_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps idp/resource light for the APIs that import it: the
// standard library, go-jose and idp/dpop (itself std + go-jose) only, and
// no other Keystep package, so an API never links the provider.
func TestDeps(t *testing.T) {
	const self = "github.com/keystep/keystep/idp/resource"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != self && dep != "github.com/keystep/keystep/idp/dpop" && !strings.HasPrefix(dep, "github.com/go-jose/go-jose/v4") {
			t.Errorf("%s may import the standard library, go-jose and idp/dpop only; found %s", self, dep)
		}
	}
}
