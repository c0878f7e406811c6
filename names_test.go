package keystep_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

// definitions are the files that give the names their values; a literal
// there is the definition itself.
var definitions = []string{
	"storage/event.go",     // EventType, FactorKind
	"idp/stepup/policy.go", // the acr names and PAPE aliases
	"idp/stepup/stepup.go", // Method ("totp", "webauthn") and Requirement ("phr", "phrh")
	"idp/risk/rules.go",    // the Floor constants: idp/risk may not import idp/stepup (TestRiskFloorsAreStepupLevels)
}

// allowed are literals that equal a name but mean something else, by file
// and literal, with how many times each may occur: one more is a failure.
var allowed = map[string]int{
	// Page names: templates/webauthn.html is the passkey step's page.
	`login/render.go "webauthn"`: 1,
	`login/flow.go "webauthn"`:   1,
	// The portal's navigation item for /account/totp (templates/layout.html).
	`login/account.go "totp"`: 1,
	// The kind of a one-time token (one_time_tokens.kind), another stored
	// namespace that happens to share the word.
	`login/webauthn.go "webauthn"`: 1,
	// The storage contract suite stores acr values and factor methods as
	// opaque strings; storage sits below idp/stepup and does not import it.
	`storage/storagetest/fixtures.go "phr"`:                 5,
	`storage/storagetest/fixtures.go "phrh"`:                1,
	`storage/storagetest/fixtures.go "urn:keystep:acr:mfa"`: 5,
	`storage/storagetest/fixtures.go "totp"`:                1,
	`storage/storagetest/fixtures.go "webauthn"`:            1,
	`storage/storagetest/authrequests.go "phr"`:             1,
	`storage/storagetest/sessions.go "totp"`:                1,
}

// TestNoBareNames pins issue 16's "one name for each thing": an audit event
// type, a factor kind or an acr value is written as its constant
// (storage.Event…, storage.Factor…, stepup.ACR…, string(stepup.TOTP) for a
// session's factor method) outside the files that define it. A typo in a
// bare string would compile, write an event nobody filters for, or compare
// a factor kind that never matches. Test files may spell the stored values
// out: they assert what is written.
func TestNoBareNames(t *testing.T) {
	names := map[string]string{}
	for _, e := range storage.EventTypes() {
		names[string(e)] = "an audit event type (storage.EventType)"
	}
	for _, k := range constsOfType(t, "storage", "FactorKind") {
		names[k] = "a factor kind (storage.FactorKind) or method (stepup.Method)"
	}
	for _, a := range []string{stepup.ACRSingleFactor, stepup.ACRMultiFactor, stepup.ACRPhishing, stepup.ACRHardware, stepup.PAPEMultiFactor, stepup.PAPEPhishing} {
		names[a] = "an acr value (stepup.ACR…, stepup.PAPE…)"
	}

	found := map[string][]string{} // allowed key → positions
	fset := token.NewFileSet()
	for _, root := range []string{"storage", "idp", "login", "cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			path = filepath.ToSlash(path)
			if slices.Contains(definitions, path) {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if what, ok := names[s]; ok && err == nil {
					key := path + " " + strconv.Quote(s)
					found[key] = append(found[key], fmt.Sprintf("%s: %q is %s; use its constant", fset.Position(lit.Pos()), s, what))
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for key, at := range found {
		if len(at) > allowed[key] {
			for _, a := range at {
				t.Error(a)
			}
		}
	}
	for key, n := range allowed {
		if len(found[key]) < n {
			t.Errorf("allowed %s ×%d, found %d: lower the count in names_test.go", key, n, len(found[key]))
		}
	}
}

// TestEventTypesListsEveryConstant keeps storage.EventTypes, which the
// console filter and the portal texts rely on, in step with the constants.
func TestEventTypesListsEveryConstant(t *testing.T) {
	declared := constsOfType(t, "storage", "EventType")
	var listed []string
	for _, e := range storage.EventTypes() {
		listed = append(listed, string(e))
	}
	slices.Sort(declared)
	if !slices.Equal(listed, declared) {
		t.Errorf("storage.EventTypes() = %v\nthe EventType constants are %v", listed, declared)
	}
}

// TestRiskFloorsAreStepupLevels: idp/risk stays standard-library-only and
// so spells its default floors out; they must name stepup's levels.
func TestRiskFloorsAreStepupLevels(t *testing.T) {
	if risk.FloorMultiFactor != stepup.ACRMultiFactor || risk.FloorPhishing != stepup.ACRPhishing {
		t.Errorf("risk floors %q, %q; stepup levels %q, %q", risk.FloorMultiFactor, risk.FloorPhishing, stepup.ACRMultiFactor, stepup.ACRPhishing)
	}
}

// constsOfType returns the values of the constants of type typ declared in
// the package in dir (non-test files).
func constsOfType(t *testing.T, dir, typ string) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typ {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a %s constant that is not a string literal", fset.Position(v.Pos()), typ)
					}
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no constants of type %s in %s", typ, dir)
	}
	return out
}
