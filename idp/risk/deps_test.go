package risk

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps pins DESIGN §2: idp/risk imports the standard library only.
func TestDeps(t *testing.T) {
	const self = "github.com/keystep/keystep/idp/risk"
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
