package login

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template/parse"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/templates"
)

// literalArgs are the functions whose string-literal arguments (by index)
// are message keys, translated where they are shown: an error page's
// title and text, a page's title, an admin problem's message. Every other
// message is a literal argument of a T method or of i18n.N, or a literal
// in a template's t.
var literalArgs = map[string][]int{
	"userError":          {1, 2},
	"RenderError":        {3, 4},
	"RenderRequestError": {3},
	"page":               {1},
	"adminPage":          {3},
	// An admin service's problem (login/admin): NewProblem, and the
	// closures that make one for a client and for a receiver.
	"NewProblem":      {1},
	"addProblem":      {1},
	"receiverProblem": {0},
}

// sourceKeys returns every message key the UI uses, with where it is
// used: the templates of the pages and of the emails, the Go code of the
// provider (login and idp, their parts too), and the risk engine's
// reasons (risk.Reason).
func sourceKeys(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	templateKeys(t, templates.FS, ".", "templates", keys)
	templateKeys(t, mail.Templates, "templates", "login/mail/templates", keys)
	for _, root := range []string{".", "../idp"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			goKeys(t, path, keys)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range risk.Names() {
		keys[risk.Reason(n)] = "risk." + n
	}
	delete(keys, "")
	return keys
}

func templateKeys(t *testing.T, fsys fs.FS, dir, label string, keys map[string]string) {
	t.Helper()
	names, err := fs.Glob(fsys, dir+"/*.*")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		trees := map[string]*parse.Tree{}
		tree := parse.New(name)
		tree.Mode = parse.SkipFuncCheck
		if _, err := tree.Parse(string(b), "", "", trees); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, tree := range trees {
			walkTemplate(tree.Root, func(key string) { keys[key] = label + "/" + filepath.Base(name) })
		}
	}
}

func walkTemplate(n parse.Node, found func(string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				walkTemplate(c, found)
			}
		}
	case *parse.ActionNode:
		walkTemplate(n.Pipe, found)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkTemplate(c, found)
		}
	case *parse.CommandNode:
		if len(n.Args) >= 2 {
			if id, ok := n.Args[0].(*parse.IdentifierNode); ok && (id.Ident == "t" || id.Ident == "th") {
				if s, ok := n.Args[1].(*parse.StringNode); ok {
					found(s.Text)
				}
			}
		}
		for _, a := range n.Args {
			walkTemplate(a, found)
		}
	case *parse.IfNode:
		walkTemplate(n.Pipe, found)
		walkTemplate(n.List, found)
		walkTemplate(n.ElseList, found)
	case *parse.RangeNode:
		walkTemplate(n.Pipe, found)
		walkTemplate(n.List, found)
		walkTemplate(n.ElseList, found)
	case *parse.WithNode:
		walkTemplate(n.Pipe, found)
		walkTemplate(n.List, found)
		walkTemplate(n.ElseList, found)
	case *parse.TemplateNode:
		walkTemplate(n.Pipe, found)
	}
}

func goKeys(t *testing.T, path string, keys map[string]string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	lit := func(e ast.Expr) (string, bool) {
		b, ok := e.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(b.Value)
		return s, err == nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		var name string
		switch fn := call.Fun.(type) {
		case *ast.Ident:
			name = fn.Name
		case *ast.SelectorExpr:
			name = fn.Sel.Name
		}
		var idx []int
		switch {
		case name == "T" || name == "N" || name == "Msg":
			idx = []int{0}
		default:
			idx = literalArgs[name]
		}
		for _, i := range idx {
			if i < len(call.Args) {
				if s, ok := lit(call.Args[i]); ok {
					keys[s] = path
				}
			}
		}
		return true
	})
}

var verbRE = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[a-zA-Z%]`)

// verbs returns s's fmt verbs, sorted: a translation must fill the same.
func verbs(s string) []string {
	v := verbRE.FindAllString(s, -1)
	slices.Sort(v)
	return v
}

// TestCatalogsComplete fails when a language misses a message the UI
// uses, when a translation drops or adds a fmt verb, when a plural
// message is not plural in every language, or when a catalog keeps a
// message nothing uses any more.
func TestCatalogsComplete(t *testing.T) {
	cats, err := i18n.Load(i18n.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys := sourceKeys(t)
	if len(keys) < 50 {
		t.Fatalf("found only %d message keys; the extraction is broken", len(keys))
	}
	en := cats.Messages["en"]
	for _, tag := range i18n.Languages[1:] {
		lang := tag.String()
		msgs := cats.Messages[lang]
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			e, ok := msgs[k]
			if !ok {
				t.Errorf("%s: no translation of %q (used in %s)", lang, k, keys[k])
				continue
			}
			if pl := en[k].Plural; pl != nil {
				if e.Plural == nil || e.Plural["other"] == "" {
					t.Errorf("%s: %q is plural in English; give its plural forms (at least \"other\")", lang, k)
				}
				continue
			}
			if e.Plural != nil {
				if e.Plural["other"] == "" {
					t.Errorf("%s: %q has plural forms but no \"other\"", lang, k)
				}
				for _, v := range e.Plural {
					if !slices.Equal(verbs(v), verbs(k)) {
						t.Errorf("%s: %q → %q: fmt verbs %v, want %v", lang, k, v, verbs(v), verbs(k))
					}
				}
				continue
			}
			if strings.TrimSpace(e.Text) == "" {
				t.Errorf("%s: %q is translated as empty", lang, k)
			}
			if !slices.Equal(verbs(e.Text), verbs(k)) {
				t.Errorf("%s: %q → %q: fmt verbs %v, want %v", lang, k, e.Text, verbs(e.Text), verbs(k))
			}
		}
		for k := range msgs {
			if _, ok := keys[k]; !ok {
				t.Errorf("%s: %q is translated but nothing uses it; remove it", lang, k)
			}
		}
	}
	for k := range en {
		if _, ok := keys[k]; !ok {
			t.Errorf("en: %q has plural forms but nothing uses it; remove it", k)
		}
	}
}

// TestCatalogExtractionFindsEveryKind pins the extraction itself: a
// template t, a T method, i18n.N and an error page's literals are each
// found, so TestCatalogsComplete cannot pass by finding nothing.
func TestCatalogExtractionFindsEveryKind(t *testing.T) {
	dir := t.TempDir()
	src := `package x
func f() {
	p.T("from T %s", 1)
	_ = i18n.N("from N")
	userError(400, "error title", "error text")
}`
	path := filepath.Join(dir, "x.go")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	goKeys(t, path, keys)
	tfs := os.DirFS(dir)
	if err := os.WriteFile(filepath.Join(dir, "p.html"), []byte(`{{define "content"}}{{if .X}}<b>{{t "from a template"}}</b>{{range .Y}}{{t "in a range %d" 2}}{{end}}{{end}}{{end}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	templateKeys(t, tfs, ".", "test", keys)
	for _, want := range []string{"from T %s", "from N", "error title", "error text", "from a template", "in a range %d"} {
		if _, ok := keys[want]; !ok {
			t.Errorf("extraction missed %q; found %v", want, slices.Sorted(maps.Keys(keys)))
		}
	}
	if len(sourceKeys(t)) == 0 {
		t.Error("no keys in the sources")
	}
}
