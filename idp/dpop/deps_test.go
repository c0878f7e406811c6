package dpop_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps idp/dpop importable by idp/resource: the standard library
// and go-jose only.
func TestDeps(t *testing.T) {
	const self = "github.com/keystep/keystep/idp/dpop"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != self && !strings.HasPrefix(dep, "github.com/go-jose/go-jose/v4") {
			t.Errorf("%s may import the standard library and go-jose only; found %s", self, dep)
		}
	}
}
