package login

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// renderer parses the page templates once (or on every render in dev mode)
// and renders into a buffer, so a template error never leaves half a page.
type renderer struct {
	fsys fs.FS
	dev  bool
	cats *i18n.Catalogs

	// pages: language → page name → template, its functions speaking
	// that language (langFuncs).
	pages map[language.Tag]map[string]*template.Template
}

// requiredPages must exist in the templates; New fails at start otherwise.
var requiredPages = []string{
	"signin", "password", "otp", "recovery", "consent", "error", "setup", "logged_out",
	"account", "account_totp", "account_recovery", "account_password",
	"account_email",
	"account_passkey", "webauthn", "logout_confirm", "account_help",
	"enroll", "enroll_totp", "enroll_codes",
	"recover", "select_account",
}

// adminPages are the admin console's pages: each is parsed with layout.html
// and admin_frame.html (the console's navigation), and is required too.
var adminPages = []string{
	"admin_home", "admin_clients", "admin_client", "admin_secret", "admin_users", "admin_user",
	"admin_policy", "admin_audit", "admin_keys", "admin_outbox", "admin_recovery",
}

// adminCardPages are the console's pages shown in the sign-in card, outside
// the console (no access, a factor to add first).
var adminCardPages = []string{"admin_denied"}

var funcs = template.FuncMap{
	"minus1": func(n int) int { return n - 1 },
	"plus1":  func(n int) int { return n + 1 },
	"strong": strong,
}

// langFuncs are the template functions that speak p's language: t
// translates a message (its fmt verbs filled from the arguments), the
// others format times, durations, numbers and audit events for a reader
// of the language; lang and dir are the page's lang and dir attributes.
func langFuncs(p *i18n.Printer) template.FuncMap {
	return template.FuncMap{
		"t":         p.T,
		"th":        func(key string, args ...any) template.HTML { return tHTML(p, key, args...) },
		"fmtTime":   p.Time,
		"num":       p.Number,
		"dur":       func(d time.Duration) string { return fmtDuration(p, d) },
		"eventText": func(e storage.AuditEvent) string { return eventText(p, e) },
		"lang":      p.Lang,
		"dir":       p.Dir,
	}
}

// tHTML translates key with markup in its arguments: an argument that
// is template.HTML (strong) goes in as it is, every other one and the
// translated text are escaped. String arguments are held out of the
// translation by marks (private-use characters) and put back after it,
// so no text of the catalog is ever taken as markup.
func tHTML(p *i18n.Printer, key string, args ...any) template.HTML {
	mark := func(i int) string { return fmt.Sprintf("\ue000%d\ue001", i) }
	var pairs []string
	in := slices.Clone(args)
	for i, a := range args {
		switch a := a.(type) {
		case template.HTML:
			in[i] = mark(i)
			pairs = append(pairs, mark(i), string(a))
		case string:
			in[i] = mark(i)
			pairs = append(pairs, mark(i), template.HTMLEscapeString(a))
		}
	}
	// One pass: a value put back is never searched for marks again, so an
	// argument that holds another's mark cannot catch its value.
	return template.HTML(strings.NewReplacer(pairs...).Replace(template.HTMLEscapeString(p.T(key, in...))))
}

// strong is s in bold, for tHTML.
func strong(s string) template.HTML {
	return template.HTML("<strong>" + template.HTMLEscapeString(s) + "</strong>")
}

func newRenderer(fsys fs.FS, dev bool, cats *i18n.Catalogs) (*renderer, error) {
	r := &renderer{fsys: fsys, dev: dev, cats: cats}
	pages, err := r.parse(cats.Tags()...)
	if err != nil {
		return nil, err
	}
	r.pages = pages
	return r, nil
}

// parse parses every page once, then gives each language its own copy.
func (r *renderer) parse(tags ...language.Tag) (map[language.Tag]map[string]*template.Template, error) {
	base, err := r.parseBase()
	if err != nil {
		return nil, err
	}
	out := map[language.Tag]map[string]*template.Template{}
	for _, tag := range tags {
		fm := langFuncs(r.cats.Printer(tag))
		out[tag] = map[string]*template.Template{}
		for name, t := range base {
			c, err := t.Clone()
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", name, err)
			}
			out[tag][name] = c.Funcs(fm)
		}
	}
	return out, nil
}

func (r *renderer) parseBase() (map[string]*template.Template, error) {
	fm := langFuncs(r.cats.Printer(i18n.English))
	pages := map[string]*template.Template{}
	var errs []error
	for _, name := range requiredPages {
		t, err := template.New("layout.html").Funcs(funcs).Funcs(fm).ParseFS(r.fsys, "layout.html", "approving.html", "who.html", name+".html")
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", name, err))
			continue
		}
		pages[name] = t
	}
	for _, name := range slices.Concat(adminPages, adminCardPages) {
		files := []string{"layout.html", "admin_frame.html", name + ".html"}
		if slices.Contains(adminCardPages, name) {
			files = []string{"layout.html", name + ".html"}
		}
		t, err := template.New("layout.html").Funcs(funcs).Funcs(adminFuncs).Funcs(fm).ParseFS(r.fsys, files...)
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", name, err))
			continue
		}
		pages[name] = t
	}
	return pages, errors.Join(errs...)
}

// render renders page name in p's language.
func (r *renderer) render(w http.ResponseWriter, p *i18n.Printer, status int, name string, data any) error {
	pages := r.pages
	if r.dev {
		ps, err := r.parse(p.Tag())
		if err != nil {
			return err
		}
		pages = ps
	}
	t, ok := pages[p.Tag()][name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	return err
}

// render renders page name in the language r asks for (Handler.tr).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) error {
	return h.r.render(w, h.tr(r), status, name, data)
}

// newRef makes a short reference shown on error pages and logged with the
// error, so an admin can find what happened.
func newRef() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
