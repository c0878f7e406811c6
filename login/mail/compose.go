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

// WhenText is When in words, in UTC ("Monday 7 December 2026, 14:07 UTC").
func (d Data) WhenText() string { return d.When.UTC().Format("Monday 2 January 2006, 15:04 MST") }

// UntilText is Until in words, like WhenText.
func (d Data) UntilText() string { return d.Until.UTC().Format("Monday 2 January 2006, 15:04 MST") }

// ExpiresText is Expires in words ("30 minutes").
func (d Data) ExpiresText() string {
	m := int(d.Expires.Round(time.Minute) / time.Minute)
	if m == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", m)
}

//go:embed templates
var files embed.FS

// Templates holds the message templates (templates/KIND.txt and .html),
// for the test that every text in them is translated.
var Templates fs.FS = files

type pair struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

var templates = func() map[Kind]pair {
	m := map[Kind]pair{}
	for _, k := range Kinds() {
		m[k] = pair{
			text: texttemplate.Must(texttemplate.ParseFS(files, "templates/layout.txt", "templates/"+string(k)+".txt")),
			html: htmltemplate.Must(htmltemplate.ParseFS(files, "templates/layout.html", "templates/"+string(k)+".html")),
		}
	}
	return m
}()

// Compose renders the message of kind k to to.
func Compose(k Kind, to string, d Data) (Message, error) {
	p, ok := templates[k]
	if !ok {
		return Message{}, fmt.Errorf("mail: no template %q", k)
	}
	if _, err := Address(to); err != nil {
		return Message{}, err
	}
	if d.Product == "" {
		d.Product = "Keystep"
	}
	var subject, text, html bytes.Buffer
	if err := p.text.ExecuteTemplate(&subject, "subject", d); err != nil {
		return Message{}, err
	}
	if err := p.text.ExecuteTemplate(&text, "text", d); err != nil {
		return Message{}, err
	}
	if err := p.html.ExecuteTemplate(&html, "layout", d); err != nil {
		return Message{}, err
	}
	return Message{
		To: to, Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text: strings.TrimSpace(text.String()) + "\n", HTML: html.String(),
	}, nil
}
