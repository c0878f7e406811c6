package keystep_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDependencyDirection pins DESIGN §2: pure packages use only the
// standard library, login never imports idp or the OP library, login's
// parts (admin, web, throttle, factor) never import login and the plain-Go
// ones no HTTP, only cmd (its tools in cmd/keystep/internal included) picks
// a storage backend, and the provider never imports cmd: not the command,
// and not the demo app, the simulator or the benchmark harness. Nothing but
// tests imports the conformance packages, the browser harness
// conformance/chrome included.
func TestDependencyDirection(t *testing.T) {
	// -e: an import the compiler refuses (cmd/keystep/internal from the
	// provider, a cycle) is still listed, and reported below by its rule.
	out, err := exec.Command("go", "list", "-e", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			imports[f[0]] = f[1:]
		}
	}
	const mod = "github.com/keystep/keystep"
	// The provider: what `keystep serve` runs. The tools around it live in
	// cmd/keystep/internal.
	provider := []string{mod + "/idp", mod + "/login", mod + "/storage", mod + "/templates", mod + "/static"}
	within := func(pkg string, roots ...string) bool {
		for _, r := range roots {
			if pkg == r || strings.HasPrefix(pkg, r+"/") {
				return true
			}
		}
		return false
	}
	stdOnly := []string{mod + "/storage", mod + "/idp/stepup", mod + "/idp/risk", mod + "/idp/details"}
	for _, pkg := range stdOnly {
		for _, imp := range imports[pkg] {
			if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				t.Errorf("%s imports %s; it may use the standard library only", pkg, imp)
			}
		}
	}
	for pkg, imps := range imports {
		if !strings.HasPrefix(pkg, mod+"/") {
			continue
		}
		for _, imp := range imps {
			if strings.HasPrefix(pkg, mod+"/login") && (imp == mod+"/idp" || strings.HasPrefix(imp, "github.com/zitadel/")) {
				t.Errorf("%s imports %s; login must not know the OP", pkg, imp)
			}
			backend := within(imp, mod+"/storage/sqlite", mod+"/storage/postgres")
			if backend && !within(pkg, mod+"/cmd/keystep") && !strings.HasPrefix(pkg, mod+"/storage/") {
				t.Errorf("%s imports %s; only cmd picks the backend", pkg, imp)
			}
			if imp == mod+"/cmd/keystep" {
				t.Errorf("%s imports the command", pkg)
			}
			if within(pkg, provider...) && within(imp, mod+"/cmd") {
				t.Errorf("%s imports %s; the provider never imports the tools around it", pkg, imp)
			}
			// conformance/chrome is a library for tests (it drives Chromium
			// and fails a *testing.T); go list without -test sees no test
			// files, so any import it lists is one the binary would carry.
			if within(imp, mod+"/conformance") && !within(pkg, mod+"/conformance") {
				t.Errorf("%s imports %s; only tests may use the conformance packages", pkg, imp)
			}
			// The UI's own parts sit below it: they never reach back up.
			if strings.HasPrefix(pkg, mod+"/login/") && imp == mod+"/login" {
				t.Errorf("%s imports %s; only the UI package uses its parts, not the other way", pkg, imp)
			}
		}
	}
	// The admin operations, the throttle scheme, the factors and what a
	// sign-in is (signin) are plain Go that the CLI calls too: no HTTP, no
	// pages.
	for _, pkg := range []string{mod + "/login/admin", mod + "/login/throttle", mod + "/login/factor", mod + "/login/signin"} {
		for _, imp := range imports[pkg] {
			if imp == "net/http" || imp == "html/template" {
				t.Errorf("%s imports %s; it does no HTTP", pkg, imp)
			}
		}
	}
	// Leaf plumbing: login/web and login/throttle build on storage (and
	// web on factor's token hash) and nothing else of ours or anyone's.
	leaves := map[string][]string{
		mod + "/login/web":      {mod + "/storage", mod + "/login/factor"},
		mod + "/login/throttle": {mod + "/storage", mod + "/idp/stepup"},
		// The mail sender: the standard library (net/smtp), no mail library,
		// and the catalogs its messages are written from; the SMTP server it
		// is tested against is a test import.
		mod + "/login/mail": {mod + "/login/i18n"},
		// The catalogs: golang.org/x/text's message catalogs and plural
		// rules, nothing of Keystep's.
		mod + "/login/i18n": {"golang.org/x/text/feature/plural", "golang.org/x/text/language", "golang.org/x/text/message", "golang.org/x/text/message/catalog"},
	}
	for pkg, allowed := range leaves {
		for _, imp := range imports[pkg] {
			std := !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".")
			if !std && !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s; it may use the standard library and %s only", pkg, imp, strings.Join(allowed, ", "))
			}
		}
	}
}
