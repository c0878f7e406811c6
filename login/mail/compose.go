package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/keystep/keystep/login/i18n"
)

// Kind names a message Keystep sends; each has a template pair under
// templates/ (KIND.txt: subject and text; KIND.html: the HTML body).
type Kind string

// The messages.
const (
	// ConfirmEmail goes to a new address with the link that confirms it.
	ConfirmEmail Kind = "confirm_email"
	// EmailChanged tells the old address that the account moved away.
	EmailChanged Kind = "email_changed"
	// NewSignIn: a sign-in from a device and a network never seen before.
	NewSignIn Kind = "new_sign_in"
	// FactorAdded: a way to sign in was added.
	FactorAdded Kind = "factor_added"
	// FactorRemoved: a way to sign in was removed.
	FactorRemoved Kind = "factor_removed"
	// PasswordChanged: the password was changed.
	PasswordChanged Kind = "password_changed"
	// ResetPassword carries a "forgot password" link to a verified address.
	ResetPassword Kind = "reset_password"
	// PasswordReset: the password was reset from a link; every other
	// session was ended.
	PasswordReset Kind = "password_reset"
	// RecoveryRequested: a request to replace lost second factors was
	// filed; Link cancels it, Until is when it could be used.
	RecoveryRequested Kind = "recovery_requested"
	// RecoveryApproved: an admin approved a recovery request early; it can
	// be used now, until Until. Link cancels it.
	RecoveryApproved Kind = "recovery_approved"
)

// Kinds lists every Kind (the templates each must have).
func Kinds() []Kind {
	return []Kind{ConfirmEmail, EmailChanged, NewSignIn, FactorAdded, FactorRemoved, PasswordChanged, ResetPassword, PasswordReset, RecoveryRequested, RecoveryApproved}
}

// Data fills a message's template: what happened, when, where, and the
// link to follow.
type Data struct {
	Product  string    // the product name ("Keystep")
	Username string    // whose account
	When     time.Time // when it happened
	IP       string    // from where
	Device   string    // a summary of the user agent ("Firefox on Linux")
	Factor   string    // which way to sign in, in plain words ("authenticator app")
	Address  string    // the new address (ConfirmEmail, EmailChanged)
	Link     string    // where to go: the confirmation link or the portal
	Expires  time.Duration
	Until    time.Time // when a recovery request can be used from (RecoveryRequested) or until (RecoveryApproved)
}

// Minutes is Expires in whole minutes, for "%d minutes".
func (d Data) Minutes() int { return int(d.Expires.Round(time.Minute) / time.Minute) }

//go:embed templates
var files embed.FS

// Templates holds the message templates (templates/KIND.txt and .html),
// for the test that every text in them is translated.
var Templates fs.FS = files

type pair struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// langFuncs are the templates' functions in p's language: t translates
// a message (login/i18n), fmtTime writes a time as the language writes
// it (i18n.Printer.Time: the date and time in UTC, saying so), lang and
// dir are the HTML part's attributes.
func langFuncs(p *i18n.Printer) map[string]any {
	return map[string]any{"t": p.T, "fmtTime": p.Time, "lang": p.Lang, "dir": p.Dir}
}

// templates are parsed once, with placeholder functions; Compose clones
// them with its printer's (a parsed html/template is never executed, so
// it can always be cloned).
var templates = func() map[Kind]pair {
	fm := langFuncs(nil)
	m := map[Kind]pair{}
	for _, k := range Kinds() {
		m[k] = pair{
			text: texttemplate.Must(texttemplate.New("").Funcs(fm).ParseFS(files, "templates/layout.txt", "templates/"+string(k)+".txt")),
			html: htmltemplate.Must(htmltemplate.New("").Funcs(fm).ParseFS(files, "templates/layout.html", "templates/"+string(k)+".html")),
		}
	}
	return m
}()

// Compose renders the message of kind k to to in p's language (subject,
// text and HTML through the catalogs).
func Compose(p *i18n.Printer, k Kind, to string, d Data) (Message, error) {
	tp, ok := templates[k]
	if !ok {
		return Message{}, fmt.Errorf("mail: no template %q", k)
	}
	if p == nil {
		return Message{}, fmt.Errorf("mail: no printer for %q", k)
	}
	if _, err := Address(to); err != nil {
		return Message{}, err
	}
	if d.Product == "" {
		d.Product = "Keystep"
	}
	fm := langFuncs(p)
	text, err := tp.text.Clone()
	if err != nil {
		return Message{}, err
	}
	html, err := tp.html.Clone()
	if err != nil {
		return Message{}, err
	}
	text, html = text.Funcs(fm), html.Funcs(fm)
	var subject, body, hbody bytes.Buffer
	if err := text.ExecuteTemplate(&subject, "subject", d); err != nil {
		return Message{}, err
	}
	if err := text.ExecuteTemplate(&body, "text", d); err != nil {
		return Message{}, err
	}
	if err := html.ExecuteTemplate(&hbody, "layout", d); err != nil {
		return Message{}, err
	}
	return Message{
		To: to, Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text: strings.TrimSpace(body.String()) + "\n", HTML: hbody.String(),
	}, nil
}
