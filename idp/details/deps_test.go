package details

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps idp/details pure: the standard library only, so the
// provider, the CLI and any tool can use the policy without pulling in
// anything else.
func TestDeps(t *testing.T) {
	const self = "github.com/keystep/keystep/idp/details"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != self {
			t.Errorf("%s must depend on the standard library only; found %s", self, dep)
		}
	}
}
