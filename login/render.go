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
	"sync"
	"time"
)

// renderer parses the page templates once (or on every render in dev mode)
// and renders into a buffer, so a template error never leaves half a page.
type renderer struct {
	fsys fs.FS
	dev  bool

	mu    sync.Mutex
	pages map[string]*template.Template
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
	"minus1":    func(n int) int { return n - 1 },
	"plus1":     func(n int) int { return n + 1 },
	"eventText": eventText,
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
}

func newRenderer(fsys fs.FS, dev bool) (*renderer, error) {
	r := &renderer{fsys: fsys, dev: dev}
	pages, err := r.parse()
	if err != nil {
		return nil, err
	}
	r.pages = pages
	return r, nil
}

func (r *renderer) parse() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	var errs []error
	for _, name := range requiredPages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(r.fsys, "layout.html", "approving.html", "who.html", name+".html")
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
		t, err := template.New("layout.html").Funcs(funcs).Funcs(adminFuncs).ParseFS(r.fsys, files...)
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", name, err))
			continue
		}
		pages[name] = t
	}
	return pages, errors.Join(errs...)
}

func (r *renderer) render(w http.ResponseWriter, status int, name string, data any) error {
	pages := r.pages
	if r.dev {
		p, err := r.parse()
		if err != nil {
			return err
		}
		pages = p
	}
	t, ok := pages[name]
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

// newRef makes a short reference shown on error pages and logged with the
// error, so an admin can find what happened.
func newRef() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
